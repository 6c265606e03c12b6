"""A spec that validated, remembered between runs of the command line until one of its inputs changes.

Parsing and validating 1,000 model files and generating their monitoring is most of what a plan
costs; a repo planned again unchanged (in CI, at review, before and inside apply) needs neither.
An entry, one per repo folder under ``$XDG_CACHE_HOME/mlspec/specs`` (``~/.cache``), holds the
records validation built and the files generated from them. It is used only when all of these
are what they were when it was written:

- the text of every spec file (read again each run; its sha256 is the entry's key),
- mlspec itself: every file of the package and of its built-in templates, by size and mtime, and
  the libraries that validate and generate (pydantic, ruamel.yaml, PyYAML, Jinja2),
- every file and folder the checks looked at (artifacts, datasets, Dockerfiles, scripts): the
  path it resolves to through symlinks, and its inode, size, mtime and ctime, as git's index
  judges a file unchanged, so a pinned file is not hashed again,
- for the generated files, the project's templates folder, by the same stat fields.

Only a spec that validated with no problem is kept: every error still comes from the full check,
with its file, line and key. Only ``mlspec`` as a command turns it on (``enable``): a program that
calls the library validates every time. ``MLSPEC_SPEC_CACHE=0`` turns it off. The entries are
pickles in a folder only the user may write; one owned by someone else is never read.
"""

from __future__ import annotations

import atexit
import copyreg
import dataclasses
import functools
import hashlib
import os
import pickle
import sys
import tempfile
import types
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping

if TYPE_CHECKING:
    from mlspec.spec.model import Spec

FORMAT = 2
KEEP = 32  # entries kept (newest first); a test suite plans hundreds of temporary repos
_PACKAGE = Path(__file__).resolve().parents[1]
_enabled = False
_current: "_Entry | None" = None  # the entry of the spec this process loaded



def _proxy(items: dict) -> types.MappingProxyType:
    return types.MappingProxyType(items)


# The records hold read-only mappings; pickle them as the dicts they wrap.
copyreg.pickle(types.MappingProxyType, lambda m: (_proxy, (dict(m),)))


@dataclasses.dataclass
class _Entry:
    path: Path
    key: str
    spec: "Spec"
    touched: tuple[str, ...]  # every path the checks looked at
    seen: tuple  # their _signature()s then
    # What was made from the spec and the project's templates folder: name -> (its signature, value)
    derived: dict = dataclasses.field(default_factory=dict)


def enable() -> None:
    global _enabled
    _enabled = os.environ.get("MLSPEC_SPEC_CACHE", "1").strip().lower() not in ("0", "false", "no", "off")


def folder() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "mlspec" / "specs"


def _tree(top: Path) -> list[tuple]:
    out = []
    for dirpath, dirnames, filenames in os.walk(top):
        dirnames[:] = sorted(d for d in dirnames if d != "__pycache__")
        for name in sorted(filenames):
            try:
                st = os.stat(os.path.join(dirpath, name))
            except OSError:
                continue
            out.append((os.path.relpath(os.path.join(dirpath, name), top), st.st_size, st.st_mtime_ns))
    return out


# The libraries validation and generation run on: an upgrade of one may change what they accept or write.
LIBRARIES = ("pydantic", "pydantic_core", "ruamel.yaml", "yaml", "jinja2")


def _libraries() -> list[tuple]:
    import importlib.util

    out = []
    for name in LIBRARIES:
        try:
            spec = importlib.util.find_spec(name)
            st = os.stat(spec.origin) if spec and spec.origin else None
        except (ImportError, OSError, ValueError):
            st = None
        out.append((name, spec.origin if st else None, st and (st.st_size, st.st_mtime_ns, st.st_ino)))
    return out


@functools.lru_cache(maxsize=1)
def _code() -> str:
    from importlib.resources import files

    parts = [sys.version, str(FORMAT), repr(_tree(_PACKAGE)), repr(_tree(Path(str(files("mlspec.templates"))))),
             repr(_libraries())]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


