"""A real, throw-away ``redis-server`` for tests (the Debian package; scripts/system-deps.sh installs it).

    from redisserver import RedisServer, redis_server_fixture  # noqa: F401  (the fixture)

    def test_something(redis_server: RedisServer) -> None:
        kv = RedisKV(redis_server.url, prefix="t1:")

``redis_server`` is session-scoped: one server for the whole run; tests keep apart by key prefix.
Tests that must stop or restart a server start their own with ``with RedisServer() as server:``.

The server listens on 127.0.0.1 only, on a free port picked by the kernel, with persistence off
(``--save "" --appendonly no``) and its working directory in a fresh temporary directory, so runs in
parallel never share a port or a file. ``start`` returns once the server answers PING. ``stop``
sends SIGTERM (Redis shuts down at once when it has nothing to save), waits, and kills it if it
hangs. On Linux the server also gets SIGTERM from the kernel when the test process dies without
running its teardown (SIGKILL, a CI time-out), so none outlives the session.

A missing ``redis-server`` fails the fixture, never skips it: CI installs the package, and a test run
that silently leaves out the Redis backend would pass without testing it.
"""

from __future__ import annotations

import contextlib
import ctypes
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import TracebackType

import pytest

START_WAIT_S = 20.0  # generous: two shared cores under a parallel test load
STOP_WAIT_S = 10.0
INSTALL_HINT = (
    "redis-server is not installed: run `bash scripts/system-deps.sh` (as root, or with sudo) "
    "to install the Debian packages the tests need"
)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _parent_death_signal() -> Callable[[], None] | None:
    """A preexec_fn that has the kernel SIGTERM the child when the test process dies (Linux)."""
    if not sys.platform.startswith("linux"):
        return None
    try:  # resolved here, in the parent: the forked child must only make the one C call
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None

    def set_signal() -> None:
        prctl(1, signal.SIGTERM)  # 1 = PR_SET_PDEATHSIG

    return set_signal


_DIE_WITH_PARENT = _parent_death_signal()


def _answers_ping(port: int, password: str | None) -> bool:
    """True once the server replies to PING (NOAUTH also proves it is up and listening)."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1.0) as conn:
            conn.sendall(b"PING\r\n")
            reply = conn.recv(64)
    except OSError:
        return False
    return reply.startswith(b"+PONG") or (password is not None and reply.startswith(b"-NOAUTH"))


class RedisServer:
    """A redis-server on 127.0.0.1. ``port``: None picks a free one; ``password``: --requirepass."""

    def __init__(self, *, port: int | None = None, password: str | None = None) -> None:
        self.requested_port = port
        self.password = password
        self.port = 0
        self._proc: subprocess.Popen[bytes] | None = None
        self._dir: Path | None = None

    @property
    def url(self) -> str:
        if self._proc is None:
            raise RuntimeError("the Redis server is not running")
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        binary = shutil.which("redis-server")
        if binary is None:
            raise FileNotFoundError(INSTALL_HINT)
        self._dir = Path(tempfile.mkdtemp(prefix="acllm-redis-"))
        try:
            # A free port can be taken by someone else before redis binds it: try a few.
            for _ in range(5):
                self.port = self.requested_port or _free_port()
                if self._launch(binary):
                    return self
                if self.requested_port is not None:
                    break
            raise RuntimeError(
                f"redis-server did not start on 127.0.0.1:{self.port}; its log:\n{self._log()}"
            )
        except BaseException:
            self.stop()
            raise

    def _launch(self, binary: str) -> bool:
        """Start the server on self.port; True once it answers, False when it exited early."""
        assert self._dir is not None
        args = [
            binary,
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--save", "",
            "--appendonly", "no",
            "--dir", str(self._dir),
            "--daemonize", "no",
            "--logfile", str(self._dir / "redis.log"),
        ]  # fmt: skip
        if self.password is not None:
            args += ["--requirepass", self.password]
        self._proc = subprocess.Popen(
            args,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            preexec_fn=_DIE_WITH_PARENT,
        )
        deadline = time.monotonic() + START_WAIT_S
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:  # e.g. the port was taken: "Address already in use"
                self._proc.wait()
                self._proc = None
                return False
            if _answers_ping(self.port, self.password):
                return True
            time.sleep(0.02)
        self._kill()  # alive but mute: do not leave it running while another port is tried
        return False

    def _kill(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None:
            proc.terminate()
            try:
                proc.wait(STOP_WAIT_S)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def _log(self) -> str:
        if self._dir is None:
            return "(no log)"
        with contextlib.suppress(OSError):
            return (self._dir / "redis.log").read_text(errors="replace")[-2000:]
        return "(no log)"

    def stop(self) -> None:
        self._kill()
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def started(server: RedisServer) -> RedisServer:
    """``server.start()``, turning a missing redis-server into a test failure that says what to do."""
    try:
        return server.start()
    except FileNotFoundError as exc:
        pytest.fail(str(exc), pytrace=False)


@pytest.fixture(scope="session", name="redis_server")
def redis_server_fixture() -> Iterator[RedisServer]:
    """One redis-server for the session; import this into a test module to use ``redis_server``."""
    server = started(RedisServer())
    try:
        yield server
    finally:
        server.stop()


if __name__ == "__main__":  # a manual check: start, print the URL, stop
    t0 = time.monotonic()
    with RedisServer() as srv:
        print(f"started in {time.monotonic() - t0:.3f} s: {srv.url}")
