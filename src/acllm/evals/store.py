"""Evaluation runs in SQLite: each run with the suite and config that produced it, each case's
output, scores, latency, tokens and error. A case is written as soon as it is done, so an
interrupted run resumes where it stopped: done cases are kept, failed ones are tried again."""

from __future__ import annotations

import json
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from acllm.errors import NotFoundError
from acllm.sqlitedb import Database

MIGRATIONS: list[tuple[str, ...]] = [
    (
        """CREATE TABLE runs (
            id TEXT PRIMARY KEY, suite TEXT NOT NULL, created REAL NOT NULL,
            config TEXT NOT NULL, finished REAL)""",
        """CREATE TABLE results (
            run_id TEXT NOT NULL REFERENCES runs (id), dataset TEXT NOT NULL,
            case_id TEXT NOT NULL, status TEXT NOT NULL, output TEXT, scores TEXT NOT NULL,
            latency_s REAL, tokens INTEGER, error TEXT, metadata TEXT NOT NULL,
            PRIMARY KEY (run_id, dataset, case_id)) WITHOUT ROWID""",
    ),
]


@dataclass(frozen=True)
class Result:
    dataset: str
    case_id: str
    status: str  # "ok" | "failed"
    output: Any
    scores: dict[str, float]
    latency_s: float | None
    tokens: int | None
    error: str | None
    metadata: dict[str, Any]


@dataclass(frozen=True)
class RunInfo:
    id: str
    suite: str
    created: float
    config: dict[str, Any]
    finished: float | None


class RunStore:
    def __init__(self, path: str | Path) -> None:
        self._db = Database(
            path, MIGRATIONS, what="evaluation store", hint="move the file aside to start afresh"
        )

    def create(self, suite: str, config: dict[str, Any]) -> str:
        run_id = time.strftime("%Y%m%d-%H%M%S-") + secrets.token_hex(3)
        with self._db.write() as conn:
            conn.execute(
                "INSERT INTO runs VALUES (?, ?, ?, ?, NULL)",
                (run_id, suite, time.time(), json.dumps(config, default=str)),
            )
        return run_id

    def run(self, run_id: str) -> RunInfo:
        with self._db.read() as conn:
            row = conn.execute("SELECT * FROM runs WHERE id = ?", (run_id,)).fetchone()
        if row is None:
            raise NotFoundError(f"no evaluation run {run_id!r}", hint="acllm eval list shows them")
        return RunInfo(row[0], row[1], row[2], json.loads(row[3]), row[4])

    def runs(self) -> list[RunInfo]:
        with self._db.read() as conn:
            rows = conn.execute("SELECT id FROM runs ORDER BY created DESC").fetchall()
        return [self.run(r[0]) for r in rows]

    def done(self, run_id: str) -> set[tuple[str, str]]:
        """(dataset, case id) of the cases that need no new attempt."""
        with self._db.read() as conn:
            rows = conn.execute(
                "SELECT dataset, case_id FROM results WHERE run_id = ? AND status = 'ok'",
                (run_id,),
            ).fetchall()
        return {(r[0], r[1]) for r in rows}

    def save(self, run_id: str, result: Result) -> None:
        with self._db.write() as conn:
            conn.execute(
                "INSERT OR REPLACE INTO results VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    run_id,
                    result.dataset,
                    result.case_id,
                    result.status,
                    json.dumps(result.output, ensure_ascii=False, default=str),
                    json.dumps(result.scores),
                    result.latency_s,
                    result.tokens,
                    result.error,
                    json.dumps(result.metadata, ensure_ascii=False, default=str),
                ),
            )

    def finish(self, run_id: str) -> None:
        with self._db.write() as conn:
            conn.execute("UPDATE runs SET finished = ? WHERE id = ?", (time.time(), run_id))

    def results(self, run_id: str) -> list[Result]:
        self.run(run_id)  # NotFoundError for an unknown id
        with self._db.read() as conn:
            rows = conn.execute(
                "SELECT dataset, case_id, status, output, scores, latency_s, tokens, error, "
                "metadata FROM results WHERE run_id = ? ORDER BY dataset, case_id",
                (run_id,),
            ).fetchall()
        return [
            Result(r[0], r[1], r[2], json.loads(r[3]), json.loads(r[4]), r[5], r[6], r[7],
                   json.loads(r[8]))
            for r in rows
        ]  # fmt: skip

    def close(self) -> None:
        self._db.close()
