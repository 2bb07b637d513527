"""sentiment: positive / negative / neutral with a score.

Two methods. ``embedding`` (the default on the embedded model) compares the text with labelled anchor
sentences written for acllm in English and Spanish (tasks/data/sentiment_anchors.toml): the mean
similarity to each class's nearest anchors, softmaxed into a score. ``generate`` asks the chat model,
constrained by a JSON schema to one of the labels.
"""

from __future__ import annotations

import math
import tomllib
from functools import cache
from importlib import resources
from typing import Any

import numpy as np

from acllm.errors import UserError
from acllm.tasks.base import (
    TaskContext,
    check_input_size,
    generate_json,
    require_text,
    validate_result,
)
from acllm.tasks.prompts import load

LABELS = ("positive", "negative", "neutral")
_TOP_K = 5
_TEMPERATURE = 0.02  # cosine gaps between classes are small with e5: sharpen them

RESULT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["label", "score", "scores", "method", "lang"],
    "properties": {
        "label": {"enum": list(LABELS)},
        "score": {"type": "number", "minimum": 0, "maximum": 1},
        "scores": {"type": "object", "additionalProperties": {"type": "number"}},
        "method": {"enum": ["embedding", "generate"]},
        "lang": {"type": "string"},
        "usage": {"type": "object"},
    },
}


@cache
def anchors() -> dict[str, list[str]]:
    raw = resources.files("acllm.tasks").joinpath("data/sentiment_anchors.toml").read_text("utf-8")
    data = tomllib.loads(raw)
    return {label: data[label]["en"] + data[label]["es"] for label in LABELS}


_anchor_vectors: dict[int, dict[str, np.ndarray]] = {}


def _anchor_matrix(ctx: TaskContext) -> dict[str, np.ndarray]:
    assert ctx.embedder is not None
    key = id(ctx.embedder)
    if key not in _anchor_vectors:
        _anchor_vectors[key] = {
            label: ctx.embedder.embed(texts, kind="query") for label, texts in anchors().items()
        }
    return _anchor_vectors[key]


def _check_labels(labels: tuple[str, ...]) -> tuple[str, ...]:
    unknown = [lb for lb in labels if lb not in LABELS]
    if unknown or len(set(labels)) < 2:
        raise UserError(
            f"invalid sentiment labels {list(labels)}",
            hint=f"choose two or three of {', '.join(LABELS)}",
        )
    return tuple(dict.fromkeys(labels))


def _softmax(scores: dict[str, float]) -> dict[str, float]:
    top = max(scores.values())
    exp = {k: math.exp((v - top) / _TEMPERATURE) for k, v in scores.items()}
    total = sum(exp.values())
    return {k: round(v / total, 4) for k, v in exp.items()}


async def sentiment(
    ctx: TaskContext,
    text: str,
    *,
    method: str = "embedding",
    labels: tuple[str, ...] = LABELS,
    lang: str | None = None,
) -> dict[str, Any]:
    text = require_text(text)
    labels = _check_labels(labels)
    code = ctx.language_of(text, lang)
    check_input_size(ctx, text)
    usage: dict[str, Any] = {"prompt_tokens": 0, "completion_tokens": 0}
    if method == "embedding":
        if ctx.embedder is None:
            raise UserError("the embedding method needs an embedder", hint="configure one")
        vec = ctx.embedder.embed([text], kind="query")[0]
        raw = {}
        for label in labels:
            sims = np.sort(_anchor_matrix(ctx)[label] @ vec)[::-1][:_TOP_K]
            raw[label] = float(sims.mean())
        scores = _softmax(raw)
    elif method == "generate":
        schema = {
            "type": "object",
            "required": ["label"],
            "properties": {"label": {"enum": list(labels)}},
        }
        messages = load("sentiment").render(lang=code, text=text, labels=", ".join(labels))
        data, used = await generate_json(ctx, messages, schema, max_tokens=16)
        scores = {lb: (1.0 if lb == data["label"] else 0.0) for lb in labels}
        usage = used.as_dict()
    else:
        raise UserError(f"unknown sentiment method '{method}'", hint="use embedding or generate")
    label = max(scores, key=lambda k: scores[k])
    result = {
        "label": label,
        "score": scores[label],
        "scores": scores,
        "method": method,
        "lang": code,
        "usage": usage,
    }
    return validate_result(result, RESULT_SCHEMA)
