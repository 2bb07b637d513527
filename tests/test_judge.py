"""The LLM judge: schema-checked verdicts, failures never scored, position bias cancelled."""

from __future__ import annotations

import json

import pytest

from acllm import FakeChatModel
from acllm.evals.judge import JudgeFailure, Score, Verdict, pairwise, pointwise

RUBRIC = "The answer states the correct fact from the reference, without adding claims."


async def test_pointwise_score_and_the_prompt_it_sends() -> None:
    judge = FakeChatModel(['{"score": 4, "reason": "Right fact, slightly vague."}'])
    got = await pointwise(
        judge, RUBRIC, "How many days?", "23 days.", reference="23 working days", lang="en"
    )
    assert isinstance(got, Score)
    assert (got.score, got.reason) == (4, "Right fact, slightly vague.") and got.tokens > 0
    messages, opts = judge.calls[0]
    assert opts.schema is not None and opts.schema["required"] == ["score", "reason"]
    assert "Reference: 23 working days" in messages[-1].content
    assert "Answer to grade: 23 days." in messages[-1].content


@pytest.mark.parametrize(
    "reply",
    [
        "The answer is good, 5/5",  # not JSON
        '{"score": 7, "reason": "too high"}',  # out of range
        '{"score": "5", "reason": "a string"}',
        '{"reason": "no score"}',
        '{"score": 3, "reason": "ok", "extra": 1}',
    ],
)
async def test_garbage_from_the_judge_is_a_failure_not_a_score(reply: str) -> None:
    got = await pointwise(FakeChatModel([reply]), RUBRIC, "q", "a")
    assert isinstance(got, JudgeFailure) and "not a valid verdict" in got.reason
    assert got.raw == reply[:500]


async def test_a_failing_judge_call_is_a_failure() -> None:
    got = await pointwise(FakeChatModel([]), RUBRIC, "q", "a")  # no scripted reply: it raises
    assert isinstance(got, JudgeFailure) and "judge call failed" in got.reason


def verdict(winner: str) -> str:
    return json.dumps({"winner": winner, "reason": f"{winner} looks better"})


async def test_pairwise_counts_a_winner_only_when_both_orders_agree() -> None:
    # A judge that truly prefers the second argument says "B" first, then "A" when swapped.
    agreeing = FakeChatModel([verdict("B"), verdict("A")])
    got = await pairwise(agreeing, RUBRIC, "q", "weak answer", "strong answer")
    assert isinstance(got, Verdict) and got.winner == "b" and got.consistent
    first, second = (m[-1].content for m, _ in agreeing.calls)
    assert "Answer A: weak answer" in first and "Answer A: strong answer" in second

    # A judge that always picks whatever it reads first: position bias, not a preference.
    biased = FakeChatModel([verdict("A"), verdict("A")])
    got = await pairwise(biased, RUBRIC, "q", "one", "two")
    assert isinstance(got, Verdict) and got.winner == "tie" and not got.consistent

    tie = await pairwise(FakeChatModel([verdict("tie"), verdict("tie")]), RUBRIC, "q", "x", "y")
    assert isinstance(tie, Verdict) and tie.winner == "tie" and tie.consistent


async def test_pairwise_failure_in_either_order_is_a_failure() -> None:
    got = await pairwise(FakeChatModel([verdict("A"), "nonsense"]), RUBRIC, "q", "x", "y")
    assert isinstance(got, JudgeFailure)


@pytest.mark.model
async def test_the_embedded_model_returns_valid_verdicts(local_model: object) -> None:
    """The small local judge is weak, but its grammar-constrained output always parses."""
    score = await pointwise(
        local_model,  # type: ignore[arg-type]
        RUBRIC,
        "How much does the full service cost?",
        "The full service costs 79 euros.",
        reference="The full service costs 79 euros.",
        max_tokens=60,
    )
    assert isinstance(score, Score) and 1 <= score.score <= 5
    pair = await pairwise(
        local_model,  # type: ignore[arg-type]
        RUBRIC,
        "How much does the full service cost?",
        "79 euros.",
        "It is cheap.",
        max_tokens=60,
    )
    assert isinstance(pair, Verdict)
