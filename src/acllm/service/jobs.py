"""Ingestion jobs: started by one HTTP request, run in a background thread of that worker, and
followed by any worker, because their state lives in the KV store (shared by every worker).

A job reads its sources (files under a server path, or a table/query behind an SQLAlchemy URL),
then ingests them one at a time, saving ``progress`` (done/total) and per-file ``errors`` after
each. The index write of each source is one transaction, so a job stopped half-way (the service
shutting down) leaves every source either fully written or as it was.
"""

from __future__ import annotations

import contextvars
import json
import re
import secrets
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from acllm.errors import AcllmError, UserError
from acllm.service.remote import CALLER

if TYPE_CHECKING:
    from acllm.kv.base import KV
    from acllm.runtime import Runtime

JOB_TTL_S = 7 * 24 * 3600  # how long a finished job's state can be read
BEAT_S = 5.0  # a running job's worker says it is alive this often
ALIVE_TTL_S = 30.0  # silent this long: the worker is gone (killed, crashed), the job failed
_JOB_ID = re.compile(r"^job_[0-9a-f]{16}$")


@dataclass(frozen=True)
class IngestRequest:
    index: str
    target: str  # a path on the server, or an SQLAlchemy URL
    table: str | None = None
    query: str | None = None
    key: str | None = None
    include: list[str] | None = None
    ignore: list[str] = field(default_factory=list)


def _key(job_id: str) -> str:
    return f"job:{job_id}"


class JobStore:
    """Job states as JSON documents in the KV store."""

    def __init__(self, kv: KV) -> None:
        self.kv = kv

    def save(self, job: dict[str, Any]) -> None:
        job["updated"] = time.time()
        self.kv.set(_key(job["id"]), json.dumps(job).encode(), ttl=JOB_TTL_S)

    def get(self, job_id: str) -> dict[str, Any] | None:
        if not _JOB_ID.fullmatch(job_id):
            return None
        raw = self.kv.get(_key(job_id))
        return None if raw is None else dict(json.loads(raw))

    def beat(self, job_id: str) -> None:
        """The job's worker is alive (a key that expires unless renewed)."""
        self.kv.set(f"{_key(job_id)}:alive", b"1", ttl=ALIVE_TTL_S)

    def alive(self, job_id: str) -> bool:
        return self.kv.get(f"{_key(job_id)}:alive") is not None


class JobManager:
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self._store: JobStore | None = None
        self._threads: dict[str, threading.Thread] = {}
        self._stop = threading.Event()

    @property
    def store(self) -> JobStore:
        if self._store is None:
            self._store = JobStore(self.runtime.kv())
        return self._store

    def get(self, job_id: str) -> dict[str, Any] | None:
        """The job; one whose worker stopped saying it is alive is failed, not left "running"."""
        job = self.store.get(job_id)
        if (
            job is not None
            and job["state"] in ("queued", "running")
            and not self.store.alive(job_id)
        ):
            job["state"] = "failed"
            job["error"] = {
                "message": "the worker running this job stopped (killed or crashed) before the end",
                "hint": "run the ingestion again: sources already written are kept and skipped",
            }
            self.store.save(job)
        return job

    def start_ingest(self, req: IngestRequest) -> dict[str, Any]:
        """Check the request, save the job as queued and start its thread; return the job."""
        from acllm.ingest import sources
        from acllm.runtime import check_index_name

        check_index_name(req.index)
        if sources.is_url(req.target):
            if not req.table and not req.query:
                raise UserError("a database URL needs 'table' or 'query'")
        elif not Path(req.target).exists():
            raise UserError(
                f"{req.target} does not exist on the server",
                hint="give a file or folder path as the server sees it, or a database URL",
            )
        # Built here, on the event loop's thread: the Runtime's caches are not thread-safe.
        index = self.runtime.index(req.index)
        embedder = self.runtime.embedder(self.runtime.index_spec(req.index).embedder)
        now = time.time()
        job: dict[str, Any] = {
            "id": f"job_{secrets.token_hex(8)}",
            "kind": "ingest",
            "index": req.index,
            "target": req.target,
            "state": "queued",
            "progress": {"done": 0, "total": None},
            "errors": [],
            "report": None,
            "error": None,
            "created": now,
        }
        self.store.save(job)
        self.store.beat(job["id"])
        run = _IngestRun(req, job, index, embedder, self.store, self._stop)
        context = contextvars.copy_context()
        context.run(CALLER.set, f"ingest:{job['id']}")  # the model process queues jobs apart
        thread = threading.Thread(
            target=context.run, args=(run.run,), name=f"acllm-{job['id']}", daemon=True
        )
        self._threads = {k: t for k, t in self._threads.items() if t.is_alive()}
        self._threads[job["id"]] = thread
        answer: dict[str, Any] = json.loads(json.dumps(job))  # as saved: the thread changes job
        thread.start()
        return answer

    def stop(self, timeout: float = 10.0) -> None:
        """Ask running jobs to stop after their current source, and wait for them a while."""
        self._stop.set()
        deadline = time.monotonic() + timeout
        for thread in self._threads.values():
            thread.join(max(0.0, deadline - time.monotonic()))


