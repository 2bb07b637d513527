"""SQLiteIndex: the Index conformance suite plus what only a file-backed index can show."""

from __future__ import annotations

import dataclasses
import os
import signal
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from acllm import registry
from acllm.config import IndexSpec, Settings
from acllm.errors import ServiceError, UserError
from acllm.index.base import Index
from acllm.index.sqlite import SCHEMA_VERSION, SQLiteIndex, SQLiteIndexOptions
from acllm.runtime import Runtime
from conformance.index_suite import DIM, EMBED, IndexConformance, corpus, ids, source


def open_index(path: Path, *, dim: int = DIM, embedder: str = "hash") -> SQLiteIndex:
    return SQLiteIndex(path, name="t", dim=dim, embedder=embedder)


class TestSQLiteIndex(IndexConformance):
    @pytest.fixture
    def index(self, tmp_path: Path) -> Iterator[Index]:
        index = open_index(tmp_path / "t.db")
        yield index
        index.close()


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "idx" / "t.db"


def test_reopen_keeps_data(path: Path) -> None:
    with open_index(path) as index:
        corpus(index)
        version, stats = index.version(), index.stats()
    with open_index(path) as index:
        assert index.version() == version
        assert index.stats()["chunks"] == stats["chunks"] == 8
        assert ids(index.keyword_search("educacion", 2)) == ["es2#0", "es1#0"]


@pytest.mark.parametrize(("dim", "embedder"), [(DIM * 2, "hash"), (DIM, "e5")])
def test_another_embedder_is_refused(path: Path, dim: int, embedder: str) -> None:
    open_index(path).close()
    with pytest.raises(UserError, match="built with embedder 'hash'") as err:
        open_index(path, dim=dim, embedder=embedder)
    assert "drop" in err.value.hint and "re-ingest" in err.value.hint


def test_garbage_file_is_a_service_error(path: Path) -> None:
    path.parent.mkdir(parents=True)
    path.write_bytes(b"this is not a database at all" * 200)
    with pytest.raises(ServiceError, match="not a usable SQLite database"):
        open_index(path)


def test_newer_schema_is_refused(path: Path) -> None:
    open_index(path).close()
    with sqlite3.connect(path) as conn:
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    with pytest.raises(ServiceError, match="newer acllm"):
        open_index(path)


def test_drop_deletes_the_files(path: Path) -> None:
    index = open_index(path)
    corpus(index)
    assert index.stats()["bytes"] > 0
    index.drop()
    assert list(path.parent.iterdir()) == []
    with pytest.raises(ServiceError, match="closed"):
        index.version()


def test_recreated_index_never_repeats_a_version(path: Path) -> None:
    with open_index(path) as index:
        corpus(index)
        old = index.version()
        index.drop()
    with open_index(path) as index:
        index.write([source("a", ["only one"])])
        assert index.version() > old


def test_bad_filters_are_user_errors(path: Path) -> None:
    with open_index(path) as index:
        corpus(index)
        vector = EMBED.embed(["x"])[0]
        with pytest.raises(UserError):
            index.dense_search(vector, 3, {"lang": {"nested": 1}})
        with pytest.raises(UserError):
            index.keyword_search("educacion", 3, {'la"ng': "es"})
        with pytest.raises(UserError, match="dim"):
            index.dense_search(np.zeros(DIM + 1, dtype=np.float32), 3)


def test_odd_keys_and_none_filters(path: Path) -> None:
    with open_index(path) as index:
        odd = dataclasses.replace(source("a", ["one"]), metadata={"it's.odd": 1})
        index.write([odd, source("b", ["two"], flag=None)])
        vector = EMBED.embed(["x"])[0]
        assert ids(index.dense_search(vector, 5, {"it's.odd": 1})) == ["a#0"]
        assert sorted(ids(index.dense_search(vector, 5, {"flag": None}))) == ["a#0", "b#0"]


def test_a_second_reader_sees_new_writes(path: Path) -> None:
    with open_index(path) as writer, open_index(path) as reader:
        corpus(writer)
        vector = EMBED.embed(["ninety nine red balloons"])[0]
        assert reader.dense_search(vector, 1)[0].chunk.id != "new#0"  # matrix now cached
        before = reader.version()
        writer.write([source("new", ["ninety nine red balloons"])], remove=["en1"])
        assert reader.version() > before
        assert reader.dense_search(vector, 1)[0].chunk.id == "new#0"
        assert len(reader.dense_search(vector, 100)) == 7
        assert ids(reader.keyword_search("balloons", 5)) == ["new#0"]


def test_threads_share_one_index(path: Path) -> None:
    errors: list[BaseException] = []
    with open_index(path) as index:
        corpus(index)

        def read() -> None:
            try:
                for _ in range(30):
                    assert index.keyword_search("educacion", 5)
                    assert index.dense_search(EMBED.embed(["policy"])[0], 3)
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=read) for _ in range(4)]
        for thread in threads:
            thread.start()
        for step in range(10):
            index.write([source(f"extra{step}", ["more policy text"])])
        for thread in threads:
            thread.join()
    assert errors == []


