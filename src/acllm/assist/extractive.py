"""Extractive answers: the source sentences that best answer the question, cited, nothing invented.

The default on the embedded model, whose generated answers are weak. Candidate sentences come from
the retrieved chunks; each is scored by cosine similarity to the question plus a small prior for
its chunk's retrieval rank. A table row is kept whole: splitting "col: value" records loses meaning.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from acllm.embed.base import Embedder
from acllm.index.base import Hit
from acllm.index.text import terms

_SENTENCE = re.compile(r"(?<=[.!?…])\s+(?=[\"'«¿¡(\[]?[A-ZÁÉÍÓÚÑ0-9])")
_PARAGRAPH = re.compile(r"\n\s*\n")
RANK_PRIOR = 0.02  # the fused retrieval rank carries keyword evidence the cosine misses
# Share of the question's terms found in a sentence, weighted: names and numbers ("Santander",
# "2026") are what embeddings blur and what tell two similar sentences apart.
TERM_BONUS = 0.05
_WHOLE = ("table", "record")  # rows and records are cited whole: their fields belong together


@dataclass(frozen=True)
class Candidate:
    text: str
    hit: Hit
    order: int  # position of the sentence inside its chunk
    cosine: float  # similarity to the question: the confidence signal
    score: float  # cosine plus the rank prior: the ordering


def sentences_of(hit: Hit) -> list[str]:
    text = hit.chunk.text.strip()
    if hit.chunk.metadata.get("kind") in _WHOLE:
        return [text]
    # Hard-wrapped lines belong to one paragraph: split sentences within paragraphs.
    paragraphs = [" ".join(block.split()) for block in _PARAGRAPH.split(text)]
    parts = [p.strip() for block in paragraphs for p in _SENTENCE.split(block)]
    return [p for p in parts if len(p.split()) >= 3] or [text]


def term_overlap(question: str, sentence: str) -> float:
    asked = set(terms(question))
    return len(asked & set(terms(sentence))) / len(asked) if asked else 0.0


def rank_sentences(
    question: str, question_vector: np.ndarray, hits: Sequence[Hit], embedder: Embedder
) -> list[Candidate]:
    """Every sentence of the hits, best first."""
    pool = [(s, hit, i) for hit in hits for i, s in enumerate(sentences_of(hit))]
    if not pool:
        return []
    vectors = embedder.embed([s for s, _, _ in pool], kind="passage")
    cosines = vectors @ question_vector
    scored = [
        Candidate(
            s,
            hit,
            i,
            float(cos),
            float(cos) + RANK_PRIOR / hit.rank + TERM_BONUS * term_overlap(question, s),
        )
        for (s, hit, i), cos in zip(pool, cosines, strict=True)
    ]
    return sorted(scored, key=lambda c: c.score, reverse=True)


def pick(candidates: Sequence[Candidate], max_sentences: int, margin: float) -> list[Candidate]:
    """The best sentence first, plus runners-up within ``margin`` of it."""
    if not candidates:
        return []
    best = candidates[0].score
    return [c for c in candidates[:max_sentences] if c.score >= best - margin]
