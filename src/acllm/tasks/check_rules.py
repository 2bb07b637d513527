"""check_rules: a text against natural-language rules, pass/fail and a reason per rule.

One constrained call per rule keeps each prompt small (a tiny model loses track of long rule lists)
and lets a failing rule be reported on its own.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from acllm.errors import UserError
from acllm.tasks.base import (
    TaskContext,
    add_usage,
    check_input_size,
    generate_json,
    require_text,
    validate_result,
)
from acllm.tasks.prompts import load
from acllm.types import Usage

MAX_RULES = 50
MAX_RULE_CHARS = 500
_VERDICT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["passed", "reason"],
    "properties": {
        "passed": {"type": "boolean"},
        "reason": {"type": "string", "minLength": 1, "maxLength": 160},
    },
}
RESULT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["passed", "results", "lang"],
    "properties": {
        "passed": {"type": "boolean"},
        "lang": {"type": "string"},
        "results": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "required": ["rule", "passed", "reason"],
                "properties": {
                    "rule": {"type": "string"},
                    "passed": {"type": "boolean"},
                    "reason": {"type": "string"},
                },
            },
        },
        "usage": {"type": "object"},
    },
}


def parse_rules(rules: Sequence[str] | str | Path) -> list[str]:
    """Rules from a list, or from a file/string holding a JSON list or one rule per line."""
    if isinstance(rules, Path):
        try:
            rules = rules.read_text(encoding="utf-8")
        except OSError as exc:
            raise UserError(f"cannot read rules file {rules}: {exc.strerror}") from None
    if isinstance(rules, str):
        stripped = rules.strip()
        if stripped.startswith("["):
            try:
                rules = json.loads(stripped)
            except ValueError as exc:
                raise UserError(
                    f"rules are not valid JSON: {exc}",
                    hint='give a JSON list of strings, e.g. ["Be polite"]',
                ) from None
        else:
            rules = [ln.strip().lstrip("-*").strip() for ln in stripped.splitlines()]
            rules = [r for r in rules if r and not r.startswith("#")]
    if not isinstance(rules, list | tuple) or not all(isinstance(r, str) for r in rules):
        raise UserError("rules must be a list of strings", hint='e.g. ["Mention the price"]')
    cleaned = [r.strip() for r in rules if r.strip()]
    if not cleaned:
        raise UserError("the rules list is empty", hint="give at least one rule")
    if len(cleaned) > MAX_RULES:
        raise UserError(
            f"{len(cleaned)} rules given, at most {MAX_RULES} are checked at once",
            hint="split the rules into several checks",
        )
    too_long = [i + 1 for i, r in enumerate(cleaned) if len(r) > MAX_RULE_CHARS]
    if too_long:
        raise UserError(
            f"rule {too_long[0]} is longer than {MAX_RULE_CHARS} characters",
            hint="state each rule in one sentence",
        )
    return cleaned


async def check_rules(
    ctx: TaskContext, text: str, rules: Sequence[str] | str | Path, *, lang: str | None = None
) -> dict[str, Any]:
    text = require_text(text)
    rule_list = parse_rules(rules)
    code = ctx.language_of(text, lang)
    check_input_size(ctx, text)
    prompt = load("check_rules")
    results, usage = [], Usage()
    for rule in rule_list:
        messages = prompt.render(lang=code, text=text, rule=rule)
        verdict, used = await generate_json(ctx, messages, _VERDICT_SCHEMA, max_tokens=80)
        results.append({"rule": rule, "passed": verdict["passed"], "reason": verdict["reason"]})
        usage = add_usage(usage, used)
    result = {
        "passed": all(r["passed"] for r in results),
        "results": results,
        "lang": code,
        "usage": usage.as_dict(),
    }
    return validate_result(result, RESULT_SCHEMA)
