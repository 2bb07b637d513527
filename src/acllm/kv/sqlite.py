"""SQLite KV: the default store, one file shared by every process on one machine.

Cross-process safety comes from SQLite's own locking: WAL lets readers run beside the one writer,
a busy timeout makes a writer wait for the lock instead of failing, and every write runs in
``BEGIN IMMEDIATE`` so a read-modify-write (incr, set_if_absent) holds the write lock before it
reads. Inside a process one connection is shared behind a lock. Expiry is wall-clock epoch seconds
(``time.time()``) because a monotonic clock means nothing to another process. WAL needs a local
filesystem: do not put the file on a network share.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict

from acllm.errors import UserError
from acllm.kv.base import as_integer, check_key
from acllm.registry import Backend
from acllm.sqlitedb import Database

if TYPE_CHECKING:
    from acllm.runtime import Runtime

# Schema steps in order: step i takes PRAGMA user_version from i to i + 1. Only ever append.
MIGRATIONS: list[tuple[str, ...]] = [
    (
        "CREATE TABLE kv (key TEXT PRIMARY KEY, value BLOB NOT NULL, expires REAL) WITHOUT ROWID",
        "CREATE INDEX kv_expires ON kv (expires) WHERE expires IS NOT NULL",
    ),
]
SCHEMA_VERSION = len(MIGRATIONS)
SWEEP_EVERY = 500  # writes between purges of every expired key (single keys are purged on write)

_LIVE = "key = ? AND (expires IS NULL OR expires > ?)"


def _expiry(ttl: float | None, now: float) -> float | None:
    return None if ttl is None else now + ttl


class SQLiteKV:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._writes = 0
        self._db = Database(
            self.path,
            MIGRATIONS,
            what="KV database",
            hint="move the file aside (acllm then starts a fresh one) or set kv.path",
            # Short-lived processes may never reach SWEEP_EVERY writes, so purge at open too.
            on_open=lambda conn: conn.execute("DELETE FROM kv WHERE expires <= ?", (time.time(),)),
        )

    @contextmanager
    def _write(self) -> Iterator[tuple[sqlite3.Connection, float]]:
        """A write transaction and its clock; `now` is read after the lock is won, not before."""
        with self._db.read() as conn:
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn, time.time()
                self._writes += 1
                if self._writes % SWEEP_EVERY == 0:
                    conn.execute("DELETE FROM kv WHERE expires <= ?", (time.time(),))
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise

    @staticmethod
    def _put(conn: sqlite3.Connection, key: str, value: bytes, expires: float | None) -> None:
        # REPLACE also overwrites an expired row, which is how single keys are purged lazily.
        conn.execute(
            "INSERT OR REPLACE INTO kv (key, value, expires) VALUES (?, ?, ?)",
            (key, value, expires),
        )

    def get(self, key: str) -> bytes | None:
        check_key(key)
        with self._db.read() as conn:
            row = conn.execute(f"SELECT value FROM kv WHERE {_LIVE}", (key, time.time())).fetchone()
        return None if row is None else bytes(row[0])

    def set(self, key: str, value: bytes, ttl: float | None = None) -> None:
        check_key(key, ttl)
        data = bytes(value)
        with self._write() as (conn, now):
            self._put(conn, key, data, _expiry(ttl, now))

    def set_if_absent(self, key: str, value: bytes, ttl: float | None = None) -> bool:
        check_key(key, ttl)
        data = bytes(value)
        with self._write() as (conn, now):
            if conn.execute(f"SELECT 1 FROM kv WHERE {_LIVE}", (key, now)).fetchone():
                return False
            self._put(conn, key, data, _expiry(ttl, now))
            return True

    def incr(self, key: str, amount: int = 1, ttl: float | None = None) -> int:
        check_key(key, ttl)
        if not isinstance(amount, int) or isinstance(amount, bool):
            raise UserError(f"KV incr amount must be an integer, got {amount!r}")
        with self._write() as (conn, now):
            query = f"SELECT value, expires FROM kv WHERE {_LIVE}"
            row = conn.execute(query, (key, now)).fetchone()
            if row is None:  # missing or expired: a new window starts with this call's ttl
                value, expires = amount, _expiry(ttl, now)
            else:  # a fixed window keeps its end
                value, expires = as_integer(key, bytes(row[0])) + amount, row[1]
            self._put(conn, key, str(value).encode(), expires)
            return value

    def delete(self, key: str) -> bool:
        check_key(key)
        with self._write() as (conn, now):
            live = conn.execute(f"DELETE FROM kv WHERE {_LIVE}", (key, now)).rowcount > 0
            if not live:
                conn.execute("DELETE FROM kv WHERE key = ?", (key,))  # an expired leftover
            return live

    def ttl(self, key: str) -> float | None:
        check_key(key)
        with self._db.read() as conn:
            now = time.time()
            row = conn.execute(f"SELECT expires FROM kv WHERE {_LIVE}", (key, now)).fetchone()
        if row is None:
            raise KeyError(key)
        return None if row[0] is None else max(0.0, float(row[0]) - now)

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> SQLiteKV:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


class SQLiteOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    path: str | None = None  # None: <data_dir>/state.db


def build(options: SQLiteOptions, runtime: Runtime) -> SQLiteKV:
    path = Path(options.path).expanduser() if options.path else runtime.data_dir / "state.db"
    return SQLiteKV(path)


BACKEND = Backend(
    "kv",
    "sqlite",
    SQLiteOptions,
    build,
    "SQLite file (default; shared by processes on one machine)",
)
