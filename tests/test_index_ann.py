"""The SQLite index with its optional faiss HNSW graph (``ann = "hnsw"``, acllm.index.ann).

The conformance suite runs again with the graph on for every size, then: recall against the exact
scan on seeded random vectors (a quality check, no timing), exact scores, filters, the sidecar
file reused, updated and rebuilt, damaged sidecars ignored, and faiss missing.
"""

from __future__ import annotations

import shutil
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from acllm.config import Settings
from acllm.errors import MissingExtraError
from acllm.index.ann import HNSW, MAGIC, HNSWOptions
from acllm.index.base import Hit, Index, SourceWrite
from acllm.index.sqlite import SQLiteIndex, SQLiteIndexOptions, build
from acllm.ingest.document import Chunk
from acllm.runtime import Runtime
from conformance.index_suite import DIM, IndexConformance, corpus, ids

pytest.importorskip("faiss")

ALWAYS = HNSWOptions(min_chunks=0)
N = 5000  # chunks in the random corpus
PER_SOURCE = 100


def open_index(path: Path, ann: HNSWOptions | None = ALWAYS) -> SQLiteIndex:
    return SQLiteIndex(path, name="t", dim=DIM, embedder="hash", ann=ann)


def seen(hits: Sequence[Hit]) -> list[tuple[str, float]]:
    """Ids and scores, to compare searches: equal up to float32 rounding of the dot products."""
    return [(h.chunk.id, round(h.score, 5)) for h in hits]


def graph(index: SQLiteIndex) -> HNSW:
    assert index._ann is not None
    return index._ann


