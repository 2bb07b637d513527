"""summarize: a shorter text in the input's language, under a word budget.

``extractive`` (default on the embedded model) picks the sentences closest to the text's centroid,
with a small bonus for early sentences (news and reports put the point first), and keeps them in
their original order: it never invents a fact. ``generate`` asks the chat model.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np

from acllm.errors import UserError
from acllm.tasks.base import (
    TaskContext,
    check_input_size,
    generate_text,
    require_text,
    validate_result,
)
from acllm.tasks.prompts import load

# A boundary is end punctuation then a capital, with a space between, or glued after a lower-case
# word ("in Korea.This week"): scraped news often loses the space.
_SENTENCE = re.compile(
    r"(?<=[.!?…])\s+(?=[\"'«¿¡(\[]?[A-ZÁÉÍÓÚÑ0-9])|(?<=[a-záéíóúñ]{2}[.!?])(?=[A-ZÁÉÍÓÚÑ][a-záéíóúñ])"
)
_LEAD_BONUS = 0.06
_ABBREVIATION = re.compile(
    r"(?:^|\s)(?:Mr|Mrs|Ms|Dr|Prof|Sr|Sra|Srta|Dña|St|vs|etc|Inc|Ltd|No|Nº|p|pp|ej|aprox)\.$"
)

RESULT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["summary", "method", "lang", "words"],
    "properties": {
        "summary": {"type": "string", "minLength": 1},
        "method": {"enum": ["extractive", "generate"]},
        "lang": {"type": "string"},
        "words": {"type": "integer", "minimum": 1},
        "usage": {"type": "object"},
    },
}


def split_sentences(text: str) -> list[str]:
    parts = [p.strip() for block in text.split("\n") for p in _SENTENCE.split(block)]
    merged: list[str] = []
    for part in parts:  # "Mr. Smith": a split after an abbreviation is undone
        if merged and _ABBREVIATION.search(merged[-1]):
            merged[-1] = f"{merged[-1]} {part}"
        else:
            merged.append(part)
    parts = merged
    return [p for p in parts if p]


def _extract(ctx: TaskContext, sentences: list[str], max_words: int) -> str:
    if ctx.embedder is None:
        raise UserError("the extractive method needs an embedder", hint="configure one")
    vecs = ctx.embedder.embed(sentences, kind="passage")
    centroid = vecs.mean(axis=0)
    centroid /= np.linalg.norm(centroid) or 1.0
    lead = _LEAD_BONUS * (1.0 - np.arange(len(sentences)) / max(1, len(sentences)))
    order = np.argsort(-(vecs @ centroid + lead))
    chosen: list[int] = []
    words = 0
    for i in order:
        n = len(sentences[i].split())
        if chosen and words + n > max_words:
            continue
        chosen.append(int(i))
        words += n
        if words >= max_words:
            break
    summary = " ".join(sentences[i] for i in sorted(chosen))
    return fit_words(summary, max_words)


def fit_words(text: str, max_words: int) -> str:
    """Cut a text that still overshoots the budget (one very long sentence) at a word boundary."""
    words = text.split()
    return text if len(words) <= max_words else " ".join(words[:max_words]) + "…"


async def summarize(
    ctx: TaskContext,
    text: str,
    *,
    max_words: int = 60,
    method: str = "extractive",
    lang: str | None = None,
) -> dict[str, Any]:
    text = require_text(text)
    if max_words < 5:
        raise UserError(f"max_words={max_words} is too small", hint="ask for at least 5 words")
    code = ctx.language_of(text, lang)
    check_input_size(ctx, text)
    usage: dict[str, Any] = {"prompt_tokens": 0, "completion_tokens": 0}
    sentences = split_sentences(text)
    if len(text.split()) <= max_words:
        summary = text  # already short enough
    elif method == "extractive":
        summary = _extract(ctx, sentences, max_words)
    elif method == "generate":
        messages = load("summarize").render(lang=code, text=text, max_words=str(max_words))
        summary, used = await generate_text(ctx, messages, max_tokens=int(max_words * 2) + 16)
        usage = used.as_dict()
        summary = summary or sentences[0]
    else:
        raise UserError(f"unknown summarize method '{method}'", hint="use extractive or generate")
    result = {
        "summary": summary,
        "method": method,
        "lang": code,
        "words": len(summary.split()),
        "usage": usage,
    }
    return validate_result(result, RESULT_SCHEMA)
