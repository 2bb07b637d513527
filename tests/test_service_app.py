"""The service app in-process (httpx over ASGI): OpenAI-compatible and native routes, ingestion jobs,
errors and limits, on the public test doubles (fake chat model, hash embedder) and a real SQLite
index built from examples/data."""

from __future__ import annotations

import asyncio
import base64
import json
import shutil
from collections.abc import AsyncIterator, Iterator, Sequence
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from acllm import FakeChatModel, Runtime
from acllm.config import Settings, load_settings
from acllm.errors import ContextOverflowError, UnavailableError
from acllm.models.base import ChatModel
from acllm.service.app import create_app
from acllm.types import ChatOptions, Message, Reply

ROOT = Path(__file__).resolve().parents[1]
QUESTION = "How many days of paid leave do full-time employees get?"
TASK_REPLY = '{"passed": true, "reason": "fine"}'  # valid for every task, JSON or text


def write_config(tmp: Path, **service: int) -> Path:
    lines = [
        f'data_dir = "{tmp / "home"}"',
        'default_model = "fake"',
        'default_embedder = "hash"',
        "[models.fake]",
        'backend = "fake"',
        'default = "Hello from the fake model"',
        "[models.tasker]",
        'backend = "fake"',
        f"default = '{TASK_REPLY}'",
        "[models.tiny]",
        'backend = "fake"',
        "context_window = 32",
        "[models.gate]",
        'backend = "fake"',
        "[tasks]",
        'model = "tasker"',
        "[assistants.handbook]",
        'index = "bicis"',
        "threshold = 0.2",
        'description = "the Bicis Norte documents"',
        "[service]",
        *(f"{k} = {v}" for k, v in service.items()),
    ]
    path = tmp / "acllm.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture(scope="module")
def settings(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    """Settings whose data_dir holds the 'bicis' index ingested from examples/data."""
    from acllm.ingest import sources
    from acllm.ingest.chunking import chunk_documents
    from acllm.ingest.pipeline import Ingestor

    tmp = tmp_path_factory.mktemp("service")
    loaded = load_settings(write_config(tmp), environ={})
    runtime = Runtime(loaded)
    try:
        pending, errors = sources.from_path(ROOT / "examples" / "data")
        report = Ingestor(runtime.index("bicis"), runtime.embedder(), chunker=chunk_documents).run(
            pending
        )
        assert report.written == 5 and not errors and not report.errors
    finally:
        runtime.close()
    yield loaded


async def open_client(app: Any) -> AsyncIterator[httpx.AsyncClient]:
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://acllm") as c,
    ):
        yield c


@pytest.fixture
async def client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async for c in open_client(create_app(settings)):
        yield c


def events(body: str) -> list[tuple[str | None, str]]:
    """(event name, data) of each server-sent event."""
    out = []
    for block in body.split("\n\n"):
        if not block.strip():
            continue
        name, data = None, []
        for line in block.splitlines():
            if line.startswith("event:"):
                name = line[6:].strip()
            elif line.startswith("data:"):
                data.append(line[5:].strip())
        out.append((name, "\n".join(data)))
    return out


def chunks(body: str) -> list[dict[str, Any]]:
    datas = [d for _, d in events(body)]
    assert datas[-1] == "[DONE]"
    return [json.loads(d) for d in datas[:-1]]


