"""``acllm serve`` as users run it: a real server process with two workers and the shared model
process running the packaged SmolLM2 and e5, driven by real clients (the official ``openai``
package and ``langchain-openai``), then stopped with SIGTERM leaving no process behind.

Answers are kept short (max_tokens 16): the model shares this CPU with everything else.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

pytestmark = pytest.mark.model

ROOT = Path(__file__).resolve().parents[1]
CLI = Path(sys.executable).parent / "acllm"
QUESTION = "¿Cuántos días tengo para devolver una bici?"
SHORT = 16


@dataclass
class Server:
    proc: subprocess.Popen[str]
    url: str
    info: dict[str, Any]
    log: Path
    children: set[int]

    @property
    def api(self) -> str:
        return f"{self.url}/v1"


def descendants(pid: int) -> set[int]:
    """Every live process below ``pid`` (Linux /proc)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    found, frontier = set(), {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def wait_ready(url: str, proc: subprocess.Popen[str], log: Path) -> None:
    with httpx.Client(timeout=30) as client:
        for _ in range(600):  # a bound on attempts, not a timing assertion
            assert proc.poll() is None, log.read_text()
            try:
                if client.get(f"{url}/readyz").status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
    raise AssertionError(f"the server never became ready:\n{log.read_text()}")


def wait_for_job(client: httpx.Client, url: str, job_id: str) -> dict[str, Any]:
    for _ in range(1200):
        job: dict[str, Any] = client.get(f"{url}/v1/jobs/{job_id}").json()
        if job["state"] in ("done", "failed"):
            return job
        time.sleep(0.5)
    raise AssertionError(f"ingest job {job_id} did not finish")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    work = tmp_path_factory.mktemp("serve")
    shutil.copytree(ROOT / "examples" / "data", work / "data")
    home = work / "home"
    config = work / "acllm.toml"
    config.write_text(
        f'data_dir = "{home}"\n'
        "[assistants.bicis]\n"
        'index = "bicis"\n'
        'description = "Bicis Norte: prices, returns, workshop, shops"\n'
        "[assistants.bicis.guards]\n"  # the patterns on, as in examples/acllm.toml
        "[assistants.bicis.cache]\n"
        "enabled = true\n"
        "[service]\n"
        "queue_depth = 1\n"  # a tiny queue, so a burst is turned away rather than held
        "queue_wait_s = 120\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("ACLLM_")}
    env["ACLLM_HOME"] = str(home)
    log = work / "serve.log"
    command = [str(CLI), "serve", "--host", "127.0.0.1", "--port", "0", "--workers", "2"]
    with log.open("w") as err:
        proc = subprocess.Popen(
            [*command, "--config", str(config), "--json"],
            stdout=subprocess.PIPE,
            stderr=err,
            text=True,
            cwd=work,
            env=env,
        )
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()  # printed once the model process has loaded its models
        assert first, log.read_text()
        info = json.loads(first)
        wait_ready(info["url"], proc, log)
        srv = Server(proc, info["url"], info, log, descendants(proc.pid))
        with httpx.Client(timeout=60) as client:
            resp = client.post(
                f"{srv.url}/v1/indexes/bicis/ingest", json={"path": str(work / "data")}
            )
            assert resp.status_code == 202, resp.text
            job = wait_for_job(client, srv.url, resp.json()["id"])
        assert job["state"] == "done", job
        assert job["progress"] == {"done": 5, "total": 5}
        yield srv
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(60)
        if proc.stdout is not None:
            proc.stdout.close()


# --- the official openai package -----------------------------------------------------------------


def openai_client(server: Server) -> Any:
    import openai

    return openai.OpenAI(base_url=server.api, api_key="unused", max_retries=0, timeout=300)


def test_openai_chat(server: Server) -> None:
    with openai_client(server) as client:
        done = client.chat.completions.create(
            model="local",
            messages=[{"role": "user", "content": "Say hello in one short sentence."}],
            max_tokens=SHORT,
        )
    assert done.object == "chat.completion"
    assert done.model == "local"
    [choice] = done.choices
    assert choice.message.role == "assistant"
    assert isinstance(choice.message.content, str) and choice.message.content.strip()
    assert choice.finish_reason in ("stop", "length")
    assert done.usage is not None
    assert 0 < done.usage.completion_tokens <= SHORT
    assert done.usage.prompt_tokens > 0


def test_openai_chat_stream(server: Server) -> None:
    with openai_client(server) as client:
        stream = client.chat.completions.create(
            model="local",
            messages=[{"role": "user", "content": "Name a colour."}],
            max_tokens=SHORT,
            stream=True,
            stream_options={"include_usage": True},
        )
        got = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in got if c.choices)
    assert text.strip()
    finishes = [c.choices[0].finish_reason for c in got if c.choices and c.choices[0].finish_reason]
    assert len(finishes) == 1 and finishes[0] in ("stop", "length")
    assert got[-1].choices == []
    assert got[-1].usage is not None and 0 < got[-1].usage.completion_tokens <= SHORT


def test_openai_embeddings(server: Server) -> None:
    texts = [
        "¿Dónde está la estación de tren?",
        "Where is the train station?",
        "Me gusta el queso.",
    ]
    with openai_client(server) as client:
        done = client.embeddings.create(model="e5", input=texts)
        packed = client.embeddings.create(model="e5", input=texts[0], encoding_format="base64")
    vectors = np.array([d.embedding for d in done.data], dtype=np.float32)
    assert vectors.shape == (3, 384)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-4)
    # A translation is closer than an unrelated sentence: these are real e5 vectors.
    assert float(vectors[0] @ vectors[1]) > float(vectors[0] @ vectors[2])
    assert packed.data[0].embedding is not None


