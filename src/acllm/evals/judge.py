"""LLM-as-judge: a rubric, a pointwise score (1-5) or a pairwise A/B verdict, as JSON.

The judge's output is constrained to a JSON schema (a grammar on the local model, response_format
on an endpoint), so even a small judge returns parseable JSON; anything that still fails the schema
is a ``JudgeFailure`` — counted as a failure of the judge, never turned into a score.

Pairwise judges prefer whichever answer they read first (position bias). Each pair is therefore
judged twice, A/B and then B/A: a winner counts only when both orders agree, otherwise the verdict
is a tie and the disagreement is recorded, so a report can say how often order decided.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Literal

import jsonschema

from acllm.errors import AcllmError
from acllm.models.base import ChatModel
from acllm.tasks.prompts import load
from acllm.types import ChatOptions

POINTWISE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        # An enum, not minimum/maximum: the llama.cpp grammar honours enums but not ranges, and
        # a small judge then wrote 10 or 1985 (18.8% failures on HaluEval).
        "score": {"type": "integer", "enum": [1, 2, 3, 4, 5]},
        "reason": {"type": "string", "maxLength": 400},
    },
    "required": ["score", "reason"],
    "additionalProperties": False,
}
PAIRWISE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "winner": {"enum": ["A", "B", "tie"]},
        "reason": {"type": "string", "maxLength": 400},
    },
    "required": ["winner", "reason"],
    "additionalProperties": False,
}
Winner = Literal["a", "b", "tie"]


@dataclass(frozen=True)
class Score:
    score: int  # 1..5
    reason: str
    tokens: int


@dataclass(frozen=True)
class JudgeFailure:
    """The judge answered something that is not a verdict, or its call failed."""

    reason: str
    raw: str = ""


@dataclass(frozen=True)
class Verdict:
    winner: Winner  # which of the two answers as given (a = first argument)
    consistent: bool  # both orders agreed (a tie in both counts as consistent)
    reasons: tuple[str, str]
    tokens: int


def _reference_block(reference: str | None) -> str:
    return f"Reference: {reference}" if reference else ""


async def _ask(
    model: ChatModel, messages: Any, schema: dict[str, Any], max_tokens: int
) -> tuple[dict[str, Any] | JudgeFailure, int]:
    try:
        reply = await model.chat(
            messages, ChatOptions(max_tokens=max_tokens, temperature=0.0, schema=schema)
        )
    except AcllmError as exc:
        return JudgeFailure(f"the judge call failed: {exc}"), 0
    tokens = reply.usage.total_tokens
    try:
        data = json.loads(reply.text)
        jsonschema.validate(data, schema)
    except (ValueError, jsonschema.ValidationError) as exc:
        message = exc.message if isinstance(exc, jsonschema.ValidationError) else str(exc)
        return JudgeFailure(f"not a valid verdict: {message}", reply.text[:500]), tokens
    return data, tokens


async def pointwise(
    model: ChatModel,
    rubric: str,
    input: str,
    output: str,
    *,
    reference: str | None = None,
    lang: str | None = None,
    max_tokens: int = 160,
) -> Score | JudgeFailure:
    """Grade ``output`` for ``input`` on a 1-5 scale against ``rubric`` (and a reference)."""
    messages = load("judge_pointwise").render(
        lang=lang,
        rubric=rubric,
        input=input,
        output=output,
        reference_block=_reference_block(reference),
    )
    data, tokens = await _ask(model, messages, POINTWISE_SCHEMA, max_tokens)
    if isinstance(data, JudgeFailure):
        return data
    return Score(int(data["score"]), str(data["reason"]), tokens)


async def pairwise(
    model: ChatModel,
    rubric: str,
    input: str,
    a: str,
    b: str,
    *,
    reference: str | None = None,
    lang: str | None = None,
    max_tokens: int = 160,
) -> Verdict | JudgeFailure:
    """Which of ``a`` and ``b`` better meets ``rubric``, judged in both orders."""
    prompt = load("judge_pairwise")
    block = _reference_block(reference)

    def render(first: str, second: str) -> Any:
        return prompt.render(
            lang=lang, rubric=rubric, input=input, reference_block=block, a=first, b=second
        )

    first, used1 = await _ask(model, render(a, b), PAIRWISE_SCHEMA, max_tokens)
    if isinstance(first, JudgeFailure):
        return first
    second, used2 = await _ask(model, render(b, a), PAIRWISE_SCHEMA, max_tokens)
    if isinstance(second, JudgeFailure):
        return second
    # Map both verdicts onto the answers as given: in the second call "A" was ``b``.
    one = {"A": "a", "B": "b", "tie": "tie"}[first["winner"]]
    two = {"A": "b", "B": "a", "tie": "tie"}[second["winner"]]
    consistent = one == two
    winner: Winner = one if consistent else "tie"  # type: ignore[assignment]
    return Verdict(winner, consistent, (first["reason"], second["reason"]), used1 + used2)
