"""Retrieval: fusion, the hybrid guard, filters, MMR and the reranker seam."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from acllm.embed.base import EmbedKind, Vectors
from acllm.errors import UserError
from acllm.index.base import Filters, Hit
from acllm.index.retrieval import (
    FusionWeights,
    NoRerank,
    Retriever,
    TermOverlapReranker,
    coverage,
    keyword_weight,
    mmr,
    rrf,
    search,
)
from acllm.index.sqlite import SQLiteIndex
from acllm.index.text import fold, stem, terms
from acllm.ingest.document import Chunk
from conformance.index_suite import DIM, EMBED, ids, source

PLAIN = FusionWeights(coverage_floor=0.0, coverage_full=0.0)
QV = EMBED.embed(["some query"])[0]


def hit(cid: str, text: str = "", score: float = 1.0, rank: int = 1, vector: Any = None) -> Hit:
    return Hit(Chunk(cid, "s", "s.txt", "", text or cid), score, rank, vector)


def run(*cids: str, text: dict[str, str] | None = None) -> list[Hit]:
    text = text or {}
    return [hit(c, text.get(c, ""), 1.0 / i, i) for i, c in enumerate(cids, 1)]


class CountingEmbedder:
    name = "hash"
    dim = DIM

    def __init__(self) -> None:
        self.calls: list[tuple[list[str], EmbedKind]] = []

    def embed(self, texts: Sequence[str], kind: EmbedKind = "passage") -> Vectors:
        self.calls.append((list(texts), kind))
        return EMBED.embed(texts, kind)


class FakeIndex:
    """Canned keyword and dense runs; records what the searches were asked."""

    name = "fake"
    dim = DIM

    def __init__(self, keyword: list[Hit], dense: list[Hit]) -> None:
        self.keyword, self.dense = keyword, dense
        self.asked: list[tuple[str, int, Filters | None]] = []

    def keyword_search(self, query: str, k: int, filters: Filters | None = None) -> list[Hit]:
        self.asked.append(("keyword", k, filters))
        return self.keyword[:k]

    def dense_search(
        self, vector: npt.NDArray[np.float32], k: int, filters: Filters | None = None
    ) -> list[Hit]:
        self.asked.append(("dense", k, filters))
        return self.dense[:k]


@pytest.fixture
def index(tmp_path: Path) -> Iterator[SQLiteIndex]:
    with SQLiteIndex(tmp_path / "r.db", name="r", dim=DIM, embedder="hash") as index:
        yield index


# -- fusion -------------------------------------------------------------------------------------


def test_rrf_scores_by_hand() -> None:
    fused = rrf([run("a", "b", "c"), run("c", "d")], [1.0, 1.0], k_rrf=60)
    assert ids(fused) == ["c", "a", "b", "d"]  # b and d tie at 1/62: b was seen first
    expected = [1 / 63 + 1 / 61, 1 / 61, 1 / 62, 1 / 62]
    assert [h.score for h in fused] == pytest.approx(expected)


def test_rrf_weights_and_k() -> None:
    fused = rrf([run("a", "b"), run("b", "a")], [2.0, 1.0], k_rrf=1)
    assert ids(fused) == ["a", "b"]
    assert [h.score for h in fused] == pytest.approx([2 / 2 + 1 / 3, 2 / 3 + 1 / 2])
    assert ids(rrf([run("a"), run("b")], [0.0, 1.0])) == ["b", "a"]


def test_rrf_keeps_a_vector_from_any_run() -> None:
    vector = np.ones(3, dtype=np.float32)
    fused = rrf([run("a"), [hit("a", vector=vector)]], [1.0, 1.0])
    assert fused[0].vector is vector


def test_coverage_counts_distinct_query_terms() -> None:
    wanted = set(terms("return policy for refunds"))
    assert coverage(wanted, "Our refund POLICY") == pytest.approx(2 / 3)
    assert coverage(wanted, "nothing related") == 0.0
    assert coverage(set(), "anything") == 0.0


# 5 of 5 terms: full weight; 2 of 5 = 0.4, half-way up the 0.2 .. 0.6 ramp; 1 of 5: the floor.
@pytest.mark.parametrize(
    ("text", "expected"),
    [("alpha bravo charlie delta echo", 1.0), ("alpha bravo", 0.5), ("alpha", 0.0), ("", 0.0)],
)
def test_keyword_weight_ramps_with_coverage(text: str, expected: float) -> None:
    weights = FusionWeights(keyword=1.0, coverage_floor=0.2, coverage_full=0.6)
    hits = [hit("x", "unrelated"), hit("y", text or "zzz")]
    query = "alpha bravo charlie delta echo"
    assert keyword_weight(query, hits, weights) == pytest.approx(expected)
    assert keyword_weight(query, [], weights) == 0.0
    assert PLAIN.keyword == keyword_weight(query, hits, PLAIN)


def test_keyword_evidence_only_from_the_top_hits() -> None:
    hits = [hit("x", "nothing"), hit("y", "nothing"), hit("z", "alpha bravo")]
    assert keyword_weight("alpha bravo", hits, FusionWeights(evidence_depth=2)) == 0.0
    assert keyword_weight("alpha bravo", hits, FusionWeights(evidence_depth=3)) == 1.0


def test_hybrid_guard_ignores_a_keyword_run_of_stray_matches() -> None:
    # A Spanish question over English text: only "2019" matches, in unrelated chunks.
    query = "¿cuántos empleados contrató la empresa en 2019?"
    text = {"k1": "Budget for 2019 events", "k2": "2019 holiday calendar"}
    fake = FakeIndex(keyword=run("k1", "k2", text=text), dense=run("d1", "d2", "d3"))
    assert ids(search(fake, query, k=3, query_vector=QV)) == ["d1", "d2", "d3"]
    plain = search(fake, query, k=3, query_vector=QV, weights=PLAIN)
    assert ids(plain) == ["d1", "k1", "d2"]  # what plain RRF does: junk at rank 2


def test_hybrid_guard_keeps_a_keyword_run_that_matches() -> None:
    query = "employees hired 2019"
    text = {"k1": "In 2019 the company hired 40 employees"}
    fake = FakeIndex(keyword=run("k1", text=text), dense=run("d1", "k1", "d3"))
    fused = search(fake, query, k=3, query_vector=QV)
    assert ids(fused) == ["k1", "d1", "d3"]
    assert [h.rank for h in fused] == [1, 2, 3]


def test_search_modes_use_the_right_runs(index: SQLiteIndex) -> None:
    index.write([source("a", ["solar panel installation", "wind turbines offshore"])])
    embedder = CountingEmbedder()
    assert ids(search(index, "wind", mode="keyword", k=1)) == ["a#1"]
    assert embedder.calls == []
    assert ids(search(index, "solar panel", embedder=embedder, mode="dense", k=1)) == ["a#0"]
    assert embedder.calls == [(["solar panel"], "query")]
    vector = EMBED.embed(["wind turbines"])[0]
    assert ids(search(index, "wind", embedder=embedder, k=1, query_vector=vector)) == ["a#1"]
    assert len(embedder.calls) == 1  # the given vector was used


def test_filters_and_depth_pass_through() -> None:
    fake = FakeIndex(keyword=run("a"), dense=run("a"))
    search(fake, "a", k=2, filters={"lang": "es"}, candidates=30, query_vector=QV)
    assert fake.asked == [("keyword", 30, {"lang": "es"}), ("dense", 30, {"lang": "es"})]
    fake.asked.clear()
    search(fake, "a", k=2, mode="keyword", filters={"n": [1, 2]})
    assert fake.asked == [("keyword", 2, {"n": [1, 2]})]  # nothing to fuse: only k needed


def test_bad_arguments() -> None:
    fake = FakeIndex(keyword=[], dense=[])
    with pytest.raises(UserError, match="mode"):
        search(fake, "a", mode="fuzzy")  # type: ignore[arg-type]
    with pytest.raises(UserError, match="embedder"):
        search(fake, "a", mode="dense")
    with pytest.raises(UserError, match="mmr_lambda"):
        search(fake, "a", mode="keyword", mmr_lambda=1.5)
    assert search(fake, "a", k=0) == []


# -- MMR and reranking ----------------------------------------------------------------------------

DUPLICATES = [
    "solar panel installation guide for the roof",
    "solar panel installation guide for your roof",
    "solar panel installation guide for a roof",
    "solar panel prices and savings explained",
]


def test_mmr_skips_near_duplicates(index: SQLiteIndex) -> None:
    index.write([source("a", DUPLICATES)])
    embedder = EMBED
    query = "solar panel installation guide prices"
    plain = search(index, query, embedder=embedder, k=2, mode="dense")
    assert set(ids(plain)) <= {"a#0", "a#1", "a#2"}
    diverse = search(index, query, embedder=embedder, k=2, mode="dense", mmr_lambda=0.5)
    assert ids(diverse)[0] == ids(plain)[0] and ids(diverse)[1] == "a#3"
    # lambda 1 is pure relevance: the plain order comes back.
    assert ids(search(index, query, embedder=embedder, k=2, mode="dense", mmr_lambda=1.0)) == (
        ids(plain)
    )


def test_mmr_on_keyword_hits_reads_stored_vectors(index: SQLiteIndex) -> None:
    index.write([source("a", DUPLICATES)])
    diverse = search(index, "solar installation prices", mode="keyword", k=2, mmr_lambda=0.3)
    assert "a#3" in ids(diverse)


def test_mmr_embeds_chunks_the_index_cannot_supply() -> None:
    text = {"a": DUPLICATES[1], "b": DUPLICATES[2], "c": DUPLICATES[3]}
    fake = FakeIndex(keyword=run("a", "b", "c", text=text), dense=[])
    embedder = CountingEmbedder()
    got = search(fake, "solar", embedder=embedder, mode="keyword", k=2, mmr_lambda=0.3)
    assert ids(got) == ["a", "c"]
    assert embedder.calls == [(DUPLICATES[1:], "passage")]
    with pytest.raises(UserError, match="MMR"):
        search(fake, "solar", mode="keyword", k=2, mmr_lambda=0.3)


def test_mmr_function_directly() -> None:
    vectors = np.array([[1, 0], [1, 0], [0, 1]], dtype=np.float32)
    hits = [hit("a", score=1.0), hit("b", score=0.9), hit("c", score=0.5)]
    assert ids(mmr(hits, vectors, 2, 0.5)) == ["a", "c"]
    assert ids(mmr(hits, vectors, 5, 1.0)) == ["a", "b", "c"]


class Reverser:
    def __init__(self) -> None:
        self.seen: list[tuple[str, list[str]]] = []

    def rerank(self, query: str, hits: Sequence[Hit]) -> list[Hit]:
        self.seen.append((query, ids(hits)))
        return list(reversed(hits))


def test_reranker_seam_sees_all_candidates() -> None:
    fake = FakeIndex(keyword=run("a", "b", "c", "d"), dense=[])
    reranker = Reverser()
    got = search(fake, "q", mode="keyword", k=2, reranker=reranker, candidates=4)
    assert reranker.seen == [("q", ["a", "b", "c", "d"])]
    assert ids(got) == ["d", "c"] and [h.rank for h in got] == [1, 2]


def test_no_rerank_keeps_order() -> None:
    hits = run("a", "b")
    assert NoRerank().rerank("q", hits) == hits


def test_term_overlap_reranker_promotes_full_matches() -> None:
    text = {"a": "refund", "b": "policy", "c": "refund policy details"}
    hits = run("a", "b", "c", text=text)
    assert ids(TermOverlapReranker(weight=0.8).rerank("refund policy", hits)) == ["c", "a", "b"]
    assert ids(TermOverlapReranker(weight=0.0).rerank("refund policy", hits)) == ["a", "b", "c"]


def test_retriever_bundles_defaults(index: SQLiteIndex) -> None:
    index.write([source("a", DUPLICATES, lang="en"), source("b", ["solar"], lang="es")])
    retriever = Retriever(index, EMBED, k=3, mode="dense")
    assert len(retriever.search("solar panel")) == 3
    assert ids(retriever.search("solar panel", k=1, filters={"lang": "es"})) == ["b#0"]
    assert isinstance(retriever.weights, FusionWeights)


# -- shared keyword terms -------------------------------------------------------------------------


def test_fold_strips_accents_and_case() -> None:
    assert fold("EDUCACIÓN Pública, niño, Ünïcödé ﬁne") == "educacion publica, nino, unicode fine"


def test_terms_drop_stopwords_and_single_letters_but_keep_digits() -> None:
    assert terms("La política de la empresa y el año 5 a b") == ["politic", "empres", "ano", "5"]
    assert terms("") == [] and terms("the of y de") == []
    assert terms('"AND" NEAR(x) foo_bar C++ -1:') == ["near", "foo", "bar", "1"]


PLURALS = "libro libros|ciudad ciudades|educación EDUCACIONES|study studies|box boxes|case cases"


@pytest.mark.parametrize(
    "pair", [*PLURALS.split("|"), "niño niñas", "called call", "increasing increase"]
)
def test_light_stemming_meets_plurals(pair: str) -> None:
    a, b = pair.split()
    assert terms(a) == terms(b)


def test_stemming_keeps_codes_and_short_words() -> None:
    kept = ["iphone15", "gas", "bus", "status", "process", "abc"]
    assert [stem(w) for w in kept] == kept
    assert terms("educaciones", stemmed=False) == ["educaciones"]
