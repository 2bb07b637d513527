"""CachedEmbedder: hits skip the model, entries are separated by model and by kind."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import pytest

from acllm.embed.base import Embedder, EmbedKind, Vectors
from acllm.embed.cache import CachedEmbedder
from acllm.embed.hash import HashEmbedder
from acllm.errors import ServiceError

DIM = 32


class Counting:
    """HashEmbedder that records every call; ``query`` texts get a different vector on purpose."""

    name = "counting"
    dim = DIM

    def __init__(self) -> None:
        self.calls: list[tuple[list[str], EmbedKind]] = []
        self._inner = HashEmbedder(dim=DIM)

    def embed(self, texts: Sequence[str], kind: EmbedKind = "passage") -> Vectors:
        self.calls.append((list(texts), kind))
        prefix = "query: " if kind == "query" else "passage: "
        return self._inner.embed([prefix + t for t in texts])

    @property
    def texts_embedded(self) -> int:
        return sum(len(texts) for texts, _ in self.calls)


@pytest.fixture
def inner() -> Counting:
    return Counting()


@pytest.fixture
def cached(inner: Counting, tmp_path: Path) -> Iterator[CachedEmbedder]:
    with CachedEmbedder(inner, tmp_path / "cache.db", model_id="counting@abc") as cached:
        yield cached


def test_is_an_embedder_with_the_inner_identity(cached: CachedEmbedder) -> None:
    assert isinstance(cached, Embedder)
    assert (cached.name, cached.dim) == ("counting", DIM)


def test_hits_skip_the_inner_embedder(cached: CachedEmbedder, inner: Counting) -> None:
    first = cached.embed(["alpha", "beta"])
    assert inner.calls == [(["alpha", "beta"], "passage")]
    again = cached.embed(["beta", "alpha"])
    assert len(inner.calls) == 1
    assert np.array_equal(again, first[::-1])
    assert again.dtype == np.float32 and again.shape == (2, DIM)
    assert (cached.hits, cached.misses) == (2, 2)


def test_misses_go_in_one_call_without_repeats(cached: CachedEmbedder, inner: Counting) -> None:
    cached.embed(["a1"])
    out = cached.embed(["b2", "a1", "c3", "b2", "d4"])
    assert inner.calls[1] == (["b2", "c3", "d4"], "passage")
    assert np.array_equal(out[0], out[3])
    assert np.allclose(out, inner.embed(["b2", "a1", "c3", "b2", "d4"]))
    assert len(cached) == 4


def test_vectors_match_the_inner_embedder(cached: CachedEmbedder, inner: Counting) -> None:
    texts = ["Educación pública", "", "emoji 🙂 and ñ", "x" * 5000]
    assert np.allclose(cached.embed(texts), inner.embed(texts))
    assert np.allclose(cached.embed(texts), inner.embed(texts))  # now from the file


def test_empty_batch(cached: CachedEmbedder, inner: Counting) -> None:
    assert cached.embed([]).shape == (0, DIM)
    assert inner.calls == []


def test_query_and_passage_are_separate(cached: CachedEmbedder, inner: Counting) -> None:
    passage = cached.embed(["same text"], kind="passage")
    query = cached.embed(["same text"], kind="query")
    assert inner.texts_embedded == 2
    assert not np.allclose(passage, query)
    assert np.array_equal(cached.embed(["same text"], kind="query"), query)
    assert inner.texts_embedded == 2


def test_model_id_separates_entries(inner: Counting, tmp_path: Path) -> None:
    path = tmp_path / "shared.db"
    with CachedEmbedder(inner, path, model_id="m@1") as one:
        one.embed(["text"])
    with CachedEmbedder(inner, path, model_id="m@2") as two:
        two.embed(["text"])
        assert inner.texts_embedded == 2
        assert len(two) == 1
    with CachedEmbedder(inner, path, model_id="m@1") as again:
        again.embed(["text"])
        assert inner.texts_embedded == 2


def test_survives_reopening(inner: Counting, tmp_path: Path) -> None:
    with CachedEmbedder(inner, tmp_path / "c.db", model_id="m") as first:
        vectors = first.embed(["keep me"])
    with CachedEmbedder(inner, tmp_path / "c.db", model_id="m") as second:
        assert np.array_equal(second.embed(["keep me"]), vectors)
    assert inner.texts_embedded == 1


def test_a_stored_vector_of_another_dim_is_a_miss(tmp_path: Path) -> None:
    path = tmp_path / "c.db"
    with CachedEmbedder(HashEmbedder(dim=16), path, model_id="same") as small:
        small.embed(["text"])
    with CachedEmbedder(HashEmbedder(dim=DIM), path, model_id="same") as big:
        assert big.embed(["text"]).shape == (1, DIM)


class Broken(Counting):
    def embed(self, texts: Sequence[str], kind: EmbedKind = "passage") -> Vectors:
        return np.zeros((len(texts) + 1, DIM), dtype=np.float32)


def test_an_inner_embedder_returning_the_wrong_shape(tmp_path: Path) -> None:
    with (
        CachedEmbedder(Broken(), tmp_path / "c.db", model_id="m") as cached,
        pytest.raises(ServiceError, match="shape"),
    ):
        cached.embed(["a"])


def test_garbage_file_and_closed_cache(inner: Counting, tmp_path: Path) -> None:
    path = tmp_path / "c.db"
    path.write_bytes(b"not a database" * 300)
    with pytest.raises(ServiceError, match="delete the file"):
        CachedEmbedder(inner, path, model_id="m")
    cached = CachedEmbedder(inner, tmp_path / "ok.db", model_id="m")
    cached.close()
    cached.close()
    with pytest.raises(ServiceError, match="closed"):
        cached.embed(["a"])


def test_threads_share_one_cache(cached: CachedEmbedder) -> None:
    errors: list[BaseException] = []

    def work(offset: int) -> None:
        try:
            for i in range(40):
                texts = [f"text {(i + offset) % 25}", f"other {i % 7}"]
                assert cached.embed(texts).shape == (2, DIM)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len(cached) == 32


CHILD = """
import sys
from acllm.embed.cache import CachedEmbedder
from acllm.embed.hash import HashEmbedder
with CachedEmbedder(HashEmbedder(dim=32), sys.argv[1], model_id="m") as cached:
    for i in range(50):
        cached.embed([f"text {i}", f"child {sys.argv[2]} {i}"])
"""


def test_processes_share_one_file(tmp_path: Path) -> None:
    path = tmp_path / "c.db"
    children = [
        subprocess.Popen([sys.executable, "-c", CHILD, str(path), str(n)], stderr=subprocess.PIPE)
        for n in range(3)
    ]
    for child in children:
        _, err = child.communicate(timeout=120)
        assert child.returncode == 0, err.decode()
    conn = sqlite3.connect(path)
    try:  # "text i" is shared by all children, "child n i" is not
        assert conn.execute("SELECT count(*) FROM vectors").fetchone()[0] == 50 + 3 * 50
    finally:
        conn.close()
