"""A ChatModel over several upstream ChatModels: budgets, retries, fallback, circuit breakers.

Upstreams are tried in the configured order. Request and token budgets per fixed one-minute window
live in the KV store, so processes sharing it share them; tokens are reserved up front (prompt +
max_tokens) and corrected to the reported usage. A spent upstream is skipped; when all are, the
router waits for the next window if the deadline allows. A RetryableError is retried with
full-jitter backoff, never sooner than Retry-After; a wait past the deadline, a non-retryable
ServiceError or spent retries move on to the next upstream. A UserError propagates at once. The
circuit breakers are per process (in memory). A stream is re-routed only before its first delta.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from acllm.errors import ConfigError, ServiceError, UnavailableError, UpstreamTimeoutError
from acllm.kv.base import KV
from acllm.models.base import ChatModel, check_budget
from acllm.registry import Backend
from acllm.types import ChatOptions, Delta, Message, Reply

log = logging.getLogger("acllm.router")
T = TypeVar("T")
WINDOW = 60.0  # budget window, seconds
_KEY_TTL = 120  # a window's counters outlive it so late corrections still land
_COUNTS = ("attempts", "successes", "failures", "budget_skips", "breaker_skips")


class UpstreamSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    model: str  # a name from the config's [models]
    rpm: int | None = Field(default=None, gt=0)
    tpm: int | None = Field(default=None, gt=0)


class RouterOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    upstreams: list[UpstreamSpec] = Field(min_length=1)  # in fallback order
    max_retries: int = Field(default=3, ge=0)  # per upstream
    backoff_base: float = Field(default=0.5, ge=0)
    backoff_max: float = Field(default=20, ge=0)
    deadline: float = Field(default=120, gt=0)
    breaker_failures: int = Field(default=5, ge=1)
    breaker_cooldown: float = Field(default=30, ge=0)


class _DeadlineError(UpstreamTimeoutError):
    """The router's own deadline ran out: never retried, unlike an upstream's time-out."""


@dataclass
class _Upstream:
    spec: UpstreamSpec
    model: ChatModel
    failures: int = 0  # consecutive
    open_until: float = 0.0
    trial: bool = False  # the half-open trial request is in flight
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(_COUNTS, 0))


@dataclass
class _Lease:  # a reservation in an upstream's token budget, settled once usage is known
    key: str | None = None
    tokens: int = 0


@dataclass
class _Call(Generic[T]):  # one routed request: what to send, how to start it, by when
    messages: Sequence[Message]
    opts: ChatOptions  # as sent upstream: without timeout, so each keeps its own per attempt
    deadline_at: float
    start: Callable[[ChatModel, ChatOptions], Awaitable[T]]
    blocked: list[_Upstream] = field(default_factory=list)  # skipped this pass: budget spent


class Router:
    def __init__(
        self,
        models: Mapping[str, ChatModel],
        kv: KV,
        options: RouterOptions,
        *,
        name: str = "router",
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        rng: random.Random | None = None,
        clock: Callable[[], float] = time.monotonic,  # deadlines, breaker cooldowns
        wall: Callable[[], float] = time.time,  # budget windows: the same in every process
    ) -> None:
        for u in options.upstreams:
            if u.model not in models:
                raise ConfigError(f"models.{name}.upstreams", f"no model named {u.model!r}")
        self.name = name
        self.options = options
        self._ups = [_Upstream(u, models[u.model]) for u in options.upstreams]
        self._kv, self._sleep, self._clock, self._wall = kv, sleep, clock, wall
        self._rng = rng or random.Random()

    @property
    def context_window(self) -> int:
        return min(u.model.context_window for u in self._ups)

    def count_tokens(self, messages: Sequence[Message]) -> int:
        return max(u.model.count_tokens(messages) for u in self._ups)

    def stats(self) -> dict[str, dict[str, int | str]]:
        """Per upstream: attempts, successes, failures, skips and the breaker state."""
        out: dict[str, dict[str, int | str]] = {}
        for u in self._ups:
            state = "closed"
            if u.failures >= self.options.breaker_failures:
                state = "open" if self._clock() < u.open_until else "half-open"
            out[u.spec.model] = {**u.counts, "consecutive_failures": u.failures, "breaker": state}
        return out

    async def chat(self, messages: Sequence[Message], opts: ChatOptions | None = None) -> Reply:
        call = self._call(messages, opts, lambda m, o: m.chat(messages, o))
        lease, reply = await self._route(call)
        self._settle(lease, reply.usage.total_tokens)
        return reply

    async def stream(
        self, messages: Sequence[Message], opts: ChatOptions | None = None
    ) -> AsyncIterator[Delta]:
        async def first_delta(m: ChatModel, o: ChatOptions) -> tuple[Delta | None, Any]:
            it = m.stream(messages, o)
            try:
                return await anext(it, None), it
            except BaseException:
                await _aclose(it)
                raise

        call = self._call(messages, opts, first_delta)
        lease, (delta, it) = await self._route(call)
        total: int | None = None
        try:
            while delta is not None:
                total = delta.usage.total_tokens if delta.usage else total
                yield delta
                delta = await self._within(call.deadline_at, anext(it, None))
        finally:
            await _aclose(it)
        self._settle(lease, total)

    def _call(
        self,
        messages: Sequence[Message],
        opts: ChatOptions | None,
        start: Callable[[ChatModel, ChatOptions], Awaitable[T]],
    ) -> _Call[T]:
        opts = opts or ChatOptions()
        check_budget(self, messages, opts.max_tokens)
        budget = min(self.options.deadline, opts.timeout or self.options.deadline)
        return _Call(messages, replace(opts, timeout=None), self._clock() + budget, start)

    async def _within(self, deadline_at: float, aw: Awaitable[T]) -> T:
        # asyncio.timeout rather than wait_for: no extra task, so an upstream's stream (and
        # httpx's task-bound state inside it) is always driven from the caller's task.
        try:
            async with asyncio.timeout(max(0.0, deadline_at - self._clock())):
                return await aw
        except TimeoutError as exc:
            raise _DeadlineError(
                f"router '{self.name}' deadline of {self.options.deadline:g}s exceeded",
                hint="raise the router's deadline or check the upstreams",
            ) from exc

    async def _route(self, call: _Call[T]) -> tuple[_Lease, T]:
        pending = self._ups
        last: ServiceError | None = None
        while True:
            call.blocked = []
            for u in pending:
                result = await self._try(u, call)
                if isinstance(result, ServiceError):
                    last = result
                elif result is not None:
                    return result
            if not call.blocked:
                break
            wait = WINDOW - self._wall() % WINDOW
            if self._clock() + wait >= call.deadline_at:
                msg = f"router '{self.name}': every upstream's rate budget is spent"
                raise UnavailableError(msg, hint="raise rpm/tpm", retry_after=wait)
            log.info("router %s: budgets spent, waiting %.1fs for the next window", self.name, wait)
            await self._sleep(wait)
            pending = call.blocked
        if last is not None:
            raise last
        reopen = max(0.0, min(u.open_until for u in self._ups) - self._clock())
        msg = f"router '{self.name}': every upstream's circuit breaker is open"
        raise UnavailableError(msg, hint="the upstreams keep failing", retry_after=reopen)

    async def _try(self, u: _Upstream, call: _Call[T]) -> tuple[_Lease, T] | ServiceError | None:
        """Success, the last error after giving up on ``u``, or None when ``u`` was skipped."""
        last: ServiceError | None = None
        who = f"{self.name}/{u.spec.model}"
        for attempt in range(self.options.max_retries + 1):
            if not self._admit(u):
                u.counts["breaker_skips"] += 1
                return last
            lease = self._reserve(u, call)
            if lease is None:
                u.trial = False
                u.counts["budget_skips"] += 1
                call.blocked.append(u)
                return last
            u.counts["attempts"] += 1
            try:
                value = await self._within(call.deadline_at, call.start(u.model, call.opts))
            except ServiceError as exc:
                self._settle(lease, 0)
                self._failure(u)
                if isinstance(exc, _DeadlineError):
                    raise
                last = exc
                if not exc.retryable or attempt == self.options.max_retries:
                    log.warning("%s: giving up on this upstream: %s", who, exc)
                    return last
                cap = min(self.options.backoff_max, self.options.backoff_base * 2**attempt)
                delay = max(exc.retry_after or 0.0, self._rng.uniform(0, cap))
                if self._clock() + delay >= call.deadline_at:
                    log.warning("%s: wait of %.1fs passes the deadline; falling back", who, delay)
                    return last
                log.warning("%s failed (%s); retry %d in %.2fs", who, exc, attempt + 1, delay)
                await self._sleep(delay)
            except BaseException:  # UserError, cancellation: not the upstream's failure
                self._settle(lease, 0)
                u.trial = False
                raise
            else:
                u.failures, u.trial = 0, False
                u.counts["successes"] += 1
                return lease, value
        return last

    def _admit(self, u: _Upstream) -> bool:
        if u.failures < self.options.breaker_failures:
            return True
        if self._clock() < u.open_until or u.trial:
            return False
        u.trial = True  # half-open: this request is the one trial
        log.info("%s/%s: circuit half-open, sending a trial", self.name, u.spec.model)
        return True

    def _failure(self, u: _Upstream) -> None:
        u.failures += 1
        u.counts["failures"] += 1
        u.trial = False
        if u.failures >= self.options.breaker_failures:
            u.open_until = self._clock() + self.options.breaker_cooldown
            log.warning(
                "%s/%s: circuit open after %d failures", self.name, u.spec.model, u.failures
            )

    def _reserve(self, u: _Upstream, call: _Call[Any]) -> _Lease | None:
        """Count one request and reserve its tokens in this window; None when over budget."""
        window = int(self._wall() // WINDOW)
        rpm_key = f"router:{u.spec.model}:rpm:{window}"
        if u.spec.rpm is not None and self._kv.incr(rpm_key, 1, ttl=_KEY_TTL) > u.spec.rpm:
            return None
        if u.spec.tpm is None:
            return _Lease()
        tokens = u.model.count_tokens(call.messages) + call.opts.max_tokens
        key = f"router:{u.spec.model}:tpm:{window}"
        if self._kv.incr(key, tokens, ttl=_KEY_TTL) > u.spec.tpm:
            self._kv.incr(key, -tokens, ttl=_KEY_TTL)
            if u.spec.rpm is not None:
                self._kv.incr(rpm_key, -1, ttl=_KEY_TTL)  # the request was never sent
            return None
        return _Lease(key, tokens)

    def _settle(self, lease: _Lease, actual: int | None) -> None:
        """Correct the reservation to the actual usage (0 gives it all back)."""
        if lease.key is not None and actual is not None and actual != lease.tokens:
            self._kv.incr(lease.key, actual - lease.tokens, ttl=_KEY_TTL)


async def _aclose(it: Any) -> None:
    close = getattr(it, "aclose", None)
    if close is not None:
        await close()


def _routers_reached(name: str, models: Mapping[str, Any], seen: set[str]) -> set[str]:
    """Names of the router ``name`` and every router below it in the upstream graph."""
    spec = models.get(name)
    if spec is None or spec.backend != "router" or name in seen:
        return seen
    seen.add(name)
    options = _options(spec)
    for u in options.upstreams if options else []:
        _routers_reached(u.model, models, seen)
    return seen


def build(options: RouterOptions, runtime: Any) -> Router:
    models = runtime.settings.models
    # build() is not told its own name: find it as the router entries holding these options
    # (two identical routers share a name in logs; the cycle check covers both).
    own = {n for n, s in models.items() if s.backend == "router" and _options(s) == options}
    name = min(own, default="router")
    key = f"models.{name}.upstreams"
    for u in options.upstreams:
        if u.model not in models:
            raise ConfigError(key, f"no model named {u.model!r}", hint=f"have: {sorted(models)}")
        if own & _routers_reached(u.model, models, set()):
            raise ConfigError(key, f"upstream {u.model!r} leads back to this router itself")
    chats = {u.model: runtime.chat(u.model) for u in options.upstreams}
    return Router(chats, runtime.kv(), options, name=name)


def _options(spec: Any) -> RouterOptions | None:
    try:
        return RouterOptions.model_validate(spec.options())
    except ValidationError:
        return None


BACKEND = Backend(
    "chat", "router", RouterOptions, build, "retries, fallback, budgets over other models"
)
