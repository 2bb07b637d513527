"""The Index protocol every backend must keep (see acllm.index.base).

Subclass ``IndexConformance`` in a ``Test*`` class and override the ``index`` fixture to yield a
fresh, empty index of dim ``DIM`` built for embedder ``"hash"`` (and close or drop it afterwards).
Only the protocol is tested, never a backend's internals, so the PostgreSQL backend runs the very
same tests. Vectors come from ``HashEmbedder(dim=DIM)``: texts sharing words land close together.

Contract details pinned here: filters see the source's metadata overlaid with the chunk's own;
``get`` returns chunks as written, in the order asked, leaving unknown ids out; keyword search uses
``acllm.index.text.terms`` so it is accent-, case- and plural-insensitive.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import pytest

from acllm.embed.hash import HashEmbedder
from acllm.errors import UserError
from acllm.index.base import Hit, Index, SourceWrite
from acllm.ingest.document import Chunk

DIM = 64
EMBED = HashEmbedder(dim=DIM)

SPANISH = {
    "es1": ["La Educación pública en España mejora cada año.", "El presupuesto de sanidad."],
    "es2": ["EDUCACIÓN SUPERIOR: universidades y becas.", "Recetas de cocina mediterránea."],
}
ENGLISH = {
    "en1": ["Quarterly revenue grew by ten percent.", "The office opens at nine."],
    "en2": ["Return policy: refunds within thirty days.", "Shipping is free over fifty euros."],
}
ALL = {**SPANISH, **ENGLISH}


def source(
    source_id: str, texts: Sequence[str], *, content_hash: str = "", **metadata: Any
) -> SourceWrite:
    """One source of chunks ``<source_id>#<i>``, each tagged with its position ``n``."""
    chunks = [
        Chunk(f"{source_id}#{i}", source_id, f"{source_id}.txt", f"part {i}", text, {"n": i})
        for i, text in enumerate(texts)
    ]
    vectors = EMBED.embed(list(texts)) if texts else np.zeros((0, DIM), dtype=np.float32)
    return SourceWrite(source_id, content_hash or f"h-{source_id}", chunks, vectors, metadata)


def corpus(index: Index) -> None:
    lang = {sid: ("es" if sid in SPANISH else "en") for sid in ALL}
    index.write([source(sid, texts, lang=lang[sid]) for sid, texts in ALL.items()])


def ids(hits: Sequence[Hit]) -> list[str]:
    return [h.chunk.id for h in hits]


def snapshot(index: Index) -> tuple[object, ...]:
    """Everything observable through the protocol, to compare before and after a failed write."""
    all_ids = [f"{sid}#{i}" for sid in [*ALL, "new"] for i in range(3)]
    return (
        index.version(),
        index.sources(),
        index.get(all_ids),
        ids(index.keyword_search("educacion revenue refunds", 20)),
        ids(index.dense_search(EMBED.embed(["policy"])[0], 20)),
    )