def user(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


# --- chat completions ----------------------------------------------------------------------------


async def test_chat_completion_has_the_openai_shape(client: httpx.AsyncClient) -> None:
    resp = await client.post("/v1/chat/completions", json={"model": "fake", "messages": user("hi")})
    assert resp.status_code == 200
    body = resp.json()
    assert body["id"].startswith("chatcmpl-")
    assert body["object"] == "chat.completion"
    assert body["model"] == "fake"
    assert isinstance(body["created"], int)
    [choice] = body["choices"]
    assert choice["index"] == 0
    assert choice["message"] == {
        "role": "assistant",
        "content": "Hello from the fake model",
        "refusal": None,
    }
    assert choice["finish_reason"] == "stop"
    prompt = FakeChatModel().count_tokens([Message("user", "hi")])
    assert body["usage"] == {
        "prompt_tokens": prompt,
        "completion_tokens": 5,
        "total_tokens": 5 + prompt,
    }
    assert "citations" not in body


async def test_chat_completion_streams_chunks_then_done(client: httpx.AsyncClient) -> None:
    resp = await client.post(
        "/v1/chat/completions",
        json={
            "model": "fake",
            "messages": user("hi"),
            "stream": True,
            "stream_options": {"include_usage": True},
        },
    )
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("text/event-stream")
    got = chunks(resp.text)
    assert {c["object"] for c in got} == {"chat.completion.chunk"}
    assert len({c["id"] for c in got}) == 1
    assert got[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in got if c["choices"])
    assert text == "Hello from the fake model"
    finishing = [c for c in got if c["choices"] and c["choices"][0]["finish_reason"]]
    assert [c["choices"][0]["finish_reason"] for c in finishing] == ["stop"]
    assert got[-1]["choices"] == []
    assert got[-1]["usage"]["completion_tokens"] == 5


async def test_stream_without_include_usage_sends_no_usage_chunk(client: httpx.AsyncClient) -> None:
    resp = await client.post(
        "/v1/chat/completions", json={"model": "fake", "messages": user("hi"), "stream": True}
    )
    got = chunks(resp.text)
    assert all(c["choices"] for c in got)
    assert all("usage" not in c for c in got)


async def test_text_content_parts_and_system_messages_are_accepted(
    client: httpx.AsyncClient,
) -> None:
    messages = [
        {"role": "developer", "content": "Be brief."},
        {
            "role": "user",
            "content": [{"type": "text", "text": "hi "}, {"type": "text", "text": "x"}],
        },
    ]
    resp = await client.post("/v1/chat/completions", json={"model": "fake", "messages": messages})
    assert resp.status_code == 200, resp.text


async def test_unknown_model_is_404_naming_the_choices(client: httpx.AsyncClient) -> None:
    resp = await client.post(
        "/v1/chat/completions", json={"model": "gpt-9", "messages": user("hi")}
    )
    assert resp.status_code == 404
    error = resp.json()["error"]
    assert "gpt-9" in error["message"]
    for name in ("fake", "tasker", "handbook"):
        assert name in error["hint"]


async def test_context_overflow_is_413_streaming_or_not(client: httpx.AsyncClient) -> None:
    long = " ".join(["word"] * 40)
    for stream in (False, True):
        resp = await client.post(
            "/v1/chat/completions",
            json={"model": "tiny", "messages": user(long), "max_tokens": 4, "stream": stream},
        )
        assert resp.status_code == 413, resp.text
        assert "too many" in resp.json()["error"]["message"]


@pytest.mark.parametrize(
    "body",
    [
        {"messages": [{"role": "user", "content": "hi"}]},  # no model
        {"model": "fake"},  # no messages
        {"model": "fake", "messages": []},
        {"model": "fake", "messages": "hi"},
        {"model": "fake", "messages": [{"content": "hi"}]},  # no role
        {"model": "fake", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 0},
        {"model": "fake", "messages": [{"role": "user", "content": "hi"}], "temperature": 5},
    ],
)
async def test_bad_chat_bodies_are_422(client: httpx.AsyncClient, body: dict[str, Any]) -> None:
    resp = await client.post("/v1/chat/completions", json=body)
    assert resp.status_code == 422, resp.text


async def test_unsupported_features_are_400(client: httpx.AsyncClient) -> None:
    for extra in ({"n": 2}, {"tools": [{"type": "function"}]}):
        resp = await client.post(
            "/v1/chat/completions", json={"model": "fake", "messages": user("hi"), **extra}
        )
        assert resp.status_code == 400, resp.text
    resp = await client.post(
        "/v1/chat/completions",
        json={"model": "fake", "messages": [{"role": "tool", "content": "x"}]},
    )
    assert resp.status_code == 400


# --- an assistant as a model ---------------------------------------------------------------------


async def test_assistant_as_model_answers_with_citations(client: httpx.AsyncClient) -> None:
    resp = await client.post(
        "/v1/chat/completions",
        headers={"X-Conversation-Id": "conv-42"},
        json={"model": "handbook", "messages": user(QUESTION)},
    )
    assert resp.status_code == 200, resp.text
    assert resp.headers["X-Conversation-Id"] == "conv-42"
    body = resp.json()
    text = body["choices"][0]["message"]["content"]
    assert "23 working days" in text
    assert "[1]" in text
    [cite] = [c for c in body["citations"] if c["n"] == 1]
    assert cite["source"] == "handbook.md"
    assert "Paid leave" in cite["location"]
    assert cite["text"] in text


async def test_assistant_as_model_streams_citations_last(client: httpx.AsyncClient) -> None:
    resp = await client.post(
        "/v1/chat/completions",
        headers={"X-Conversation-Id": "conv-42"},
        json={"model": "handbook", "messages": user(QUESTION), "stream": True},
    )
    assert resp.status_code == 200
    assert resp.headers["X-Conversation-Id"] == "conv-42"
    got = chunks(resp.text)
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in got if c["choices"])
    assert "[1]" in text
    last = got[-1]
    assert last["choices"] == []
    assert [c["source"] for c in last["citations"]][:1] == ["handbook.md"]
    assert all("citations" not in c for c in got[:-1])


