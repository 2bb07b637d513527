"""The ChatModel seam: async chat and streaming, token counting, context window."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Protocol, runtime_checkable

from acllm.errors import ContextOverflowError, UserError
from acllm.types import ChatOptions, Delta, Message, Reply


@runtime_checkable
class ChatModel(Protocol):
    name: str

    @property
    def context_window(self) -> int: ...

    def count_tokens(self, messages: Sequence[Message]) -> int:
        """Tokens the prompt for ``messages`` takes, chat template included."""
        ...

    async def chat(self, messages: Sequence[Message], opts: ChatOptions | None = None) -> Reply: ...

    def stream(
        self, messages: Sequence[Message], opts: ChatOptions | None = None
    ) -> AsyncIterator[Delta]: ...


def check_messages(messages: Sequence[Message]) -> None:
    if not messages:
        raise UserError("no messages to send", hint="give at least one user message")
    for m in messages:
        if m.role not in ("system", "user", "assistant"):
            raise UserError(
                f"unknown message role '{m.role}'", hint="use system, user or assistant"
            )


def check_budget(model: ChatModel, messages: Sequence[Message], max_tokens: int) -> int:
    """Raise ContextOverflowError when prompt + answer budget exceed the window; return prompt size."""
    check_messages(messages)
    prompt = model.count_tokens(messages)
    if prompt + max_tokens > model.context_window:
        raise ContextOverflowError(
            prompt + max_tokens,
            model.context_window,
            what=f"prompt ({prompt}) + answer budget ({max_tokens})",
        )
    return prompt
