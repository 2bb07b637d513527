"""OpenAIChat and OpenAIEmbedder against a real local HTTP server with scripted faults."""

from __future__ import annotations

import time
from collections.abc import Iterator
from email.utils import formatdate
from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError

from acllm.config import load_settings
from acllm.embed.openai import OpenAIEmbedder, OpenAIEmbedOptions
from acllm.embed.openai import build as build_embedder
from acllm.errors import (
    ConfigError,
    ContextOverflowError,
    RateLimitedError,
    RetryableError,
    ServiceError,
    UpstreamTimeoutError,
)
from acllm.models.openai import (
    OpenAIChat,
    OpenAIOptions,
    build,
    parse_retry_after,
    pool_connections,
)
from acllm.runtime import Runtime
from acllm.types import ChatOptions, Delta, Message
from faultserver import FaultServer, unused_url

HI = [Message("system", "Be brief."), Message("user", "Say hello.")]


@pytest.fixture
def srv() -> Iterator[FaultServer]:
    with FaultServer("A") as server:
        yield server


def chat_model(srv: FaultServer, **kw: object) -> OpenAIChat:
    return OpenAIChat(OpenAIOptions(base_url=srv.base_url, model="m", **kw))  # type: ignore[arg-type]


async def collect(model: OpenAIChat, opts: ChatOptions | None = None) -> list[Delta]:
    return [d async for d in model.stream(HI, opts)]


async def test_chat_returns_text_usage_and_sends_the_request(srv: FaultServer) -> None:
    reply = await chat_model(srv).chat(HI, ChatOptions(max_tokens=20, stop=("\n",), seed=7))
    assert reply.text == "hello from A"
    assert reply.model == "m"
    assert reply.finish_reason == "stop"
    assert reply.usage.completion_tokens == 3  # the server's count, not our estimate
    assert reply.usage.prompt_tokens == (len("Be brief.") + len("Say hello.")) // 4 + 1
    assert reply.usage.latency_s > 0
    (req,) = srv.requests
    assert (req.method, req.path) == ("POST", "/v1/chat/completions")
    assert req.body["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Say hello."},
    ]
    assert req.body["max_tokens"] == 20
    assert req.body["stop"] == ["\n"]
    assert req.body["seed"] == 7
    assert "response_format" not in req.body
    assert "stream" not in req.body
    assert "authorization" not in req.headers