async def test_assistant_uses_earlier_turns_as_history(client: httpx.AsyncClient) -> None:
    messages = [
        {"role": "system", "content": "ignored: the assistant has its own prompt"},
        {"role": "user", "content": "Tell me about paid leave for full-time employees."},
        {"role": "assistant", "content": "Sure."},
        {"role": "user", "content": "How many days?"},
    ]
    resp = await client.post(
        "/v1/chat/completions", json={"model": "handbook", "messages": messages}
    )
    assert resp.status_code == 200
    assert "23 working days" in resp.json()["choices"][0]["message"]["content"]


async def test_ad_hoc_assistant_over_an_index(client: httpx.AsyncClient) -> None:
    resp = await client.post(
        "/v1/chat/completions", json={"model": "index:bicis", "messages": user(QUESTION)}
    )
    assert resp.status_code == 200, resp.text
    assert "citations" in resp.json()
    resp = await client.post(
        "/v1/chat/completions", json={"model": "index:nothing", "messages": user(QUESTION)}
    )
    assert resp.status_code == 404
    assert "index:bicis" in resp.json()["error"]["hint"]


async def test_assistant_needs_a_user_question_last(client: httpx.AsyncClient) -> None:
    messages = [*user(QUESTION), {"role": "assistant", "content": "..."}]
    resp = await client.post(
        "/v1/chat/completions", json={"model": "handbook", "messages": messages}
    )
    assert resp.status_code == 400


async def test_bad_conversation_id_is_refused(client: httpx.AsyncClient) -> None:
    resp = await client.post(
        "/v1/chat/completions",
        headers={"X-Conversation-Id": "x" * 200},
        json={"model": "fake", "messages": user("hi")},
    )
    assert resp.status_code == 400


# --- embeddings and models -----------------------------------------------------------------------


async def test_embeddings_float_and_base64(client: httpx.AsyncClient) -> None:
    texts = ["the cat sat on the mat", "¿Dónde está la biblioteca?"]
    resp = await client.post("/v1/embeddings", json={"model": "hash", "input": texts})
    assert resp.status_code == 200
    body = resp.json()
    assert body["object"] == "list" and body["model"] == "hash"
    assert [d["index"] for d in body["data"]] == [0, 1]
    vectors = np.array([d["embedding"] for d in body["data"]], dtype=np.float32)
    assert vectors.shape == (2, 256)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert body["usage"]["prompt_tokens"] > 0
    packed = await client.post(
        "/v1/embeddings", json={"model": "hash", "input": texts, "encoding_format": "base64"}
    )
    decoded = [
        np.frombuffer(base64.b64decode(d["embedding"]), dtype="<f4") for d in packed.json()["data"]
    ]
    assert np.allclose(np.array(decoded), vectors)
    one = await client.post("/v1/embeddings", json={"model": "hash", "input": texts[0]})
    assert np.allclose(one.json()["data"][0]["embedding"], vectors[0], atol=1e-6)


async def test_embeddings_errors(client: httpx.AsyncClient) -> None:
    resp = await client.post("/v1/embeddings", json={"model": "nope", "input": "x"})
    assert resp.status_code == 404
    assert "hash" in resp.json()["error"]["hint"]
    assert (
        await client.post("/v1/embeddings", json={"model": "hash", "input": [1, 2]})
    ).status_code == 422
    assert (
        await client.post("/v1/embeddings", json={"model": "hash", "input": []})
    ).status_code == 400
    wrong_dim = {"model": "hash", "input": "x", "dimensions": 3}
    assert (await client.post("/v1/embeddings", json=wrong_dim)).status_code == 400


