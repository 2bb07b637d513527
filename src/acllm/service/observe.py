"""What the service did: Prometheus metrics at ``/metrics`` and one JSON log line per request.

Every request gets an id (the caller's ``X-Request-Id`` when it sends a sane one, else a new one),
echoed in the response and written on its log line with the route, status, latency, key and
tokens. Routes report usage with ``record_usage(...)``; the middleware does the rest.

Several uvicorn workers are several processes, so metrics use prometheus_client's multiprocess
mode when ``PROMETHEUS_MULTIPROC_DIR`` is set (``acllm serve`` sets it to a fresh folder): each
process writes its own files and ``/metrics`` sums them, so a scrape sees the whole server, not
whichever worker answered.
"""

from __future__ import annotations

import json
import logging
import os
import re
import secrets
import time
from contextvars import ContextVar
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client import multiprocess as prom_multiprocess
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

ACCESS = logging.getLogger("acllm.access")
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")  # anything else is replaced, not logged
_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)

REQUESTS = Counter("acllm_requests_total", "HTTP requests answered", ["route", "method", "status"])
LATENCY = Histogram(
    "acllm_request_seconds", "Time to the end of the response", ["route"], buckets=_BUCKETS
)
TOKENS = Counter("acllm_tokens_total", "Model tokens used", ["key", "kind"])
COST = Counter("acllm_cost_total", "Cost of the tokens used, from service.prices", ["key"])
ERRORS = Counter("acllm_errors_total", "Requests that ended in an error, by kind", ["kind"])
CACHE = Counter("acllm_cache_total", "Cache lookups", ["cache", "result"])
GUARDS = Counter("acllm_guard_events_total", "Guard events", ["guard", "stage", "action"])
OVERRIDES = Counter("acllm_overrides_served_total", "Reviewed answers served", ["assistant"])
INFLIGHT = Gauge("acllm_inflight_requests", "Requests being answered", multiprocess_mode="livesum")
QUEUE = Gauge(
    "acllm_model_queue_depth",
    "Callers waiting for a model or embedder in the model process",
    ["queue"],
    multiprocess_mode="livemax",
)


# The current request's usage, filled by record_usage and written on its log line. A contextvar,
# so a streaming body (which runs after the route returned) still adds to the right request.
_USAGE: ContextVar[dict[str, Any] | None] = ContextVar("acllm_usage", default=None)


def record_usage(
    *,
    key_id: str | None,
    prompt_tokens: int = 0,
    completion_tokens: int = 0,
    model: str | None = None,
    cost: float = 0.0,
) -> None:
    """Count a request's tokens and cost per key; they also go on its log line."""
    key = key_id or "anonymous"
    if prompt_tokens:
        TOKENS.labels(key, "prompt").inc(prompt_tokens)
    if completion_tokens:
        TOKENS.labels(key, "completion").inc(completion_tokens)
    if cost:
        COST.labels(key).inc(cost)
    usage = _USAGE.get()
    if usage is None:  # outside a request (tests, scripts): metrics only
        return
    usage.update(key_id=key_id, model=model)
    usage["prompt_tokens"] = usage.get("prompt_tokens", 0) + prompt_tokens
    usage["completion_tokens"] = usage.get("completion_tokens", 0) + completion_tokens
    if cost:
        usage["cost"] = round(usage.get("cost", 0.0) + cost, 8)


def record_patterns(assistant: str, answer: dict[str, Any], cache_on: bool) -> None:
    """Count what the patterns did for one answer: cache hit or miss, guard events, overrides."""
    cache = answer.get("cache")
    if cache:
        CACHE.labels("response", str(cache.get("kind", "hit"))).inc()
    elif cache_on and not answer.get("override"):
        CACHE.labels("response", "miss").inc()
    if answer.get("override"):
        OVERRIDES.labels(assistant).inc()
    for event in answer.get("guards", ()):
        GUARDS.labels(
            event.get("guard", "?"), event.get("stage", "?"), event.get("action", "?")
        ).inc()


def record_error(kind: str) -> None:
    ERRORS.labels(kind).inc()


def metrics_response() -> Response:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        prom_multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        body = generate_latest(registry)
    else:
        body = generate_latest()
    return Response(body, media_type=CONTENT_TYPE_LATEST)


def _route(scope: Scope) -> str:
    route = scope.get("route")
    path = getattr(route, "path", None)
    return str(path) if path else "unmatched"  # templates, never raw paths: bounded labels


class ObserveMiddleware:
    """Request ids, the access log line and the request metrics; streaming-safe (pure ASGI)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        given = headers.get(b"x-request-id", b"").decode("latin-1")
        request_id = given if _REQUEST_ID.fullmatch(given) else "req_" + secrets.token_hex(8)
        scope.setdefault("state", {})["request_id"] = request_id
        usage: dict[str, Any] = {}
        token = _USAGE.set(usage)
        began = time.perf_counter()
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message.setdefault("headers", [])
                message["headers"] = [
                    *message["headers"],
                    (b"x-request-id", request_id.encode("latin-1")),
                ]
            await send(message)

        INFLIGHT.inc()
        try:
            await self.app(scope, receive, send_with_id)
        except BaseException:
            status = 500
            raise
        finally:
            _USAGE.reset(token)
            INFLIGHT.dec()
            seconds = time.perf_counter() - began
            route = _route(scope)
            REQUESTS.labels(route, scope.get("method", ""), str(status)).inc()
            LATENCY.labels(route).observe(seconds)
            if status >= 500:
                record_error(f"http_{status}")
            line: dict[str, Any] = {
                "ts": round(time.time(), 3),
                "event": "request",
                "request_id": request_id,
                "method": scope.get("method"),
                "path": scope.get("path"),
                "route": route,
                "status": status,
                "latency_ms": round(1000 * seconds, 2),
                **usage,
            }
            ACCESS.info(json.dumps(line, ensure_ascii=False))


class JSONFormatter(logging.Formatter):
    """Log records as one JSON object per line; access lines are already JSON and pass through."""

    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        if record.name == ACCESS.name and message.startswith("{"):
            return message
        out: dict[str, Any] = {
            "ts": round(record.created, 3),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": message,
        }
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        return json.dumps(out, ensure_ascii=False)


def configure_logging(level: str = "INFO") -> None:
    """JSON lines on stderr for acllm's loggers (the access log included)."""
    handler = logging.StreamHandler()
    handler.setFormatter(JSONFormatter())
    root = logging.getLogger("acllm")
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False
