#!/usr/bin/env bash
# The suite under load (issue 12): `.ci/run` twice in a row with two CPU-bound processes beside it,
# as on a busy CI runner. Prints each run's exit code and duration; exits non-zero if either failed.
#   bash benchmarks/soak.sh            # two busy loops (one per core on a 2-core machine)
#   BUSY=4 bash benchmarks/soak.sh     # more
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.." || exit 1
BUSY=${BUSY:-2}
pids=()
for _ in $(seq "$BUSY"); do
    sh -c 'while :; do :; done' &
    pids+=("$!")
done
trap 'kill "${pids[@]}" 2>/dev/null' EXIT
status=0
for run in 1 2; do
    start=$SECONDS
    CI=${CI:-true} bash .ci/run -q >"${TMPDIR:-/tmp}/mlspec-soak-$run.log" 2>&1
    rc=$?
    printf 'soak: run %d with %d busy loops: exit %d in %d s (log: %s)\n' "$run" "$BUSY" "$rc" \
        "$((SECONDS - start))" "${TMPDIR:-/tmp}/mlspec-soak-$run.log"
    [ "$rc" = 0 ] || status=1
done
exit "$status"
