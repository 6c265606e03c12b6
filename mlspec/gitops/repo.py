"""The few git operations the GitOps loop needs, through GitPython: read spec texts at a commit,
make a branch, commit exactly the files an edit touched."""

from __future__ import annotations

from pathlib import Path, PurePosixPath

from git import BadName, GitCommandError, InvalidGitRepositoryError, NoSuchPathError, Repo
from git.objects import Commit

from mlspec.errors import MlspecError, StateError
from mlspec.spec import MODELS_DIR, PROJECT_FILE


def open_repo(root: Path) -> tuple[Repo, str]:
    """The git repo holding ``root`` and root's posix path inside it ('' when root is the top)."""
    try:
        repo = Repo(root, search_parent_directories=True)
    except (InvalidGitRepositoryError, NoSuchPathError):
        raise StateError(f"{root} is not inside a git repository; run `git init` there, or leave out the options that need git") from None
    top = Path(repo.working_tree_dir).resolve()
    prefix = Path(root).resolve().relative_to(top).as_posix()
    return repo, "" if prefix == "." else prefix


def in_repo(prefix: str, rel: str) -> str:
    """A spec-root-relative path as a path from the top of the repo."""
    return str(PurePosixPath(prefix, rel)) if prefix else rel


def has_head(repo: Repo) -> bool:
    try:
        repo.head.commit
    except ValueError:  # a repo with no commit yet
        return False
    return True


def spec_texts_at(commit: Commit, prefix: str) -> dict[str, str]:
    """{spec-root-relative name: text} of the spec files in ``commit``, as ``spec_files`` lists them."""
    tree = commit.tree
    texts: dict[str, str] = {}
    blob = _blob(tree, in_repo(prefix, PROJECT_FILE))
    if blob is not None and blob.type == "blob":
        texts[PROJECT_FILE] = _decode(blob.data_stream.read())
    models = _blob(tree, in_repo(prefix, MODELS_DIR))
    if models is not None and models.type == "tree":
        for blob in sorted(models.blobs, key=lambda b: b.name):
            if blob.name.endswith((".yaml", ".yml")):
                texts[f"{MODELS_DIR}/{blob.name}"] = _decode(blob.data_stream.read())
    return texts


def _blob(tree, path: str):
    try:
        return tree / path
    except KeyError:
        return None


def _decode(data: bytes) -> str:
    return data.decode("utf-8", errors="replace")


def text_at_head(repo: Repo, path: str) -> str | None:
    if not has_head(repo):
        return None
    blob = _blob(repo.head.commit.tree, path)
    return None if blob is None else _decode(blob.data_stream.read())


def check_branch_free(repo: Repo, name: str) -> None:
    try:
        repo.git.check_ref_format("--branch", name)
    except GitCommandError:
        raise MlspecError(f"{name!r} is not a valid branch name; pick another --branch") from None
    if name in repo.heads:
        raise MlspecError(f"branch {name} already exists; pick another --branch, or check it out and run without --branch")


def create_branch(repo: Repo, name: str) -> None:
    """Create and check out ``name`` from HEAD; uncommitted changes come along, as with `git checkout -b`."""
    try:
        repo.git.checkout("-b", name)
    except GitCommandError as e:
        raise StateError(f"git could not create branch {name}: {_stderr(e)}") from None


def commit_paths(repo: Repo, paths: list[str], message: str) -> str:
    """Commit exactly ``paths`` (repo-top-relative) with ``message``; other staged changes stay staged."""
    try:
        repo.git.add("--", *paths)
        repo.git.commit("-q", "-m", message, "--", *paths)
    except GitCommandError as e:
        raise StateError(f"git commit failed: {_stderr(e)}; the edit is written but not committed") from None
    return repo.head.commit.hexsha


def resolve(repo: Repo, rev: str) -> Commit:
    try:
        return repo.commit(rev)
    except (BadName, ValueError):
        raise StateError(f"git does not know {rev!r}") from None


def _stderr(e: GitCommandError) -> str:
    text = (e.stderr or "").strip().replace("stderr: ", "").strip("'\n ")
    return text.splitlines()[-1] if text else f"exit code {e.status}"
