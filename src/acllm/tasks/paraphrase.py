"""paraphrase: rewrite a text with the same meaning, and detect whether two texts say the same.

Detection has two methods: ``embedding`` (default on the embedded model: cosine similarity of the
two texts against a threshold) and ``generate`` (the chat model answers a yes/no JSON). Embeddings
cannot see word-order swaps that change who did what; the benchmark in docs/BENCHMARKS.md says how
much that costs on adversarial pairs.
"""

from __future__ import annotations

from typing import Any

from acllm.errors import UserError
from acllm.tasks.base import (
    TaskContext,
    check_input_size,
    generate_json,
    generate_text,
    require_text,
    validate_result,
)
from acllm.tasks.prompts import load

# Cosine above which e5-small calls two texts the same; see docs/BENCHMARKS.md for its effect.
DEFAULT_THRESHOLD = 0.93

REWRITE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["paraphrase", "lang", "similarity"],
    "properties": {
        "paraphrase": {"type": "string", "minLength": 1},
        "lang": {"type": "string"},
        "similarity": {"type": ["number", "null"]},
        "usage": {"type": "object"},
    },
}
COMPARE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["same", "score", "method", "threshold"],
    "properties": {
        "same": {"type": "boolean"},
        "score": {"type": "number", "minimum": -1, "maximum": 1},
        "method": {"enum": ["embedding", "generate"]},
        "threshold": {"type": ["number", "null"]},
        "usage": {"type": "object"},
    },
}


async def paraphrase(ctx: TaskContext, text: str, *, lang: str | None = None) -> dict[str, Any]:
    """A rewrite of ``text``; ``similarity`` tells how close its meaning stayed (embedder)."""
    text = require_text(text)
    code = ctx.language_of(text, lang)
    check_input_size(ctx, text)
    messages = load("paraphrase").render(lang=code, text=text)
    budget = 2 * ctx.model.count_tokens(messages[-1:]) + 16
    out, usage = await generate_text(ctx, messages, max_tokens=budget, stop=("\n\n",))
    out = out or text
    similarity = None
    if ctx.embedder is not None:
        a, b = ctx.embedder.embed([text, out], kind="query")
        similarity = round(float(a @ b), 4)
    result = {"paraphrase": out, "lang": code, "similarity": similarity, "usage": usage.as_dict()}
    return validate_result(result, REWRITE_SCHEMA)


async def same_meaning(
    ctx: TaskContext,
    a: str,
    b: str,
    *,
    method: str = "embedding",
    threshold: float = DEFAULT_THRESHOLD,
) -> dict[str, Any]:
    a, b = require_text(a, what="first text"), require_text(b, what="second text")
    check_input_size(ctx, a + "\n" + b)
    usage: dict[str, Any] = {"prompt_tokens": 0, "completion_tokens": 0}
    if method == "embedding":
        if ctx.embedder is None:
            raise UserError("the embedding method needs an embedder", hint="configure one")
        va, vb = ctx.embedder.embed([a, b], kind="query")
        score = max(-1.0, min(1.0, float(va @ vb)))
        same, used_threshold = score >= threshold, threshold
    elif method == "generate":
        schema = {
            "type": "object",
            "required": ["same"],
            "properties": {"same": {"type": "boolean"}},
        }
        messages = load("same_meaning").render(lang=ctx.language_of(a), a=a, b=b)
        data, used = await generate_json(ctx, messages, schema, max_tokens=12)
        same, score, used_threshold = bool(data["same"]), 1.0 if data["same"] else 0.0, None
        usage = used.as_dict()
    else:
        raise UserError(f"unknown paraphrase method '{method}'", hint="use embedding or generate")
    result = {
        "same": same,
        "score": round(score, 4),
        "method": method,
        "threshold": used_threshold,
        "usage": usage,
    }
    return validate_result(result, COMPARE_SCHEMA)