def _key(root: Path, texts: Mapping[str, str]) -> str:
    h = hashlib.sha256(_code().encode())
    h.update(os.path.realpath(root).encode())
    for rel in sorted(texts):
        h.update(b"\0" + rel.encode() + b"\0" + texts[rel].encode("utf-8", "surrogateescape"))
    return h.hexdigest()


def _signature(path: str) -> tuple | None:
    try:
        st = os.stat(path)
        return (os.path.realpath(path), st.st_mode, st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
    except (OSError, ValueError):
        return None


def _entry_path(root: Path) -> Path:
    return folder() / (hashlib.sha256(os.path.realpath(root).encode()).hexdigest()[:32] + ".pickle")


def recall(root: Path, texts: Mapping[str, str]) -> "Spec | None":
    """The spec validated from exactly these texts and files, or None (validate it again)."""
    global _current
    if not _enabled:
        return None
    path = _entry_path(root)
    if _current is not None and _current.path == path and _current.key == _key(root, texts):
        # Loaded once already in this process (apply plans, then checks its plan again).
        return _current.spec if tuple(_signature(p) for p in _current.touched) == _current.seen else None
    try:
        with path.open("rb") as f:
            if os.fstat(f.fileno()).st_uid != os.getuid():
                return None
            stored = pickle.load(f)
    except Exception:  # noqa: BLE001 - absent, partial, from another mlspec: validate again
        return None
    if not isinstance(stored, dict) or stored.get("format") != FORMAT or stored.get("key") != _key(root, texts):
        return None
    touched = stored["touched"]
    if tuple(_signature(p) for p in touched) != stored["seen"]:
        return None
    spec = dataclasses.replace(stored["spec"], root=root)
    _current = _Entry(path, stored["key"], spec, touched, stored["seen"], stored.get("derived") or {})
    return spec


def remember(root: Path, texts: Mapping[str, str], spec: "Spec", touched: list[str]) -> None:
    """Keep a spec that validated; ``touched``: the paths its checks looked at (mlspec/spec/checks.py)."""
    global _current
    if not _enabled:
        return
    paths = tuple(dict.fromkeys(touched))
    _current = _Entry(_entry_path(root), _key(root, texts), spec, paths, tuple(_signature(p) for p in paths))
    _save_at_exit()


def derived(spec: "Spec", name: str, make: Callable[["Spec"], Any]) -> Any:
    """``make(spec)`` (generated files, Dockerfiles), or what it made last time from the same
    entry and the same templates folder. Pure functions of those only."""
    entry = _current
    if entry is None or entry.spec is not spec:
        return make(spec)
    templates = _tree(spec.root / spec.project.templates) if spec.project.templates else []
    found = entry.derived.get(name)
    if found is not None and found[0] == templates:
        return found[1]
    value = make(spec)
    entry.derived[name] = (templates, value)
    _save_at_exit()
    return value


_saving = False


def _save_at_exit() -> None:
    # Once, when the command ends: a run that validates also generates, and the entry (megabytes
    # on a large repo) is written once with both.
    global _saving
    if not _saving:
        _saving = True
        atexit.register(lambda: _enabled and _current is not None and _save(_current))


def _save(entry: _Entry) -> None:
    # The spec is stored without its root: the entry is found by the repo's real path and the
    # records are used with the root the command was given.
    doc = {"format": FORMAT, "key": entry.key, "spec": dataclasses.replace(entry.spec, root=Path(".")),
           "touched": entry.touched, "seen": entry.seen, "derived": entry.derived}
    try:
        entry.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd, tmp = tempfile.mkstemp(dir=entry.path.parent, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as f:
                pickle.dump(doc, f, protocol=pickle.HIGHEST_PROTOCOL)
            os.replace(tmp, entry.path)
        except BaseException:
            os.unlink(tmp)
            raise
        _evict(entry.path.parent)
    except (OSError, pickle.PicklingError, TypeError, AttributeError):
        pass  # no cache folder (a read-only home): the next run validates again


def _evict(where: Path) -> None:
    entries = []
    for p in where.glob("*.pickle"):
        try:
            entries.append((p.stat().st_mtime_ns, p))
        except OSError:
            continue
    for _, p in sorted(entries, reverse=True)[KEEP:]:
        try:
            p.unlink()
        except OSError:
            pass