def unit(rng: np.random.Generator, n: int) -> npt.NDArray[np.float32]:
    vectors = rng.standard_normal((n, DIM)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def random_source(s: int, vectors: npt.NDArray[np.float32]) -> SourceWrite:
    """Source ``r<s>``: chunks ``r<s>#<i>`` tagged with group (i % 10) and parity (i % 2)."""
    chunks = [
        Chunk(f"r{s}#{i}", f"r{s}", f"r{s}.txt", "", f"chunk {s} {i}", {"group": i % 10})
        for i in range(len(vectors))
    ]
    return SourceWrite(f"r{s}", f"h{s}", chunks, vectors, {"parity": s % 2, "one": s == 7})


def fill(index: SQLiteIndex, vectors: npt.NDArray[np.float32], first: int = 0) -> None:
    index.write(
        [
            random_source(first + s // PER_SOURCE, vectors[s : s + PER_SOURCE])
            for s in range(0, len(vectors), PER_SOURCE)
        ]
    )


@pytest.fixture(scope="module")
def corpus_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A closed index file of N seeded random unit vectors (no sidecar)."""
    path = tmp_path_factory.mktemp("ann") / "random.sqlite"
    with open_index(path, ann=None) as index:
        fill(index, unit(np.random.default_rng(7), N))
    return path


@pytest.fixture
def path(corpus_file: Path, tmp_path: Path) -> Path:
    """A private copy of the random corpus."""
    return Path(shutil.copy(corpus_file, tmp_path / "random.sqlite"))


QUERIES = unit(np.random.default_rng(11), 100)


class TestSQLiteIndexHNSW(IndexConformance):
    @pytest.fixture
    def index(self, tmp_path: Path) -> Iterator[Index]:
        index = open_index(tmp_path / "t.db")
        yield index
        index.close()


def test_tiny_index_goes_through_the_graph(tmp_path: Path) -> None:
    with open_index(tmp_path / "t.db") as hnsw, open_index(tmp_path / "t.db", ann=None) as exact:
        corpus(hnsw)
        vector = QUERIES[0]
        assert seen(hnsw.dense_search(vector, 3)) == seen(exact.dense_search(vector, 3))
        assert graph(hnsw).counts["builds"] == 1


def test_recall_against_the_exact_scan(path: Path) -> None:
    with open_index(path) as hnsw, open_index(path, ann=None) as exact:
        recall = []
        for query in QUERIES:
            got, want = hnsw.dense_search(query, 10), exact.dense_search(query, 10)
            recall.append(len(set(ids(got)) & set(ids(want))) / 10)
            scores = {h.chunk.id: h.score for h in want}
            for hit in got:  # the same cosine as the scan, and the stored vector
                assert hit.score == pytest.approx(scores.get(hit.chunk.id, hit.score), abs=1e-6)
                assert hit.vector is not None
                assert hit.score == pytest.approx(float(hit.vector @ query), abs=1e-6)
            assert [h.rank for h in got] == list(range(1, 11))
            assert [h.score for h in got] == sorted((h.score for h in got), reverse=True)
        assert graph(hnsw).counts == {"builds": 1, "loads": 0, "appended": 0, "saves": 1}
    assert float(np.mean(recall)) >= 0.95


def spy(index: SQLiteIndex, monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """Records, per dense search, whether the graph answered (True) or the exact scan did."""
    used: list[bool] = []
    real = graph(index).search

    def search(*args: object, **kwargs: object) -> object:
        rows = real(*args, **kwargs)  # type: ignore[arg-type]
        used.append(rows is not None)
        return rows

    monkeypatch.setattr(graph(index), "search", search)
    return used


@pytest.mark.parametrize(
    ("filters", "graph_used"),
    [
        ({"parity": 1}, True),  # half the rows: over-fetch and post-filter
        ({"group": [3, 4], "parity": 0}, None),  # a tenth: the graph, or the scan if too few
        ({"one": True}, False),  # 100 rows: scanned exactly
        ({"group": 99}, False),  # none
    ],
)
def test_filters(
    path: Path,
    monkeypatch: pytest.MonkeyPatch,
    filters: dict[str, object],
    graph_used: bool | None,
) -> None:
    with open_index(path) as hnsw, open_index(path, ann=None) as exact:
        used = spy(hnsw, monkeypatch)
        recall = []
        for query in QUERIES[:30]:
            got, want = (
                hnsw.dense_search(query, 10, filters),
                exact.dense_search(query, 10, filters),
            )
            assert len(got) == len(want)
            assert {c.id for c in hnsw.get(ids(got))} == set(ids(got))
            assert set(ids(got)) <= set(ids(exact.dense_search(query, N, filters)))
            if want:
                recall.append(len(set(ids(got)) & set(ids(want))) / len(want))
        if graph_used is not None:
            assert set(used) == {graph_used}
        assert not recall or float(np.mean(recall)) >= 0.9


def test_sidecar_is_reused_on_reopen(path: Path) -> None:
    sidecar = path.with_name(path.name + ".hnsw")
    with open_index(path) as index:
        first = seen(index.dense_search(QUERIES[0], 10))
        assert graph(index).counts["builds"] == 1
    stamp = sidecar.stat().st_mtime_ns
    with open_index(path) as index:
        assert seen(index.dense_search(QUERIES[0], 10)) == first
        assert graph(index).counts == {"builds": 0, "loads": 1, "appended": 0, "saves": 0}
        assert index.stats()["bytes"] > sidecar.stat().st_size > 0
    assert sidecar.stat().st_mtime_ns == stamp


def test_writes_update_the_graph(path: Path) -> None:
    rng = np.random.default_rng(3)
    with open_index(path) as index:
        index.dense_search(QUERIES[0], 10)
        counts = graph(index).counts
        # An append: the new rows are added to the graph and the sidecar rewritten.
        added = unit(rng, PER_SOURCE)
        fill(index, added, first=1000)
        assert index.dense_search(added[5], 1)[0].chunk.id == "r1000#5"
        assert counts == {"builds": 1, "loads": 0, "appended": PER_SOURCE, "saves": 2}
        # A removal: its nodes become tombstones, never returned.
        index.write(remove=["r1000"])
        assert "r1000#5" not in ids(index.dense_search(added[5], 50))
        # SQLite reuses the deleted tail rowids: new vectors on old rowids get new nodes.
        again = unit(rng, PER_SOURCE)
        fill(index, again, first=2000)
        assert index.dense_search(again[5], 1)[0].chunk.id == "r2000#5"
        assert "r1000#5" not in ids(index.dense_search(added[5], 50))
        assert counts["builds"] == 1 and counts["appended"] == 2 * PER_SOURCE
    with open_index(path) as index:  # the updated sidecar, matched to the file as it is now
        assert index.dense_search(again[5], 1)[0].chunk.id == "r2000#5"
        assert graph(index).counts == {"builds": 0, "loads": 1, "appended": 0, "saves": 0}
        # Removing over a quarter of the rows rebuilds the graph rather than keep the dead.
        index.write(remove=[f"r{s}" for s in range(20)])
        hits = index.dense_search(QUERIES[0], 10)
        assert graph(index).counts["builds"] == 1
        assert all(int(h.chunk.source_id[1:]) >= 20 for h in hits)


def test_another_process_writes_between_searches(path: Path) -> None:
    with open_index(path) as reader, open_index(path, ann=None) as writer:
        reader.dense_search(QUERIES[0], 10)
        added = unit(np.random.default_rng(5), PER_SOURCE)
        fill(writer, added, first=1000)
        assert reader.dense_search(added[9], 1)[0].chunk.id == "r1000#9"
        assert graph(reader).counts["appended"] == PER_SOURCE


def test_small_indexes_keep_the_exact_scan(path: Path) -> None:
    with open_index(path, HNSWOptions(min_chunks=N + 1)) as index:
        assert len(index.dense_search(QUERIES[0], 10)) == 10
        assert graph(index).counts["builds"] == 0
    assert not path.with_name(path.name + ".hnsw").exists()


def damage_truncate(data: bytes) -> bytes:
    return data[: len(data) // 2]


def damage_flip(data: bytes) -> bytes:
    middle = len(data) // 2
    return data[:middle] + bytes([data[middle] ^ 0xFF]) + data[middle + 1 :]


@pytest.mark.parametrize(
    "damage",
    [
        damage_truncate,
        damage_flip,
        lambda data: b"",
        lambda data: b"\x00" * 5000,
        lambda data: data.replace(b'"m": 32', b'"m": 16', 1),  # other settings
        lambda data: data.replace(b'"nodes": 5000', b'"nodes": 9999999999', 1),
        lambda data: MAGIC + b"[1, 2]\n" + data,
    ],
    ids=["truncated", "flipped", "empty", "zeros", "settings", "nodes", "header"],
)
def test_a_damaged_sidecar_is_ignored_and_rebuilt(
    path: Path, damage: Callable[[bytes], bytes], caplog: pytest.LogCaptureFixture
) -> None:
    sidecar = path.with_name(path.name + ".hnsw")
    with open_index(path) as index:
        first = [seen(index.dense_search(q, 10)) for q in QUERIES[:10]]
    sidecar.write_bytes(damage(sidecar.read_bytes()))
    with open_index(path) as index:
        assert [seen(index.dense_search(q, 10)) for q in QUERIES[:10]] == first
        assert graph(index).counts["builds"] == 1
    assert "ignoring the HNSW graph" in caplog.text
    with open_index(path) as index:  # rewritten whole
        index.dense_search(QUERIES[0], 10)
        assert graph(index).counts["loads"] == 1


def test_a_sidecar_from_another_index_never_gives_its_rows(tmp_path: Path) -> None:
    other = tmp_path / "other.sqlite"
    with open_index(other) as index:
        fill(index, unit(np.random.default_rng(1), 1000))
        index.dense_search(QUERIES[0], 10)
    mine = tmp_path / "mine.sqlite"
    with open_index(mine) as index:
        fill(index, unit(np.random.default_rng(2), 1000))
    shutil.copy(other.with_name(other.name + ".hnsw"), mine.with_name(mine.name + ".hnsw"))
    with open_index(mine) as index, open_index(mine, ann=None) as exact:
        assert seen(index.dense_search(QUERIES[1], 10)) == seen(exact.dense_search(QUERIES[1], 10))
        assert graph(index).counts["builds"] == 1  # every node a tombstone: rebuilt


def test_searches_scan_exactly_while_a_graph_is_built(path: Path) -> None:
    with open_index(path) as index, open_index(path, ann=None) as exact:
        with graph(index)._build:  # as if another thread were building
            got = index.dense_search(QUERIES[0], 10)
        assert seen(got) == seen(exact.dense_search(QUERIES[0], 10))
        assert graph(index).counts["builds"] == 0
        index.dense_search(QUERIES[0], 10)
        assert graph(index).counts["builds"] == 1


def test_threads_search_while_another_writes(path: Path) -> None:
    errors: list[BaseException] = []
    vectors = unit(np.random.default_rng(9), 5 * PER_SOURCE)
    with open_index(path) as index:

        def read() -> None:
            try:
                for query in QUERIES[:20]:
                    hits = index.dense_search(query, 10)
                    assert len(hits) == 10
                    assert all(h.vector is not None for h in hits)
                    assert all(abs(h.score - float(h.vector @ query)) < 1e-5 for h in hits)
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=read) for _ in range(3)]
        for thread in threads:
            thread.start()
        for s in range(5):
            fill(index, vectors[s * PER_SOURCE : (s + 1) * PER_SOURCE], first=3000 + s)
        for thread in threads:
            thread.join()
        assert index.dense_search(vectors[-1], 1)[0].chunk.id == "r3004#99"
    assert errors == []


def test_drop_deletes_the_sidecar(path: Path) -> None:
    index = open_index(path)
    index.dense_search(QUERIES[0], 10)
    index.drop()
    assert list(path.parent.iterdir()) == []


def test_missing_faiss_is_a_missing_extra(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "faiss", None)  # import faiss now raises ImportError
    with pytest.raises(MissingExtraError, match="faiss") as err:
        open_index(tmp_path / "t.db")
    assert "acllm[faiss]" in err.value.hint
    runtime = Runtime(Settings(data_dir=tmp_path, default_embedder="hash"))
    try:
        opener = build(SQLiteIndexOptions.model_validate({"ann": "hnsw"}), runtime)
        with pytest.raises(MissingExtraError):
            opener("t", DIM, "hash")
        with build(SQLiteIndexOptions(), runtime)("t", DIM, "hash") as exact:  # needs no faiss
            corpus(exact)
            assert exact.dense_search(QUERIES[0], 3)
    finally:
        runtime.close()


def test_options() -> None:
    options = SQLiteIndexOptions()
    assert (options.ann, options.ann_min_chunks, options.hnsw()) == ("exact", 50_000, None)
    hnsw = SQLiteIndexOptions.model_validate(
        {"ann": "hnsw", "ann_min_chunks": 0, "hnsw_m": 16, "hnsw_ef_search": 64}
    ).hnsw()
    assert hnsw == HNSWOptions(m=16, ef_construction=64, ef_search=64, min_chunks=0)
    for bad in [{"ann": "ivf"}, {"hnsw_m": 1}, {"ann_min_chunks": -1}, {"hnsw_ef_search": 0}]:
        with pytest.raises(ValueError):
            SQLiteIndexOptions.model_validate(bad)
