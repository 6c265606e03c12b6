"""One root error; the CLI is the only place that turns errors into exit codes (STYLE.md §5)."""

from __future__ import annotations

from dataclasses import dataclass


class MlspecError(Exception):
    """Every failure mlspec expects. ``str()`` is one sentence naming what failed and what to do."""

    exit_code = 1


@dataclass(frozen=True, order=True)
class SpecProblem:
    """One problem in one spec file, located to the YAML node it came from."""

    path: str
    line: int
    col: int
    key: str
    message: str

    def text(self) -> str:
        key = f"{self.key}: " if self.key else ""
        return shown(f"{self.path}:{self.line}:{self.col}: {key}{self.message}")

    def github(self) -> str:
        # GitHub workflow commands: the message is data, so %, CR and LF must be escaped.
        msg = shown((f"{self.key}: " if self.key else "") + self.message, breaks=True)
        msg = msg.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")
        path = shown(self.path).replace("%", "%25").replace(",", "%2C").replace(":", "%3A")
        return f"::error file={path},line={self.line},col={self.col}::{msg}"


def shown(text: str, *, breaks: bool = False) -> str:
    """Text safe to print: a character that is not printable (a control, a terminal escape, a
    bidirectional override such as U+202E in a file name) is shown as its escape; with ``breaks``,
    line feeds and tabs stay (a multi-line message; GitHub's annotations escape LF their own way).
    A carriage return is always escaped: it could print over what came before it."""
    if text.isprintable():
        return text
    keep = "\n\t" if breaks else ""
    return "".join(ch if ch.isprintable() or ch in keep else ascii(ch)[1:-1] for ch in text)


class SpecError(MlspecError):
    """All the problems of all the spec files of one run, reported together."""

    def __init__(self, problems: list[SpecProblem]):
        self.problems = sorted(set(problems))
        super().__init__(f"{len(self.problems)} problem(s) in the spec")


class StateError(MlspecError):
    """A target, the registry or git could not be read."""


class ApplyError(MlspecError):
    """Applying a plan failed part way; the message says what is left as it was."""


class LockError(MlspecError):
    """A target lock is held by someone else, or could not be taken."""
