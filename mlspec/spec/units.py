"""Scalar types of the wire format: names, durations, sizes, comparisons, digests.

Each is a constrained ``str`` (or number) so that the JSON Schema shows the pattern to editors, and
each has a parser used by the internal model. Error messages never repeat the input value: a
value may be a secret pasted in the wrong place.
"""

from __future__ import annotations

import functools
import re
from decimal import Decimal
from typing import Annotated, Any


NAME_RE = r"^[a-z][a-z0-9-]{0,62}$"
VERSION_RE = r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(?:-[0-9A-Za-z.-]+)?$"
# Prometheus's own duration grammar: units largest first, each at most once (promtool refuses
# `5m1h` and `1s1s`); the lookahead refuses the empty string.
DURATION_RE = r"^(?=\d)(\d+y)?(\d+w)?(\d+d)?(\d+h)?(\d+m)?(\d+s)?(\d+ms)?$"
SIZE_RE = r"^(\d+)([bkmg]?)$"
COMPARISON_RE = r"^(>=|<=|>|<|==)\s*(-?\d+(?:\.\d+)?)$"
SHA256_RE = r"^[0-9a-f]{64}$"
ENV_NAME_RE = r"^[A-Za-z_][A-Za-z0-9_]*$"

_DURATION_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}
_SIZE_UNITS = {"": 1, "b": 1, "k": 1024, "m": 1024**2, "g": 1024**3}


@functools.lru_cache(maxsize=64)
def _compiled(pattern: str) -> re.Pattern:
    return re.compile(pattern)


def fits(pattern: str, text: str) -> bool:
    """The one pattern rule of every checked string: the whole text matches. (With ``re.match``
    a pattern's ``$`` also matches before a final newline, so ``"churn\\n"`` would pass as a name
    and break the rules file or the image reference it reaches.) The patterns keep ``^...$`` for
    the JSON Schema, where ``$`` means the end of the text."""
    return _compiled(pattern).fullmatch(text) is not None


def _matches(pattern: str, what: str):
    def check(value: str) -> str:
        if not fits(pattern, value):
            raise ValueError(f"must be {what}")
        return value

    return check


def _not_a_number(what: str, hint: str = ""):
    # `for: 10`, `accuracy: 0.9` or `version: 1.0` arrive as numbers: say what is wanted, not
    # just "must be a string" (quoting 1.0 alone would not make it a valid version).
    def check(value):
        if isinstance(value, (int, float)):
            raise ValueError(f"must be {what}{hint}")
        return value

    from pydantic import BeforeValidator

    return BeforeValidator(check)


def _text(pattern: str, what: str, number_hint: str | None = None) -> Any:
    """A str that must match ``pattern``: the pattern goes into the JSON Schema for editors, the
    check gives one sentence saying what is wanted. ``number_hint`` (when given) turns a YAML
    number in its place into that sentence instead of pydantic's "must be a string"."""
    from pydantic import AfterValidator, Field

    parts: list[Any] = [Field(json_schema_extra={"pattern": pattern}), AfterValidator(_matches(pattern, what))]
    if number_hint is not None:
        parts.insert(0, _not_a_number(what, number_hint))
    return Annotated[(str, *parts)]


# Docker refuses a tag longer than 128 characters; ours is <version>-<build hash[:12]>.
MAX_VERSION_LENGTH = 128 - 13
# Prometheus keeps a duration in a Go time.Duration (int64 nanoseconds): promtool calls a longer
# one "out of range" (about 292 years).
_MAX_DURATION_NS = 2**63 - 1


def _version_length(value: str) -> str:
    if len(value) > MAX_VERSION_LENGTH:
        raise ValueError(f"is too long: the image tag (version, '-' and a 12-character build hash) may hold at most 128 characters, so a version at most {MAX_VERSION_LENGTH}")
    return value


def _duration_range(value: str) -> str:
    ms = sum(int(n) * int(_DURATION_UNITS[u] * 1000) for n, u in re.findall(r"(\d+)(ms|s|m|h|d|w|y)", value))
    if ms == 0:
        raise ValueError("must be longer than 0")
    if ms * 1_000_000 > _MAX_DURATION_NS:
        raise ValueError("is out of range: at most 292 years (Prometheus's limit)")
    return value


_MIN_MEMORY = 6 * 1024**2  # Docker refuses a smaller memory limit ("Minimum memory limit allowed is 6MB")


