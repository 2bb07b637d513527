"""What create_app wires around the routes: answers recorded for feedback, the feedback routes,
body limits (413), metrics, request ids, the web chat page, key routes — and schemathesis over the
app's own OpenAPI spec (no 5xx for any generated input)."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest

from acllm import FakeChatModel, Runtime
from acllm.config import Settings, load_settings
from acllm.service.app import create_app
from acllm.types import ChatOptions, Message, Reply
from test_service_app import events, open_client, settings, write_config  # noqa: F401

QUESTION = "How many days of paid leave do full-time employees get?"


@pytest.fixture
async def client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:  # noqa: F811
    async for c in open_client(create_app(settings)):
        yield c


async def test_an_answer_gets_an_id_and_feedback_keeps_its_sources(
    client: httpx.AsyncClient,
) -> None:
    r = await client.post(
        "/v1/assistants/handbook/ask",
        json={"question": QUESTION},
        headers={"X-Conversation-Id": "conv-1"},
    )
    assert r.status_code == 200
    answer = r.json()
    assert answer["answer_id"].startswith("ans_") and answer["citations"]

    r = await client.post(
        "/v1/feedback",
        json={"answer_id": answer["answer_id"], "rating": -1, "correction": "23 days a year."},
    )
    assert r.status_code == 201
    saved = r.json()
    assert saved["rating"] == -1 and saved["correction"] == "23 days a year."
    stored = saved["answer"]
    assert stored["question"] == answer["question"]
    assert stored["citations"] == answer["citations"]
    assert stored["conversation"] == "conv-1"
    assert stored["config"]["assistant"] == "handbook" and stored["config"]["index"] == "bicis"
    assert stored["config"]["threshold"] == 0.2 and stored["config"]["model"] == "fake"

    queue = (await client.get("/v1/feedback", params={"rating": -1})).json()["data"]
    assert [f["answer_id"] for f in queue] == [answer["answer_id"]]


async def test_streamed_and_openai_answers_carry_an_answer_id(client: httpx.AsyncClient) -> None:
    r = await client.post(
        "/v1/assistants/handbook/ask", json={"question": QUESTION, "stream": True}
    )
    final = [json.loads(d) for name, d in events(r.text) if name == "answer"]
    assert len(final) == 1 and final[0]["answer_id"].startswith("ans_")

    body = {"model": "handbook", "messages": [{"role": "user", "content": QUESTION}]}
    r = await client.post("/v1/chat/completions", json=body)
    assert r.json()["answer_id"].startswith("ans_")

    r = await client.post("/v1/chat/completions", json={**body, "stream": True})
    chunks = [json.loads(d) for _, d in events(r.text) if d != "[DONE]"]
    tail = [c for c in chunks if "citations" in c]
    assert tail and tail[-1]["answer_id"].startswith("ans_")
    ok = await client.post("/v1/feedback", json={"answer_id": tail[-1]["answer_id"], "rating": 1})
    assert ok.status_code == 201


@pytest.mark.parametrize(
    ("body", "status", "words"),
    [
        ({"answer_id": "ans_0000000000000000", "rating": 1}, 404, "no answer"),
        ({"answer_id": "x", "rating": 3}, 422, ""),
        ({"answer_id": "x"}, 400, "empty feedback"),
        ({"rating": 1}, 422, ""),
    ],
)
async def test_bad_feedback_is_a_4xx_with_a_json_error(
    client: httpx.AsyncClient, body: dict[str, Any], status: int, words: str
) -> None:
    if status == 400:  # a real answer id, but nothing to say about it
        r = await client.post("/v1/assistants/handbook/ask", json={"question": QUESTION})
        body = {"answer_id": r.json()["answer_id"]}
    r = await client.post("/v1/feedback", json=body)
    assert r.status_code == status
    assert words in json.dumps(r.json())


async def test_web_chat_page_is_served(client: httpx.AsyncClient) -> None:
    r = await client.get("/")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert "/v1/assistants/" in r.text and "/v1/feedback" in r.text


async def test_metrics_and_request_ids(client: httpx.AsyncClient) -> None:
    r = await client.get("/v1/models", headers={"X-Request-Id": "trace-42"})
    assert r.headers["x-request-id"] == "trace-42"
    text = (await client.get("/metrics")).text
    assert 'acllm_requests_total{method="GET",route="/v1/models",status="200"}' in text


@pytest.fixture
async def small_body_client(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    limited = load_settings(write_config(tmp_path, max_body_bytes=2048), environ={})
    async for c in open_client(create_app(limited)):
        yield c


async def test_oversize_bodies_get_413_declared_or_streamed(
    small_body_client: httpx.AsyncClient,
) -> None:
    big = {"model": "fake", "messages": [{"role": "user", "content": "x" * 5000}]}
    r = await small_body_client.post("/v1/chat/completions", json=big)
    assert r.status_code == 413
    assert "at most 2048" in r.json()["error"]["message"]

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: counted as it arrives
        payload = json.dumps(big).encode()
        for i in range(0, len(payload), 1000):
            yield payload[i : i + 1000]

    r = await small_body_client.post(
        "/v1/chat/completions", content=chunks(), headers={"Content-Type": "application/json"}
    )
    assert r.status_code == 413
    ok = {"model": "fake", "messages": [{"role": "user", "content": "hi"}]}
    assert (await small_body_client.post("/v1/chat/completions", json=ok)).status_code == 200


@pytest.mark.parametrize(
    "raw",
    [
        b'{"model": "fake", "messages": [',  # truncated JSON
        b"\xff\xfe not utf-8 \x80",
        b'{"model": "fake", "messages": "hello"}',  # wrong type
        b"[]",
    ],
)
async def test_malformed_bodies_are_4xx_never_500(client: httpx.AsyncClient, raw: bytes) -> None:
    r = await client.post(
        "/v1/chat/completions", content=raw, headers={"Content-Type": "application/json"}
    )
    assert 400 <= r.status_code < 500, r.text
    assert r.json()


async def test_key_routes_are_mounted(client: httpx.AsyncClient) -> None:
    # Auth is off in-process (OpenGuard): no key store, and the routes say so.
    r = await client.get("/v1/keys")
    assert r.status_code == 404 and "--auth on" in r.json()["error"]["hint"]


def minimal(schema: dict[str, Any]) -> Any:
    """The smallest instance of a (task) JSON schema: what a grammar-constrained model returns."""
    if "enum" in schema:
        return schema["enum"][0]
    kind = schema.get("type")
    if kind == "object":
        props = schema.get("properties", {})
        return {k: minimal(props.get(k, {})) for k in schema.get("required", [])}
    if kind == "array":
        return [minimal(schema.get("items", {})) for _ in range(schema.get("minItems", 0))]
    return {"string": "x", "number": 0.5, "integer": 0, "boolean": True}.get(str(kind), "x")


class SchemaFollowingModel(FakeChatModel):
    """A fake whose replies satisfy the requested JSON schema, as the grammar-constrained local
    model's do: the fuzzing then finds acllm's own errors, not a script's wrong reply."""

    async def chat(self, messages: Sequence[Message], opts: ChatOptions | None = None) -> Reply:
        reply = await super().chat(messages, opts)
        if opts is not None and opts.schema is not None:
            reply.text = json.dumps(minimal(opts.schema))
        return reply


