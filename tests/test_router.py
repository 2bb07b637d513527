"""Router over real OpenAIChat upstreams talking to real local servers with scripted faults.

Time is faked where it is waited on: the injected sleep records each wait and moves a fake clock
(which drives deadlines, breaker cooldowns and budget windows) instead of sleeping.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from acllm.config import BackendSpec, KVSpec, Settings
from acllm.errors import (
    ConfigError,
    ContextOverflowError,
    RetryableError,
    ServiceError,
    UnavailableError,
    UpstreamTimeoutError,
    UserError,
)
from acllm.kv.memory import MemoryKV
from acllm.models.openai import OpenAIChat, OpenAIOptions
from acllm.models.router import Router, RouterOptions
from acllm.runtime import Runtime
from acllm.types import ChatOptions, Delta, Message, Reply
from faultserver import FaultServer

HI = [Message("user", "Say hello.")]
START = 6000.0 + 1  # one second into a budget window (windows are multiples of 60 s)


class FakeTime:
    def __init__(self) -> None:
        self.now = START
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


@pytest.fixture
def a() -> Iterator[FaultServer]:
    with FaultServer("A") as server:
        yield server


@pytest.fixture
def b() -> Iterator[FaultServer]:
    with FaultServer("B") as server:
        yield server


@pytest.fixture
def ft() -> FakeTime:
    return FakeTime()


def upstream(srv: FaultServer, **kw: Any) -> OpenAIChat:
    return OpenAIChat(OpenAIOptions(base_url=srv.base_url, model="m", **kw))


def make_router(
    ft: FakeTime,
    servers: dict[str, FaultServer],
    *,
    kv: MemoryKV | None = None,
    budgets: dict[str, dict[str, int]] | None = None,
    upstream_kw: dict[str, Any] | None = None,
    **options: Any,
) -> Router:
    models = {name: upstream(s, **(upstream_kw or {})) for name, s in servers.items()}
    specs = [{"model": name, **(budgets or {}).get(name, {})} for name in servers]
    opts = RouterOptions.model_validate({"upstreams": specs, **options})
    return Router(
        models, kv or MemoryKV(), opts, sleep=ft.sleep, rng=random.Random(0), clock=ft, wall=ft
    )


async def test_first_upstream_answers(ft: FakeTime, a: FaultServer, b: FaultServer) -> None:
    router = make_router(ft, {"a": a, "b": b})
    reply = await router.chat(HI)
    assert reply.text == "hello from A"
    assert (len(a.requests), len(b.requests)) == (1, 0)
    assert router.stats()["a"]["successes"] == 1
    assert router.stats()["a"]["breaker"] == "closed"


async def test_429_is_retried_after_retry_after(
    ft: FakeTime, a: FaultServer, b: FaultServer, caplog: pytest.LogCaptureFixture
) -> None:
    a.script(["429:3", "ok"])
    router = make_router(ft, {"a": a, "b": b}, backoff_base=0.1)
    with caplog.at_level(logging.WARNING, logger="acllm.router"):
        reply = await router.chat(HI)
    assert reply.text == "hello from A"
    assert len(ft.sleeps) == 1 and ft.sleeps[0] >= 3  # Retry-After honoured over the small backoff
    assert (len(a.requests), len(b.requests)) == (2, 0)
    assert any("retry 1" in r.getMessage() for r in caplog.records)


async def test_retry_after_past_the_deadline_falls_back_at_once(
    ft: FakeTime, a: FaultServer, b: FaultServer
) -> None:
    a.script(["429:500"])
    reply = await make_router(ft, {"a": a, "b": b}, deadline=60).chat(HI)
    assert reply.text == "hello from B"
    assert ft.sleeps == []
    assert len(a.requests) == 1


@pytest.mark.parametrize("fault", ["500", "drop"])
async def test_transient_failure_then_ok_is_retried(
    ft: FakeTime, a: FaultServer, b: FaultServer, fault: str
) -> None:
    a.script([fault, fault, "ok"])
    router = make_router(ft, {"a": a, "b": b}, backoff_base=0.5, backoff_max=0.8)
    assert (await router.chat(HI)).text == "hello from A"
    assert (len(a.requests), len(b.requests)) == (3, 0)
    # Full jitter: each wait lies in [0, min(backoff_max, base * 2**attempt)].
    assert len(ft.sleeps) == 2
    assert 0 <= ft.sleeps[0] <= 0.5 and 0 <= ft.sleeps[1] <= 0.8
    assert router.stats()["a"]["failures"] == 2
    assert router.stats()["a"]["consecutive_failures"] == 0


async def test_slow_upstream_times_out_then_falls_back(
    ft: FakeTime, a: FaultServer, b: FaultServer
) -> None:
    a.script(["slow:2"])
    router = make_router(ft, {"a": a, "b": b}, max_retries=0, upstream_kw={"timeout": 0.2})
    t0 = time.perf_counter()
    assert (await router.chat(HI)).text == "hello from B"
    assert time.perf_counter() - t0 < 1.5


async def test_overall_deadline_bounds_a_slow_call(ft: FakeTime, a: FaultServer) -> None:
    a.script(["slow:3"])
    router = make_router(ft, {"a": a}, deadline=0.3)
    t0 = time.perf_counter()
    with pytest.raises(UpstreamTimeoutError, match="deadline"):
        await router.chat(HI)
    assert time.perf_counter() - t0 < 1.5
    with pytest.raises(UpstreamTimeoutError):  # ChatOptions.timeout caps the deadline too
        a.script(["slow:3"])
        await make_router(ft, {"a": a}).chat(HI, ChatOptions(timeout=0.3))
    assert time.perf_counter() - t0 < 2.5


async def test_all_upstreams_failing_raise_the_last_error(
    ft: FakeTime, a: FaultServer, b: FaultServer
) -> None:
    a.script(["500"] * 3)
    b.script(["502"] * 3)
    router = make_router(ft, {"a": a, "b": b}, max_retries=2)
    with pytest.raises(RetryableError) as err:
        await router.chat(HI)
    assert err.value.status == 502  # B's, the last upstream tried
    assert (len(a.requests), len(b.requests)) == (3, 3)
    assert len(ft.sleeps) == 4


async def test_non_retryable_error_falls_back_without_retry(
    ft: FakeTime, a: FaultServer, b: FaultServer
) -> None:
    a.script(["400"])
    reply = await make_router(ft, {"a": a, "b": b}).chat(HI)
    assert reply.text == "hello from B"
    assert len(a.requests) == 1
    assert ft.sleeps == []


async def test_non_retryable_everywhere_raises_it(ft: FakeTime, a: FaultServer) -> None:
    a.script(["401"])
    with pytest.raises(ServiceError) as err:
        await make_router(ft, {"a": a}).chat(HI)
    assert err.value.status == 401 and not err.value.retryable


async def test_rpm_budget_spent_goes_to_the_next_upstream(
    ft: FakeTime, a: FaultServer, b: FaultServer
) -> None:
    kv = MemoryKV()
    router = make_router(ft, {"a": a, "b": b}, kv=kv, budgets={"a": {"rpm": 2}})
    replies = [(await router.chat(HI)).text for _ in range(3)]
    assert replies == ["hello from A", "hello from A", "hello from B"]
    assert (len(a.requests), len(b.requests)) == (2, 1)
    assert router.stats()["a"]["budget_skips"] == 1
    # The budget lives in the KV: a second router (another process) sharing it sees it spent.
    other = make_router(ft, {"a": a, "b": b}, kv=kv, budgets={"a": {"rpm": 2}})
    assert (await other.chat(HI)).text == "hello from B"
    assert len(a.requests) == 2


async def test_tpm_budget_reserves_then_corrects_to_usage(
    ft: FakeTime, a: FaultServer, b: FaultServer
) -> None:
    kv = MemoryKV()
    router = make_router(ft, {"a": a, "b": b}, kv=kv, budgets={"a": {"tpm": 115}})
    opts = ChatOptions(max_tokens=100)
    assert (await router.chat(HI, opts)).text == "hello from A"
    reply_usage = 3 + 3  # the fault server's prompt (10 chars // 4 + 1) + 3 completion tokens
    key = f"router:a:tpm:{int(START // 60)}"
    assert kv.get(key) == str(reply_usage).encode()  # reservation corrected to actual usage
    # Reserved: the estimate (11) + max_tokens. 111 fits 115, but not on top of the 6 used.
    assert (await router.chat(HI, opts)).text == "hello from B"
    assert kv.get(key) == str(reply_usage).encode()  # the refused reservation was rolled back
    assert (await router.chat(HI, ChatOptions(max_tokens=20))).text == "hello from A"


async def test_failed_call_gives_its_tokens_back(ft: FakeTime, a: FaultServer) -> None:
    kv = MemoryKV()
    a.script(["400"])
    router = make_router(ft, {"a": a}, kv=kv, budgets={"a": {"tpm": 1000}})
    with pytest.raises(ServiceError):
        await router.chat(HI)
    assert kv.get(f"router:a:tpm:{int(START // 60)}") == b"0"


async def test_all_budgets_spent_waits_for_the_next_window(ft: FakeTime, a: FaultServer) -> None:
    router = make_router(ft, {"a": a}, budgets={"a": {"rpm": 1}})
    await router.chat(HI)
    assert (await router.chat(HI)).text == "hello from A"
    assert ft.sleeps == [59.0]  # from one second into the window to its end
    assert len(a.requests) == 2


async def test_all_budgets_spent_past_the_deadline_is_unavailable(
    ft: FakeTime, a: FaultServer, b: FaultServer
) -> None:
    budgets = {"a": {"rpm": 1}, "b": {"rpm": 1}}
    router = make_router(ft, {"a": a, "b": b}, budgets=budgets, deadline=30)
    await router.chat(HI)
    await router.chat(HI)
    with pytest.raises(UnavailableError) as err:
        await router.chat(HI)
    assert err.value.retry_after == 59.0
    assert (len(a.requests), len(b.requests)) == (1, 1)
    assert ft.sleeps == []


async def test_breaker_opens_then_half_opens_after_cooldown(
    ft: FakeTime, a: FaultServer, b: FaultServer
) -> None:
    a.script(["500"] * 3)
    router = make_router(
        ft, {"a": a, "b": b}, max_retries=5, breaker_failures=3, breaker_cooldown=30
    )
    assert (await router.chat(HI)).text == "hello from B"
    assert len(a.requests) == 3  # the breaker cut the retries short
    assert router.stats()["a"]["breaker"] == "open"
    sleeps = len(ft.sleeps)
    assert (await router.chat(HI)).text == "hello from B"
    assert len(a.requests) == 3  # skipped while open
    assert len(ft.sleeps) == sleeps  # and no time spent on it
    assert router.stats()["a"]["breaker_skips"] == 2  # the cut retry and this call

    ft.now += 31
    assert router.stats()["a"]["breaker"] == "half-open"
    a.script(["500"])  # the trial fails: open again, no second try
    assert (await router.chat(HI)).text == "hello from B"
    assert len(a.requests) == 4
    assert router.stats()["a"]["breaker"] == "open"

    ft.now += 31
    assert (await router.chat(HI)).text == "hello from A"  # the trial succeeds: closed
    assert router.stats()["a"]["breaker"] == "closed"
    assert router.stats()["a"]["consecutive_failures"] == 0


async def test_every_breaker_open_is_unavailable(ft: FakeTime, a: FaultServer) -> None:
    a.script(["500"] * 2)
    router = make_router(ft, {"a": a}, max_retries=1, breaker_failures=2, breaker_cooldown=30)
    with pytest.raises(RetryableError):
        await router.chat(HI)
    with pytest.raises(UnavailableError, match="circuit") as err:
        await router.chat(HI)
    assert err.value.retry_after is not None and 0 < err.value.retry_after <= 30
    assert len(a.requests) == 2


async def collect(stream: AsyncIterator[Delta]) -> list[Delta]:
    return [d async for d in stream]


async def test_stream_falls_back_before_the_first_delta(
    ft: FakeTime, a: FaultServer, b: FaultServer
) -> None:
    a.script(["500", "429:1"])
    kv = MemoryKV()
    router = make_router(ft, {"a": a, "b": b}, kv=kv, max_retries=1, budgets={"b": {"tpm": 500}})
    deltas = await collect(router.stream(HI))
    assert "".join(d.text for d in deltas) == "hello from B"
    assert deltas[-1].finish_reason == "stop" and deltas[-1].usage is not None
    assert (len(a.requests), len(b.requests)) == (2, 1)
    assert b.requests[0].body["stream"] is True
    assert kv.get(f"router:b:tpm:{int(START // 60)}") == b"6"  # settled from the stream's usage


async def test_stream_error_after_first_delta_propagates(
    ft: FakeTime, a: FaultServer, b: FaultServer
) -> None:
    a.script(["drop_mid"])
    router = make_router(ft, {"a": a, "b": b})
    got: list[str] = []
    with pytest.raises(RetryableError):
        async for d in router.stream(HI):
            got.append(d.text)
    assert got == ["hello"]
    assert (len(a.requests), len(b.requests)) == (1, 0)


async def test_stream_consumer_may_stop_early(ft: FakeTime, a: FaultServer) -> None:
    stream = make_router(ft, {"a": a}).stream(HI)
    assert isinstance(stream, AsyncIterator)
    first = await anext(stream)
    assert first.text == "hello"
    await stream.aclose()  # type: ignore[attr-defined]


async def test_context_overflow_propagates_without_a_request(
    ft: FakeTime, a: FaultServer, b: FaultServer
) -> None:
    router = Router(
        {"a": upstream(a, context_window=4096), "b": upstream(b, context_window=64)},
        MemoryKV(),
        RouterOptions.model_validate({"upstreams": [{"model": "a"}, {"model": "b"}]}),
        sleep=ft.sleep,
    )
    assert router.context_window == 64
    with pytest.raises(ContextOverflowError):
        await router.chat([Message("user", "x" * 200)], ChatOptions(max_tokens=10))
    assert a.requests == [] and b.requests == []


class RefusingModel:
    """An upstream that raises a UserError, as a local model does for a prompt it rejects."""

    name = "refuser"
    context_window = 4096
    calls = 0

    def count_tokens(self, messages: Sequence[Message]) -> int:
        return 1

    async def chat(self, messages: Sequence[Message], opts: ChatOptions | None = None) -> Reply:
        self.calls += 1
        raise UserError("bad input")

    async def stream(
        self, messages: Sequence[Message], opts: ChatOptions | None = None
    ) -> AsyncIterator[Delta]:
        raise UserError("bad input")
        yield Delta("")


async def test_user_error_from_an_upstream_propagates(ft: FakeTime, b: FaultServer) -> None:
    refuser = RefusingModel()
    opts = RouterOptions.model_validate({"upstreams": [{"model": "r"}, {"model": "b"}]})
    router = Router({"r": refuser, "b": upstream(b)}, MemoryKV(), opts, sleep=ft.sleep)
    with pytest.raises(UserError, match="bad input"):
        await router.chat(HI)
    with pytest.raises(UserError, match="bad input"):
        await collect(router.stream(HI))
    assert refuser.calls == 1 and b.requests == []
    assert router.stats()["r"]["failures"] == 0


def test_router_options_are_validated() -> None:
    with pytest.raises(ValueError):
        RouterOptions.model_validate({"upstreams": []})
    with pytest.raises(ValueError):
        RouterOptions.model_validate({"upstreams": [{"model": "a", "rps": 3}]})


def settings(tmp_path: Path, models: dict[str, BackendSpec]) -> Settings:
    return Settings(
        data_dir=tmp_path, kv=KVSpec(backend="memory"), models=models, default_model="r"
    )


async def test_router_built_through_the_runtime(
    tmp_path: Path, a: FaultServer, b: FaultServer
) -> None:
    models = {
        "a": BackendSpec(backend="openai", base_url=a.base_url, model="m"),
        "b": BackendSpec(backend="openai", base_url=b.base_url, model="m"),
        "r": BackendSpec(
            backend="router",
            upstreams=[{"model": "a", "rpm": 60}, {"model": "b"}],
            backoff_base=0.01,
        ),
    }
    rt = Runtime(settings(tmp_path, models))
    router = rt.chat("r")
    assert isinstance(router, Router) and router.name == "r"
    a.script(["500", "400"])  # retried after a short real backoff, then given up
    assert (await router.chat(HI)).text == "hello from B"
    assert len(a.requests) == 2
    assert (await router.chat(HI)).text == "hello from A"
    assert router.stats()["a"]["attempts"] == 3
    assert rt.kv().get(f"router:a:rpm:{int(time.time() // 60)}") is not None  # the shared KV


def test_router_listing_itself_is_a_config_error(tmp_path: Path) -> None:
    models = {
        "a": BackendSpec(backend="openai", base_url="http://127.0.0.1:1/v1", model="m"),
        "r": BackendSpec(backend="router", upstreams=[{"model": "a"}, {"model": "r"}]),
        "x": BackendSpec(backend="router", upstreams=[{"model": "y"}]),
        "y": BackendSpec(backend="router", upstreams=[{"model": "x"}]),
        "z": BackendSpec(backend="router", upstreams=[{"model": "nope"}]),
    }
    rt = Runtime(settings(tmp_path, models))
    with pytest.raises(ConfigError, match="leads back") as err:
        rt.chat("r")
    assert err.value.key == "models.r.upstreams"
    with pytest.raises(ConfigError, match="leads back"):
        rt.chat("x")
    with pytest.raises(ConfigError, match="nope"):
        rt.chat("z")
