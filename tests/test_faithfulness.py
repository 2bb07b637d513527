"""The claim checker: claims, novelty of content words, support, and the judge variant."""

from __future__ import annotations

import json

import pytest

from acllm import FakeChatModel, HashEmbedder
from acllm.evals.faithfulness import Checker, claims, content_words, judge_claims

CONTEXT = (
    "Full-time employees get 23 working days of paid leave per year. "
    "Part-time employees get leave in proportion to their hours."
)


def test_claims_are_sentences_without_citation_markers() -> None:
    assert claims("Tienes 30 días. [1] Sin usar y con ticket [2].") == [
        "Tienes 30 días.",
        "Sin usar y con ticket.",
    ]
    assert claims("  ") == []
    assert content_words("The 23 days of leave") == {"23", "days", "leave"}


def test_a_copied_claim_is_supported_and_an_invented_number_is_not() -> None:
    checker = Checker(HashEmbedder(), threshold=0.99, novelty_weight=0.5)
    good = checker.check("Full-time employees get 23 working days of paid leave per year.", CONTEXT)
    assert not good.hallucinated and good.score == pytest.approx(1.0, abs=1e-5)
    assert good.claims[0].evidence.startswith("Full-time employees get 23")

    bad = checker.check(
        "Full-time employees get 23 working days of paid leave per year. "
        "They also get 12 sick days paid by Acme Insurance.",
        CONTEXT,
    )
    assert bad.hallucinated
    [wrong] = bad.unsupported
    assert wrong.claim.startswith("They also get 12")
    assert wrong.novelty > 0.5  # 12, sick, acme, insurance, paid... not in the context
    assert checker.check("", CONTEXT).score == 1.0  # nothing claimed, nothing to refute


@pytest.mark.model
def test_with_e5_a_paraphrase_passes_and_a_changed_fact_fails(e5: object) -> None:
    checker = Checker(e5, threshold=0.80, novelty_weight=0.5)  # type: ignore[arg-type]
    para = checker.check("Employees working full time have 23 days of paid leave a year.", CONTEXT)
    wrong = checker.check(
        "Full-time employees get 35 working days of paid leave per year.", CONTEXT
    )
    assert para.score > wrong.score  # the number the embedding blurs is caught as novel
    assert wrong.claims[0].novelty > 0 and para.claims[0].novelty < wrong.claims[0].novelty + 0.5
    assert not para.hallucinated
    es = checker.check(
        "Tienes 30 días para devolverla.",
        "Tienes 30 días naturales desde la compra para devolver una bicicleta.",
    )
    assert not es.hallucinated


async def test_judge_claims_and_judge_garbage() -> None:
    judge = FakeChatModel(
        [json.dumps({"supported": True, "reason": "stated"}),
         json.dumps({"supported": False, "reason": "not in the context"})]
    )  # fmt: skip
    result = await judge_claims(judge, "They get 23 days. They get a car.", CONTEXT)
    assert result is not None and result.hallucinated
    assert [c.supported for c in result.claims] == [True, False]
    assert await judge_claims(FakeChatModel(["yes"]), "They get 23 days.", CONTEXT) is None
    odd = FakeChatModel([json.dumps({"supported": "yes", "reason": "x"})])
    assert await judge_claims(odd, "They get 23 days.", CONTEXT) is None
