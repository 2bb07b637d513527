"""ChatModel for any OpenAI-compatible server: vLLM, Ollama, llama.cpp server, OpenAI itself.

The HTTP client is ``acllm.models.http1`` (plain asyncio streams; httpx cost a third of a service
worker's CPU per upstream call). Connections are kept alive only where someone will close them: a
pool belongs to the event loop that first used it and holds sockets until it is closed; a CLI
command runs its own short ``asyncio.run`` and never closes a model, and the tests turn the
ResourceWarning of an unclosed socket into an error. So by default each call opens its own
connection and closes it (cheap next to a model's generation time). A long-running owner opts its
event loop in with ``pool_connections()``: from then on every OpenAIChat keeps one keep-alive pool
per such loop (a ``WeakKeyDictionary`` keyed by the loop, like the service's model-process client),
and the owner must await ``aclose()`` of those models before the loop ends. The service's lifespan
does: it opts each worker's loop in and awaits ``Runtime.aclose()`` as the worker stops; a worker's
job threads run their own loops, not opted in, so they get a connection per call. Through the
service that saves a TCP connect (and on https a handshake) per upstream call. The TLS context is
built once and shared in both modes (and with the httpx clients of ``acllm.embed.openai``).

Proxies: like httpx (``trust_env=True``), HTTP_PROXY / HTTPS_PROXY / ALL_PROXY / NO_PROXY (either
case) are honoured; the model reads them once when it is built (an unusable proxy URL, e.g.
socks or https://, is a UserError then) and all its pools take that route (see
``acllm.models.http1``). A proxy's refusal (407, 403, 502 to CONNECT or a 407 to a request) is a
ServiceError with status 502, retryable for 5xx, with a hint naming the proxy's variable.

The HTTP helpers here (error mapping, Retry-After, API key) are shared with ``acllm.embed.openai``,
which still uses httpx; httpx is imported only when that embedder (or an https URL) needs it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import ssl
import time
import weakref
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from functools import cache
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from acllm.config import env_secret
from acllm.errors import (
    RateLimitedError,
    RetryableError,
    ServiceError,
    UpstreamTimeoutError,
    UserError,
)
from acllm.models.base import check_budget
from acllm.models.http1 import (
    ConnectError,
    ConnectionPool,
    HTTPTimeout,
    ProxyError,
    TransportError,
    check_headers,
)
from acllm.models.proxy import (
    Origin,
    Proxy,
    UnsupportedProxy,
    env_proxy,
)
from acllm.registry import Backend
from acllm.types import ChatOptions, Delta, Message, Reply, Usage

_HINT_DOWN = "is the server running? check base_url"
# Idle keep-alive connections a pool keeps per event loop (those in use are not capped: the service
# already bounds its requests in flight), and for how long (httpx's default too).
_MAX_IDLE = 64
_KEEPALIVE_S = 5.0
_DRAIN_S = 0.1  # how long to wait for the end of a stream's body after [DONE]
# Event loops whose owner closes the models before the loop ends: see pool_connections.
_POOLED_LOOPS: weakref.WeakSet[asyncio.AbstractEventLoop] = weakref.WeakSet()


class OpenAIOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    base_url: str  # up to and including the version, e.g. http://localhost:8000/v1
    model: str
    api_key_env: str | None = None  # name of the environment variable holding the key
    context_window: int = Field(default=8192, gt=0)
    timeout: float = Field(default=60, gt=0)
    headers: dict[str, str] = Field(default_factory=dict)

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        Origin.parse(value)  # a host; no query or fragment (paths are appended to it)
        return value.rstrip("/")


# --- HTTP helpers shared with the embedder -------------------------------------------------------


def read_api_key(env_name: str | None) -> str | None:
    """The key from the named variable; ConfigError when it is named but unset (fail at build)."""
    return env_secret(
        env_name,
        "api_key_env",
        example="<your key>, or remove api_key_env for a server without keys",
    )


def request_headers(api_key: str | None, extra: dict[str, str]) -> dict[str, str]:
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    return {**headers, **extra}


@cache
def _tls_context() -> ssl.SSLContext:
    import httpx  # its defaults: certifi's CAs, or SSL_CERT_FILE / SSL_CERT_DIR

    context = httpx.create_ssl_context()
    context.set_alpn_protocols(["http/1.1"])  # what httpcore sets on it too
    return context


def tls_verify(base_url: str) -> ssl.SSLContext:
    """The one shared TLS context, for http URLs too: httpx ignores it there, but given
    ``verify=True`` it would build a fresh context (~35 ms of CPU) for every client."""
    return _tls_context()


def parse_retry_after(value: str | None) -> float | None:
    """Seconds to wait from a Retry-After header: delta-seconds or an HTTP-date."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def status_error(
    base_url: str,
    status: int,
    body: str,
    headers: Mapping[str, str],
    proxy: Proxy | None = None,
) -> ServiceError:
    """The acllm error for an HTTP error status: 429 and 5xx are retryable, other 4xx are not.
    A 407 comes from ``proxy`` (the request went through it): not retryable, status 502."""
    msg = f"{base_url} answered HTTP {status}: {body[:300]}"
    if status == 407:
        hint = proxy_hint(proxy, 407) if proxy is not None else "a proxy wants credentials"
        return ServiceError(msg, body=body, hint=hint)
    if status == 429:
        retry_after = parse_retry_after(headers.get("retry-after"))
        return RateLimitedError(msg, status=429, body=body, retry_after=retry_after)
    if status >= 500:
        return RetryableError(msg, status=status, body=body)
    return ServiceError(msg, status=status, body=body)


