"""Read the spec at a git ref through GitPython: blobs of the commit's tree, never the working tree."""

from __future__ import annotations

from pathlib import Path, PurePosixPath

import git
from git.objects import Blob, Tree

from mlspec.errors import StateError
from mlspec.spec import MODELS_DIR, PROJECT_FILE


class GitSource:
    """Files of one commit, under the spec root (which may be a folder inside the repo)."""

    def __init__(self, root: Path, ref: str):
        root = Path(root).resolve()
        try:
            self.repo = git.Repo(root, search_parent_directories=True)
        except (git.InvalidGitRepositoryError, git.NoSuchPathError) as e:
            raise StateError(f"{root} is not inside a git repository; --base needs one.") from e
        try:
            self.commit = self.repo.commit(ref)
        except (git.BadName, ValueError) as e:
            raise StateError(f"Git ref '{ref}' is not in this repository; fetch it first "
                             "(in GitHub Actions: actions/checkout with fetch-depth: 0).") from e
        self.prefix = root.relative_to(Path(self.repo.working_tree_dir).resolve()).as_posix()
        self.prefix = "" if self.prefix == "." else self.prefix + "/"
        self.ref = ref

    def _node(self, rel: str):
        try:
            return self.commit.tree / (self.prefix + rel).rstrip("/")
        except KeyError:
            return None

    def read(self, rel: str) -> bytes:
        node = self._node(rel)
        if not isinstance(node, Blob):
            raise StateError(f"{rel} is not in git ref '{self.ref}'.")
        return node.data_stream.read()

    def files_under(self, rel_dir: str) -> list[str]:
        node = self._node(rel_dir)
        if not isinstance(node, Tree):
            return []
        base = PurePosixPath(self.prefix + rel_dir.rstrip("/"))
        return sorted((PurePosixPath(rel_dir.rstrip("/")) / PurePosixPath(b.path).relative_to(base)).as_posix()
                      for b in node.traverse() if isinstance(b, Blob))

    def spec_texts(self) -> dict[str, str]:
        """mlspec.yaml and models/*.y(a)ml at the ref, as the loader reads them from disk."""
        texts = {}
        if isinstance(self._node(PROJECT_FILE), Blob):
            texts[PROJECT_FILE] = self.read(PROJECT_FILE).decode("utf-8")
        models = self._node(MODELS_DIR)
        if isinstance(models, Tree):
            for b in models.blobs:
                if b.name.endswith((".yaml", ".yml")):
                    texts[f"{MODELS_DIR}/{b.name}"] = b.data_stream.read().decode("utf-8")
        return texts