async def test_models_lists_models_embedders_and_assistants(client: httpx.AsyncClient) -> None:
    resp = await client.get("/v1/models")
    assert resp.status_code == 200
    body = resp.json()
    assert body["object"] == "list"
    kinds = {m["id"]: m["kind"] for m in body["data"]}
    assert kinds["fake"] == "model"
    assert kinds["hash"] == "embedder"
    assert kinds["handbook"] == "assistant"
    assert {m["owned_by"] for m in body["data"]} == {"acllm"}
    assert {m["object"] for m in body["data"]} == {"model"}


# --- tasks ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("task", "body", "key"),
    [
        ("translate", {"text": "The meeting starts at ten.", "to": "es"}, "translation"),
        ("sentiment", {"text": "I love this shop, great service!"}, "label"),
        ("summarize", {"text": "One sentence here. Another one there.", "max_words": 5}, "summary"),
        ("paraphrase", {"text": "Snow delayed the train."}, "paraphrase"),
        (
            "paraphrase",
            {"text": "Snow delayed the train.", "compare": "The train was late."},
            "same",
        ),
        ("correct", {"text": "She dont have time."}, "corrected"),
        ("check_rules", {"text": "Hello there.", "rules": ["Be polite"]}, "results"),
    ],
)
async def test_tasks_answer_their_json(
    client: httpx.AsyncClient, task: str, body: dict[str, Any], key: str
) -> None:
    from acllm.tasks import SCHEMAS

    resp = await client.post(f"/v1/tasks/{task}", json=body)
    assert resp.status_code == 200, resp.text
    result = resp.json()
    assert key in result
    import jsonschema

    schema = SCHEMAS["same_meaning" if "compare" in body else task]
    jsonschema.validate(result, schema)


async def test_task_errors(client: httpx.AsyncClient) -> None:
    assert (await client.post("/v1/tasks/translate", json={"text": "x"})).status_code == 422
    assert (await client.post("/v1/tasks/sentiment", json={"text": ""})).status_code == 422
    assert (
        await client.post("/v1/tasks/check_rules", json={"text": "x", "rules": []})
    ).status_code == 422
    assert (
        await client.post("/v1/tasks/sentiment", json={"text": "x", "bogus": 1})
    ).status_code == 422
    assert (await client.post("/v1/tasks/dance", json={"text": "x"})).status_code == 404


# --- native ask ----------------------------------------------------------------------------------


async def test_ask_answers_with_citations(client: httpx.AsyncClient) -> None:
    resp = await client.post("/v1/assistants/handbook/ask", json={"question": QUESTION})
    assert resp.status_code == 200
    answer = resp.json()
    assert answer["refused"] is False
    assert "23 working days" in answer["answer"]
    assert answer["citations"][0]["source"] == "handbook.md"
    assert set(answer) >= {"lang", "mode", "confidence", "usage"}


async def test_ask_streams_deltas_then_the_answer(client: httpx.AsyncClient) -> None:
    resp = await client.post(
        "/v1/assistants/handbook/ask",
        headers={"X-Conversation-Id": "c7"},
        json={"question": QUESTION, "stream": True, "history": []},
    )
    assert resp.status_code == 200
    assert resp.headers["X-Conversation-Id"] == "c7"
    got = events(resp.text)
    names = [name for name, _ in got]
    assert names[-1] == "answer" and set(names[:-1]) == {"delta"}
    text = "".join(json.loads(d)["text"] for n, d in got if n == "delta")
    final = json.loads(got[-1][1])
    assert final["answer"] == text
    assert final["citations"][0]["source"] == "handbook.md"


async def test_ask_refuses_without_evidence(client: httpx.AsyncClient) -> None:
    resp = await client.post(
        "/v1/assistants/handbook/ask", json={"question": "Who won the 1930 football World Cup?"}
    )
    assert resp.status_code == 200
    assert resp.json()["refused"] is True
    assert resp.json()["citations"] == []


