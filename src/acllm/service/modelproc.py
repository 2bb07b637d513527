"""The model process: the ONE place where local models (llama.cpp, e5, MiniLM) run for every worker.

Two cores cannot feed several llama.cpp copies (2-thread generation fell from 166 to 17 tokens/s
next to a busy process), so ``acllm serve`` starts this process once and the HTTP workers send it
generation and embedding over an internal HTTP API: 127.0.0.1 only, on a socket the parent bound
and handed down, behind a random bearer token the workers get through their environment.

Each model and embedder sits behind its own FairQueue (one caller at a time, fair between caller
keys, bounded depth and wait: 503 + Retry-After beyond). Generation always streams as NDJSON, so a
worker that goes away (its client left) closes the request and llama.cpp stops between tokens.
Models that a default, task, assistant or index uses load at start-up (``/readyz`` says when);
other local entries load on first use.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import os
import signal
import socket
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any, Literal

from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from acllm import registry
from acllm.config import BackendSpec, Settings, load_settings
from acllm.errors import AcllmError, NotFoundError, UnauthorizedError, UserError
from acllm.runtime import Runtime
from acllm.service import http_errors
from acllm.service.fairqueue import FairQueue
from acllm.service.remote import encode_vectors, is_local
from acllm.service.routes_common import (
    StreamBody,
    aclose,
    prefetch,
    unless_disconnected,
)
from acllm.types import ChatOptions, Delta, Message, Role

# Environment handed from `acllm serve` to this process (no ACLLM_ prefix: those are settings).
ENV_FD = "_ACLLM_MODEL_FD"
ENV_TOKEN = "_ACLLM_MODEL_TOKEN"
ENV_CONFIG = "_ACLLM_SERVE_CONFIG"
ENV_PARENT = "_ACLLM_SERVE_PID"


def used_locals(settings: Settings) -> tuple[list[str], list[str]]:
    """Local chat models and embedders that a default, task, assistant, router or index uses."""
    chats = {settings.default_model, settings.tasks.model or settings.default_model}
    chats |= {a.model or settings.default_model for a in settings.assistants.values()}
    seen: set[str] = set()
    while chats - seen:  # routers name their upstreams: follow them
        name = (chats - seen).pop()
        seen.add(name)
        spec = settings.models.get(name)
        for upstream in (spec.options().get("upstreams") or []) if spec else []:
            if isinstance(upstream, dict) and isinstance(upstream.get("model"), str):
                chats.add(upstream["model"])
    default = settings.default_embedder
    embedders = {default, settings.tasks.embedder or default}
    embedders.add(settings.index_defaults.embedder or default)
    embedders |= {s.embedder or default for s in settings.indexes.values()}
    local_chats = [
        n for n in sorted(seen) if n in settings.models and is_local("chat", _backend(settings, n))
    ]
    local_embedders = [
        n
        for n in sorted(embedders)
        if n in settings.embedders and is_local("embedder", settings.embedders[n].backend)
    ]
    return local_chats, local_embedders


def _backend(settings: Settings, name: str) -> str:
    return settings.models[name].backend


def needs_model_process(settings: Settings) -> bool:
    chats, embedders = used_locals(settings)
    return bool(chats or embedders)


# --- the models this process hosts --------------------------------------------------------------


class ModelHost:
    """Builds each local model once (in a thread: loading blocks) and keeps a queue per model."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._runtime = Runtime(settings)  # passed to backend builders; builds nothing itself
        self._built: dict[tuple[str, str], Any] = {}
        self._locks: dict[tuple[str, str], asyncio.Lock] = {}
        self.queues: dict[tuple[str, str], FairQueue] = {}
        self.preload = used_locals(settings)
        self.ready = False
        self.error: AcllmError | None = None

    def _spec(self, kind: Literal["chat", "embedder"], name: str) -> BackendSpec:
        specs = self.settings.models if kind == "chat" else self.settings.embedders
        spec = specs.get(name)
        if spec is None or not is_local(kind, spec.backend):
            served = sorted(n for n, s in specs.items() if is_local(kind, s.backend))
            raise NotFoundError(
                f"the model process serves no {kind} named '{name}'",
                hint=f"local {kind} entries: {', '.join(served) or 'none'}",
            )
        return spec

    async def get(self, kind: Literal["chat", "embedder"], name: str) -> Any:
        key = (kind, name)
        if key not in self._built:
            spec = self._spec(kind, name)
            async with self._locks.setdefault(key, asyncio.Lock()):
                if key not in self._built:
                    self._built[key] = await asyncio.to_thread(self._build, kind, spec)
                    service = self.settings.service
                    self.queues[key] = FairQueue(
                        depth=service.queue_depth,
                        max_wait=service.queue_wait_s,
                        name=f"{'model' if kind == 'chat' else 'embedder'} '{name}'",
                    )
        return self._built[key]

    def _build(self, kind: Literal["chat", "embedder"], spec: BackendSpec) -> Any:
        backend = registry.get(kind, spec.backend)
        return backend.build(backend.options.model_validate(spec.options()), self._runtime)

    async def load_all(self) -> None:
        chats, embedders = self.preload
        try:
            for name in chats:
                await self.get("chat", name)
            for name in embedders:
                await self.get("embedder", name)
            self.ready = True
        except AcllmError as exc:
            self.error = exc

    def queue(self, kind: str, name: str) -> FairQueue:
        return self.queues[(kind, name)]

    def close(self) -> None:
        for backend in self._built.values():
            close = getattr(backend, "close", None)
            if callable(close):
                close()
        self._built.clear()