def transport_error(base_url: str, exc: TransportError, proxy: Proxy | None = None) -> ServiceError:
    """The acllm error for a failure of ``acllm.models.http1``, as ``mapped_errors`` for httpx;
    ``proxy`` is the one the request went through, if any (named in the hint)."""
    if isinstance(exc, ProxyError):
        # The proxy's status is in the message; the error keeps the gateway status (502), as a
        # 407 passed on would ask acllm's own client for proxy credentials.
        msg = f"cannot reach {base_url}: {exc}"
        hint = proxy_hint(exc.proxy, exc.status)
        if exc.status >= 500 or exc.status == 429:
            return RetryableError(msg, hint=hint)
        return ServiceError(msg, hint=hint)
    if isinstance(exc, HTTPTimeout):
        hint = "raise timeout or check the server"
        if proxy is not None:
            hint += f" and the proxy {proxy.display}{proxy.from_where}"
        return UpstreamTimeoutError(f"{base_url} timed out ({exc.phase})", hint=hint)
    # Refused, reset or closed mid-answer: the server may be restarting, so worth a retry.
    hint = _HINT_DOWN
    if proxy is not None and isinstance(exc, ConnectError):
        hint = proxy_hint(proxy, None)
    return RetryableError(f"cannot reach {base_url}: {exc}", hint=hint)


def proxy_hint(proxy: Proxy, status: int | None) -> str:
    """What to check when a request through ``proxy`` failed with ``status`` from it."""
    var = proxy.source or "the proxy setting"
    if status == 407 and proxy.authorization:
        what = f"the proxy refused the user:password in {var}"
    elif status == 407:
        what = f"the proxy wants credentials: put user:password in {var} (http://user:pw@host:port)"
    elif status == 403:
        what = f"the proxy in {var} does not allow this host or port"
    elif status is None:
        what = f"is the proxy in {var} ({proxy.display}) running?"
    else:
        what = f"the proxy in {var} ({proxy.display}) failed"
    return f"{what}; or add the host to NO_PROXY to go direct"


@contextmanager
def mapped_errors(base_url: str) -> Iterator[None]:
    """Turn httpx transport failures into acllm's retryable/non-retryable service errors."""
    import httpx

    try:
        yield
    except httpx.TimeoutException as exc:
        raise UpstreamTimeoutError(
            f"{base_url} timed out ({type(exc).__name__})", hint="raise timeout or check the server"
        ) from exc
    except (httpx.NetworkError, httpx.RemoteProtocolError) as exc:
        # Refused, reset or closed mid-answer: the server may be restarting, so worth a retry.
        raise RetryableError(f"cannot reach {base_url}: {exc}", hint=_HINT_DOWN) from exc
    except httpx.TransportError as exc:
        raise ServiceError(f"request to {base_url} failed: {exc}", hint=_HINT_DOWN) from exc


