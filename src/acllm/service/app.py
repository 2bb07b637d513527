"""The HTTP app of ``acllm serve``, built from the config: one per worker process.

``create_app`` wires the routes to a ServiceState: the Runtime (whose local models and embedders
are clients of the shared model process when ``model_url`` is given), the guard, the job manager.
``factory`` is what uvicorn calls in each worker; ``acllm serve`` passes it the config path and the
model process's address through the environment, because workers are separate processes.

Each worker bounds its open requests (``service.max_inflight``); past the bound it answers 503 with
Retry-After at once instead of queueing without limit. The global bound, fair between callers,
is the model process's queue.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import importlib.util
import ipaddress
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from acllm import __version__
from acllm.config import BackendSpec, Settings, load_settings
from acllm.errors import NotFoundError, PayloadTooLargeError, UnavailableError, UserError
from acllm.models.openai import pool_connections
from acllm.registry import Kind
from acllm.runtime import Runtime
from acllm.service import (
    http_errors,
    observe,
    routes_assist,
    routes_data,
    routes_feedback,
    routes_keys,
    routes_openai,
    routes_tasks,
)
from acllm.service.guard import Guard, OpenGuard
from acllm.service.jobs import JobManager
from acllm.service.modelproc import ENV_CONFIG, ENV_PARENT, ENV_TOKEN, watch_parent
from acllm.service.remote import ModelProcessClient, RemoteChat, RemoteEmbedder, is_local
from acllm.service.routes_common import ServiceState, Svc

ENV_MODEL_URL = "_ACLLM_SERVE_MODEL_URL"
ENV_HOST = "_ACLLM_SERVE_HOST"
ENV_AUTH = "_ACLLM_SERVE_AUTH"
UNLIMITED_PATHS = ("/healthz", "/readyz")  # probes must answer even when the worker is full


class ServiceRuntime(Runtime):
    """A Runtime whose local models and embedders are clients of the model process.

    Without a model process, local entries are built here when ``serve_local`` (one process:
    tests, embedding the app) and refused otherwise: ``acllm serve`` never loads a copy per worker.
    """

    def __init__(
        self, settings: Settings, model_process: ModelProcessClient | None, serve_local: bool
    ) -> None:
        super().__init__(settings, substitute=self._remote)
        self.model_process = model_process
        self.serve_local = serve_local

    def _remote(self, kind: Kind, name: str, spec: BackendSpec) -> Any | None:
        """A client of the model process for a local model or embedder; None: build it here."""
        if kind not in ("chat", "embedder") or not is_local(kind, spec.backend):
            return None
        if self.model_process is None:
            if self.serve_local:
                return None
            raise NotFoundError(
                f"'{name}' is a local {kind} and this service runs no model process",
                hint="name it as a default, task, assistant or index embedder in the config so "
                "acllm serve starts the model process, or use another entry",
            )
        remote = RemoteChat if kind == "chat" else RemoteEmbedder
        return remote(name, spec, self.model_process)


class BodyLimit:
    """ASGI middleware: request bodies over ``limit`` bytes get 413 before a route reads them."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    def _too_large(self, size: int | None) -> Any:
        shown = f"{size} bytes" if size is not None else f"more than {self.limit} bytes"
        return http_errors.error_response(
            PayloadTooLargeError(
                f"the request body has {shown}; this service takes at most {self.limit}",
                hint="send less text per request, or raise service.max_body_bytes",
            )
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            await self._too_large(int(declared))(scope, receive, send)
            return
        received = 0
        refused = False  # our 413 went out: the app's own response is dropped
        started = False

        async def counted() -> Message:
            nonlocal received, refused
            message = await receive()
            if message["type"] == "http.request" and not refused:
                received += len(message.get("body", b""))
                if received > self.limit:  # a chunked body without Content-Length ran over
                    refused = True
                    if not started:
                        await self._too_large(None)(scope, receive, send)
                    return {"type": "http.disconnect"}  # the route stops reading here
            return message

        async def tracked(message: Message) -> None:
            nonlocal started
            if refused:
                return
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted, tracked)
        except Exception:
            if not refused:
                raise


class InflightCounter:
    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.count = 0


class InflightLimit:
    """ASGI middleware: at most ``limit`` open requests (streams count until they end), then 503."""

    def __init__(self, app: ASGIApp, counter: InflightCounter) -> None:
        self.app = app
        self.counter = counter

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in UNLIMITED_PATHS:
            await self.app(scope, receive, send)
            return
        counter = self.counter
        if counter.count >= counter.limit:
            busy = UnavailableError(
                f"this worker already has {counter.count} requests in flight",
                hint="retry shortly, or raise service.max_inflight",
                retry_after=1,
            )
            await http_errors.error_response(busy)(scope, receive, send)
            return
        counter.count += 1
        try:
            await self.app(scope, receive, send)
        finally:
            counter.count -= 1


def service_runtime(
    settings: Settings, model_url: str | None, model_token: str | None, serve_local: bool = True
) -> ServiceRuntime:
    client = None
    if model_url is not None:
        timeout = settings.service.request_timeout_s
        client = ModelProcessClient(model_url, model_token or "", timeout=timeout)
    return ServiceRuntime(settings, client, serve_local)