# --- the internal API ---------------------------------------------------------------------------


class ChatBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    model: str
    key: str = "anonymous"
    messages: list[dict[str, str]]
    options: dict[str, Any] = Field(default_factory=dict)


class EmbedBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    embedder: str
    key: str = "anonymous"
    texts: list[str]
    kind: Literal["query", "passage"] = "passage"


def _options(raw: dict[str, Any]) -> ChatOptions:
    try:
        stop = tuple(raw.pop("stop", ()) or ())
        return ChatOptions(**raw, stop=stop)
    except TypeError as exc:
        raise UserError(f"bad chat options: {exc}") from None


def _messages(raw: list[dict[str, str]]) -> list[Message]:
    roles: dict[str, Role] = {"system": "system", "user": "user", "assistant": "assistant"}
    out = []
    for m in raw:
        role = roles.get(m.get("role", ""))
        if role is None:
            raise UserError(f"unknown message role '{m.get('role')}'")
        out.append(Message(role, m.get("content", "")))
    return out


def _ndjson_deltas(first: Delta | None, rest: AsyncIterator[Delta]) -> AsyncIterator[bytes]:
    def line(delta: Delta) -> bytes:
        item: dict[str, Any] = {"text": delta.text}
        if delta.finish_reason:
            item["finish_reason"] = delta.finish_reason
        if delta.usage:
            u = delta.usage
            item["usage"] = {
                "prompt_tokens": u.prompt_tokens,
                "completion_tokens": u.completion_tokens,
                "latency_s": u.latency_s,
            }
        return json.dumps(item).encode() + b"\n"

    async def body() -> AsyncIterator[bytes]:
        try:
            if first is not None:
                yield line(first)
            async for delta in rest:
                yield line(delta)
        except AcllmError as exc:  # after the first byte the status is sent: report in-band
            yield json.dumps(http_errors.error_body(exc)).encode() + b"\n"
        finally:
            await aclose(rest)  # stops llama.cpp between tokens when the worker left

    return body()