async def test_api_key_and_headers_are_sent(
    srv: FaultServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ACLLM_TEST_KEY", "sk-test")
    opts = OpenAIOptions(
        base_url=srv.base_url, model="m", api_key_env="ACLLM_TEST_KEY", headers={"X-Org": "o"}
    )
    await build(opts, None).chat(HI)
    (req,) = srv.requests
    assert req.headers["authorization"] == "Bearer sk-test"
    assert req.headers["x-org"] == "o"


def test_missing_api_key_variable_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ACLLM_TEST_NOPE", raising=False)
    opts = OpenAIOptions(base_url="http://127.0.0.1:1/v1", model="m", api_key_env="ACLLM_TEST_NOPE")
    with pytest.raises(ConfigError, match="ACLLM_TEST_NOPE") as err:
        build(opts, None)
    assert err.value.key == "api_key_env"
    embed_opts = OpenAIEmbedOptions(
        base_url="http://127.0.0.1:1/v1", model="e", api_key_env="ACLLM_TEST_NOPE"
    )
    with pytest.raises(ConfigError, match="ACLLM_TEST_NOPE"):
        build_embedder(embed_opts, None)


def test_options_are_validated() -> None:
    with pytest.raises(ValidationError):
        OpenAIOptions(base_url="localhost:8000/v1", model="m")
    with pytest.raises(ValidationError):
        OpenAIOptions(base_url="http://x/v1", model="m", api_key="sk-literal")  # type: ignore[call-arg]
    for bad in ("http:///v1", "http://x/v1?api-version=1"):
        with pytest.raises(ValidationError):
            OpenAIOptions(base_url=bad, model="m")
    assert OpenAIOptions(base_url="http://x/v1/", model="m").base_url == "http://x/v1"


async def test_schema_becomes_response_format(srv: FaultServer) -> None:
    schema = {"type": "object", "properties": {"answer": {"type": "string"}}}
    reply = await chat_model(srv).chat(HI, ChatOptions(schema=schema))
    assert reply.text == '{"answer": "hello from A"}'
    assert srv.requests[0].body["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "output", "schema": schema, "strict": True},
    }


async def test_stream_yields_deltas_then_finish_and_usage(srv: FaultServer) -> None:
    deltas = await collect(chat_model(srv))
    assert "".join(d.text for d in deltas) == "hello from A"
    assert [d.text for d in deltas[:-1]] == ["hello", " from", " A"]  # role-only chunk skipped
    last = deltas[-1]
    assert last.finish_reason == "stop"
    assert last.usage is not None and last.usage.completion_tokens == 3
    assert all(d.usage is None and d.finish_reason is None for d in deltas[:-1])
    body = srv.requests[0].body
    assert body["stream"] is True
    assert body["stream_options"] == {"include_usage": True}


async def test_429_is_rate_limited_with_retry_after_seconds(srv: FaultServer) -> None:
    srv.script(["429:7"])
    with pytest.raises(RateLimitedError) as err:
        await chat_model(srv).chat(HI)
    assert err.value.retry_after == 7
    assert err.value.status == 429
    assert "scripted 429" in err.value.body


async def test_429_with_http_date_retry_after(srv: FaultServer) -> None:
    srv.script([f"429:{formatdate(time.time() + 30, usegmt=True)}"])
    with pytest.raises(RateLimitedError) as err:
        await chat_model(srv).chat(HI)
    assert err.value.retry_after is not None and 27 <= err.value.retry_after <= 30


async def test_429_on_a_stream(srv: FaultServer) -> None:
    srv.script(["429:2"])
    with pytest.raises(RateLimitedError) as err:
        await collect(chat_model(srv))
    assert err.value.retry_after == 2


def test_parse_retry_after() -> None:
    assert parse_retry_after("3") == 3
    assert parse_retry_after("1.5") == 1.5
    assert parse_retry_after("-4") == 0
    assert parse_retry_after(None) is None
    assert parse_retry_after("soon") is None
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0  # in the past


async def test_500_is_retryable_and_400_is_not(srv: FaultServer) -> None:
    srv.script(["500", "503", "400"])
    model = chat_model(srv)
    for status in (500, 503):
        with pytest.raises(RetryableError) as err:
            await model.chat(HI)
        assert err.value.status == status
        assert not isinstance(err.value, RateLimitedError)
    with pytest.raises(ServiceError) as err4:
        await model.chat(HI)
    assert not err4.value.retryable
    assert err4.value.status == 400
    assert "scripted 400" in err4.value.body


async def test_dropped_connection_is_retryable_with_a_hint(srv: FaultServer) -> None:
    srv.script(["drop"])
    with pytest.raises(RetryableError) as err:
        await chat_model(srv).chat(HI)
    assert srv.base_url in str(err.value)
    assert "is the server running?" in str(err.value)


async def test_drop_in_the_middle_of_a_stream(srv: FaultServer) -> None:
    srv.script(["drop_mid"])
    got: list[str] = []
    with pytest.raises(RetryableError):
        async for d in chat_model(srv).stream(HI):
            got.append(d.text)
    assert got == ["hello"]


async def test_malformed_json_is_a_service_error(srv: FaultServer) -> None:
    srv.script(["bad_json"])
    with pytest.raises(ServiceError, match="malformed JSON") as err:
        await chat_model(srv).chat(HI)
    assert not err.value.retryable


async def test_slow_server_times_out(srv: FaultServer) -> None:
    srv.script(["slow:2", "slow:2"])
    t0 = time.perf_counter()
    with pytest.raises(UpstreamTimeoutError):
        await chat_model(srv, timeout=0.2).chat(HI)
    with pytest.raises(UpstreamTimeoutError):  # the per-request timeout wins over the option
        await chat_model(srv).chat(HI, ChatOptions(timeout=0.2))
    assert time.perf_counter() - t0 < 1.5


async def test_unreachable_server_names_the_url() -> None:
    url = unused_url()
    model = OpenAIChat(OpenAIOptions(base_url=url, model="m"))
    with pytest.raises(RetryableError) as err:
        await model.chat(HI)
    assert url in str(err.value)
    assert "is the server running?" in str(err.value)
    with pytest.raises(RetryableError, match="is the server running"):
        await collect(model)


async def test_context_overflow_is_caught_before_sending(srv: FaultServer) -> None:
    model = chat_model(srv, context_window=100)
    with pytest.raises(ContextOverflowError):
        await model.chat([Message("user", "x" * 300)])
    with pytest.raises(ContextOverflowError):
        await collect(chat_model(srv, context_window=10))
    assert srv.requests == []


def test_count_tokens_over_estimates() -> None:
    model = OpenAIChat(OpenAIOptions(base_url="http://x/v1", model="m"))
    text = "The quick brown fox jumps over the lazy dog. " * 20
    # Real tokenizers take about 4 characters per token; the estimate must not be below that.
    assert model.count_tokens([Message("user", text)]) >= len(text) / 4 + 4
    assert model.count_tokens([Message("user", "")]) > 0


# --- embeddings ----------------------------------------------------------------------------------


def embedder(srv: FaultServer, **kw: object) -> OpenAIEmbedder:
    return OpenAIEmbedder(OpenAIEmbedOptions(base_url=srv.base_url, model="e", **kw))  # type: ignore[arg-type]


def test_embeddings_are_normalised_batched_and_ordered(srv: FaultServer) -> None:
    emb = embedder(srv, batch_size=2)
    texts = ["one", "two", "three", "four", "five"]
    vecs = emb.embed(texts)
    assert vecs.shape == (5, 8)
    assert vecs.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vecs, axis=1), 1.0, rtol=1e-5)
    assert [len(r.body["input"]) for r in srv.requests] == [2, 2, 1]
    assert all(r.path == "/v1/embeddings" for r in srv.requests)
    # Same text, same vector, whatever the batch it came in (the server answers out of order).
    np.testing.assert_allclose(emb.embed(["three"])[0], vecs[2], rtol=1e-6)
    assert emb.dim == 8
    assert emb.name == "e"
    assert emb.embed("one").shape == (1, 8)  # a bare string is one text, not five characters