async def test_ask_errors(client: httpx.AsyncClient) -> None:
    resp = await client.post("/v1/assistants/nobody/ask", json={"question": QUESTION})
    assert resp.status_code == 404
    assert "handbook" in resp.json()["error"]["hint"]
    bad = {"question": QUESTION, "history": [{"role": "robot", "content": "x"}]}
    assert (await client.post("/v1/assistants/handbook/ask", json=bad)).status_code == 422
    assert (await client.post("/v1/assistants/handbook/ask", json={})).status_code == 422


async def test_assistants_are_listed(client: httpx.AsyncClient) -> None:
    resp = await client.get("/v1/assistants")
    assert resp.json()["data"] == [
        {
            "name": "handbook",
            "index": "bicis",
            "description": "the Bicis Norte documents",
            "mode": "extractive",
            "memory": False,
            "cache": False,
        }
    ]


# --- ingestion jobs ------------------------------------------------------------------------------


async def wait_for_job(client: httpx.AsyncClient, job_id: str) -> dict[str, Any]:
    for _ in range(1000):  # a bound, not a timing assertion: the job ends in well under that
        resp = await client.get(f"/v1/jobs/{job_id}")
        assert resp.status_code == 200
        job: dict[str, Any] = resp.json()
        if job["state"] in ("done", "failed"):
            return job
        await asyncio.sleep(0.02)
    raise AssertionError(f"job {job_id} did not finish: {job}")


async def test_ingest_job_reports_progress_and_per_file_errors(
    client: httpx.AsyncClient, tmp_path: Path
) -> None:
    folder = tmp_path / "docs"
    folder.mkdir()
    shutil.copy(ROOT / "examples" / "data" / "politica_devoluciones.md", folder)
    (folder / "notes.txt").write_text("The workshop closes at noon on Saturdays.\n")
    (folder / "broken.json").write_text('{"question": "unterminated')
    resp = await client.post("/v1/indexes/docs/ingest", json={"path": str(folder)})
    assert resp.status_code == 202, resp.text
    job = resp.json()
    assert job["state"] == "queued"
    assert resp.headers["Location"] == f"/v1/jobs/{job['id']}"
    done = await wait_for_job(client, job["id"])
    assert done["state"] == "done", done
    assert done["progress"] == {"done": 3, "total": 3}
    [error] = done["errors"]
    assert error["source"].endswith("broken.json")
    assert "JSON" in error["reason"]
    assert done["report"]["written"] == 2
    listed = {i["name"]: i for i in (await client.get("/v1/indexes")).json()["data"]}
    assert listed["docs"]["sources"] == 2
    assert listed["bicis"]["sources"] == 5
    # The new index answers at once, through an ad-hoc assistant.
    resp = await client.post(
        "/v1/assistants/index:docs/ask",
        json={"question": "The workshop closes at noon on Saturdays?"},
    )
    assert resp.status_code == 200
    assert resp.json()["citations"][0]["source"] == "notes.txt"


async def test_an_index_dropped_by_another_process_is_no_longer_an_assistant(
    client: httpx.AsyncClient, settings: Settings, tmp_path: Path
) -> None:
    (tmp_path / "gone.txt").write_text("The shop opens at nine.\n")
    resp = await client.post("/v1/indexes/gone/ingest", json={"path": str(tmp_path)})
    assert (await wait_for_job(client, resp.json()["id"]))["state"] == "done"
    ask = {"question": "When does the shop open?"}
    assert (await client.post("/v1/assistants/index:gone/ask", json=ask)).status_code == 200
    for path in (settings.data_dir / "indexes").glob("gone.sqlite*"):  # `acllm index drop gone`
        path.unlink()
    resp = await client.post("/v1/assistants/index:gone/ask", json=ask)
    assert resp.status_code == 404 and "index:bicis" in resp.json()["error"]["hint"]


async def test_ingest_from_a_database_url(client: httpx.AsyncClient) -> None:
    url = f"sqlite:///{ROOT / 'examples' / 'data' / 'tiendas.db'}"
    resp = await client.post("/v1/indexes/tiendas/ingest", json={"path": url, "table": "tiendas"})
    assert resp.status_code == 202, resp.text
    done = await wait_for_job(client, resp.json()["id"])
    assert done["state"] == "done", done
    assert done["progress"] == {"done": 1, "total": 1}
    assert done["report"]["chunks"] == 3