def parse_json(base_url: str, text: str) -> dict[str, Any]:
    try:
        data = json.loads(text)
    except ValueError:
        raise ServiceError(f"{base_url} sent malformed JSON", body=text[:2000]) from None
    if not isinstance(data, dict):
        raise ServiceError(f"{base_url} sent JSON that is not an object", body=text[:2000])
    return data


@contextmanager
def pool_connections() -> Iterator[None]:
    """While open, OpenAIChat calls on the running event loop reuse keep-alive connections.

    The caller must await ``aclose()`` of every OpenAIChat used on this loop before leaving (the
    service's lifespan does, through ``Runtime.aclose``); after leaving, calls on this loop open a
    client each again, so a late call cannot leave a pool behind.
    """
    loop = asyncio.get_running_loop()
    _POOLED_LOOPS.add(loop)
    try:
        yield
    finally:
        _POOLED_LOOPS.discard(loop)


# --- the chat model ------------------------------------------------------------------------------


class OpenAIChat:
    """Chat over ``POST {base_url}/chat/completions``, plain or streamed as server-sent events."""

    def __init__(self, options: OpenAIOptions, *, api_key: str | None = None) -> None:
        self.options = options
        self.name = options.model
        self._headers = request_headers(api_key, options.headers)
        check_headers(self._headers)
        origin = Origin.parse(options.base_url)
        self._target = origin.base_path + "/chat/completions"
        # The environment's proxy, read once: every pool of this model takes that route.
        try:
            self._proxy = env_proxy(origin)
        except UnsupportedProxy as exc:
            raise UserError(
                str(exc),
                hint=f"point {exc.source or 'it'} at an http:// proxy, or add the host to NO_PROXY",
            ) from None
        self._pools: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, ConnectionPool] = (
            weakref.WeakKeyDictionary()
        )

    @property
    def context_window(self) -> int:
        return self.options.context_window

    def count_tokens(self, messages: Sequence[Message]) -> int:
        """An over-estimate: a remote model's tokenizer is not at hand.

        Three characters per token (real tokenizers average about four for English and Spanish)
        plus four tokens of chat-template framing per message, so a prompt that passes the budget
        check fits the server's window too.
        """
        return sum(math.ceil(len(m.content) / 3) + 4 for m in messages) + 3

    def _body(self, messages: Sequence[Message], opts: ChatOptions, stream: bool) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": self.options.model,
            "messages": [{"role": m.role, "content": m.content} for m in messages],
            "max_tokens": opts.max_tokens,
            "temperature": opts.temperature,
            "top_p": opts.top_p,
        }
        if opts.stop:
            body["stop"] = list(opts.stop)
        if opts.seed is not None:
            body["seed"] = opts.seed
        if opts.schema is not None:
            body["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": "output", "schema": opts.schema, "strict": True},
            }
        if stream:
            body["stream"] = True
            body["stream_options"] = {"include_usage": True}
        return body

    def _timeout(self, opts: ChatOptions) -> float:
        return opts.timeout if opts.timeout is not None else self.options.timeout

    def _new_pool(self, max_idle: int) -> ConnectionPool:
        base = self.options.base_url
        tls = tls_verify(base) if base.startswith("https://") else None
        return ConnectionPool(
            base,
            ssl_context=tls,
            headers=self._headers,
            max_idle=max_idle,
            keepalive_s=_KEEPALIVE_S,
            proxy=self._proxy,
        )

    def _pool(self) -> tuple[ConnectionPool, bool]:
        """This loop's keep-alive pool where the loop is opted in, else a pool for this call
        (keeping no idle connection) that the caller closes; the flag says which."""
        loop = asyncio.get_running_loop()
        if loop not in _POOLED_LOOPS:
            return self._new_pool(0), True
        pool = self._pools.get(loop)
        if pool is None:
            pool = self._pools[loop] = self._new_pool(_MAX_IDLE)
        return pool, False

    async def aclose(self) -> None:
        """Close the pooled connections, if any (see ``pool_connections``)."""
        pools, self._pools = self._pools, weakref.WeakKeyDictionary()
        for pool in list(pools.values()):
            await pool.aclose()

    async def chat(self, messages: Sequence[Message], opts: ChatOptions | None = None) -> Reply:
        opts = opts or ChatOptions()
        prompt = check_budget(self, messages, opts.max_tokens)
        base = self.options.base_url
        start = time.perf_counter()
        body = _dumps(self._body(messages, opts, False))
        pool, own = self._pool()
        try:
            resp = await pool.request("POST", self._target, body, wait_s=self._timeout(opts))
        except TransportError as exc:
            raise transport_error(base, exc, self._proxy) from exc
        finally:
            if own:
                await pool.aclose()
        text_body = resp.text()
        if resp.status >= 400:
            raise status_error(base, resp.status, text_body, resp.headers, self._proxy)
        data = parse_json(base, text_body)
        try:
            choice = data["choices"][0]
            text = choice["message"].get("content") or ""
            finish = choice.get("finish_reason") or "stop"
        except (KeyError, IndexError, TypeError, AttributeError):
            raise ServiceError(f"{base} sent no choices", body=text_body[:2000]) from None
        usage = _usage(data.get("usage"), prompt, text)
        usage.latency_s = time.perf_counter() - start
        model = str(data.get("model") or self.name)
        return Reply(text=text, model=model, usage=usage, finish_reason=finish)

    async def stream(
        self, messages: Sequence[Message], opts: ChatOptions | None = None
    ) -> AsyncIterator[Delta]:
        opts = opts or ChatOptions()
        prompt = check_budget(self, messages, opts.max_tokens)
        base = self.options.base_url
        start = time.perf_counter()
        parts: list[str] = []
        finish: str | None = None
        raw_usage: Any = None
        done = False
        body = _dumps(self._body(messages, opts, True))
        pool, own = self._pool()
        try:
            async with pool.stream("POST", self._target, body, wait_s=self._timeout(opts)) as resp:
                if resp.status >= 400:
                    error_body = (await resp.read()).decode(errors="replace")
                    raise status_error(base, resp.status, error_body, resp.headers, self._proxy)
                lines = resp.iter_lines()
                async for line in lines:
                    if not line.startswith("data:"):
                        continue  # blank separators, ": keep-alive" comments, event: lines
                    payload = line[5:].strip()
                    if payload == "[DONE]":
                        done = True
                        break
                    chunk = parse_json(base, payload)
                    if "error" in chunk:
                        raise ServiceError(f"{base} failed mid-stream", body=payload[:2000])
                    raw_usage = chunk.get("usage") or raw_usage
                    for choice in chunk.get("choices") or []:
                        finish = choice.get("finish_reason") or finish
                        piece = (choice.get("delta") or {}).get("content")
                        if piece:
                            parts.append(piece)
                            yield Delta(piece)
                if done:
                    await _drain(lines)
        except TransportError as exc:
            raise transport_error(base, exc, self._proxy) from exc
        finally:
            if own:
                await pool.aclose()
        if not done and finish is None:
            # An HTTP/1.0 server that dies mid-answer looks like a clean end of the body.
            raise RetryableError(f"{base} ended the stream early", hint=_HINT_DOWN)
        usage = _usage(raw_usage, prompt, "".join(parts))
        usage.latency_s = time.perf_counter() - start
        yield Delta("", finish_reason=finish or "stop", usage=usage)


