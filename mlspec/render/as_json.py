"""Plan -> JSON in the shape of ``terraform show -json`` (schema: schemas/plan.schema.json)."""

from __future__ import annotations

import json

from mlspec.plan.records import Plan


def render_json(plan: Plan) -> str:
    return json.dumps(plan.to_json(), indent=2, ensure_ascii=False) + "\n"
