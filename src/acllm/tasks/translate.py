"""translate: text from a source language (detected when not given) into a target language."""

from __future__ import annotations

from typing import Any

from acllm import lang
from acllm.tasks.base import (
    TaskContext,
    check_input_size,
    generate_text,
    require_text,
    validate_result,
)
from acllm.tasks.prompts import load

RESULT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["translation", "source_lang", "target_lang", "usage"],
    "properties": {
        "translation": {"type": "string", "minLength": 1},
        "source_lang": {"type": "string", "pattern": "^[a-z]{2}$"},
        "target_lang": {"type": "string", "pattern": "^[a-z]{2}$"},
        "usage": {"type": "object"},
    },
}


async def translate(
    ctx: TaskContext, text: str, target: str, source: str | None = None
) -> dict[str, Any]:
    text = require_text(text)
    target = lang.check_code(target, what="target language")
    src = (
        ctx.language_of(text, source)
        if source
        else lang.detect(text, sorted({*ctx.languages, target}))
    )
    if src == target:  # nothing to do; never pay a model call to copy text
        result = {
            "translation": text,
            "source_lang": src,
            "target_lang": target,
            "usage": {"prompt_tokens": 0, "completion_tokens": 0},
        }
        return validate_result(result, RESULT_SCHEMA)
    check_input_size(ctx, text)
    prompt = load("translate")
    messages = prompt.render(
        lang=f"{src}-{target}", text=text, source=lang.name(src), target=lang.name(target)
    )
    budget = max(32, 2 * ctx.model.count_tokens(messages[-1:]) + 16)
    out, usage = await generate_text(ctx, messages, max_tokens=budget, stop=("\n\n",))
    result = {
        "translation": out or text,
        "source_lang": src,
        "target_lang": target,
        "usage": usage.as_dict(),
    }
    return validate_result(result, RESULT_SCHEMA)