def test_embedding_prefixes_and_dim_discovery(srv: FaultServer) -> None:
    emb = embedder(srv, query_prefix="query: ", passage_prefix="passage: ")
    assert emb.dim == 8  # a probe request learnt it
    emb.embed(["a"], kind="query")
    emb.embed(["b"])
    assert [r.body["input"] for r in srv.requests[1:]] == [["query: a"], ["passage: b"]]
    assert emb.embed([]).shape == (0, 8)
    assert len(srv.requests) == 3  # no request for nothing


def test_embedding_dim_mismatch_and_errors(srv: FaultServer) -> None:
    with pytest.raises(ServiceError, match="expected 16"):
        embedder(srv, dim=16).embed(["a"])
    srv.script(["429:4", "500", "drop", "bad_json"])
    emb = embedder(srv)
    with pytest.raises(RateLimitedError) as err:
        emb.embed(["a"])
    assert err.value.retry_after == 4
    with pytest.raises(RetryableError):
        emb.embed(["a"])
    with pytest.raises(RetryableError, match="is the server running"):
        emb.embed(["a"])
    with pytest.raises(ServiceError, match="malformed JSON"):
        emb.embed(["a"])


def test_embedding_timeout(srv: FaultServer) -> None:
    srv.script(["slow:2"])
    with pytest.raises(UpstreamTimeoutError):
        embedder(srv, timeout=0.2).embed(["a"])


async def test_pooled_client_is_kept_per_loop_only_inside_pool_connections(
    srv: FaultServer,
) -> None:
    model = chat_model(srv)
    await model.chat(HI)  # no pool on this loop: a client for the call, closed after it
    assert not model._pools
    with pool_connections():
        await model.chat(HI)
        (pool,) = model._pools.values()
        assert "".join(d.text for d in await collect(model)) == "hello from A"
        reply = await model.chat(HI, ChatOptions(timeout=5))
        assert list(model._pools.values()) == [pool]  # kept, whatever the call's timeout
        assert reply.text == "hello from A"
        await model.aclose()
        assert pool.is_closed and pool.open_count == 0 and not model._pools
    await model.chat(HI)  # the loop left pooling: a client per call again
    assert not model._pools


async def test_runtime_aclose_closes_pooled_clients(srv: FaultServer, tmp_path: Path) -> None:
    config = tmp_path / "acllm.toml"
    config.write_text(
        f'data_dir = "{tmp_path}"\ndefault_model = "m"\ndefault_embedder = "hash"\n'
        f'[models.m]\nbackend = "openai"\nbase_url = "{srv.base_url}"\nmodel = "m"\n'
    )
    runtime = Runtime(load_settings(config, environ={}))
    model = runtime.chat()
    assert isinstance(model, OpenAIChat)
    with pool_connections():
        await model.chat(HI)
        (pool,) = model._pools.values()
        await runtime.aclose()
    assert pool.is_closed and pool.open_count == 0