def test_openapi_fuzzing_finds_no_server_errors(settings: Settings) -> None:  # noqa: F811
    """schemathesis generates requests from the app's own OpenAPI spec; none may answer 5xx."""
    import schemathesis
    from hypothesis import HealthCheck, given
    from hypothesis import settings as hyp_settings
    from starlette.testclient import TestClient

    def fakes(kind: str, name: str, spec: Any) -> Any:
        if kind == "chat" and spec.backend == "fake":
            return SchemaFollowingModel(default="Hello", name=name)
        return None

    app = create_app(settings, runtime=Runtime(settings, substitute=fakes))
    with TestClient(app) as http:
        spec = http.get("/openapi.json").json()
        schema = schemathesis.openapi.from_dict(spec)
        failures: list[str] = []
        for operation in schema.get_all_operations():
            op = operation.ok()
            if op.path.startswith("/v1/indexes/{name}/ingest"):
                continue  # starts background jobs reading server paths: covered in its own tests

            @hyp_settings(
                max_examples=15,
                deadline=None,
                derandomize=True,
                suppress_health_check=list(HealthCheck),
            )
            @given(case=op.as_strategy())
            def check(case: Any) -> None:
                kwargs = case.as_transport_kwargs(base_url="")
                cookies = kwargs.pop("cookies", None) or {}
                if cookies:  # per-request cookies are deprecated in httpx: send the header
                    cookie = "; ".join(f"{k}={v}" for k, v in cookies.items())
                    kwargs["headers"] = {**(kwargs.get("headers") or {}), "Cookie": cookie}
                response = http.request(**kwargs)
                if response.status_code >= 500:
                    failures.append(f"{case.method} {case.formatted_path}: {response.status_code}")

            check()
        assert not failures, failures


async def test_usage_and_cost_per_key_go_on_the_access_line(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = write_config(tmp_path)
    path.write_text(
        path.read_text() + "[service.prices.fake]\nprompt_per_1k = 1.0\ncompletion_per_1k = 2.0\n"
    )
    priced = load_settings(path, environ={})
    caplog.set_level(logging.INFO, logger="acllm.access")
    async for http in open_client(create_app(priced)):
        body = {"model": "fake", "messages": [{"role": "user", "content": "hi there"}]}
        r = await http.post("/v1/chat/completions", json=body)
        usage = r.json()["usage"]
        await http.post("/v1/chat/completions", json={**body, "stream": True})
    lines = [json.loads(rec.getMessage()) for rec in caplog.records]
    plain, streamed = [x for x in lines if x["route"] == "/v1/chat/completions"]
    for line in (plain, streamed):
        assert line["prompt_tokens"] == usage["prompt_tokens"]
        assert line["completion_tokens"] == usage["completion_tokens"]
        assert (line["model"] == "fake" and line["key_id"] is None) or "key_id" not in line
        expected = (usage["prompt_tokens"] * 1.0 + usage["completion_tokens"] * 2.0) / 1000
        assert line["cost"] == pytest.approx(expected)


async def test_an_embeddings_only_key_lists_only_embedders(
    settings: Settings,  # noqa: F811
    tmp_path: Path,
) -> None:
    from acllm.kv.memory import MemoryKV
    from acllm.service.auth import KeyGuard
    from acllm.service.keys import KeyStore

    store = KeyStore(tmp_path / "keys.sqlite")
    guard = KeyGuard(store, MemoryKV(), settings.service)
    _, embed_secret = store.create("embedder", routes=["embeddings"])
    _, nothing_secret = store.create("feedback only", routes=["feedback"])
    try:
        async for http in open_client(create_app(settings, guard=guard)):
            r = await http.get("/v1/models", headers={"Authorization": f"Bearer {embed_secret}"})
            assert r.status_code == 200
            assert {m["kind"] for m in r.json()["data"]} == {"embedder"}
            r = await http.get("/v1/models", headers={"Authorization": f"Bearer {nothing_secret}"})
            assert r.status_code == 403
    finally:
        store.close()