async def test_ingest_errors(client: httpx.AsyncClient, tmp_path: Path) -> None:
    missing = await client.post("/v1/indexes/docs/ingest", json={"path": str(tmp_path / "nope")})
    assert missing.status_code == 400
    assert "does not exist" in missing.json()["error"]["message"]
    bad_name = await client.post("/v1/indexes/Bad Name/ingest", json={"path": str(tmp_path)})
    assert bad_name.status_code == 400
    no_table = await client.post("/v1/indexes/docs/ingest", json={"path": "sqlite:///x.db"})
    assert no_table.status_code == 400
    assert (await client.post("/v1/indexes/docs/ingest", json={})).status_code == 422
    assert (await client.get("/v1/jobs/job_0000000000000000")).status_code == 404
    assert (await client.get("/v1/jobs/../../etc")).status_code == 404


# --- health, docs, limits ------------------------------------------------------------------------


async def test_health_and_openapi(client: httpx.AsyncClient) -> None:
    assert (await client.get("/healthz")).json() == {"status": "ok"}
    ready = await client.get("/readyz")  # no model process in-process: ready at once
    assert ready.status_code == 200 and ready.json()["ready"] is True
    spec = (await client.get("/openapi.json")).json()
    for path in ("/v1/chat/completions", "/v1/embeddings", "/v1/models", "/v1/tasks/translate"):
        assert path in spec["paths"]
    assert (await client.get("/docs")).status_code == 200


class GatedModel(FakeChatModel):
    """Answers only once the test opens the gate, so a request can be held in flight."""

    def __init__(self) -> None:
        super().__init__(default="opened", name="gate")
        self.entered = asyncio.Event()
        self.gate = asyncio.Event()

    async def chat(self, messages: Sequence[Message], opts: ChatOptions | None = None) -> Reply:
        self.entered.set()
        await self.gate.wait()
        return await super().chat(messages, opts)


class GatedRuntime(Runtime):
    def __init__(self, settings: Settings, gated: GatedModel) -> None:
        super().__init__(settings)
        self.gated = gated

    def chat(self, name: str | None = None) -> ChatModel:
        return self.gated if name == "gate" else super().chat(name)


async def test_inflight_limit_answers_503_with_retry_after(
    settings: Settings,
) -> None:
    limited = settings.model_copy(
        update={"service": settings.service.model_copy(update={"max_inflight": 1})}
    )
    gated = GatedModel()
    app = create_app(limited, runtime=GatedRuntime(limited, gated))
    async for client in open_client(app):
        held = asyncio.create_task(
            client.post("/v1/chat/completions", json={"model": "gate", "messages": user("hi")})
        )
        await gated.entered.wait()
        busy = await client.post(
            "/v1/chat/completions", json={"model": "fake", "messages": user("hi")}
        )
        assert busy.status_code == 503
        assert busy.headers["Retry-After"] == "1"
        assert "in flight" in busy.json()["error"]["message"]
        assert (await client.get("/healthz")).status_code == 200  # probes are never turned away
        gated.gate.set()
        first = await held
        assert first.status_code == 200
        assert first.json()["choices"][0]["message"]["content"] == "opened"
        after = await client.post(
            "/v1/chat/completions", json={"model": "fake", "messages": user("hi")}
        )
        assert after.status_code == 200  # the slot came back


