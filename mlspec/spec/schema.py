"""JSON Schema of the spec files, generated from the wire models (for editors and CI)."""

from __future__ import annotations

import json

from mlspec.spec.wire import ModelDoc, ProjectDoc

SCHEMA_BASE = "https://mlspec.dev/schemas/v1"


def schema_of(kind: str) -> dict:
    doc = {"project": ProjectDoc, "model": ModelDoc}[kind]
    body = doc.model_json_schema(by_alias=True, mode="validation")
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", "$id": f"{SCHEMA_BASE}/{kind}.schema.json", **body}


def schema_texts() -> dict[str, str]:
    """{'project': text, 'model': text}: deterministic, ending with a newline."""
    return {k: json.dumps(schema_of(k), indent=2, sort_keys=True) + "\n" for k in ("project", "model")}