def _positive_size(value: str) -> str:
    # Sizes are memory limits: 0m would reach the engine as "no limit", 1m as an error at apply.
    if size_bytes(value) < _MIN_MEMORY:
        raise ValueError("must be at least 6m (Docker's smallest memory limit)")
    return value


# PEP 508 names: a name starting with '-' would reach `pip download` as an option.
PACKAGE_RE = r"^[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?$"
# Docker's reference grammar (host[:port] then lowercase path components), upper case refused.
REGISTRY_RE = (r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*(:[0-9]{1,5})?"
               r"(/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*$")
# An image reference as Docker reads one (it goes into a Dockerfile's FROM line: a newline there
# would add instructions of its own).
IMAGE_RE = (REGISTRY_RE[:-1] + r"(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(@sha256:[0-9a-f]{64})?$")
ALERT_NAME_RE = r"^[A-Za-z][A-Za-z0-9_]*$"
METRIC_NAME_RE = r"^[a-z][a-z0-9_]{0,62}$"


@functools.lru_cache(maxsize=1)
def _types() -> dict[str, Any]:
    """The wire format's checked string types (pydantic annotations), made on first use: the
    planner and generators import this module for its pure helpers and should not load pydantic."""
    from pydantic import AfterValidator

    return {
        "Name": _text(NAME_RE, "a name: lowercase letters, digits and '-', starting with a letter, at most 63 characters"),
        "Version": Annotated[_text(VERSION_RE, "a semantic version such as 1.2.0", " (unquoted, YAML reads 1.0 as a number)"),
                             AfterValidator(_version_length)],
        "Duration": Annotated[_text(DURATION_RE, "a duration such as 250ms, 30s, 5m, 1h or 30d (largest unit first)", ""),
                              AfterValidator(_duration_range)],
        "Size": Annotated[_text(SIZE_RE, "a size such as 512m or 2g (units b, k, m, g)", ""), AfterValidator(_positive_size)],
        "PackageName": _text(PACKAGE_RE, "a Python package name such as scikit-learn (letters, digits, '.', '_', '-'; starting and ending with a letter or digit)"),
        "Registry": _text(REGISTRY_RE, "an image registry such as 127.0.0.1:5000/team: lowercase host[:port][/path], no spaces"),
        "ImageRef": _text(IMAGE_RE, "an image reference such as python:3.11-slim or registry:5000/base@sha256:<digest>"),
        "Comparison": _text(COMPARISON_RE, 'a comparison such as ">= 0.90" (operators >=, <=, >, <, ==)', ""),
        "Sha256": _text(SHA256_RE, "a sha256 digest: 64 lowercase hex characters", "; quote it (unquoted, YAML reads it as a number)"),
        "EnvName": _text(ENV_NAME_RE, "an environment variable name"),
        "AlertName": _text(ALERT_NAME_RE, "an alert name: letters, digits and '_', starting with a letter"),
        "MetricName": _text(METRIC_NAME_RE, "a metric name: lowercase letters, digits and '_', starting with a letter"),
        # A package pin: one exact version, never a range (a pickle loads only under the version that wrote it).
        "Pin": _text(r"^[^<>=!~*,\s]+$", "one exact version, such as 1.5.2, not a range"),
    }


def __getattr__(name: str) -> Any:
    try:
        if name.startswith("__"):  # the import system asking for __path__ and the like
            raise KeyError(name)
        return _types()[name]
    except KeyError:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None


def duration_seconds(text: str) -> float:
    """'1h30m' -> 5400.0."""
    total = 0.0
    for amount, unit in re.findall(r"(\d+)(ms|s|m|h|d|w|y)", text):
        total += int(amount) * _DURATION_UNITS[unit]
    return total


def size_bytes(text: str) -> int:
    """'512m' -> 536870912 (Docker's units: powers of 1024)."""
    m = _compiled(SIZE_RE).fullmatch(text)
    assert m, text
    return int(m.group(1)) * _SIZE_UNITS[m.group(2)]


def parse_comparison(text: str) -> tuple[str, Decimal]:
    """'>= 0.90' -> ('>=', Decimal('0.90')); decimals keep thresholds exact in generated rules."""
    m = _compiled(COMPARISON_RE).fullmatch(text)
    assert m, text
    return m.group(1), Decimal(m.group(2))
