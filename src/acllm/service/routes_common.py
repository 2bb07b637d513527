"""What every route shares: the service state, admission through the guard, streaming bodies that
always clean up, and waiting on work that is dropped when the client goes away."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import anyio
from fastapi import Depends
from starlette.requests import Request
from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from acllm.errors import AcllmError, NotFoundError, UpstreamTimeoutError, UserError
from acllm.service import observe
from acllm.service.guard import Guard, Principal
from acllm.service.remote import CALLER, ModelProcessClient, is_local
from acllm.types import Usage

if TYPE_CHECKING:
    from acllm.assist.pipeline import Pipeline
    from acllm.assist.types import Answer
    from acllm.config import Settings
    from acllm.embed.base import Embedder
    from acllm.models.base import ChatModel
    from acllm.runtime import Runtime
    from acllm.service.jobs import JobManager

T = TypeVar("T")
CONVERSATION_HEADER = "X-Conversation-Id"


class ClientGoneError(AcllmError):
    """The client closed the connection before the answer was ready (nginx's 499)."""

    status = 499


@dataclass
class ServiceState:
    """Everything a route needs, built once per worker from the config."""

    settings: Settings
    runtime: Runtime
    guard: Guard
    jobs: JobManager
    model_process: ModelProcessClient | None = None
    serve_local: bool = True  # may local models/embedders be used (in this process or remotely)
    started: int = field(default_factory=lambda: int(time.time()))

    def _served(self, kind: str, specs: dict[str, Any]) -> list[str]:
        return sorted(
            n for n, s in specs.items() if self.serve_local or not is_local(kind, s.backend)
        )

    def model_names(self) -> list[str]:
        return self._served("chat", self.settings.models)

    def embedder_names(self) -> list[str]:
        return self._served("embedder", self.settings.embedders)

    def assistant_names(self) -> list[str]:
        return sorted(self.settings.assistants)

    def is_assistant(self, name: str) -> bool:
        return name in self.settings.assistants or name.startswith("index:")

    def chat_model(self, name: str) -> ChatModel:
        if name not in self.model_names():
            names = [*self.model_names(), *self.assistant_names()]
            raise NotFoundError(f"no model named '{name}'", hint=f"models: {', '.join(names)}")
        return self.runtime.chat(name)

    def embedder(self, name: str) -> Embedder:
        if name not in self.embedder_names():
            raise NotFoundError(
                f"no embedder named '{name}'", hint=f"embedders: {', '.join(self.embedder_names())}"
            )
        return self.runtime.embedder(name)

    async def assistant(self, name: str) -> Pipeline:
        """The named assistant with its patterns (guards, cache, memory, reviewed overrides)."""
        if name in self.settings.assistants:
            return self.runtime.pipeline(name)
        # Listing indexes may ask PostgreSQL: off the event loop, and once.
        if name.startswith("index:"):
            index = name.removeprefix("index:")
            indexes = await anyio.to_thread.run_sync(self.runtime.index_names)  # fails: a 5xx
            if index in indexes:
                return self.runtime.pipeline(None, index=index)
        else:
            try:
                indexes = await anyio.to_thread.run_sync(self.runtime.index_names)
            except AcllmError:
                indexes = list(self.settings.indexes)  # the hint is a courtesy: still a 404
        names = [*self.assistant_names(), *(f"index:{n}" for n in indexes)]
        raise NotFoundError(
            f"no assistant named '{name}'", hint=f"assistants: {', '.join(names) or 'none'}"
        )

    def cost(self, model: str | None, usage: Usage) -> float:
        """The price of ``usage`` on ``model`` (an assistant costs what its model does)."""
        if model in self.settings.assistants:
            model = self.settings.assistants[model].model or self.settings.default_model
        price = self.settings.service.prices.get(model or "")
        if price is None:
            return 0.0
        return (
            usage.prompt_tokens * price.prompt_per_1k
            + usage.completion_tokens * price.completion_per_1k
        ) / 1000

    def answer_config(self, name: str) -> dict[str, Any]:
        """What produced an assistant's answers, stored with each one for feedback and evals."""
        from acllm import __version__

        spec = self.settings.assistants.get(name)
        index = spec.index if spec else name.removeprefix("index:")
        options = spec.model_dump(mode="json") if spec else {"index": index}
        embedder = self.runtime.index_spec(index).embedder or self.settings.default_embedder
        model = (spec.model if spec else None) or self.settings.default_model
        return {
            "assistant": name,
            **options,
            "model": model,
            "embedder": embedder,
            "acllm": __version__,
        }


async def record_answer(
    request: Request, name: str, answer: Answer, principal: Principal
) -> dict[str, Any]:
    """The answer as the client gets it, stored for feedback under the ``answer_id`` it carries."""
    svc = state(request)
    out = answer.as_dict()
    spec = svc.settings.assistants.get(name)
    observe.record_patterns(name, out, cache_on=spec is not None and spec.cache.enabled)
    feedback = request.app.state.feedback
    conversation = request.headers.get(CONVERSATION_HEADER)
    config = svc.answer_config(name)
    with anyio.CancelScope(shield=True):  # recorded even if the client leaves right now
        out["answer_id"] = await anyio.to_thread.run_sync(
            lambda: feedback.record_answer(
                assistant=name,
                answer=out,
                config=config,
                key_id=principal.key_id,
                conversation=conversation,
            )
        )
    return out


def state(request: Request) -> ServiceState:
    svc: ServiceState = request.app.state.svc
    return svc


async def _state_dependency(request: Request) -> ServiceState:
    # async on purpose: FastAPI runs a plain ``def`` dependency in its thread pool, a thread hop
    # (two context switches and a lock) on every request for an attribute read.
    return state(request)


Svc = Annotated[ServiceState, Depends(_state_dependency)]  # a route parameter: this worker's state


async def admit(
    request: Request, group: str, assistant: str | None = None, tokens: int = 0
) -> Principal:
    """The caller, admitted by the guard; also names them to the model process's fair queue."""
    svc = state(request)
    principal = await svc.guard.admit(
        request.headers.get("authorization"), group, assistant, tokens=tokens
    )
    host = request.client.host if request.client else "unknown"
    CALLER.set(f"key:{principal.key_id}" if principal.key_id else f"ip:{host}")
    return principal


async def charge(
    svc: ServiceState, principal: Principal, usage: Usage, model: str | None = None
) -> None:
    """Count what a request used: the caller's TPM budget, the logs and metrics, its cost."""
    observe.record_usage(
        key_id=principal.key_id,
        prompt_tokens=usage.prompt_tokens,
        completion_tokens=usage.completion_tokens,
        model=model,
        cost=svc.cost(model, usage),
    )
    if usage.total_tokens > 0:
        with anyio.CancelScope(shield=True):  # also when the client left mid-stream
            await svc.guard.charge(principal, usage.total_tokens)


def conversation_headers(request: Request) -> dict[str, str]:
    """Echo the conversation name back (nothing is stored under it yet)."""
    value = request.headers.get(CONVERSATION_HEADER)
    if value is None:
        return {}
    if not 0 < len(value) <= 128 or not value.isprintable():
        raise UserError(f"{CONVERSATION_HEADER} must be 1-128 printable characters")
    return {CONVERSATION_HEADER: value}


def estimate_tokens(*texts: str) -> int:
    """A cheap prompt estimate for admission (before any model is touched): ~4 characters a token."""
    return sum(len(t) // 4 + 4 for t in texts)


async def unless_disconnected(request: Request, work: Awaitable[T]) -> T:
    """Await ``work``, cancelling it if the client disconnects first (ClientGoneError then)."""
    task = asyncio.ensure_future(work)

    async def disconnected() -> None:
        while (await request.receive())["type"] != "http.disconnect":
            pass

    watcher = asyncio.ensure_future(disconnected())
    try:
        await asyncio.wait({task, watcher}, return_when=asyncio.FIRST_COMPLETED)
    except asyncio.CancelledError:
        task.cancel()
        raise
    finally:
        watcher.cancel()
    if task.done():
        return task.result()
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    raise ClientGoneError("the client disconnected")


async def within_deadline(svc: ServiceState, request: Request, work: Awaitable[T]) -> T:
    """``work`` bounded by service.request_timeout_s and dropped if the client disconnects."""
    limit = svc.settings.service.request_timeout_s
    try:
        async with asyncio.timeout(limit):
            return await unless_disconnected(request, work)
    except TimeoutError:
        raise UpstreamTimeoutError(
            f"the request took longer than {limit:g} s",
            hint="raise service.request_timeout_s, ask for fewer tokens, or stream the answer",
        ) from None


async def aclose(items: AsyncIterator[Any]) -> None:
    """Close an async generator (typed as an iterator by its owner) so its cleanup runs now."""
    close = getattr(items, "aclose", None)
    if close is not None:
        await close()


_END = object()


async def prefetch(items: AsyncIterator[T]) -> T | None:
    """The first item, so errors raised before any output still get their own status code."""
    first: Any = await anext(items, _END)
    return None if first is _END else first


class StreamBody(StreamingResponse):
    """A streamed body whose generator is closed (and ``on_close`` run) however the stream ends,
    including when the client disconnects mid-way: that is what cancels generation upstream."""

    def __init__(
        self,
        content: AsyncIterator[bytes],
        *,
        media_type: str = "text/event-stream",
        headers: dict[str, str] | None = None,
        on_close: Callable[[], Any] | None = None,
    ) -> None:
        extra = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
        super().__init__(content, media_type=media_type, headers={**extra, **(headers or {})})
        self._content = content
        self._on_close = on_close

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            with anyio.CancelScope(shield=True):
                await aclose(self._content)
                if self._on_close is not None:
                    result = self._on_close()
                    if asyncio.iscoroutine(result):
                        await result


def sse(data: Any, event: str | None = None) -> bytes:
    text = data if isinstance(data, str) else json.dumps(data, ensure_ascii=False)
    head = f"event: {event}\n" if event else ""
    return f"{head}data: {text}\n\n".encode()
