"""correct: grammar and spelling, with the list of edits.

The model only writes the corrected text; the edits are computed here by a word-level diff, so the
list always matches what changed. A "correction" that rewrites most of the text is not a correction:
it is rejected and the original returned, flagged, rather than passed off as a fix.
"""

from __future__ import annotations

import difflib
import re
from typing import Any

from acllm.tasks.base import (
    TaskContext,
    check_input_size,
    generate_text,
    require_text,
    validate_result,
)
from acllm.tasks.prompts import load

_TOKEN = re.compile(r"\S+")
MIN_SIMILARITY = 0.6  # below this the model rewrote rather than corrected

RESULT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["corrected", "edits", "changed", "lang", "rejected"],
    "properties": {
        "corrected": {"type": "string", "minLength": 1},
        "changed": {"type": "boolean"},
        "rejected": {"type": "boolean"},
        "lang": {"type": "string"},
        "edits": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["original", "replacement", "offset"],
                "properties": {
                    "original": {"type": "string"},
                    "replacement": {"type": "string"},
                    "offset": {"type": "integer", "minimum": 0},
                },
            },
        },
        "usage": {"type": "object"},
    },
}


def word_edits(original: str, corrected: str) -> list[dict[str, Any]]:
    """Replacements, insertions and deletions between two texts, with character offsets."""
    a = list(_TOKEN.finditer(original))
    b = [m.group() for m in _TOKEN.finditer(corrected)]
    matcher = difflib.SequenceMatcher(a=[m.group() for m in a], b=b, autojunk=False)
    edits = []
    for op, i1, i2, j1, j2 in matcher.get_opcodes():
        if op == "equal":
            continue
        offset = a[i1].start() if i1 < len(a) else len(original)
        edits.append(
            {
                "original": original[offset : a[i2 - 1].end()] if i2 > i1 else "",
                "replacement": " ".join(b[j1:j2]),
                "offset": offset,
            }
        )
    return edits


async def correct(ctx: TaskContext, text: str, *, lang: str | None = None) -> dict[str, Any]:
    text = require_text(text)
    code = ctx.language_of(text, lang)
    check_input_size(ctx, text)
    messages = load("correct").render(lang=code, text=text)
    budget = 2 * ctx.model.count_tokens(messages[-1:]) + 16
    out, usage = await generate_text(ctx, messages, max_tokens=budget, stop=("\n\n",))
    similarity = difflib.SequenceMatcher(a=text, b=out, autojunk=False).ratio() if out else 0.0
    rejected = similarity < MIN_SIMILARITY
    corrected = text if rejected else out
    edits = word_edits(text, corrected)
    result = {
        "corrected": corrected,
        "edits": edits,
        "changed": bool(edits),
        "lang": code,
        "rejected": rejected,
        "usage": usage.as_dict(),
    }
    return validate_result(result, RESULT_SCHEMA)