def _dumps(body: dict[str, Any]) -> bytes:
    """The request body as httpx's ``json=`` encodes it."""
    return json.dumps(body, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode()


async def _drain(lines: AsyncIterator[str]) -> None:
    """Read the end of the body after ``[DONE]``: a response closed unread also closes its
    connection, so a pooled connection is only reused once its body is read to the end. Servers end
    the body right after ``[DONE]``; one that keeps it open is left after ``_DRAIN_S``."""
    with contextlib.suppress(TimeoutError, TransportError):
        async with asyncio.timeout(_DRAIN_S):
            async for _ in lines:
                pass


def _usage(raw: Any, prompt_estimate: int, text: str) -> Usage:
    """Usage the server reported; our estimates where it reported none (some servers don't)."""
    if isinstance(raw, dict) and "prompt_tokens" in raw:
        return Usage(int(raw["prompt_tokens"]), int(raw.get("completion_tokens") or 0))
    return Usage(prompt_estimate, math.ceil(len(text) / 3))


def build(options: OpenAIOptions, runtime: Any) -> OpenAIChat:
    return OpenAIChat(options, api_key=read_api_key(options.api_key_env))


BACKEND = Backend(
    "chat", "openai", OpenAIOptions, build, "any OpenAI-compatible server (vLLM, Ollama, OpenAI)"
)
