"""Plan -> JSON in the shape of ``terraform show -json`` (schema: schemas/plan.schema.json)."""

from __future__ import annotations

import json
import re

from mlspec.plan.actions import rollout_json, stepwise
from mlspec.plan.records import Plan


def render_json(plan: Plan) -> str:
    data = plan.to_json()
    # Only when a rollout moves traffic step by step, so other plans keep their exact shape.
    if rollouts := [rollout_json(a) for a in stepwise(plan.actions)]:
        data["rollouts"] = rollouts
    text = json.dumps(data, indent=2, ensure_ascii=False) + "\n"
    # JSON keeps non-ASCII text readable, but not the characters that are invisible or reorder
    # what a viewer shows (U+202E), nor U+2028/9, which end a line in JavaScript: they can only
    # stand inside strings here, where a \\u escape means the same character.
    return text if text.isascii() else _UNSAFE.sub(lambda m: json.dumps(m.group())[1:-1], text)


_UNSAFE = re.compile("[^\\n\\x20-\\x7e\\xa0-\\U0010ffff]|[\\u2028\\u2029\\u200b-\\u200f\\u202a-\\u202e\\u2060-\\u206f\\ufeff\\ufff9-\\ufffb]")
