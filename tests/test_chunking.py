"""Chunking: budgets, overlap, table rows with their header, stable ids, never an empty chunk."""

from __future__ import annotations

import hashlib
import itertools
import re

import pytest

from acllm.errors import UserError
from acllm.ingest.chunking import approx_tokens, chunk_documents, chunk_id
from acllm.ingest.document import Document


def words(text: str) -> int:
    return len(text.split())


def text_doc(text: str, location: str = "page 1", source_id: str = "/data/a.pdf") -> Document:
    return Document(text, source_id, "a.pdf", location, "text", metadata={"format": "pdf"})


def row(n: int, header: tuple[str, ...], values: list[str], table: int = 1) -> Document:
    text = "; ".join(f"{h}: {v}" for h, v in zip(header, values, strict=True))
    meta = {"format": "csv", "row": n, "table": table}
    return Document(text, "/data/t.csv", "t.csv", f"row {n}", "table", header, meta)


SENTENCES = [f"Frase número {i} habla del producto {i} y de su precio." for i in range(40)]
LONG = "\n\n".join(" ".join(SENTENCES[i : i + 4]) for i in range(0, 40, 4))


def test_short_document_is_one_chunk_with_stable_id() -> None:
    doc = text_doc("Hola mundo.")
    [chunk] = chunk_documents([doc])
    assert chunk.text == "Hola mundo."
    assert (chunk.source_id, chunk.source, chunk.location) == ("/data/a.pdf", "a.pdf", "page 1")
    expected = hashlib.sha256(b"/data/a.pdf\x00page 1\x000").hexdigest()[:32]
    assert chunk.id == expected == chunk_id("/data/a.pdf", "page 1", 0)
    assert chunk.metadata == {"format": "pdf", "kind": "text"}
    assert [c.id for c in chunk_documents([doc])] == [chunk.id]  # same input, same id


def test_long_text_respects_budget_and_overlaps() -> None:
    chunks = list(
        chunk_documents([text_doc(LONG)], max_tokens=60, overlap_tokens=12, count_tokens=words)
    )
    assert len(chunks) > 5
    assert all(words(c.text) <= 60 for c in chunks)
    assert len({c.id for c in chunks}) == len(chunks)
    for sentence in SENTENCES:  # nothing lost
        assert any(sentence in c.text for c in chunks)
    for prev, nxt in itertools.pairwise(chunks):
        head = nxt.text.split()[:3]
        assert " ".join(head) in prev.text  # the next chunk repeats the end of this one
        overlap = next(
            i for i in range(1, 13) if prev.text.endswith(" ".join(nxt.text.split()[:i]))
        )
        assert 1 <= overlap <= 12


def test_paragraphs_are_kept_whole_when_they_fit() -> None:
    text = "Primer párrafo corto.\n\nSegundo párrafo corto.\n\nTercero."
    [chunk] = chunk_documents([text_doc(text)], max_tokens=50)
    assert chunk.text == text
    chunks = list(chunk_documents([text_doc(text)], max_tokens=6, overlap_tokens=0))
    assert [c.text for c in chunks] == [
        "Primer párrafo corto.",
        "Segundo párrafo corto.",
        "Tercero.",
    ]


def test_no_punctuation_and_giant_word() -> None:
    run_on = " ".join(f"palabra{i}" for i in range(200))
    chunks = list(
        chunk_documents([text_doc(run_on)], max_tokens=30, overlap_tokens=5, count_tokens=words)
    )
    assert all(words(c.text) <= 30 for c in chunks)
    assert chunks[-1].text.endswith("palabra199")
    blob = "x" * 5000
    pieces = list(
        chunk_documents([text_doc(blob)], max_tokens=50, overlap_tokens=0, count_tokens=len)
    )
    assert all(0 < len(c.text) <= 50 for c in pieces)
    assert "".join(c.text for c in pieces) == blob


def test_counter_with_special_tokens_is_respected() -> None:
    def bert_like(text: str) -> int:  # [CLS] and [SEP] counted on every call
        return 2 + len(re.findall(r"\w+|[^\w\s]", text))

    chunks = list(chunk_documents([text_doc(LONG)], max_tokens=40, count_tokens=bert_like))
    assert all(bert_like(c.text) <= 40 for c in chunks)
    assert max(bert_like(c.text) for c in chunks) >= 30  # packing is not needlessly loose


