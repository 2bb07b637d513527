"""Faithfulness: is every claim of an answer (or summary) supported by its context?

An answer is split into claims (its sentences). Each claim gets a support score from two signals
that run on the embedded default, no judge model needed:

- meaning: the best cosine between the claim and any context sentence (e5 embeddings);
- novelty: the share of the claim's content words — numbers and names above all — that occur
  nowhere in the context. Embeddings blur exactly these ("in 2019" vs "in 2021", "Kujala" vs
  "Kujawa"), and they are what unfaithful summaries get wrong most often.

``support = cosine - novelty_weight * novelty``; the answer's score is its weakest claim, and it
counts as hallucinated below ``threshold``. Both knobs are tuned on FRANK's validation split and
reported on its test split (bench/faithfulness.py). With a judge model configured,
``judge_claims`` asks it per claim instead (output constrained to a JSON schema).
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from acllm.embed.base import Embedder

_CLAIM_END = re.compile(r"(?<=[.!?])\s+")
_WORD = re.compile(r"\w+", re.UNICODE)
# Words that carry no checkable content (en + es); everything else must be found in the context.
_STOPWORDS_TEXT = """
a an the and or but if of to in on at by for with from as is are was were be been being it
its this that these those he she they we you i his her their our your my me him them us not no
has have had do does did will would can could may might must shall should s t also than then
there here which who whom whose what when where why how all any each more most other some such
only own same so too very just about into over after before under again further once said
says el la los las un una unos unas y o pero si de del al a en con por para como es son fue
fueron ser ha han había se su sus lo le les que quien cuando donde cual muy más menos ya no
también este esta estos estas ese esa
"""
STOPWORDS = frozenset(_STOPWORDS_TEXT.split())


def claims(text: str) -> list[str]:
    """The sentences of an answer (``[n]`` citation markers removed)."""
    text = re.sub(r"\s*\[\d{1,3}\]", "", text)
    return [c.strip() for c in _CLAIM_END.split(text) if _WORD.search(c)]


def content_words(text: str) -> set[str]:
    return {w for w in (m.lower() for m in _WORD.findall(text)) if w not in STOPWORDS}


@dataclass(frozen=True)
class ClaimCheck:
    claim: str
    cosine: float  # best match among the context sentences
    novelty: float  # share of the claim's content words absent from the context
    support: float
    supported: bool
    evidence: str  # the context sentence that matched best


@dataclass
class FaithfulnessResult:
    score: float  # the weakest claim's support (1.0 when there is nothing to check)
    hallucinated: bool
    claims: list[ClaimCheck] = field(default_factory=list)

    @property
    def unsupported(self) -> list[ClaimCheck]:
        return [c for c in self.claims if not c.supported]


@dataclass(frozen=True)
class Checker:
    embedder: Embedder
    # Tuned on FRANK's 671 validation summaries (bench/faithfulness.py); on its 1,575 test summaries
    # the score ranks faithful above unfaithful with AUC 0.849, balanced accuracy 0.784.
    threshold: float = 0.795
    novelty_weight: float = 0.75

    def check(self, answer: str, context: str | Sequence[str]) -> FaithfulnessResult:
        """Check ``answer`` against ``context`` (one text or its passages)."""
        passages = [context] if isinstance(context, str) else list(context)
        sentences = [s for p in passages for s in claims(p)] or passages
        found = claims(answer)
        if not found or not sentences:
            return FaithfulnessResult(1.0, False)
        vectors = self.embedder.embed([*found, *sentences], kind="passage")
        claim_vecs, context_vecs = vectors[: len(found)], vectors[len(found) :]
        similarity = claim_vecs @ context_vecs.T
        vocabulary = set().union(*(content_words(s) for s in sentences))
        checks = []
        for i, claim in enumerate(found):
            words = content_words(claim)
            novelty = len(words - vocabulary) / len(words) if words else 0.0
            best = int(np.argmax(similarity[i]))
            cosine = float(similarity[i, best])
            support = cosine - self.novelty_weight * novelty
            supported = support >= self.threshold
            checks.append(ClaimCheck(claim, cosine, novelty, support, supported, sentences[best]))
        weakest = min(c.support for c in checks)
        return FaithfulnessResult(weakest, weakest < self.threshold, checks)


JUDGE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"supported": {"type": "boolean"}, "reason": {"type": "string"}},
    "required": ["supported", "reason"],
    "additionalProperties": False,
}


async def judge_claims(model: Any, answer: str, context: str) -> FaithfulnessResult | None:
    """Ask a judge model, claim by claim, whether the context supports it; None when the judge
    returned something that is not a verdict (a judge failure, never a score)."""
    from acllm.types import ChatOptions, Message

    checks = []
    for claim in claims(answer):
        messages = [
            Message(
                "system",
                "You check whether a claim is supported by a context. Answer in JSON with "
                "supported (true only if the context states or clearly implies it) and a reason.",
            ),
            Message("user", f"Context: {context}\n\nClaim: {claim}"),
        ]
        reply = await model.chat(messages, ChatOptions(max_tokens=120, schema=JUDGE_SCHEMA))
        try:
            verdict = json.loads(reply.text)
            supported = verdict["supported"]
        except (ValueError, KeyError, TypeError):
            return None
        if not isinstance(supported, bool):
            return None
        score = 1.0 if supported else 0.0
        checks.append(ClaimCheck(claim, score, 0.0, score, supported, ""))
    weakest = min((c.support for c in checks), default=1.0)
    return FaithfulnessResult(weakest, weakest < 0.5, checks)
