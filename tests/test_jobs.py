"""Ingestion jobs whose worker dies are reported failed, not left "running" for ever."""

from __future__ import annotations

import time
from typing import Any

from acllm.kv.memory import MemoryKV
from acllm.service import jobs
from acllm.service.jobs import JobManager, JobStore


class _Runtime:
    def __init__(self, kv: MemoryKV) -> None:
        self._kv = kv

    def kv(self) -> MemoryKV:
        return self._kv


def _job(state: str) -> dict[str, Any]:
    return {"id": "job_0123456789abcdef", "kind": "ingest", "state": state, "error": None}


def test_a_running_job_whose_worker_stopped_beating_is_failed() -> None:
    kv = MemoryKV()
    store = JobStore(kv)
    store.save(_job("running"))  # as a killed worker left it: no heartbeat key
    manager = JobManager(_Runtime(kv))  # type: ignore[arg-type]
    job = manager.get("job_0123456789abcdef")
    assert job is not None and job["state"] == "failed"
    assert "stopped" in job["error"]["message"] and "again" in job["error"]["hint"]
    again = store.get("job_0123456789abcdef")
    assert again is not None and again["state"] == "failed"  # saved, for every worker


def test_a_job_with_a_live_worker_or_finished_is_left_as_it_is() -> None:
    kv = MemoryKV()
    store = JobStore(kv)
    store.save(_job("running"))
    store.beat("job_0123456789abcdef")
    manager = JobManager(_Runtime(kv))  # type: ignore[arg-type]
    running = manager.get("job_0123456789abcdef")
    assert running is not None and running["state"] == "running"
    store.save({**_job("done"), "id": "job_fedcba9876543210"})
    done = manager.get("job_fedcba9876543210")
    assert done is not None and done["state"] == "done"


def test_the_heartbeat_keeps_a_long_source_alive(monkeypatch: Any) -> None:
    import threading

    monkeypatch.setattr(jobs, "BEAT_S", 0.05)
    kv = MemoryKV()
    store = JobStore(kv)
    beats: list[float] = []
    real_beat = store.beat

    def beat(job_id: str) -> None:
        beats.append(time.time())
        real_beat(job_id)

    monkeypatch.setattr(store, "beat", beat)
    run = jobs._IngestRun(None, _job("queued"), None, None, store, threading.Event())  # type: ignore[arg-type]
    release = threading.Event()
    monkeypatch.setattr(run, "_run", lambda: release.wait(5))
    thread = threading.Thread(target=run.run)
    thread.start()
    time.sleep(0.4)  # one "source" taking longer than a beat
    release.set()
    thread.join(5)
    assert len(beats) >= 3 and store.alive("job_0123456789abcdef")