def test_default_counter_is_reasonable() -> None:
    assert approx_tokens("") == 0
    assert approx_tokens("Hola, mundo.") == 4
    assert approx_tokens("internacionalización") == 4
    chunks = list(chunk_documents([text_doc(LONG)], max_tokens=64))
    assert all(approx_tokens(c.text) <= 64 for c in chunks)


def test_table_row_fits_is_one_chunk() -> None:
    header = ("producto", "precio")
    chunks = list(chunk_documents([row(1, header, ["Café", "3,50"]), row(2, header, ["Té", "2"])]))
    assert [(c.location, c.text) for c in chunks] == [
        ("row 1", "producto: Café; precio: 3,50"),
        ("row 2", "producto: Té; precio: 2"),
    ]
    assert chunks[0].metadata == {"format": "csv", "row": 1, "table": 1, "kind": "table"}


def test_long_row_is_split_with_header_repeated() -> None:
    header = ("id", "nombre", "descripcion")
    description = " ".join(f"detalle{i}" for i in range(120))
    doc = row(5, header, ["42", "Cafetera", description])
    chunks = list(chunk_documents([doc], max_tokens=40, count_tokens=words))
    assert len(chunks) > 3
    assert all(c.text.startswith("id | nombre | descripcion\n") for c in chunks)
    assert all(words(c.text) <= 40 for c in chunks)
    assert {c.location for c in chunks} == {"row 5"}
    assert len({c.id for c in chunks}) == len(chunks)
    body = " ".join(c.text.split("\n", 1)[1] for c in chunks)
    assert "detalle0" in body and "detalle119" in body and "nombre: Cafetera" in body


def test_pack_rows_groups_one_table_under_its_header() -> None:
    header = ("producto", "precio")
    docs = [row(i, header, [f"p{i}", str(i)]) for i in range(1, 8)]
    docs.append(row(1, ("a", "b"), ["x", "y"], table=2))
    docs.append(text_doc("Nota final.", location="page 9"))
    chunks = list(chunk_documents(docs, max_tokens=16, count_tokens=words, pack_rows=True))
    assert [c.location for c in chunks] == ["rows 1-3", "rows 4-6", "row 7", "row 1", "page 9"]
    assert chunks[0].text == (
        "producto | precio\nproducto: p1; precio: 1\nproducto: p2; precio: 2\nproducto: p3; precio: 3"
    )
    assert chunks[0].metadata["locations"] == ["row 1", "row 2", "row 3"]
    assert "row" not in chunks[0].metadata
    assert chunks[2].text == "producto: p7; precio: 7"  # a lone row stays a plain row chunk
    assert all(words(c.text) <= 16 for c in chunks)


def test_never_empty_and_repeated_locations_get_distinct_ids() -> None:
    docs = [
        text_doc("   \n\n  "),
        text_doc("Primera sección.", location="section Notas"),
        text_doc("Segunda sección con el mismo título.", location="section Notas"),
        Document("", "/data/t.csv", "t.csv", "row 1", "table", ("a",)),
    ]
    chunks = list(chunk_documents(docs))
    assert [c.text for c in chunks] == ["Primera sección.", "Segunda sección con el mismo título."]
    assert chunks[0].id != chunks[1].id
    assert chunks[1].id == chunk_id("/data/a.pdf", "section Notas", 1)


def test_overlap_is_capped_at_half_the_budget() -> None:
    chunks = list(
        chunk_documents([text_doc(LONG)], max_tokens=20, overlap_tokens=500, count_tokens=words)
    )
    assert all(words(c.text) <= 20 for c in chunks)
    for prev, nxt in itertools.pairwise(chunks):
        shared = next(
            (i for i in range(20, 0, -1) if prev.text.endswith(" ".join(nxt.text.split()[:i]))), 0
        )
        assert 1 <= shared <= 10


@pytest.mark.parametrize(("max_tokens", "overlap"), [(0, 0), (10, -1)])
def test_bad_budgets_are_user_errors(max_tokens: int, overlap: int) -> None:
    with pytest.raises(UserError):
        list(chunk_documents([text_doc("x")], max_tokens=max_tokens, overlap_tokens=overlap))
