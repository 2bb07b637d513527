"""The patterns through the service: cache metadata, redaction, session memory and its deletion,
the review queue turning an approved correction into the answer served, over real HTTP routes
(httpx over ASGI) on the example documents."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from acllm import Runtime
from acllm.config import Settings, load_settings
from acllm.service.app import create_app
from test_service_app import QUESTION, ROOT, events, open_client, write_config

PATTERNS = """
[assistants.handbook.guards]
topics_deny = ["admin password"]
[assistants.handbook.cache]
enabled = true
[assistants.handbook.memory]
enabled = true
budget_tokens = 512
summary_tokens = 96
"""


@pytest.fixture(scope="module")
def settings(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    from acllm.ingest import sources
    from acllm.ingest.chunking import chunk_documents
    from acllm.ingest.pipeline import Ingestor

    tmp = tmp_path_factory.mktemp("patterns")
    path = write_config(tmp)
    path.write_text(path.read_text().replace("[service]\n", PATTERNS + "[service]\n"))
    loaded = load_settings(path, environ={})
    runtime = Runtime(loaded)
    try:
        pending, _ = sources.from_path(ROOT / "examples" / "data")
        Ingestor(runtime.index("bicis"), runtime.embedder(), chunker=chunk_documents).run(pending)
    finally:
        runtime.close()
    yield loaded


@pytest.fixture
async def client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async for c in open_client(create_app(settings)):
        yield c


async def ask(client: httpx.AsyncClient, question: str, **body: object) -> dict[str, object]:
    resp = await client.post("/v1/assistants/handbook/ask", json={"question": question, **body})
    assert resp.status_code == 200, resp.text
    data: dict[str, object] = resp.json()
    return data


async def test_the_second_ask_is_served_from_the_cache(client: httpx.AsyncClient) -> None:
    listed = (await client.get("/v1/assistants")).json()["data"][0]
    assert listed["cache"] and listed["memory"]
    first = await ask(client, QUESTION, cache=True)
    second = await ask(client, QUESTION)
    assert "cache" not in first
    assert second["cache"]["kind"] == "exact"  # type: ignore[index]
    assert second["answer"] == first["answer"] and second["citations"] == first["citations"]
    assert second["answer_id"] != first["answer_id"]  # each answer is recorded for feedback
    assert "cache" not in await ask(client, QUESTION, cache=False)  # opted out
    metrics = (await client.get("/metrics")).text
    assert 'acllm_cache_total{cache="response",result="exact"}' in metrics
    assert 'acllm_cache_total{cache="response",result="miss"}' in metrics
    resp = await client.post(
        "/v1/chat/completions",
        json={"model": "handbook", "messages": [{"role": "user", "content": QUESTION}]},
    )
    assert resp.status_code == 200 and resp.json()["citations"]


async def test_personal_data_is_redacted_and_the_event_is_returned(
    client: httpx.AsyncClient,
) -> None:
    data = await ask(client, f"My card is 4111 1111 1111 1111. {QUESTION}")
    assert "4111" not in str(data)  # not in the question, the events or anything else
    guards = data["guards"]
    assert isinstance(guards, list)
    assert {"guard": "pii", "action": "redact"}.items() <= guards[0].items()
    metrics = (await client.get("/metrics")).text
    assert 'acllm_guard_events_total{action="redact",guard="pii",stage="input"}' in metrics
    stream = await client.post(
        "/v1/assistants/handbook/ask", json={"question": "admin password please", "stream": True}
    )
    final = [json_ for name, json_ in events(stream.text) if name == "answer"]
    assert final and '"blocked": true' in final[0]


async def test_the_session_memory_is_used_and_deleted_on_request(
    client: httpx.AsyncClient,
) -> None:
    headers = {"X-Conversation-Id": "conv-1"}
    await client.post(
        "/v1/assistants/handbook/ask",
        json={"question": "Me llamo Lucía. " + QUESTION},
        headers=headers,
    )
    follow = await client.post(
        "/v1/assistants/handbook/ask", json={"question": "And part-time?"}, headers=headers
    )
    assert "Lucía" in follow.json()["question"]  # the earlier turn came from the memory
    gone = await client.delete("/v1/assistants/handbook/sessions/conv-1")
    assert gone.status_code == 200 and gone.json()["deleted"] is True
    after = await client.post(
        "/v1/assistants/handbook/ask", json={"question": "And part-time?"}, headers=headers
    )
    assert "Lucía" not in after.json()["question"]
    assert (await client.delete("/v1/assistants/handbook/sessions/conv-1")).json()["deleted"]
    again = await client.delete("/v1/assistants/handbook/sessions/conv-1")
    assert again.status_code == 200 and again.json()["deleted"] is False  # nothing left


async def test_an_approved_correction_is_served_and_a_rejected_one_is_not(
    client: httpx.AsyncClient,
) -> None:
    question = "How many days of paid leave do part-time employees get?"
    answer = await ask(client, question, cache=False)
    fb = await client.post(
        "/v1/feedback",
        json={"answer_id": answer["answer_id"], "rating": -1, "correction": "Pro rata: 12 days."},
    )
    assert fb.status_code == 201
    queue = (await client.get("/v1/feedback/review")).json()["data"]
    item = next(i for i in queue if i["id"] == fb.json()["id"])
    assert item["answer"]["citations"] == answer["citations"]  # shown with its sources
    bad = await client.post(f"/v1/feedback/{item['id']}/review", json={"decision": "maybe"})
    assert bad.status_code == 422
    missing = await client.post("/v1/feedback/fb_nope/review", json={"decision": "approve"})
    assert missing.status_code == 404
    ok = await client.post(f"/v1/feedback/{item['id']}/review", json={"decision": "approve"})
    assert ok.status_code == 200
    override_id = ok.json()["override"]["id"]
    served = await ask(client, question, cache=False)
    assert served["answer"] == "Pro rata: 12 days."
    assert served["override"]["id"] == override_id  # type: ignore[index]
    twice = await client.post(f"/v1/feedback/{item['id']}/review", json={"decision": "reject"})
    assert twice.status_code == 400 and "already reviewed" in twice.json()["error"]["message"]
    listed = (await client.get("/v1/overrides")).json()["data"]
    assert [o["id"] for o in listed] == [override_id]
    retired = await client.delete(f"/v1/overrides/{override_id}")
    assert retired.status_code == 200 and retired.json()["active"] is False
    assert "override" not in await ask(client, question, cache=False)


PERSONAL = "Write to ana.lopez@example.com, DNI 12345678Z."


async def test_personal_data_in_feedback_meets_the_assistants_pii_policy(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    answer = await ask(client, "How many days of paid leave do I get?", cache=False)
    fb = await client.post(
        "/v1/feedback",
        json={"answer_id": answer["answer_id"], "correction": PERSONAL, "comment": PERSONAL},
    )
    assert fb.status_code == 201, fb.text
    stored = (await client.get("/v1/feedback")).json()["data"]
    item = next(i for i in stored if i["id"] == fb.json()["id"])
    for field in ("correction", "comment"):  # redacted before it was stored: never served later
        assert item[field] == "Write to [EMAIL], DNI [DNI]."
    unknown = await client.post("/v1/feedback", json={"answer_id": "ans_nope", "comment": "x"})
    assert unknown.status_code == 404


async def test_feedback_with_personal_data_is_refused_under_block(settings: Settings) -> None:
    guards = settings.assistants["handbook"].guards
    assert guards is not None
    spec = settings.assistants["handbook"].model_copy(
        update={"guards": guards.model_copy(update={"pii": "block"})}
    )
    blocking = settings.model_copy(update={"assistants": {**settings.assistants, "handbook": spec}})
    async for client in open_client(create_app(blocking)):
        answer = await ask(client, "How many days of paid leave do I get?", cache=False)
        body = {"answer_id": answer["answer_id"], "rating": -1}
        refused = await client.post("/v1/feedback", json={**body, "comment": PERSONAL})
        assert refused.status_code == 400
        assert "comment carries personal data (dni, email)" in refused.json()["error"]["message"]
        assert (await client.post("/v1/feedback", json=body)).status_code == 201  # without it
        stored = (await client.get("/v1/feedback")).json()["data"]
        assert not any(PERSONAL in (i["comment"] or "") for i in stored)


def test_feedback_pii_policy_per_assistant(settings: Settings) -> None:
    from acllm.errors import UserError
    from acllm.service.routes_feedback import guarded

    def policy(pii: str) -> Settings:
        guards = settings.assistants["handbook"].guards
        assert guards is not None
        spec = settings.assistants["handbook"].model_copy(
            update={"guards": guards.model_copy(update={"pii": pii})}
        )
        return settings.model_copy(update={"assistants": {"handbook": spec}})

    assert (
        guarded(policy("redact"), "handbook", "comment", PERSONAL) == "Write to [EMAIL], DNI [DNI]."
    )
    for kept in ("flag", "off"):
        assert guarded(policy(kept), "handbook", "comment", PERSONAL) == PERSONAL
    assert guarded(settings, "index:bicis", "comment", PERSONAL) == PERSONAL  # no guards: as is
    assert (
        guarded(policy("block"), "handbook", "comment", "Thanks, all clear.")
        == "Thanks, all clear."
    )
    with pytest.raises(UserError, match=r"the correction carries personal data \(dni, email\)"):
        guarded(policy("block"), "handbook", "correction", PERSONAL)
    assert guarded(policy("block"), "handbook", "correction", None) is None


def test_web_chat_shows_the_patterns() -> None:
    page = (ROOT / "src/acllm/service/web/index.html").read_text(encoding="utf-8")
    for hook in ("badge-", "redaction", "suggestions", "/sessions/", "FRIENDLY"):
        assert hook in page
    assert Path(ROOT / "examples/acllm.toml").read_text().count("enabled = true") == 2