# A child process that starts a big write and stalls halfway through it, inside the transaction.
KILLED_WRITER = """
import sys, time
import numpy as np
from acllm.index.base import SourceWrite
from acllm.index.sqlite import SQLiteIndex
from acllm.ingest.document import Chunk

class Stalling(list):
    def __iter__(self):
        for i, item in enumerate(list.__iter__(self)):
            if i == len(self) // 2:
                print("midway", flush=True)
                time.sleep(120)
            yield item

index = SQLiteIndex(sys.argv[1], name="t", dim=int(sys.argv[2]), embedder="hash")
vectors = np.full((200, index.dim), index.dim ** -0.5, dtype=np.float32)
batch = []
for s in range(60):
    chunks = [Chunk(f"big{s}#{i}", f"big{s}", "big", "", f"filler words {s} {i} " * 20)
              for i in range(200)]
    batch.append(SourceWrite(f"big{s}", "h", Stalling(chunks) if s == 59 else chunks, vectors))
index.write(batch, remove=["es1"])
print("committed", flush=True)
"""


def test_a_writer_killed_mid_write_leaves_the_old_index(path: Path) -> None:
    with open_index(path) as index:
        corpus(index)
        before = (index.version(), index.sources(), index.stats()["chunks"])
    child = subprocess.Popen(
        [sys.executable, "-c", KILLED_WRITER, str(path), str(DIM)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        line = child.stdout.readline()
        assert line == "midway\n", child.stderr.read() if child.stderr else ""
        # The uncommitted batch (12k chunks) overflows SQLite's page cache into the WAL.
        assert Path(f"{path}-wal").stat().st_size > 1_000_000
        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=30)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        for pipe in (child.stdout, child.stderr):
            if pipe is not None:
                pipe.close()
    assert child.returncode == -signal.SIGKILL
    with open_index(path) as index:
        assert (index.version(), index.sources(), index.stats()["chunks"]) == before
        assert ids(index.keyword_search("educacion", 2)) == ["es2#0", "es1#0"]
        assert index.keyword_search("filler", 5) == []
        assert len(index.dense_search(EMBED.embed(["x"])[0], 100)) == 8
        index.write([source("after", ["life goes on"])])
        assert ids(index.keyword_search("life", 5)) == ["after#0"]
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        conn.execute("INSERT INTO fts (fts) VALUES ('integrity-check')")  # raises if corrupt
    finally:
        conn.close()


def test_runtime_builds_one_file_per_index(tmp_path: Path) -> None:
    assert registry.get("index", "sqlite").options is SQLiteIndexOptions
    elsewhere = tmp_path / "elsewhere"
    spec = IndexSpec.model_validate({"embedder": "hash", "dir": str(elsewhere)})
    settings = Settings(data_dir=tmp_path / "data", default_embedder="hash", indexes={"b": spec})
    runtime = Runtime(settings)
    try:
        default, placed = runtime.index("a"), runtime.index("b")
        assert isinstance(default, SQLiteIndex) and isinstance(placed, SQLiteIndex)
        assert default.path == tmp_path / "data" / "indexes" / "a.sqlite"
        assert placed.path == elsewhere / "b.sqlite"
        assert (default.embedder, default.dim) == ("hash", runtime.embedder("hash").dim)
        assert runtime.index_names() == ["a", "b"]
    finally:
        runtime.close()
    with pytest.raises(ValueError):
        SQLiteIndexOptions.model_validate({"folder": "x"})


def test_ad_hoc_indexes_are_listed_where_the_defaults_put_them(tmp_path: Path) -> None:
    shared = tmp_path / "shared"  # the defaults' folder holds other SQLite files too
    defaults = IndexSpec.model_validate({"embedder": "hash", "dir": str(shared)})
    settings = Settings(
        data_dir=tmp_path / "data", default_embedder="hash", index_defaults=defaults
    )
    (tmp_path / "data" / "indexes").mkdir(parents=True)
    away = tmp_path / "data" / "indexes" / "elsewhere.sqlite"  # not where the defaults point
    SQLiteIndex(away, name="elsewhere", dim=DIM, embedder="hash").close()
    shared.mkdir()
    with sqlite3.connect(shared / "feedback.sqlite") as other:  # somebody else's database
        other.execute("CREATE TABLE answers (id TEXT)")
    (shared / "notes.sqlite").write_bytes(b"not a database at all")
    bad = shared / "Bad Name.sqlite"  # an index, but under a name index() refuses
    SQLiteIndex(bad, name="Bad Name", dim=DIM, embedder="hash").close()
    before = {p.name: p.read_bytes() for p in shared.iterdir()}
    runtime = Runtime(settings)
    runtime.index("adhoc")
    runtime.close()
    fresh = Runtime(settings)  # found on disk, not because this process opened it
    try:
        assert fresh.index_names() == ["adhoc"]
        assert fresh.index_exists("adhoc")
        assert not any(fresh.index_exists(n) for n in ("elsewhere", "feedback", "notes"))
    finally:
        fresh.close()
    assert {n: (shared / n).read_bytes() for n in before} == before  # read, never written
