"""acllm's SQLite files, opened one way: WAL, a busy timeout, numbered migrations, clear errors.

WAL lets readers run beside the one writer; the busy timeout makes a writer wait for another
process's lock instead of failing; every write runs in ``BEGIN IMMEDIATE`` so a read-modify-write
holds the write lock before it reads. Migrations are steps of SQL statements: step i takes ``PRAGMA
user_version`` from i to i + 1, run in one IMMEDIATE transaction so processes opening a fresh file
at once migrate it once. A file that is not a database, cannot be opened, or was written by a newer
acllm is refused with a ServiceError that names it and says what to do. WAL needs a local
filesystem: not a network share.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from acllm.errors import ServiceError

BUSY_TIMEOUT_S = 10.0  # how long a writer waits for another process's write lock
Migrations = Sequence[tuple[str, ...]]


def _set_wal(conn: sqlite3.Connection, busy_timeout: float) -> None:
    """``PRAGMA journal_mode = WAL``, retried while another connection is switching a fresh file
    to WAL: SQLite answers "database is locked" there at once, without its busy handler (seen
    with four workers opening one new file together)."""
    deadline = time.monotonic() + busy_timeout
    pause = 0.005
    while True:
        try:
            conn.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() + pause > deadline:
                raise
        time.sleep(pause)
        pause = min(pause * 2, 0.2)


def connect(
    path: Path,
    migrations: Migrations,
    *,
    what: str,
    hint: str,
    on_open: Callable[[sqlite3.Connection], object] | None = None,
    busy_timeout: float = BUSY_TIMEOUT_S,
) -> sqlite3.Connection:
    """A migrated connection to ``path``; ``on_open`` runs inside the migration transaction."""
    conn: sqlite3.Connection | None = None
    latest = len(migrations)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        # isolation_level=None: no implicit transactions, callers BEGIN/COMMIT themselves.
        # check_same_thread=False is safe because Database serialises every use with a lock.
        conn = sqlite3.connect(
            path, timeout=busy_timeout, isolation_level=None, check_same_thread=False
        )
        _set_wal(conn, busy_timeout)  # also the first read: fails on a non-DB
        conn.execute("PRAGMA synchronous = NORMAL")  # durable enough in WAL, far fewer fsyncs
        conn.execute("BEGIN IMMEDIATE")
        version: int = conn.execute("PRAGMA user_version").fetchone()[0]
        if version > latest:
            raise ServiceError(
                f"{what} {path} has schema version {version}, but this acllm knows only up to "
                f"{latest}: a newer acllm wrote it",
                hint="upgrade acllm (pip install -U acllm) or use another file",
            )
        for statement in (s for step in migrations[version:] for s in step):
            conn.execute(statement)
        conn.execute(f"PRAGMA user_version = {latest}")
        if on_open is not None:
            try:
                on_open(conn)
            except sqlite3.DatabaseError as exc:  # the schema is not the one acllm writes
                raise ServiceError(
                    f"{what} {path} is an SQLite file, but not one acllm wrote: {exc}", hint=hint
                ) from exc
        conn.execute("COMMIT")
        return conn
    except BaseException as exc:
        if conn is not None:
            conn.close()  # rolls back too
        if isinstance(exc, sqlite3.OperationalError | OSError):
            raise ServiceError(
                f"cannot open {what} {path}: {exc}",
                hint="check that the directory is writable and no other program locks the file",
            ) from exc
        if isinstance(exc, sqlite3.DatabaseError):
            raise ServiceError(
                f"{what} {path} is not a usable SQLite database: {exc}", hint=hint
            ) from exc
        raise


class Database:
    """One connection shared by a process's threads behind a lock; SQLite errors -> ServiceError."""

    def __init__(
        self,
        path: str | Path,
        migrations: Migrations,
        *,
        what: str,
        hint: str,
        on_open: Callable[[sqlite3.Connection], object] | None = None,
        busy_timeout: float = BUSY_TIMEOUT_S,
    ) -> None:
        self.path = Path(path)
        self.what = what
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = connect(
            self.path, migrations, what=what, hint=hint, on_open=on_open, busy_timeout=busy_timeout
        )

    @contextmanager
    def read(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            if self._conn is None:
                raise ServiceError(f"the {self.what} {self.path} is closed")
            try:
                yield self._conn
            except sqlite3.Error as exc:
                raise ServiceError(f"{self.what} {self.path} failed: {exc}") from exc

    @contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """One IMMEDIATE transaction: committed when the block ends, rolled back if it raises."""
        with self._transaction("BEGIN IMMEDIATE") as conn:
            yield conn

    @contextmanager
    def snapshot(self) -> Iterator[sqlite3.Connection]:
        """A read transaction: every query in the block sees the same state of the file."""
        with self._transaction("BEGIN") as conn:
            yield conn

    @contextmanager
    def _transaction(self, begin: str) -> Iterator[sqlite3.Connection]:
        with self.read() as conn:
            conn.execute(begin)
            try:
                yield conn
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None