class _IngestRun:
    def __init__(
        self,
        req: IngestRequest,
        job: dict[str, Any],
        index: Any,
        embedder: Any,
        store: JobStore,
        stop: threading.Event,
    ) -> None:
        self.req, self.job, self.index, self.embedder = req, job, index, embedder
        self.store, self.stop = store, stop
        self.interrupted = False
        self._lock = threading.Lock()  # the heartbeat and the run both save the job

    def save(self, job: dict[str, Any]) -> None:
        with self._lock:
            self.store.save(job)

    def _heartbeat(self, done: threading.Event) -> None:
        while not done.wait(BEAT_S):
            try:
                self.store.beat(self.job["id"])
            except AcllmError:  # the KV is briefly unreachable: the next beat may get through
                continue

    def run(self) -> None:
        done = threading.Event()
        beats = threading.Thread(target=self._heartbeat, args=(done,), daemon=True)
        beats.start()
        try:
            self._run()
        finally:
            done.set()
            beats.join()

    def _run(self) -> None:
        job = self.job
        try:
            job["state"] = "running"
            self.save(job)
            job["report"] = self._ingest()
            job["state"] = "failed" if self.interrupted else "done"
            if self.interrupted:
                job["error"] = {"message": "interrupted: the service stopped", "hint": "run again"}
        except AcllmError as exc:
            job["state"], job["error"] = "failed", {"message": exc.message, "hint": exc.hint}
        except Exception as exc:  # a bug must still end the job, not leave it "running"
            job["state"] = "failed"
            job["error"] = {"message": f"{type(exc).__name__}: {exc}", "hint": "a bug in acllm"}
        self.save(job)

    def _ingest(self) -> dict[str, Any]:
        from acllm.ingest import sources
        from acllm.ingest.chunking import chunk_documents
        from acllm.ingest.pipeline import Ingestor, IngestReport

        req, job = self.req, self.job
        remove: list[str] = []
        if sources.is_url(req.target):
            pending, errors = sources.from_sql(
                req.target, table=req.table, query=req.query, key=req.key
            )
        else:
            root = Path(req.target)
            pending, errors = sources.from_path(root, include=req.include, ignore=req.ignore)
            present = {p.source_id for p in pending}
            remove = [
                s for s in sources.owned_by(root, list(self.index.sources())) if s not in present
            ]
        report = IngestReport(errors=list(errors))
        ingestor = Ingestor(self.index, self.embedder, chunker=chunk_documents)
        job["progress"] = {"done": 0, "total": len(pending)}
        job["errors"] = _errors(report)
        self.save(job)
        for done, item in enumerate(pending, start=1):
            if self.stop.is_set():
                self.interrupted = True
                break
            ingestor.run([item], report=report)  # one source, one transaction
            job["progress"]["done"] = done
            job["errors"] = _errors(report)
            self.save(job)
        if not self.interrupted and remove:
            ingestor.run([], remove=remove, report=report)
        job["errors"] = _errors(report)
        return report.as_dict()


def _errors(report: Any) -> list[dict[str, Any]]:
    return [{"source": e.source, "location": e.location, "reason": e.reason} for e in report.errors]
