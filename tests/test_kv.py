"""KV backends: both pass the conformance suite; SQLite also gets file, process and schema tests."""

from __future__ import annotations

import inspect
import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from acllm import registry
from acllm.config import KVSpec, Settings
from acllm.errors import ServiceError
from acllm.kv.base import KV
from acllm.kv.memory import MemoryKV
from acllm.kv.sqlite import SCHEMA_VERSION, SQLiteKV, SQLiteOptions
from acllm.runtime import Runtime
from conformance.kv_suite import KVConformance


class TestMemoryKV(KVConformance):
    @pytest.fixture
    def kv(self) -> Iterator[KV]:
        store = MemoryKV()
        yield store
        store.close()


class TestSQLiteKV(KVConformance):
    @pytest.fixture
    def kv(self, tmp_path: Path) -> Iterator[KV]:
        with SQLiteKV(tmp_path / "state.db") as store:
            yield store


@pytest.fixture
def db(tmp_path: Path) -> Iterator[SQLiteKV]:
    with SQLiteKV(tmp_path / "state.db") as store:
        yield store


def _user_version(path: Path) -> int:
    conn = sqlite3.connect(path)
    try:
        version: int = conn.execute("PRAGMA user_version").fetchone()[0]
        return version
    finally:
        conn.close()


def _set_user_version(path: Path, version: int) -> None:
    conn = sqlite3.connect(path)
    try:
        conn.execute(f"PRAGMA user_version = {version}")
        conn.commit()
    finally:
        conn.close()


# Each child opens the file, says "ready" and waits for "go", so that all the children overlap.
_CHILD = """
import sys
from acllm.kv.sqlite import SQLiteKV
kv = SQLiteKV(sys.argv[1])
print("ready", flush=True)
sys.stdin.readline()
for _ in range(int(sys.argv[2])):
    kv.incr("hits")
kv.close()
"""


def test_incr_is_atomic_across_processes(tmp_path: Path) -> None:
    path, procs, each = tmp_path / "shared.db", 4, 300
    src = str(Path(inspect.getfile(SQLiteKV)).resolve().parents[2])  # children import this acllm
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([src, os.environ.get("PYTHONPATH", "")])}
    children = [
        subprocess.Popen(
            [sys.executable, "-c", _CHILD, str(path), str(each)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for _ in range(procs)
    ]
    try:
        for child in children:
            assert child.stdout is not None
            assert child.stdout.readline().strip() == "ready", child.stderr
        for child in children:
            assert child.stdin is not None
            child.stdin.write("go\n")
            child.stdin.flush()
        for child in children:
            _, err = child.communicate(timeout=60)
            assert child.returncode == 0, err
    finally:
        for child in children:
            if child.poll() is None:
                child.kill()
                child.communicate()
    with SQLiteKV(path) as kv:
        assert kv.get("hits") == str(procs * each).encode()


def test_fresh_db_gets_latest_schema(tmp_path: Path) -> None:
    path = tmp_path / "new" / "dir" / "state.db"  # missing parents are created
    SQLiteKV(path).close()
    assert SCHEMA_VERSION >= 1
    assert _user_version(path) == SCHEMA_VERSION


def test_reopen_keeps_schema_and_values(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    with SQLiteKV(path) as kv:
        kv.set("k", b"\x00kept\xff")
        kv.set("gone", b"v", ttl=0.05)
        kv.incr("n", 41)
    with SQLiteKV(path) as kv:
        assert kv.get("k") == b"\x00kept\xff"
        assert kv.incr("n") == 42
    assert _user_version(path) == SCHEMA_VERSION


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    with SQLiteKV(path) as kv:
        kv.set("k", b"v")
    _set_user_version(path, SCHEMA_VERSION + 1)
    with pytest.raises(ServiceError, match="upgrade acllm") as info:
        SQLiteKV(path)
    assert str(path) in str(info.value)
    assert _user_version(path) == SCHEMA_VERSION + 1  # refused, not downgraded


def test_garbage_file_is_a_service_error(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    path.write_bytes(b"this is not a database, just some text " * 200)
    with pytest.raises(ServiceError, match="not a usable SQLite database") as info:
        SQLiteKV(path)
    assert str(path) in str(info.value)
    assert "move the file aside" in str(info.value)


def test_directory_at_path_is_a_service_error(tmp_path: Path) -> None:
    with pytest.raises(ServiceError, match="cannot open"):
        SQLiteKV(tmp_path)


def test_expired_keys_are_purged(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    with SQLiteKV(path) as kv:
        kv.set("short", b"v", ttl=0.05)
        kv.set("long", b"v", ttl=60)
    time.sleep(0.1)
    SQLiteKV(path).close()  # opening sweeps expired rows
    conn = sqlite3.connect(path)
    try:
        keys = [row[0] for row in conn.execute("SELECT key FROM kv ORDER BY key")]
    finally:
        conn.close()
    assert keys == ["long"]


def test_closed_store_raises_and_close_is_idempotent(tmp_path: Path) -> None:
    kv = SQLiteKV(tmp_path / "state.db")
    kv.close()
    kv.close()
    with pytest.raises(ServiceError, match="closed"):
        kv.get("k")


def test_registry_and_runtime_build_it(tmp_path: Path) -> None:
    backend = registry.get("kv", "sqlite")
    assert (backend.kind, backend.name, backend.options) == ("kv", "sqlite", SQLiteOptions)
    runtime = Runtime(Settings(data_dir=tmp_path))
    kv = runtime.kv()
    try:
        assert isinstance(kv, SQLiteKV)
        assert kv.path == tmp_path / "state.db"
        assert runtime.kv() is kv  # built once
        kv.set("k", b"v")
        assert (tmp_path / "state.db").exists()
    finally:
        kv.close()


def test_runtime_honours_path_option(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere" / "kv.db"
    spec = KVSpec.model_validate({"backend": "sqlite", "path": str(target)})
    settings = Settings(data_dir=tmp_path / "data", kv=spec)
    kv = Runtime(settings).kv()
    try:
        assert isinstance(kv, SQLiteKV)
        assert kv.path == target
    finally:
        kv.close()


def test_options_forbid_unknown_keys() -> None:
    with pytest.raises(ValueError):
        SQLiteOptions.model_validate({"pth": "x.db"})


def test_many_connections_opening_one_new_file_at_once_all_succeed(tmp_path: Path) -> None:
    """A fresh file is switched to WAL by whoever comes first; the others used to get "database
    is locked" at once (no busy handler there) instead of waiting."""
    import threading

    from acllm.kv.sqlite import SQLiteKV

    for attempt in range(30):
        path = tmp_path / f"fresh-{attempt}.db"
        start = threading.Barrier(6)
        errors: list[BaseException] = []

        def open_and_write(
            i: int,
            path: Path = path,
            start: threading.Barrier = start,
            errors: list[BaseException] = errors,
        ) -> None:
            start.wait()
            try:
                with SQLiteKV(path) as kv:
                    kv.incr("n")
            except BaseException as exc:  # reported below, with the others
                errors.append(exc)

        threads = [threading.Thread(target=open_and_write, args=(i,)) for i in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []
        with SQLiteKV(path) as kv:
            assert kv.get("n") == b"6"
