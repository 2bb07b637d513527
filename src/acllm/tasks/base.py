"""What every task shares: input checks, budgeted model calls, JSON parsing and validation."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import jsonschema

from acllm import lang
from acllm.embed.base import Embedder
from acllm.errors import ContextOverflowError, ServiceError, UserError
from acllm.models.base import ChatModel
from acllm.types import ChatOptions, JSONSchema, Message, Usage


@dataclass
class TaskContext:
    """The model, embedder and limits a task runs with (built from the config by the Runtime)."""

    model: ChatModel
    embedder: Embedder | None = None
    languages: tuple[str, ...] = ("en", "es")
    max_input_tokens: int = 1500

    def language_of(self, text: str, given: str | None = None) -> str:
        if given:
            return lang.check_code(given)
        return lang.detect(text, self.languages)


def require_text(text: str, *, what: str = "text") -> str:
    if not isinstance(text, str) or not text.strip():
        raise UserError(
            f"{what} is empty", hint="pass the text as an argument or on standard input"
        )
    return text.strip()


def check_input_size(ctx: TaskContext, text: str) -> None:
    """Refuse inputs over the task budget up front, saying by how much (never a silent cut)."""
    tokens = ctx.model.count_tokens([Message("user", text)])
    if tokens > ctx.max_input_tokens:
        raise ContextOverflowError(tokens, ctx.max_input_tokens, what="input text")


async def generate_text(
    ctx: TaskContext, messages: Sequence[Message], *, max_tokens: int, stop: tuple[str, ...] = ()
) -> tuple[str, Usage]:
    reply = await ctx.model.chat(messages, ChatOptions(max_tokens=max_tokens, stop=stop))
    return reply.text.strip(), reply.usage


async def generate_json(
    ctx: TaskContext, messages: Sequence[Message], schema: JSONSchema, *, max_tokens: int
) -> tuple[dict[str, Any], Usage]:
    """Decode constrained by ``schema``; a reply that still fails to parse is a ServiceError."""
    reply = await ctx.model.chat(messages, ChatOptions(max_tokens=max_tokens, schema=schema))
    try:
        data = json.loads(reply.text)
        jsonschema.validate(data, schema)
    except (ValueError, jsonschema.ValidationError) as exc:
        why = "answer cut at max_tokens" if reply.finish_reason == "length" else str(exc)[:200]
        raise ServiceError(
            f"model '{reply.model}' returned invalid JSON: {why}",
            hint="retry, raise max_tokens, or use a stronger model",
            body=reply.text[:500],
        ) from None
    if not isinstance(data, dict):
        raise ServiceError(f"model '{reply.model}' returned JSON that is not an object")
    return data, reply.usage


def validate_result(result: dict[str, Any], schema: JSONSchema) -> dict[str, Any]:
    """Every task result is checked against its published schema before it is returned."""
    jsonschema.validate(result, schema)
    return result


def add_usage(a: Usage, b: Usage) -> Usage:
    return Usage(
        a.prompt_tokens + b.prompt_tokens,
        a.completion_tokens + b.completion_tokens,
        a.latency_s + b.latency_s,
    )