def create_model_app(settings: Settings, token: str, *, parent_pid: int | None = None) -> FastAPI:
    host = ModelHost(settings)
    expected = f"Bearer {token}".encode()

    async def authorised(request: Request) -> None:  # async: no thread hop per request
        given = request.headers.get("authorization", "").encode()
        if not hmac.compare_digest(given, expected):
            raise UnauthorizedError("the model process needs its bearer token")

    async def publish_depths() -> None:
        """The queues' depths as a Prometheus gauge, sampled (no cost on the request path)."""
        from acllm.service.observe import QUEUE

        while True:
            for (kind, name), queue in list(host.queues.items()):
                QUEUE.labels(f"{kind}:{name}").set(queue.waiting)
            await asyncio.sleep(0.5)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        loading = asyncio.create_task(host.load_all())
        watchdog = asyncio.create_task(watch_parent(parent_pid)) if parent_pid else None
        depths = asyncio.create_task(publish_depths())
        try:
            yield
        finally:
            for task in (loading, watchdog, depths):
                if task is not None:
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await task
            await asyncio.to_thread(host.close)

    app = FastAPI(
        title="acllm model process",
        lifespan=lifespan,
        dependencies=[Depends(authorised)],
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    http_errors.install(app)
    app.state.host = host

    @app.get("/readyz")
    async def readyz() -> JSONResponse:
        if host.error is not None:
            return JSONResponse(http_errors.error_body(host.error), status_code=500)
        loaded = {
            "chat": sorted(n for k, n in host.queues if k == "chat"),
            "embedders": sorted(n for k, n in host.queues if k == "embedder"),
        }
        return JSONResponse({"ready": host.ready, **loaded}, status_code=200 if host.ready else 503)

    @app.post("/chat")
    async def chat(body: ChatBody, request: Request) -> StreamBody:
        model = await host.get("chat", body.model)
        messages, opts = _messages(body.messages), _options(dict(body.options))
        queue = host.queue("chat", body.model)
        lease = await unless_disconnected(request, queue.acquire(body.key))
        try:
            deltas = model.stream(messages, opts)
            # The first delta (or the error that comes instead) decides the status code.
            first = await unless_disconnected(request, prefetch(deltas))
        except BaseException:
            lease.release()
            raise
        return StreamBody(
            _ndjson_deltas(first, deltas),
            media_type="application/x-ndjson",
            on_close=lease.release,
        )

    @app.post("/embed")
    async def embed(body: EmbedBody, request: Request) -> dict[str, Any]:
        embedder = await host.get("embedder", body.embedder)
        queue = host.queue("embedder", body.embedder)
        lease = await unless_disconnected(request, queue.acquire(body.key))
        try:
            vectors = await asyncio.to_thread(embedder.embed, body.texts, body.kind)
        finally:
            lease.release()
        return {"dim": int(vectors.shape[1]), "vectors": encode_vectors(vectors)}

    @app.get("/stats")
    async def stats() -> dict[str, Any]:
        return {
            f"{kind}:{name}": {"waiting": q.waiting, "active": q.active, "service_s": q.service_s}
            for (kind, name), q in host.queues.items()
        }

    return app


async def watch_parent(
    pid: int, every_s: float = 1.0, stop: Callable[[], None] | None = None
) -> None:
    """Stop this process when its parent is gone (killed without a chance to stop its children)."""
    while True:
        await asyncio.sleep(every_s)
        if os.getppid() != pid:
            (stop or (lambda: os.kill(os.getpid(), signal.SIGTERM)))()
            return


def main() -> int:
    import uvicorn

    settings = load_settings(os.environ.get(ENV_CONFIG) or None)
    sock = socket.socket(fileno=int(os.environ[ENV_FD]))
    parent = int(os.environ.get(ENV_PARENT) or 0) or None
    app = create_model_app(settings, os.environ[ENV_TOKEN], parent_pid=parent)
    config = uvicorn.Config(
        app, log_level="warning", timeout_graceful_shutdown=3, lifespan="on", access_log=False
    )
    uvicorn.Server(config).run(sockets=[sock])
    return 0


if __name__ == "__main__":
    sys.exit(main())
