#!/usr/bin/env bash
# The step of the mlspec composite action (action.yml), kept here so tests can run it with a
# simulated GitHub environment. Reads INPUT_COMMAND (plan|apply), INPUT_WORKING_DIRECTORY,
# INPUT_ARGS and GitHub's variables; writes GITHUB_OUTPUT (exitcode, has-changes) and
# GITHUB_STEP_SUMMARY.
#
#   plan on a pull request: validate (annotations), `mlspec plan --base origin/<base>` as markdown
#     (with INPUT_EVALUATE=true and a Docker engine, `--evaluate`: the scores of every version
#     the change gates), posted as one comment that later pushes update in place (found by its
#     hidden marker).
#   plan elsewhere: plan against live state, markdown to the step summary.
#   apply: validate, plan against live state, and only when it has changes, `mlspec apply
#     --auto-approve` (apply takes the target locks itself; the workflow's concurrency group
#     keeps two runs from queueing on them).
# `plan --detailed-exitcode` exits 2 for "changes": that is an answer, not a failure.
# The backticks in single quotes below are markdown fences, not command substitutions.
# shellcheck disable=SC2016
set -uo pipefail

COMMAND=${INPUT_COMMAND:-plan}
WORKDIR=${INPUT_WORKING_DIRECTORY:-.}
MLSPEC=${MLSPEC:-mlspec}
PYTHON=${PYTHON:-python3}
read -r -a EXTRA <<<"${INPUT_ARGS:-}"
TMP=$(mktemp -d "${RUNNER_TEMP:-${TMPDIR:-/tmp}}/mlspec-action.XXXXXX")
trap 'rm -rf "$TMP"' EXIT
# One comment per project folder: a monorepo with two spec folders gets two comments.
if [ "$WORKDIR" = "." ]; then MARKER="<!-- mlspec-plan -->"; else MARKER="<!-- mlspec-plan dir=$WORKDIR -->"; fi

warn() { printf '::warning::%s\n' "$*"; }
output() { [ -z "${GITHUB_OUTPUT:-}" ] || printf '%s=%s\n' "$1" "$2" >>"$GITHUB_OUTPUT"; }
summary() { [ -z "${GITHUB_STEP_SUMMARY:-}" ] || cat "$1" >>"$GITHUB_STEP_SUMMARY"; }

finish() {  # finish EXITCODE [HAS_CHANGES]: set the outputs; 0 and 2 are answers, anything else fails the step
    output exitcode "$1"
    output has-changes "${2:-$([ "$1" = 2 ] && echo true || echo false)}"
    case $1 in 0 | 2) exit 0 ;; *) exit "$1" ;; esac
}

pr_number() {
    [ -n "${GITHUB_EVENT_PATH:-}" ] && [ -f "$GITHUB_EVENT_PATH" ] || return 0
    "$PYTHON" -c 'import json, sys; print((json.load(open(sys.argv[1])).get("pull_request") or {}).get("number") or "")' \
        "$GITHUB_EVENT_PATH"
}

post_comment() {  # post_comment BODY_FILE: create the plan comment, or update the one already there
    local pr body=$1 id escaped
    pr=$(pr_number)
    [ -n "$pr" ] || return 0
    if [ -z "${GH_TOKEN:-}" ]; then warn "no github-token: the plan is in the step summary only"; return 0; fi
    escaped=${MARKER//\\/\\\\}
    escaped=${escaped//\"/\\\"}
    if ! id=$(gh api --paginate "repos/$GITHUB_REPOSITORY/issues/$pr/comments" \
        --jq ".[] | select(.body | startswith(\"$escaped\")) | .id"); then
        warn "could not list the pull request's comments (does the token have pull-requests: write?); the plan is in the step summary"
        return 0
    fi
    id=${id%%$'\n'*}
    if [ -n "$id" ]; then
        gh api --method PATCH "repos/$GITHUB_REPOSITORY/issues/comments/$id" -F "body=@$body" >/dev/null
    else
        gh api --method POST "repos/$GITHUB_REPOSITORY/issues/$pr/comments" -F "body=@$body" >/dev/null
    fi || warn "could not post the plan comment; the plan is in the step summary"
}

failed_block() {  # failed_block TITLE STDERR_FILE: a markdown section quoting the last of the error
    printf '### %s\n\n```\n%s\n```\n' "$1" "$(tail -c 20000 "$2")"
}

case $COMMAND in plan | apply) ;; *) echo "::error::command must be plan or apply, not '$COMMAND'"; finish 1 ;; esac
cd "$WORKDIR" || { echo "::error::working-directory '$WORKDIR' does not exist"; finish 1; }

# Validate first, with annotations on the changed lines: an invalid spec is not planned.
"$MLSPEC" validate --format github
rc=$?
[ "$rc" = 0 ] || finish "$rc"

if [ "$COMMAND" = plan ]; then
    args=(plan --format markdown --detailed-exitcode)
    if [ -n "${GITHUB_BASE_REF:-}" ]; then
        base="origin/$GITHUB_BASE_REF"
        # actions/checkout fetches one commit by default; PR mode needs the base branch too.
        git rev-parse --verify -q "$base^{commit}" >/dev/null ||
            git fetch --no-tags --quiet origin "+refs/heads/$GITHUB_BASE_REF:refs/remotes/$base" ||
            warn "could not fetch $base"
        args+=(--base "$base")
        if [ "${INPUT_EVALUATE:-true}" = true ]; then
            if docker version --format '{{.Server.Version}}' >/dev/null 2>&1; then
                args+=(--evaluate)
            else
                warn "no Docker engine answers on this runner: the plan is posted without evaluation scores"
            fi
        fi
    fi
    "$MLSPEC" "${args[@]}" "${EXTRA[@]}" >"$TMP/plan.md" 2>"$TMP/plan.err"
    rc=$?
    cat "$TMP/plan.err" >&2
    { printf '%s\n' "$MARKER"
      case $rc in 0 | 2) cat "$TMP/plan.md" ;; *) failed_block "mlspec plan failed (exit code $rc)" "$TMP/plan.err" ;; esac
    } >"$TMP/comment.md"
    cat "$TMP/comment.md"
    summary "$TMP/comment.md"
    post_comment "$TMP/comment.md"
    finish "$rc"
fi

# apply
"$MLSPEC" plan --format text --detailed-exitcode "${EXTRA[@]}" >"$TMP/plan.txt" 2>"$TMP/plan.err"
rc=$?
cat "$TMP/plan.txt"
cat "$TMP/plan.err" >&2
{ printf '### mlspec apply\n\n'
  case $rc in 0 | 2) printf '```\n%s\n```\n' "$(cat "$TMP/plan.txt")" ;; *) failed_block "mlspec plan failed (exit code $rc)" "$TMP/plan.err" ;; esac
} >"$TMP/summary.md"
if [ "$rc" = 2 ]; then
    "$MLSPEC" apply --auto-approve "${EXTRA[@]}" 2>&1 | tee "$TMP/apply.log"
    arc=${PIPESTATUS[0]}
    if [ "$arc" = 0 ]; then
        printf '\nApplied.\n' >>"$TMP/summary.md"
    else
        failed_block "mlspec apply failed (exit code $arc)" "$TMP/apply.log" >>"$TMP/summary.md"
        summary "$TMP/summary.md"
        finish "$arc" true
    fi
elif [ "$rc" = 0 ]; then
    printf '\nNo changes: nothing to apply.\n' >>"$TMP/summary.md"
fi
summary "$TMP/summary.md"
finish "$rc"
