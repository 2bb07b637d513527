"""The embedded cache store: one SQLite file (default <data_dir>/cache.sqlite), vectors as blobs.

Opened through acllm.sqlitedb (WAL, busy timeout, migrations), so several worker processes share
the file. The file is opened on first use, not at start-up: a cache file that cannot be opened
makes every call fail (the cache turns that into a miss) and is tried again after ``RETRY_S``, so
a fixed disk brings the cache back without a restart.

Ids come from AUTOINCREMENT, so they only grow (store.py). Expired entries are left out of every
read and deleted by the next ``put`` in their scope.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Sequence
from pathlib import Path

from acllm.cache.store import RawEntry, VectorRows
from acllm.errors import ServiceError
from acllm.sqlitedb import Database

MIGRATIONS: list[tuple[str, ...]] = [
    (
        "CREATE TABLE entries (id INTEGER PRIMARY KEY AUTOINCREMENT, scope TEXT NOT NULL,"
        " key TEXT NOT NULL, question TEXT NOT NULL, payload BLOB NOT NULL, vector BLOB,"
        " created REAL NOT NULL, used REAL NOT NULL, expires REAL)",
        "CREATE UNIQUE INDEX entries_key ON entries (scope, key)",
        "CREATE INDEX entries_scope_id ON entries (scope, id)",
        "CREATE INDEX entries_used ON entries (scope, used)",
        "CREATE TABLE scopes (scope TEXT PRIMARY KEY, removed INTEGER NOT NULL) WITHOUT ROWID",
    ),
]
RETRY_S = 30.0  # after a failed open, how long before the file is tried again
_LIVE = "(expires IS NULL OR expires > ?)"


class SqliteCacheStore:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._db: Database | None = None
        self._failed_at: float | None = None
        self._closed = False

    def _open(self) -> Database:
        db = self._db
        if db is not None:
            return db
        with self._lock:
            if self._closed:
                raise ServiceError(f"the response cache {self.path} is closed")
            if self._db is None:
                now = time.monotonic()
                if self._failed_at is not None and now - self._failed_at < RETRY_S:
                    raise ServiceError(f"the response cache {self.path} could not be opened")
                try:
                    self._db = Database(
                        self.path,
                        MIGRATIONS,
                        what="response cache",
                        hint="delete the file (it only saves time) or set cache.path elsewhere",
                    )
                except ServiceError:
                    self._failed_at = now
                    raise
                self._failed_at = None
            return self._db

    def get(self, scope: str, key: str, now: float) -> RawEntry | None:
        with self._open().write() as conn:
            row = conn.execute(
                f"SELECT id, question, payload, created FROM entries"
                f" WHERE scope = ? AND key = ? AND {_LIVE}",
                (scope, key, now),
            ).fetchone()
            if row is None:
                return None
            conn.execute("UPDATE entries SET used = ? WHERE id = ?", (now, row[0]))
        return RawEntry(int(row[0]), str(row[1]), bytes(row[2]), float(row[3]))

    def fetch(self, scope: str, ids: Sequence[int], now: float) -> list[RawEntry]:
        if not ids:
            return []
        marks = ",".join("?" * len(ids))
        with self._open().read() as conn:
            rows = conn.execute(
                f"SELECT id, question, payload, created FROM entries"
                f" WHERE scope = ? AND id IN ({marks}) AND {_LIVE}",
                (scope, *ids, now),
            ).fetchall()
        return [RawEntry(int(r[0]), str(r[1]), bytes(r[2]), float(r[3])) for r in rows]

    def vectors(self, scope: str, after: int) -> VectorRows:
        with self._open().snapshot() as conn:
            found = conn.execute("SELECT removed FROM scopes WHERE scope = ?", (scope,)).fetchone()
            rows = conn.execute(
                "SELECT id, vector FROM entries WHERE scope = ? AND id > ? AND vector IS NOT NULL",
                (scope, after),
            ).fetchall()
        return VectorRows(int(found[0]) if found else 0, [(int(i), bytes(v)) for i, v in rows])

    def put(
        self,
        scope: str,
        key: str,
        entry: RawEntry,
        vector: bytes | None,
        *,
        ttl_s: float | None,
        max_entries: int,
    ) -> int:
        now = entry.created
        expires = None if ttl_s is None else now + ttl_s
        with self._open().write() as conn:
            removed = conn.execute(
                "DELETE FROM entries WHERE scope = ? AND (key = ? OR expires <= ?)",
                (scope, key, now),
            ).rowcount
            cursor = conn.execute(
                "INSERT INTO entries (scope, key, question, payload, vector, created, used,"
                " expires) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (scope, key, entry.question, entry.payload, vector, now, now, expires),
            )
            new_id = int(cursor.lastrowid or 0)
            (count,) = conn.execute(
                "SELECT count(*) FROM entries WHERE scope = ?", (scope,)
            ).fetchone()
            if count > max_entries:
                removed += conn.execute(
                    "DELETE FROM entries WHERE id IN (SELECT id FROM entries WHERE scope = ?"
                    " ORDER BY used, id LIMIT ?)",
                    (scope, count - max_entries),
                ).rowcount
            if removed:
                self._count_removed(conn, scope, removed)
        return new_id

    @staticmethod
    def _count_removed(conn: sqlite3.Connection, scope: str, n: int) -> None:
        conn.execute(
            "INSERT INTO scopes (scope, removed) VALUES (?, ?)"
            " ON CONFLICT (scope) DO UPDATE SET removed = removed + excluded.removed",
            (scope, n),
        )

    def touch(self, scope: str, entry_id: int, now: float) -> None:
        with self._open().write() as conn:
            conn.execute(
                "UPDATE entries SET used = ? WHERE scope = ? AND id = ?", (now, scope, entry_id)
            )

    def drop(self, scope: str, ids: Sequence[int]) -> None:
        if not ids:
            return
        marks = ",".join("?" * len(ids))
        with self._open().write() as conn:
            n = conn.execute(
                f"DELETE FROM entries WHERE scope = ? AND id IN ({marks})", (scope, *ids)
            ).rowcount
            if n:
                self._count_removed(conn, scope, n)

    def clear(self, scope: str | None = None) -> int:
        with self._open().write() as conn:
            if scope is None:
                counts = conn.execute("SELECT scope, count(*) FROM entries GROUP BY scope")
                for name, count in counts.fetchall():
                    self._count_removed(conn, name, count)
                n = conn.execute("DELETE FROM entries").rowcount
            else:
                n = conn.execute("DELETE FROM entries WHERE scope = ?", (scope,)).rowcount
                self._count_removed(conn, scope, max(n, 1))
        return int(n)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            db, self._db = self._db, None
        if db is not None:
            db.close()