async def test_guard_is_asked_and_charged(settings: Settings) -> None:
    from acllm.errors import UnauthorizedError
    from acllm.service.guard import ANONYMOUS, Principal

    class RecordingGuard:
        def __init__(self) -> None:
            self.admitted: list[tuple[str | None, str, str | None]] = []
            self.charged: list[int] = []

        async def admit(
            self,
            authorization: str | None,
            group: str,
            assistant: str | None = None,
            tokens: int = 0,
        ) -> Principal:
            self.admitted.append((authorization, group, assistant))
            if authorization != "Bearer good":
                raise UnauthorizedError("bad key")
            return ANONYMOUS

        async def charge(self, principal: Principal, tokens: int) -> None:
            self.charged.append(tokens)

    guard = RecordingGuard()
    async for client in open_client(create_app(settings, guard=guard)):
        denied = await client.post(
            "/v1/chat/completions", json={"model": "fake", "messages": user("hi")}
        )
        assert denied.status_code == 401
        ok_headers = {"Authorization": "Bearer good"}
        resp = await client.post(
            "/v1/chat/completions",
            headers=ok_headers,
            json={"model": "fake", "messages": user("hi")},
        )
        assert resp.status_code == 200
        assert guard.charged == [resp.json()["usage"]["total_tokens"]]
        streamed = await client.post(
            "/v1/chat/completions",
            headers=ok_headers,
            json={"model": "fake", "messages": user("hi"), "stream": True},
        )
        assert streamed.status_code == 200
        assert len(guard.charged) == 2 and guard.charged[1] > 0
        await client.post(
            "/v1/embeddings", headers=ok_headers, json={"model": "hash", "input": "x"}
        )
        await client.post("/v1/tasks/sentiment", headers=ok_headers, json={"text": "great"})
        await client.post(
            "/v1/assistants/handbook/ask", headers=ok_headers, json={"question": QUESTION}
        )
    groups = [(group, name) for _, group, name in guard.admitted]
    assert groups == [
        ("chat", "fake"),
        ("chat", "fake"),
        ("chat", "fake"),
        ("embeddings", "hash"),
        ("tasks", None),
        ("ask", "handbook"),
    ]


# --- the model process's internal API (local backends replaced by the test doubles) --------------


class HeldModel(FakeChatModel):
    """Streams its first word, then waits for the test before the rest."""

    def __init__(self) -> None:
        super().__init__(default="first second third", name="held")
        self.started = asyncio.Event()
        self.gate = asyncio.Event()

    async def stream(
        self, messages: Sequence[Message], opts: ChatOptions | None = None
    ) -> AsyncIterator[Any]:
        self.started.set()
        async for delta in super().stream(messages, opts):
            yield delta
            await self.gate.wait()


@pytest.fixture
async def model_app(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[tuple[Any, HeldModel]]:
    from acllm import HashEmbedder
    from acllm.service import modelproc

    held = HeldModel()
    tight = settings.model_copy(
        update={"service": settings.service.model_copy(update={"queue_depth": 1})}
    )
    monkeypatch.setattr(
        modelproc.ModelHost,
        "_build",
        lambda self, kind, spec: held if kind == "chat" else HashEmbedder(384),
    )
    # The settings use no local entry, so nothing preloads; "local" and "e5" load on first use.
    app = modelproc.create_model_app(tight, "s3cret")
    async with app.router.lifespan_context(app):
        yield app, held


def model_client(app: Any, token: str = "s3cret") -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url="http://model",
        headers={"Authorization": f"Bearer {token}"},
    )


async def test_model_process_needs_its_token(model_app: tuple[Any, HeldModel]) -> None:
    app, _ = model_app
    async with model_client(app, token="wrong") as client:
        assert (await client.get("/readyz")).status_code == 401
        body = {"model": "local", "messages": [{"role": "user", "content": "hi"}]}
        assert (await client.post("/chat", json=body)).status_code == 401
    async with model_client(app) as client:
        assert (await client.get("/readyz")).status_code == 200


async def test_model_process_streams_ndjson_and_embeds(model_app: tuple[Any, HeldModel]) -> None:
    app, held = model_app
    held.gate.set()
    async with model_client(app) as client:
        body = {"model": "local", "key": "k", "messages": [{"role": "user", "content": "hi"}]}
        resp = await client.post("/chat", json=body)
        assert resp.status_code == 200
        lines = [json.loads(line) for line in resp.text.splitlines()]
        assert "".join(x["text"] for x in lines) == "first second third"
        assert lines[-1]["finish_reason"] == "stop"
        assert lines[-1]["usage"]["completion_tokens"] == 3
        embed = {"embedder": "e5", "texts": ["a", "b"], "kind": "query"}
        vectors = (await client.post("/embed", json=embed)).json()
        assert vectors["dim"] == 384
        unknown = await client.post("/chat", json={**body, "model": "fake"})  # not a local entry
        assert unknown.status_code == 404
        assert "local" in unknown.json()["error"]["hint"]


