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


def field_paths(kind: str) -> list[str]:
    """Every key path users can write, e.g. 'deployments[].resources.memory' (the README's reference)."""
    schema = schema_of(kind)
    defs = schema.get("$defs", {})
    out: list[str] = []

    def walk(node: dict, prefix: str) -> None:
        if "$ref" in node:
            node = defs[node["$ref"].rsplit("/", 1)[-1]]
        for key in ("anyOf", "oneOf"):
            for sub in node.get(key, []):
                walk(sub, prefix)
        if node.get("type") == "object" and "properties" in node:
            for name, sub in node["properties"].items():
                path = f"{prefix}.{name}" if prefix else name
                if path not in out:
                    out.append(path)
                walk(sub, path)
        elif node.get("type") == "object":
            sub = node.get("additionalProperties") or next(iter(node.get("patternProperties", {}).values()), None)
            if isinstance(sub, dict):
                walk(sub, f"{prefix}.<key>")
        elif node.get("type") == "array":
            walk(node.get("items", {}), f"{prefix}[]")

    walk(schema, "")
    return out
