"""The published JSON Schema: generated, committed, and in agreement with the loader.

`schemas/*.schema.json` are what editors read through the `# yaml-language-server: $schema=` line;
they must be exactly what `mlspec schema --write` produces from the pydantic models, so the two
cannot drift. Needs the `jsonschema` package (in the test extras).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner
from ruamel.yaml import YAML

from mlspec.cli import main
from mlspec.spec.schema import schema_texts

import jsonschema

ROOT = Path(__file__).resolve().parents[1]
SCHEMAS = ROOT / "schemas"
EXAMPLES = sorted(p for p in (ROOT / "examples").rglob("*.yaml") if p.name == "mlspec.yaml" or p.parent.name == "models")
CORPUS = ROOT / "tests" / "spec" / "corpus"
VALID_BASE = ROOT / "tests" / "spec" / "valid_base"
SCHEMA_LINE = re.compile(r"^# yaml-language-server: \$schema=(\S+)$")


def kind_of(path: Path) -> str:
    return "project" if path.name == "mlspec.yaml" else "model"


def validator(kind: str):
    schema = json.loads((SCHEMAS / f"{kind}.schema.json").read_text())
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema)


def plain(path: Path):
    # The JSON data model: what an editor's YAML language server validates.
    return YAML(typ="safe", pure=True).load(path.read_text())


def test_write_matches_the_committed_schemas(tmp_path):
    result = CliRunner().invoke(main, ["schema", "--write", str(tmp_path)])
    assert result.exit_code == 0, result.output
    written = sorted(p.name for p in tmp_path.iterdir())
    assert written == ["model.schema.json", "project.schema.json"]
    for name in written:
        assert (tmp_path / name).read_text() == (SCHEMAS / name).read_text(), (
            f"schemas/{name} is stale: run `mlspec schema --write schemas` and commit it"
        )


def test_print_one_kind_and_all():
    one = CliRunner().invoke(main, ["schema", "--kind", "model"])
    assert one.exit_code == 0 and one.stdout == (SCHEMAS / "model.schema.json").read_text()
    both = CliRunner().invoke(main, ["schema"])
    assert both.exit_code == 0
    assert json.loads(both.stdout) == {k: json.loads(v) for k, v in schema_texts().items()}


def test_schema_generation_is_deterministic():
    assert schema_texts() == schema_texts()


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: str(p.relative_to(ROOT)))
def test_example_validates_against_the_json_schema(path):
    errors = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator(kind_of(path)).iter_errors(plain(path))]
    assert errors == []


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: str(p.relative_to(ROOT)))
def test_example_starts_with_the_schema_line(path):
    first = path.read_text().splitlines()[0]
    m = SCHEMA_LINE.match(first)
    assert m, f"{path} must start with '# yaml-language-server: $schema=...'"
    target = (path.parent / m.group(1)).resolve()
    assert target == (SCHEMAS / f"{kind_of(path)}.schema.json").resolve()
    assert target.is_file()


def test_examples_are_found():
    names = {str(p.relative_to(ROOT)) for p in EXAMPLES}
    assert {"examples/quickstart/mlspec.yaml", "examples/quickstart/models/churn.yaml"} <= names


def test_valid_base_of_the_corpus_validates():
    for path in [VALID_BASE / "mlspec.yaml", *sorted((VALID_BASE / "models").glob("*.yaml"))]:
        assert list(validator(kind_of(path)).iter_errors(plain(path))) == [], path


# Cases the loader rejects on shape alone: the JSON Schema must reject them too, or an editor
# would show green where `mlspec validate` fails. (A gate on an unknown metric is a reference
# check now, like an unknown target: the metric may be a custom one declared beside it.)
SHAPE_CASES = {
    "unknown_keys_at_several_depths": ["mlspec.yaml", "models/churn.yaml"],
    "wrong_types_strings_for_numbers_and_booleans": ["mlspec.yaml", "models/fraud.yaml"],
    "wrong_types_mapping_and_list_swapped": ["models/churn.yaml", "models/fraud.yaml"],
    "prune_must_be_true_or_false": ["mlspec.yaml"],
    "name_with_uppercase": ["models/churn.yaml"],
    "name_too_long": ["mlspec.yaml"],
    "version_not_semantic": ["models/fraud.yaml"],
    "version_unquoted_float": ["models/fraud.yaml"],
    "durations_malformed": ["mlspec.yaml", "models/churn.yaml"],
    "sizes_and_cpus_malformed": ["models/churn.yaml"],
    "comparisons_malformed": ["models/churn.yaml"],
    "package_pin_is_a_range": ["models/churn.yaml"],
    "replicas_zero": ["models/churn.yaml"],
    "port_70000": ["models/fraud.yaml"],
    "secret_written_inline_is_not_printed": ["models/churn.yaml"],
    "sha256_not_a_digest": ["models/fraud.yaml"],
    "targets_empty": ["mlspec.yaml"],
    "slo_availability_of_100": ["models/churn.yaml"],
    "custom_alert_with_bad_name_and_empty_expr": ["models/fraud.yaml"],
}


@pytest.mark.parametrize("case", sorted(SHAPE_CASES))
def test_json_schema_rejects_what_the_loader_rejects_on_shape(case):
    for rel in SHAPE_CASES[case]:
        path = CORPUS / case / rel
        assert list(validator(kind_of(path)).iter_errors(plain(path))), f"{case}/{rel} passes the JSON Schema"