class IndexConformance:
    @pytest.fixture
    def index(self) -> Iterator[Index]:
        raise NotImplementedError("subclasses yield a fresh, empty index of dim DIM for 'hash'")

    def test_is_an_index(self, index: Index) -> None:
        assert isinstance(index, Index)
        assert index.dim == DIM

    def test_empty_index(self, index: Index) -> None:
        assert index.sources() == {}
        assert index.keyword_search("anything", 5) == []
        assert index.dense_search(EMBED.embed(["anything"])[0], 5) == []
        assert index.get(["nope"]) == []
        assert index.stats()["chunks"] == 0

    def test_write_and_read_back(self, index: Index) -> None:
        written = source("a", ["first text", "second text"], team="x")
        index.write([written])
        assert index.get(["a#1", "a#0"]) == [written.chunks[1], written.chunks[0]]
        got = index.get(["a#0"])[0]
        assert (got.source, got.location, got.metadata) == ("a.txt", "part 0", {"n": 0})

    def test_get_skips_unknown_ids(self, index: Index) -> None:
        corpus(index)
        assert [c.id for c in index.get(["en1#0", "missing", "es1#1"])] == ["en1#0", "es1#1"]

    def test_sources_hold_content_hashes(self, index: Index) -> None:
        index.write([source("a", ["x y"], content_hash="111"), source("b", ["z w"])])
        assert index.sources() == {"a": "111", "b": "h-b"}
        index.write([source("a", ["changed"], content_hash="222")])
        assert index.sources() == {"a": "222", "b": "h-b"}

    def test_replacing_a_source_drops_its_old_chunks(self, index: Index) -> None:
        index.write([source("a", ["zebra one", "zebra two", "zebra three"]), source("b", ["ox"])])
        index.write([source("a", ["giraffe only"])])
        assert [c.id for c in index.get(["a#0", "a#1", "a#2"])] == ["a#0"]
        assert index.get(["a#0"])[0].text == "giraffe only"
        assert index.keyword_search("zebra", 10) == []
        assert ids(index.keyword_search("giraffe", 10)) == ["a#0"]
        assert "a#1" not in ids(index.dense_search(EMBED.embed(["zebra two"])[0], 10))
        assert index.stats()["chunks"] == 2

    def test_remove_and_replace_in_one_write(self, index: Index) -> None:
        corpus(index)
        index.write([source("new", ["brand new text"])], remove=["es1", "en2"])
        assert set(index.sources()) == {"es2", "en1", "new"}
        assert index.get(["es1#0", "en2#1"]) == []
        assert "es1#0" not in ids(index.keyword_search("educacion", 10))
        assert index.stats()["chunks"] == 5

    def test_removing_an_unknown_source_is_harmless(self, index: Index) -> None:
        corpus(index)
        index.write(remove=["never-there"])
        assert set(index.sources()) == set(ALL)

    def test_a_source_with_no_chunks_is_recorded(self, index: Index) -> None:
        index.write([source("empty", [])])
        assert index.sources() == {"empty": "h-empty"}

    def test_version_grows_with_every_write(self, index: Index) -> None:
        seen = [index.version()]
        for step in range(3):
            index.write([source(f"s{step}", [f"text {step}"])])
            seen.append(index.version())
        index.write(remove=["s0"])
        seen.append(index.version())
        assert seen == sorted(seen) and len(set(seen)) == len(seen)

    def test_keyword_search_folds_accents_and_case(self, index: Index) -> None:
        corpus(index)
        for query in ["educacion", "Educación", "EDUCACIÓN", "educación pública"]:
            hits = index.keyword_search(query, 10)
            assert set(ids(hits[:2])) == {"es1#0", "es2#0"}, query

    def test_keyword_search_matches_plurals(self, index: Index) -> None:
        corpus(index)
        assert ids(index.keyword_search("universidad", 5)) == ["es2#0"]
        assert ids(index.keyword_search("refund", 5)) == ["en2#0"]

    def test_keyword_search_ranks_and_numbers_hits(self, index: Index) -> None:
        corpus(index)
        hits = index.keyword_search("refunds policy", 10)
        assert ids(hits)[0] == "en2#0"
        assert [h.rank for h in hits] == list(range(1, len(hits) + 1))
        scores = [h.score for h in hits]
        assert scores == sorted(scores, reverse=True)
        assert len(index.keyword_search("educacion revenue refunds office", 2)) == 2

    def test_keyword_search_matches_any_term(self, index: Index) -> None:
        corpus(index)
        assert set(ids(index.keyword_search("revenue xylophone shipping", 10))) == {
            "en1#0",
            "en2#1",
        }

    @pytest.mark.parametrize(
        "query",
        [
            '"educacion',
            'educacion"',
            "educa*",
            "*",
            "educacion AND",
            "OR educacion NOT",
            "NEAR(educacion revenue",
            "NEAR(",
            "-educacion",
            "terms:educacion",
            "col:",
            "(educacion",
            "^educacion",
            "a + b ~ {c} [d] 'e' \\ f; DROP TABLE chunks; --",
            "",
            "   ",
            "¿¡!?",
        ],
    )
    def test_query_syntax_never_errors(self, index: Index, query: str) -> None:
        corpus(index)
        hits = index.keyword_search(query, 5)
        assert all(isinstance(h, Hit) for h in hits)
        if "educacion" in query:
            assert {"es1#0", "es2#0"} <= set(ids(hits))

    def test_dense_search_ranks_identical_text_first(self, index: Index) -> None:
        corpus(index)
        for sid, texts in ALL.items():
            for i, text in enumerate(texts):
                hits = index.dense_search(EMBED.embed([text])[0], 3)
                assert hits[0].chunk.id == f"{sid}#{i}"
                assert hits[0].score == pytest.approx(1.0, abs=1e-4)
                assert [h.rank for h in hits] == [1, 2, 3]
                assert hits[0].score >= hits[1].score >= hits[2].score

    def test_dense_search_returns_vectors(self, index: Index) -> None:
        corpus(index)
        hit = index.dense_search(EMBED.embed(["return policy"])[0], 1)[0]
        assert hit.vector is not None
        assert np.allclose(hit.vector, EMBED.embed([hit.chunk.text])[0], atol=1e-5)

    def test_dense_search_k_larger_than_the_index(self, index: Index) -> None:
        corpus(index)
        assert len(index.dense_search(EMBED.embed(["x"])[0], 100)) == 8

    def test_filters_on_source_metadata(self, index: Index) -> None:
        corpus(index)
        query = "educacion revenue refunds universidades office"
        hits = index.keyword_search(query, 20, {"lang": "en"})
        assert hits and all(h.chunk.source_id.startswith("en") for h in hits)
        dense = index.dense_search(EMBED.embed([query])[0], 20, {"lang": "es"})
        assert sorted(ids(dense)) == ["es1#0", "es1#1", "es2#0", "es2#1"]

    def test_filters_on_chunk_metadata_and_lists(self, index: Index) -> None:
        corpus(index)
        vector = EMBED.embed(["anything at all"])[0]
        assert sorted(ids(index.dense_search(vector, 20, {"n": 1, "lang": "es"}))) == [
            "es1#1",
            "es2#1",
        ]
        assert len(index.dense_search(vector, 20, {"lang": ["es", "en"]})) == 8
        assert index.dense_search(vector, 20, {"lang": "fr"}) == []
        assert index.dense_search(vector, 20, {"lang": []}) == []
        hits = index.keyword_search("educacion refunds", 20, {"lang": ["en", "fr"]})
        assert ids(hits) == ["en2#0"]
        assert index.keyword_search("educacion", 20, {"missing-key": "x"}) == []

    def test_failed_write_changes_nothing(self, index: Index) -> None:
        corpus(index)
        before = snapshot(index)
        bad = source("en2", ["will not fit"])
        bad = SourceWrite("en2", "h-bad", bad.chunks, np.zeros((1, DIM + 1), dtype=np.float32))
        good = source("es1", ["replacement that must not land"])
        with pytest.raises(UserError):
            index.write([good, source("new", ["new source"]), bad], remove=["en1"])
        assert snapshot(index) == before

    @pytest.mark.parametrize("bad", [{"when": object()}, {"score": float("nan")}])
    def test_metadata_must_be_json(self, index: Index, bad: dict[str, Any]) -> None:
        corpus(index)
        before = snapshot(index)
        with pytest.raises(UserError):
            index.write([source("new", ["fine text"]), source("en1", ["x"], **bad)])
        assert snapshot(index) == before

    def test_stats_count(self, index: Index) -> None:
        corpus(index)
        stats = index.stats()
        assert (stats["sources"], stats["chunks"], stats["dim"]) == (4, 8, DIM)
        assert stats["embedder"] == "hash"
        assert stats["version"] == index.version()

    def test_drop_then_close_is_safe(self, index: Index) -> None:
        corpus(index)
        index.drop()
        index.close()