def test_openai_models(server: Server) -> None:
    with openai_client(server) as client:
        listed = {m.id: m for m in client.models.list()}
    assert {"local", "e5", "bicis"} <= set(listed)
    assert listed["bicis"].model_extra is not None
    assert listed["bicis"].model_extra["kind"] == "assistant"
    assert listed["local"].owned_by == "acllm"


def test_openai_client_talks_to_an_assistant(server: Server) -> None:
    with openai_client(server) as client:
        done = client.chat.completions.create(
            model="bicis",
            messages=[{"role": "user", "content": QUESTION}],
            extra_headers={"X-Conversation-Id": "live-1"},
        )
        stream = client.chat.completions.create(
            model="bicis", messages=[{"role": "user", "content": QUESTION}], stream=True
        )
        chunks = list(stream)
    text = done.choices[0].message.content or ""
    assert "30 días" in text and "[1]" in text
    citations = (done.model_extra or {})["citations"]
    assert citations[0]["n"] == 1
    assert citations[0]["source"] == "politica_devoluciones.md"
    streamed = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert streamed == text
    tail = chunks[-1]
    assert tail.choices == []
    assert (tail.model_extra or {})["citations"] == citations


# --- langchain-openai ----------------------------------------------------------------------------


def test_langchain_chat_openai_invoke_and_stream(server: Server) -> None:
    from langchain_openai import ChatOpenAI

    llm = ChatOpenAI(
        model="local", base_url=server.api, api_key="unused", max_tokens=SHORT, max_retries=0
    )
    reply = llm.invoke("Say hello.")
    assert isinstance(reply.content, str) and reply.content.strip()
    pieces = [chunk.content for chunk in llm.stream("Name a fruit.")]
    assert "".join(str(p) for p in pieces).strip()
    assistant = ChatOpenAI(model="bicis", base_url=server.api, api_key="unused", max_retries=0)
    answer = assistant.invoke(QUESTION)
    assert "30 días" in str(answer.content) and "[1]" in str(answer.content)


def test_one_model_process_serves_two_workers(server: Server) -> None:
    assert server.info["workers"] == 2
    assert server.info["models"] == ["local", "e5"]
    model_pid = server.info["model_process"]
    assert model_pid in server.children
    workers = [p for p in server.children if p != model_pid and "spawn_main" in cmdline(p)]
    assert len(workers) == 2
    # The workers have answered chats by now, yet the weights are mapped only in the model
    # process: the workers count tokens from the GGUF's vocabulary alone.
    for weights in ("SmolLM2-135M-Instruct", "e5-small-q4.bin"):
        assert weights in maps(model_pid)
        for pid in workers:
            assert weights not in maps(pid)


def cmdline(pid: int) -> str:
    return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()


def maps(pid: int) -> str:
    return Path(f"/proc/{pid}/maps").read_text()


# --- limits --------------------------------------------------------------------------------------


