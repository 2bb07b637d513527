"""Output checks: grounding (each sentence supported by the context) and JSON schema validity."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from acllm.evals.faithfulness import Checker, FaithfulnessResult, claims, judge_claims

_SENTENCE = re.compile(r"[^.!?]*(?:[.!?]+(?:\s*\[\d{1,3}\])*|$)\s*")
_FENCE = re.compile(r"^\s*```(?:json)?\s*(.*?)\s*```\s*$", re.S)


@dataclass(frozen=True)
class Sentence:
    start: int
    end: int
    supported: bool


def sentences(answer: str) -> list[tuple[int, int]]:
    """Offsets of the answer's sentences (a citation marker stays with its sentence)."""
    return [m.span() for m in _SENTENCE.finditer(answer) if m.group(0).strip()]


async def grounding(
    answer: str,
    context: Sequence[str],
    *,
    checker: Checker | None = None,
    judge: Any = None,
) -> list[Sentence]:
    """Each sentence of ``answer`` and whether ``context`` supports all its claims: by the judge
    model when one is given (a judge failure falls back to the checker), else by the checker."""
    result: FaithfulnessResult | None = None
    if judge is not None:
        result = await judge_claims(judge, answer, "\n\n".join(context))
    if result is None and checker is not None:
        # Embedding the claims blocks: off the event loop, so the worker serves others meanwhile.
        result = await asyncio.to_thread(checker.check, answer, list(context))
    if result is None:
        return [Sentence(a, b, True) for a, b in sentences(answer)]
    unsupported = {c.claim for c in result.unsupported}
    out = []
    for a, b in sentences(answer):
        ok = not any(c in unsupported for c in claims(answer[a:b]))
        out.append(Sentence(a, b, ok))
    return out


def schema_errors(answer: str, schema: dict[str, Any]) -> list[str]:
    """Why ``answer`` is not a JSON document matching ``schema`` (empty when it is). A Markdown
    code fence around the JSON is accepted."""
    import jsonschema

    fenced = _FENCE.match(answer)
    try:
        value = json.loads(fenced.group(1) if fenced else answer)
    except json.JSONDecodeError as exc:
        return [f"not JSON: {exc.msg} at position {exc.pos}"]
    validator = jsonschema.Draft202012Validator(schema)
    return [
        f"{'/'.join(str(p) for p in err.absolute_path) or '(root)'}: {err.validator} failed"
        for err in validator.iter_errors(value)
    ]
