"""What an assistant returns: an answer, whether it refused, and citations that map to sources."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from acllm.types import Usage


@dataclass(frozen=True)
class Citation:
    n: int  # the [n] marker used in the answer text
    source: str  # file name or table
    location: str  # page, row, key or section
    text: str  # the cited text (the sentence in extractive mode, the chunk otherwise)
    chunk_id: str
    score: float

    def as_dict(self) -> dict[str, Any]:
        return {
            "n": self.n,
            "source": self.source,
            "location": self.location,
            "text": self.text,
            "chunk_id": self.chunk_id,
            "score": round(self.score, 4),
        }


@dataclass
class Answer:
    answer: str
    refused: bool
    citations: list[Citation]
    lang: str
    question: str  # the standalone question that was searched for
    mode: str  # extractive | generative
    confidence: float  # relevance of the best evidence, compared with the threshold
    usage: Usage = field(default_factory=Usage)
    retrieval_s: float = 0.0
    # Set by the request flow around the assistant (acllm.assist.pipeline), empty otherwise:
    cache: dict[str, Any] | None = None  # how a cached answer matched (kind, similarity, age)
    override: dict[str, Any] | None = None  # the reviewed correction served instead
    guards: list[dict[str, Any]] = field(default_factory=list)  # events: redactions, flags...
    suggestions: list[str] = field(default_factory=list)  # what to ask instead, after a refusal
    notice: str | None = None  # a message for the user: cut short, blocked, degraded
    blocked: bool = False  # a guard stopped the question or the answer

    def as_dict(self) -> dict[str, Any]:
        usage: dict[str, Any] = dict(self.usage.as_dict())
        usage["retrieval_s"] = round(self.retrieval_s, 4)
        extra: dict[str, Any] = {
            k: v
            for k, v in (
                ("cache", self.cache),
                ("override", self.override),
                ("guards", self.guards),
                ("suggestions", self.suggestions),
                ("notice", self.notice),
                ("blocked", self.blocked),
            )
            if v
        }
        return {
            "answer": self.answer,
            "refused": self.refused,
            "citations": [c.as_dict() for c in self.citations],
            "lang": self.lang,
            "question": self.question,
            "mode": self.mode,
            "confidence": round(self.confidence, 4),
            "usage": usage,
            **extra,
        }


async def final_answer(items: AsyncIterator[str | Answer]) -> Answer:
    """The complete Answer a stream of text pieces ends with (``ask`` is ``stream`` read whole)."""
    final: Answer | None = None
    async for item in items:
        if isinstance(item, Answer):
            final = item
    if final is None:
        raise RuntimeError("the answer stream ended without its Answer")
    return final