def create_app(
    settings: Settings,
    *,
    guard: Guard | None = None,
    model_url: str | None = None,
    model_token: str | None = None,
    runtime: Runtime | None = None,
    serve_local: bool = True,
    parent_pid: int | None = None,
) -> FastAPI:
    """The app for one worker. It closes its runtime (given or built) and guard when it stops."""
    service = settings.service
    rt = runtime or service_runtime(settings, model_url, model_token, serve_local)
    model_process = rt.model_process if isinstance(rt, ServiceRuntime) else None
    feedback = rt.feedback()  # shared with the assistants' review queue; the runtime closes it
    svc = ServiceState(
        settings=settings,
        runtime=rt,
        guard=guard or OpenGuard(),
        jobs=JobManager(rt),
        model_process=model_process,
        serve_local=serve_local or model_process is not None,
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        watchdog = asyncio.create_task(watch_parent(parent_pid)) if parent_pid else None
        # Upstream connections are kept alive on this worker's loop until rt.aclose() below.
        with pool_connections():
            try:
                yield
            finally:
                if watchdog is not None:
                    watchdog.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await watchdog
                await asyncio.to_thread(svc.jobs.stop)
                if svc.model_process is not None:
                    await svc.model_process.aclose()
                close_guard = getattr(svc.guard, "close", None)
                if callable(close_guard):
                    close_guard()
                await rt.aclose()

    app = FastAPI(
        title="acllm",
        version=__version__,
        summary="Private LLM applications: OpenAI-compatible chat, assistants over your documents, "
        "language tasks.",
        lifespan=lifespan,
    )
    app.state.svc = svc
    app.state.guard = svc.guard  # the seam other route modules (keys) admit through
    app.state.keys = getattr(svc.guard, "store", None)  # the key store, when keys are checked
    app.state.feedback = feedback
    app.state.inflight = InflightCounter(service.max_inflight)
    http_errors.install(app)
    # Added last = outermost: the access log and metrics also see the 413s and 503s below.
    app.add_middleware(BodyLimit, limit=service.max_body_bytes)
    app.add_middleware(InflightLimit, counter=app.state.inflight)
    if service.cors_origins:
        from starlette.middleware.cors import CORSMiddleware

        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(service.cors_origins),
            allow_methods=["GET", "POST", "DELETE"],
            allow_headers=["Authorization", "Content-Type", "X-Conversation-Id"],
            expose_headers=["Retry-After", "X-Conversation-Id"],
        )
    app.add_middleware(observe.ObserveMiddleware)
    for module in (
        routes_openai,
        routes_tasks,
        routes_assist,
        routes_data,
        routes_keys,
        routes_feedback,
    ):
        app.include_router(module.router)

    @app.get("/metrics", tags=["health"], include_in_schema=False)
    async def metrics() -> Any:
        return observe.metrics_response()

    @app.get("/healthz", tags=["health"])
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", tags=["health"])
    async def readyz(svc: Svc) -> JSONResponse:
        if svc.model_process is None:
            return JSONResponse({"ready": True})
        ready, detail = await svc.model_process.ready()
        headers = {} if ready else {"Retry-After": "2"}
        body = {"ready": ready, "model_process": detail}
        return JSONResponse(body, status_code=200 if ready else 503, headers=headers)

    return app


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def build_guard(settings: Settings, host: str, auth_mode: str, runtime: Runtime) -> Guard:
    """The key-checking guard when the auth module is present, else OpenGuard where keys are off."""
    # find_spec, not try/except ImportError: a broken auth module must fail, not open the doors.
    if importlib.util.find_spec("acllm.service.auth") is not None:
        auth: Any = importlib.import_module("acllm.service.auth")
        guard: Guard = auth.guard_for(settings, host, auth_mode, kv=runtime.kv())
        return guard
    if auth_mode == "off" or (auth_mode == "auto" and _loopback(host)):
        return OpenGuard()
    raise UserError(
        f"API keys are required (--auth {auth_mode}, host {host}) but this build cannot check them",
        hint="bind to 127.0.0.1 or pass --auth off",
    )


def factory() -> FastAPI:
    """uvicorn's app factory in each worker: everything comes from ``acllm serve``'s environment."""
    settings = load_settings(os.environ.get(ENV_CONFIG) or None)
    observe.configure_logging()
    host = os.environ.get(ENV_HOST, "127.0.0.1")
    auth = os.environ.get(ENV_AUTH) or settings.service.auth
    parent = os.environ.get(ENV_PARENT)
    # serve_local=False: never a model copy per worker, only the model process's.
    rt = service_runtime(
        settings, os.environ.get(ENV_MODEL_URL) or None, os.environ.get(ENV_TOKEN), False
    )
    try:
        guard = build_guard(settings, host, auth, rt)
    except BaseException:
        rt.close()
        raise
    return create_app(
        settings,
        guard=guard,
        runtime=rt,
        serve_local=False,
        parent_pid=int(parent) if parent else None,
    )