async def test_a_burst_over_a_tiny_queue_gets_503_with_retry_after(server: Server) -> None:
    """One long generation holds the model, one request waits (queue_depth = 1): the rest of a
    burst is answered 503 + Retry-After at once. Every request gets an answer; none hangs."""
    body = {"model": "local", "messages": [{"role": "user", "content": "Hi"}], "max_tokens": SHORT}
    long = {
        "model": "local",
        "messages": [{"role": "user", "content": "Count from 1 to 500, one number per line."}],
        "max_tokens": 1500,
        "stream": True,
    }
    async with httpx.AsyncClient(base_url=server.url, timeout=300) as client:
        async with client.stream("POST", "/v1/chat/completions", json=long) as holding:
            assert holding.status_code == 200
            lines = holding.aiter_lines()
            while not (await anext(lines)).startswith("data:"):
                pass  # generation has started: the model is taken
            burst = [client.post("/v1/chat/completions", json=body) for _ in range(6)]
            refused = []
            pending = [asyncio.ensure_future(b) for b in burst]
            for done in asyncio.as_completed(pending):
                resp = await done
                if resp.status_code == 503:
                    refused.append(resp)
                    if len(refused) == 5:
                        break  # the sixth is waiting for the model; let it go on
                else:
                    assert resp.status_code == 200, resp.text
        # Leaving the stream early cancelled its generation: the waiting request now runs.
        answers = await asyncio.gather(*pending)
    statuses = sorted(r.status_code for r in answers)
    assert statuses.count(503) >= 4, statuses
    assert statuses.count(200) >= 1, statuses
    for resp in refused:
        assert int(resp.headers["Retry-After"]) >= 1
        assert "queue" in resp.json()["error"]["message"]


async def test_leaving_a_stream_frees_the_model(server: Server) -> None:
    long = {
        "model": "local",
        "messages": [{"role": "user", "content": "Write a long story about a dragon."}],
        "max_tokens": 1500,
        "stream": True,
    }
    body = {"model": "local", "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 4}
    async with httpx.AsyncClient(base_url=server.url, timeout=300) as client:
        for _ in range(3):  # more abandoned streams than the queue holds
            async with client.stream("POST", "/v1/chat/completions", json=long) as resp:
                assert resp.status_code == 200
                async for line in resp.aiter_lines():
                    if line.startswith("data:"):
                        break
        # Were those generations still running, this would be refused (queue_depth = 1).
        after = await client.post("/v1/chat/completions", json=body)
    assert after.status_code == 200, after.text


# --- shutdown (last: it stops the server) --------------------------------------------------------


def test_the_readme_openai_snippet_prints_what_the_readme_says(server: Server) -> None:
    from test_docs import readme_python

    snippet = readme_python("from openai import OpenAI")
    expected = [line.removeprefix("# ") for line in snippet.splitlines() if line.startswith("# ")]
    printed: list[str] = []

    def capture(*args: object) -> None:
        printed.append(" ".join(str(a) for a in args))

    exec(snippet.replace("http://127.0.0.1:8000", server.url), {"print": capture})
    assert printed == expected


# --- the web chat in a real browser ---------------------------------------------------------------

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# As root Chromium needs --no-sandbox; nothing may reach the network (no updates, no field trials).
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-default-apps",
    "--disable-sync",
    "--no-first-run",
]


def test_web_chat_streams_a_cited_answer_and_stores_feedback(server: Server) -> None:
    from playwright.sync_api import expect, sync_playwright

    assert Path(CHROMIUM).exists(), "chromium is missing: run scripts/system-deps.sh"
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            page.goto(server.url)
            expect(page.locator("#assistant option")).to_have_count(1)
            assert page.locator("#assistant").input_value() == "bicis"
            page.get_by_test_id("question").fill(QUESTION)
            page.get_by_test_id("question").press("Enter")
            answer = page.locator("[data-testid=answer][data-done=true]")
            expect(answer).to_have_count(1, timeout=120_000)
            assert "30" in answer.locator(".text").inner_text()
            source = answer.locator(".cites button.source").first
            expect(source).to_contain_text("politica_devoluciones.md")
            quote = answer.locator(".cites .quote").first
            expect(quote).to_be_hidden()
            source.click()  # a citation opens to show the cited text
            expect(quote).to_be_visible()
            assert "30" in quote.inner_text()

            answer.get_by_test_id("thumbs-down").click()
            expect(answer.locator(".feedback .status")).to_have_text("Thanks, saved.")
            answer.get_by_test_id("correction").fill("30 días desde la entrega, no la compra.")
            answer.get_by_role("button", name="Send correction").click()
            expect(answer.get_by_test_id("correction")).to_have_count(0)
        finally:
            browser.close()

    with httpx.Client(timeout=30) as client:
        stored = client.get(f"{server.url}/v1/feedback").json()["data"]
    mine = [f for f in stored if f["answer"]["question"] == QUESTION]
    assert {f["rating"] for f in mine} == {-1, None}
    assert "30 días desde la entrega, no la compra." in {f["correction"] for f in mine}
    [answer_record] = {json.dumps(f["answer"], sort_keys=True) for f in mine}
    record = json.loads(answer_record)
    assert record["citations"][0]["source"] == "politica_devoluciones.md"
    assert record["config"]["assistant"] == "bicis"


