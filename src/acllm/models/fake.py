"""A scripted chat model: public test double for code built on acllm.

Replies are taken in order from ``replies`` (strings, or functions of the messages); when they run out
``default`` answers. Every call is recorded in ``calls`` so tests can check the prompts sent.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterable, Sequence

from pydantic import BaseModel, ConfigDict, Field

from acllm.errors import ServiceError
from acllm.models.base import check_budget
from acllm.registry import Backend
from acllm.types import ChatOptions, Delta, Message, Reply, Usage

Script = str | Callable[[Sequence[Message]], str]


class FakeChatModel:
    def __init__(
        self,
        replies: Iterable[Script] = (),
        *,
        default: Script | None = None,
        name: str = "fake",
        context_window: int = 4096,
        latency_s: float = 0.0,
    ) -> None:
        self.name = name
        self._window = context_window
        self._replies: deque[Script] = deque(replies)
        self._default = default
        self.latency_s = latency_s
        self.calls: list[tuple[list[Message], ChatOptions]] = []

    @property
    def context_window(self) -> int:
        return self._window

    def count_tokens(self, messages: Sequence[Message]) -> int:
        # One token per whitespace-separated word plus 3 per message for its frame.
        return sum(len(m.content.split()) + 3 for m in messages)

    def _next(self, messages: Sequence[Message]) -> str:
        if self._replies:
            script = self._replies.popleft()
        elif self._default is not None:
            script = self._default
        else:
            raise ServiceError("FakeChatModel has no scripted reply left")
        return script if isinstance(script, str) else script(messages)

    async def chat(self, messages: Sequence[Message], opts: ChatOptions | None = None) -> Reply:
        opts = opts or ChatOptions()
        start = time.perf_counter()
        prompt = check_budget(self, messages, opts.max_tokens)
        self.calls.append((list(messages), opts))
        if self.latency_s:
            import asyncio

            await asyncio.sleep(self.latency_s)
        text = self._next(messages)
        usage = Usage(prompt, len(text.split()), time.perf_counter() - start)
        return Reply(text=text, model=self.name, usage=usage)

    async def stream(
        self, messages: Sequence[Message], opts: ChatOptions | None = None
    ) -> AsyncIterator[Delta]:
        reply = await self.chat(messages, opts)
        words = reply.text.split(" ")
        for i, word in enumerate(words):
            yield Delta(word if i == 0 else " " + word)
        yield Delta("", finish_reason=reply.finish_reason, usage=reply.usage)


class FakeOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    replies: list[str] = Field(default_factory=list)
    default: str | None = "ok"
    context_window: int = 4096
    latency_s: float = 0.0


BACKEND = Backend(
    "chat",
    "fake",
    FakeOptions,
    lambda o, rt: FakeChatModel(
        o.replies, default=o.default, context_window=o.context_window, latency_s=o.latency_s
    ),
    "scripted replies (tests, load benchmarks)",
)
