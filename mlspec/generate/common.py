"""What every generator shares: the header, the template environment, value checks, YAML helpers.

Every generated YAML file is rendered from a Jinja2 template (a project may override it), then
parsed back and compared with the values it was given: a template mistake or a value that slips
past the checks fails generation instead of producing a file Prometheus reads differently.
"""

from __future__ import annotations

import functools
import hashlib
import io
import os
import json
import re
from decimal import Decimal
from importlib.resources import files as package_files
from pathlib import Path
from typing import Any, Iterable

import jinja2
from ruamel.yaml import YAML

from mlspec.errors import MlspecError
from mlspec.generate.fastdump import dump_block
from mlspec.generate.header import HEADER  # noqa: F401 - part of this module's API
from mlspec.generate.promql import promql_problems
from mlspec.spec import fastyaml
from mlspec.spec.model import Spec
from mlspec.spec.units import DURATION_RE, NAME_RE, VERSION_RE, duration_seconds, fits

YAML_HEADER = f"# {HEADER}\n"
# Dashboards are JSON, which has no comments: this top-level key carries the header (Grafana
# keeps unknown keys and ignores them).
JSON_HEADER_KEY = "__generated"

JOB = "mlspec"  # the scrape job of every serving target
CONTRACT_METRICS = (
    "mlspec_model_info",
    "mlspec_inference_requests_total",
    "mlspec_inference_request_duration_seconds",
    "mlspec_model_ready",
    # model quality (mlspec/serving/quality.py): histogram series by their leaf names
    "mlspec_predictions_total",
    "mlspec_prediction_value_bucket",
    "mlspec_prediction_value_count",
    "mlspec_feature_value_bucket",
    "mlspec_feature_value_count",
    "mlspec_feature_category_total",  # text features by category (mlspec/serving/categories.py)
    "mlspec_feedback_total",
    # the front's own (GET /_mlspec/metrics on a deployment's port), while a shadow rollout runs
    "mlspec_shadow_agreement_total",
)

ALERT_NAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
DECIMAL_RE = re.compile(r"^(0|[1-9]\d*)(\.\d+)?$")
SEVERITIES = ("page", "ticket", "info")


class GenerateError(MlspecError):
    """The spec holds a value the monitoring files cannot carry safely, or a template is broken."""

    def __init__(self, problems: Iterable[str]):
        self.problems = sorted(set(problems))
        super().__init__("cannot generate the monitoring files: " + "; ".join(self.problems))


# --- values -------------------------------------------------------------------------------


def printable(text: str, *, newlines: bool = False) -> bool:
    return (text.replace("\n", "") if newlines else text).isprintable()


def check(problems: list[str], ok: bool, where: str, message: str) -> None:
    if not ok:
        problems.append(f"{where}: {message}")


def is_name(text: str) -> bool:
    return fits(NAME_RE, text)  # the whole text: `re.match`'s '$' passes a final newline


def is_version(text: str) -> bool:
    return fits(VERSION_RE, text)


def is_duration(text: str) -> bool:
    return fits(DURATION_RE, text) and duration_seconds(text) > 0


def is_decimal(text: str | None) -> bool:
    return text is not None and bool(DECIMAL_RE.fullmatch(text))


def decimal_text(d: Decimal) -> str:
    """Exact, plain notation, no trailing zeros: Decimal('14.4') * Decimal('0.005') -> '0.072'."""
    text = format(d.normalize(), "f")
    return text


def duration_text(seconds: int) -> str:
    """Prometheus duration, largest units first: 60480 -> '16h48m'."""
    if seconds <= 0:
        raise ValueError(seconds)
    out = ""
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if seconds >= size:
            out += f"{seconds // size}{unit}"
            seconds %= size
    return out


def go_template_text(text: str) -> str:
    """Plain text in an annotation, which Prometheus expands as a Go template: '{{' must stay literal."""
    return text.replace("{{", '{{ "{{" }}')


def uid(*parts: str) -> str:
    """A Grafana uid from names: readable when it fits in 40 characters, else cut and suffixed by a digest."""
    joined = "-".join(parts)
    if len(joined) <= 40:
        return joined
    return joined[:31].rstrip("-") + "-" + hashlib.sha256(joined.encode()).hexdigest()[:8]


# --- templates ----------------------------------------------------------------------------


_PLAIN_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_:./-]*$")
# Words YAML 1.1 readers (Prometheus and Alertmanager use Go's yaml.v2) take for booleans or null.
_YAML11_WORDS = {"y", "n", "yes", "no", "true", "false", "on", "off", "null"}


def yaml_scalar(value: Any) -> str:
    """A YAML flow scalar that reads back as exactly ``value``: plain when that is unambiguous, else JSON
    (a subset of YAML), so no quote, newline or colon in a value can change the document's shape."""
    if value.__class__ is str:
        return _str_scalar(value)  # names, labels and durations repeat in every rules file (issue 3)
    if isinstance(value, str):
        return _text_scalar(value)
    return json.dumps(value, ensure_ascii=False)