def test_web_chat_shows_cache_hits_redactions_and_suggestions(server: Server) -> None:
    from playwright.sync_api import expect, sync_playwright

    def ask(page: Any, question: str, n: int) -> Any:
        page.get_by_test_id("question").fill(question)
        page.get_by_test_id("question").press("Enter")
        done = page.locator("[data-testid=answer][data-done=true]")
        expect(done).to_have_count(n, timeout=120_000)
        return done.nth(n - 1)

    question = "¿Cuánto cuesta una revisión completa en el taller?"
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            page.goto(server.url)
            expect(page.locator("#assistant option")).to_have_count(1)
            first = ask(page, question, 1)
            expect(first.get_by_test_id("badge-cache")).to_have_count(0)
            text = first.locator(".text").inner_text()
            # The conversation is part of the cache key: the same question opens a new one.
            page.locator("#new").click()
            second = ask(page, question, 1)
            expect(second.get_by_test_id("badge-cache")).to_have_text("de la caché")
            assert second.locator(".text").inner_text() == text
            page.locator("#new").click()
            redacted = ask(page, f"Soy ana.lopez@example.com. {question}", 1)
            expect(redacted.get_by_test_id("badge-guard")).to_have_text("datos personales ocultos")
            mine = page.locator(".turn.user .text").last  # the user's own message, marked
            expect(mine.get_by_test_id("redaction")).to_have_text("oculto")
            assert "ana.lopez@example.com" not in mine.inner_text()
            page.locator("#new").click()
            refused = ask(page, "What is the capital of Mongolia?", 1)
            suggestions = refused.get_by_test_id("suggestions").locator("button")
            expect(suggestions.first).to_contain_text("What do the documents say about")
            suggestions.first.click()  # a suggestion asks itself
            expect(page.locator("[data-testid=answer][data-done=true]")).to_have_count(
                2, timeout=120_000
            )
        finally:
            browser.close()


def test_review_page_approves_a_correction_that_is_then_served(server: Server) -> None:
    from playwright.sync_api import expect, sync_playwright

    question = "¿Cuánto cuesta una revisión básica?"
    with httpx.Client(base_url=server.url, timeout=120) as client:
        asked = client.post("/v1/assistants/bicis/ask", json={"question": question, "cache": False})
        answer_id = asked.json()["answer_id"]
        fb = client.post("/v1/feedback", json={"answer_id": answer_id, "rating": -1})
        assert fb.status_code == 201
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            page.goto(f"{server.url}/review")
            item = page.locator(f"[data-testid=review-item][data-id={fb.json()['id']}]")
            expect(item).to_contain_text(question)
            expect(item).to_contain_text("tarifas_taller.pdf")  # shown with its sources
            item.get_by_test_id("review-answer").fill("La revisión básica cuesta 35 euros.")
            item.get_by_role("button", name="Approve").click()
            expect(item).to_have_attribute("data-done", "approve")
        finally:
            browser.close()
    with httpx.Client(base_url=server.url, timeout=120) as client:
        served = client.post("/v1/assistants/bicis/ask", json={"question": question}).json()
    assert served["answer"] == "La revisión básica cuesta 35 euros."
    assert served["override"]["id"].startswith("ovr_")


def test_sigterm_stops_every_process(server: Server) -> None:
    children = descendants(server.proc.pid) | server.children
    assert len(children) >= 3  # two workers and the model process (and multiprocessing's helper)
    server.proc.send_signal(signal.SIGTERM)
    assert server.proc.wait(120) == 0, server.log.read_text()
    left = {pid for pid in children if alive(pid)}
    for _ in range(100):  # multiprocessing's tracker exits once its pipe closes: give it turns
        if not left:
            break
        time.sleep(0.1)
        left = {pid for pid in left if alive(pid)}
    assert not left, f"processes left behind: {left}"
    assert "Traceback" not in server.log.read_text()
