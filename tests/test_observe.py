"""Request ids, JSON access lines and Prometheus metrics from ObserveMiddleware."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI, Request
from fastapi.responses import StreamingResponse

from acllm.service import observe


def app() -> FastAPI:
    api = FastAPI()
    api.add_middleware(observe.ObserveMiddleware)

    @api.post("/v1/things/{name}")
    async def thing(name: str, request: Request) -> dict[str, str]:
        observe.record_usage(
            key_id="key_abc", prompt_tokens=7, completion_tokens=3, model="m", cost=0.25
        )
        return {"name": name}

    @api.get("/stream")
    async def stream() -> StreamingResponse:
        async def parts() -> AsyncIterator[bytes]:
            for i in range(3):
                yield f"data: {i}\n\n".encode()

        return StreamingResponse(parts(), media_type="text/event-stream")

    @api.get("/boom")
    async def boom() -> None:
        raise RuntimeError("a bug")

    @api.get("/metrics")
    async def metrics() -> object:
        return observe.metrics_response()

    return api


def client(api: FastAPI) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(api, raise_app_exceptions=False)
    return httpx.AsyncClient(transport=transport, base_url="http://test")


def sample(text: str, name: str, **labels: str) -> float:
    """The value of one metric sample in Prometheus text format (0 when absent)."""
    for line in text.splitlines():
        if line.startswith(f"{name}{{") and all(f'{k}="{v}"' in line for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


async def test_request_id_log_line_and_usage(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="acllm.access")
    async with client(app()) as http:
        r = await http.post("/v1/things/a", headers={"X-Request-Id": "abc-123"})
    assert r.status_code == 200 and r.headers["x-request-id"] == "abc-123"
    line = json.loads(caplog.records[-1].getMessage())
    assert line["request_id"] == "abc-123"
    assert line["route"] == "/v1/things/{name}" and line["path"] == "/v1/things/a"
    assert line["status"] == 200 and line["latency_ms"] >= 0
    assert (line["key_id"], line["prompt_tokens"], line["completion_tokens"]) == ("key_abc", 7, 3)
    assert line["cost"] == 0.25 and line["model"] == "m"


async def test_unsafe_request_ids_are_replaced(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="acllm.access")
    async with client(app()) as http:
        r = await http.get("/stream", headers={"X-Request-Id": "x" * 65})
    assert r.headers["x-request-id"].startswith("req_")
    assert r.text == "data: 0\n\ndata: 1\n\ndata: 2\n\n"  # streaming passes through untouched
    assert json.loads(caplog.records[-1].getMessage())["status"] == 200


async def test_metrics_count_requests_tokens_and_errors() -> None:
    async with client(app()) as http:
        before = (await http.get("/metrics")).text
        await http.post("/v1/things/a")
        await http.post("/v1/things/b")
        assert (await http.get("/boom")).status_code == 500
        await http.get("/nowhere")
        after = (await http.get("/metrics")).text

    def delta(name: str, **labels: str) -> float:
        return sample(after, name, **labels) - sample(before, name, **labels)

    route = "/v1/things/{name}"
    assert delta("acllm_requests_total", route=route, method="POST", status="200") == 2
    assert delta("acllm_tokens_total", key="key_abc", kind="prompt") == 14
    assert delta("acllm_tokens_total", key="key_abc", kind="completion") == 6
    assert delta("acllm_cost_total", key="key_abc") == 0.5
    assert delta("acllm_errors_total", kind="http_500") == 1
    assert delta("acllm_requests_total", route="unmatched", method="GET", status="404") == 1
    assert delta("acllm_request_seconds_count", route=route) == 2


def test_json_formatter_writes_one_object_per_line() -> None:
    record = logging.LogRecord(
        "acllm.service", logging.WARNING, __file__, 1, "queue %s", ("full",), None
    )
    out = json.loads(observe.JSONFormatter().format(record))
    assert out["level"] == "warning" and out["message"] == "queue full"


WORKER = """
import sys
from acllm.service import observe
observe.TOKENS.labels("k", "prompt").inc(int(sys.argv[1]))
"""


def test_worker_processes_add_up_in_multiprocess_mode(tmp_path: Path) -> None:
    env = {"PROMETHEUS_MULTIPROC_DIR": str(tmp_path), "PATH": "/usr/bin:/bin"}
    for n in (5, 11):
        subprocess.run([sys.executable, "-c", WORKER, str(n)], env=env, check=True)
    script = "from acllm.service import observe\nprint(observe.metrics_response().body.decode())\n"
    text = subprocess.run(
        [sys.executable, "-c", script], env=env, check=True, capture_output=True, text=True
    ).stdout
    assert sample(text, "acllm_tokens_total", key="k", kind="prompt") == 16