async def test_model_process_queue_turns_a_burst_away(model_app: tuple[Any, HeldModel]) -> None:
    from acllm.service.remote import CALLER, ModelProcessClient, RemoteChat

    app, held = model_app
    body = {"model": "local", "messages": [{"role": "user", "content": "hi"}]}
    async with model_client(app) as client:
        holding = asyncio.create_task(client.post("/chat", json={**body, "key": "a"}))
        await held.started.wait()  # "a" holds the model
        waiting = asyncio.create_task(client.post("/chat", json={**body, "key": "b"}))
        for _ in range(100):  # until "b" is queued (queue_depth = 1)
            stats = (await client.get("/stats")).json()
            if stats["chat:local"]["waiting"] == 1:
                break
            await asyncio.sleep(0)
        refused = await client.post("/chat", json={**body, "key": "c"})
        assert refused.status_code == 503
        assert int(refused.headers["Retry-After"]) >= 1
        # A worker's RemoteChat sees the same refusal as a retryable 503 with its Retry-After.
        remote = ModelProcessClient(
            "http://model", "s3cret", transport=httpx.ASGITransport(app=app)
        )
        chat = RemoteChat("local", settings_spec(), remote)
        try:
            CALLER.set("key:d")
            with pytest.raises(UnavailableError) as info:
                await chat.chat([Message("user", "hi")], ChatOptions(max_tokens=4))
            assert info.value.status == 503 and info.value.retry_after is not None
            held.gate.set()
            assert (await holding).status_code == 200
            assert (await waiting).status_code == 200
            reply = await chat.chat([Message("user", "hi")], ChatOptions(max_tokens=4))
            assert reply.text == "first second third"
            assert reply.usage.completion_tokens == 3
            with pytest.raises(ContextOverflowError):  # counted in the worker, before queueing
                await chat.chat([Message("user", "word " * 3000)], ChatOptions(max_tokens=4))
        finally:
            chat.close()


def settings_spec() -> Any:
    from acllm.config import BackendSpec

    return BackendSpec(backend="local")


# --- wiring: which entries need the model process, and what happens without it ------------------


def test_model_process_is_needed_only_for_local_entries_in_use(
    settings: Settings, tmp_path: Path
) -> None:
    from acllm.service.modelproc import needs_model_process, used_locals

    assert used_locals(settings) == ([], [])  # fake + hash: the built-in local entries are unused
    assert not needs_model_process(settings)
    defaults = load_settings(None, environ={"ACLLM_HOME": str(tmp_path)})
    assert used_locals(defaults) == (["local"], ["e5"])
    routed = tmp_path / "routed.toml"
    routed.write_text(
        'default_model = "main"\ndefault_embedder = "hash"\n'
        '[models.main]\nbackend = "router"\nupstreams = [{ model = "local" }]\n'
    )
    assert used_locals(load_settings(routed, environ={})) == (["local"], [])


async def test_without_a_model_process_local_entries_are_not_served(settings: Settings) -> None:
    async for client in open_client(create_app(settings, serve_local=False)):
        ids = {m["id"] for m in (await client.get("/v1/models")).json()["data"]}
        assert "fake" in ids and "local" not in ids and "e5" not in ids
        resp = await client.post(
            "/v1/chat/completions", json={"model": "local", "messages": user("hi")}
        )
        assert resp.status_code == 404
        assert "fake" in resp.json()["error"]["hint"]


async def test_an_unreachable_model_process_is_503_not_a_hang(settings: Settings) -> None:
    import socket

    with socket.socket() as closed:  # bound, never listening: connections are refused
        closed.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{closed.getsockname()[1]}"
        app = create_app(settings, model_url=url, model_token="t")
        async for client in open_client(app):
            ready = await client.get("/readyz")
            assert ready.status_code == 503
            assert ready.headers["Retry-After"] == "2"
            assert ready.json()["ready"] is False
            assert (await client.get("/healthz")).status_code == 200
            chat = await client.post(
                "/v1/chat/completions",
                json={"model": "local", "messages": user("hi"), "max_tokens": 4},
            )
            assert chat.status_code == 503
            assert int(chat.headers["Retry-After"]) >= 1
            assert "unreachable" in chat.json()["error"]["message"]
            embed = await client.post("/v1/embeddings", json={"model": "e5", "input": "x"})
            assert embed.status_code == 503
            # Entries that do not need the model process are unaffected.
            ok = await client.post(
                "/v1/chat/completions", json={"model": "fake", "messages": user("hi")}
            )
            assert ok.status_code == 200