def _text_scalar(value: str) -> str:
    if not printable(value, newlines=True):
        raise GenerateError([f"value {value[:40]!r}… holds a control character"])
    if _PLAIN_RE.fullmatch(value) and value.lower() not in _YAML11_WORDS:
        return value
    return json.dumps(value, ensure_ascii=False)


_str_scalar = functools.lru_cache(maxsize=8192)(_text_scalar)  # a refusal raises: never cached


def yaml_block(value: str, indent: int) -> str:
    """A multi-line string as a literal block scalar (readable PromQL in diffs); one line stays quoted."""
    if value.__class__ is str and "\n" not in value:
        return yaml_scalar(value)  # one line: what the split below decides, without it
    lines = [line.rstrip() for line in value.strip("\n").split("\n")]
    if len(lines) == 1 or lines[0][:1] in (" ", "\t") or not printable(value, newlines=True):
        return yaml_scalar(value)
    pad = " " * indent
    return "|-\n" + "\n".join(pad + line if line else "" for line in lines)


def environment(spec: Spec) -> jinja2.Environment:
    """The project's own templates folder first, then the built-in templates shipped as mlspec.templates.

    One environment per folder and process while the folder's files stay as they are, so each
    template is compiled once, not once per run (issue 3: speed)."""
    folder = str(Path(spec.root) / spec.project.templates)
    key = templates_key(folder)
    return _environment(folder) if key is None else _cached_environment(folder, key)


_MAX_TEMPLATE_FILES = 200  # a folder larger than this (`templates: .`?) is not listed every run


def templates_key(folder: str) -> tuple | None:
    """The files of a templates folder by name, size and mtime; None when there are too many to list."""
    out = []
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames.sort()
        for name in sorted(filenames):
            try:
                st = os.stat(os.path.join(dirpath, name))
            except OSError:
                continue
            out.append((dirpath, name, st.st_size, st.st_mtime_ns, st.st_ino))
            if len(out) > _MAX_TEMPLATE_FILES:
                return None
    return tuple(out)


@functools.lru_cache(maxsize=16)
def _cached_environment(folder: str, key: tuple) -> jinja2.Environment:
    return _environment(folder)


def _environment(folder: str) -> jinja2.Environment:
    loaders = [
        jinja2.FileSystemLoader(folder),
        jinja2.FileSystemLoader(str(package_files("mlspec.templates"))),
    ]
    env = jinja2.Environment(
        loader=jinja2.ChoiceLoader(loaders),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        autoescape=False,
        auto_reload=False,  # a changed templates folder is a new environment (templates_key): no stat a render
    )
    env.filters["yaml"] = yaml_scalar
    env.filters["block"] = yaml_block
    env.globals["header"] = YAML_HEADER.rstrip("\n")
    return env


def render(env: jinja2.Environment, name: str, **context: Any) -> str:
    try:
        text = env.get_template(name).render(**context)
    except jinja2.TemplateError as e:
        raise GenerateError([f"template {name}: {e}"]) from None
    return text if text.endswith("\n") else text + "\n"


def render_promql(env: jinja2.Environment, name: str, **context: Any) -> str:
    text = render(env, name, **context).strip()
    problems = promql_problems(text)
    if problems:
        raise GenerateError([f"template {name} rendered bad PromQL: {p}" for p in problems])
    return text


# --- YAML ---------------------------------------------------------------------------------


def load_yaml(text: str, name: str) -> Any:
    fast = fastyaml.load(text, "safe")  # libyaml where it reads as ruamel does (issue 3: speed)
    if fast is not fastyaml.UNSURE:
        return fast
    try:
        return YAML(typ="safe", pure=True).load(text)
    except Exception as e:  # ruamel raises many classes; all mean the same here
        raise GenerateError([f"{name} is not valid YAML after rendering: {e}"]) from None


def dump_yaml(data: Any) -> str:
    """Deterministic block YAML with the header, for files built as data (promtool tests)."""
    fast = dump_block(data)  # the same bytes, written directly where it is sure (issue 3: speed)
    if fast is not None:
        return YAML_HEADER + fast
    y = YAML(typ="safe", pure=True)
    y.default_flow_style = False
    y.sort_base_mapping_type_on_output = False  # keep insertion order
    y.width = 4096
    y.indent(mapping=2, sequence=4, offset=2)  # the layout of the templated files
    y.allow_unicode = True
    out = io.StringIO()
    y.dump(data, out)
    return YAML_HEADER + out.getvalue()


def expect_equal(problems: list[str], name: str, where: str, got: Any, want: Any) -> None:
    if got != want:
        problems.append(f"{name}: {where}: rendered {got!r}, expected {want!r}")
