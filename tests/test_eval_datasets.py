"""Evaluation datasets: acllm JSONL with bad lines reported by number, and the public shapes
(SQuAD, BEIR, TSV pairs, parallel text) loaded from the real sets."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from acllm.errors import UserError
from acllm.evals import datasets

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def sets() -> Path:
    raw = os.environ.get("ACLLM_BENCHMARKS")
    path = Path(raw) if raw else ROOT.parent / "shared" / "benchmarks"
    if not path.is_dir():
        pytest.skip(f"benchmark data not found at {path} (set ACLLM_BENCHMARKS)")
    return path


def test_jsonl_reports_bad_lines_by_number_and_loads_the_rest(tmp_path: Path) -> None:
    path = tmp_path / "cases.jsonl"
    lines = [
        json.dumps(
            {"id": "a", "input": "¿Cuántos días?", "expected": "30", "metadata": {"lang": "es"}}
        ),
        '{"id": "b", "input": "broken',  # invalid JSON
        json.dumps({"id": "c", "expected": "x"}),  # no input
        json.dumps(["not", "an", "object"]),
        "",
        json.dumps({"id": "a", "input": "again"}),  # duplicate id
        json.dumps({"input": "q", "references": "not a list"}),
        json.dumps({"input": "q", "answer": "typo in a field name"}),
        json.dumps({"input": "no id", "references": ["r1", "r2"]}),
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    data = datasets.load_jsonl(path)
    assert [c.id for c in data] == ["a", "line-9"]
    assert data.cases[0].metadata == {"lang": "es"} and data.cases[0].expected == "30"
    assert data.cases[1].references == ("r1", "r2")
    assert [(e.line, e.reason.split(" ")[0]) for e in data.errors] == [
        (2, "not"),
        (3, "missing"),
        (4, "expected"),
        (6, "duplicate"),
        (7, "'references'"),
        (8, "unknown"),
    ]
    assert str(data.errors[0]).startswith(f"{path}:2: not valid JSON")


def test_missing_and_non_utf8_files_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="does not exist"):
        datasets.load_jsonl(tmp_path / "nope.jsonl")
    bad = tmp_path / "latin1.jsonl"
    bad.write_bytes('{"input": "año"}'.encode("latin-1"))
    with pytest.raises(UserError, match="not UTF-8"):
        datasets.load_jsonl(bad)


@pytest.mark.benchmarks
def test_squad_shape_loads_xquad_and_mlqa(sets: Path) -> None:
    xquad = datasets.load_squad(sets / "xquad" / "xquad.es.json")
    assert len(xquad) == 1190 and not xquad.errors
    case = xquad.cases[0]
    assert set(case.input) == {"question", "context"} and case.references
    assert case.references[0] in case.input["context"]
    assert not any(c.input["context"].startswith("\ufeff") for c in xquad)
    mlqa = datasets.load_squad(sets / "mlqa_es_en" / "dev-context-es-question-es.json")
    assert len(mlqa) > 400


@pytest.mark.benchmarks
def test_beir_folder_loads_queries_with_qrels_and_corpus(sets: Path) -> None:
    folder = sets / "beir_scifact"
    test = datasets.load_beir(folder, "test")
    assert len(test) == 300 and not test.errors
    assert all(isinstance(c.expected, dict) and c.expected for c in test)
    corpus = datasets.beir_corpus(folder)
    assert len(corpus) == 5183
    assert all(doc in corpus for c in test for doc in c.expected)
    assert len(datasets.load_beir(folder, "train")) == 809


@pytest.mark.benchmarks
def test_tsv_pairs_and_parallel_text(sets: Path, tmp_path: Path) -> None:
    sst2 = datasets.load_tsv_pairs(
        sets / "sst2_dev" / "dev.tsv", input_column="sentence", expected_column="label"
    )
    assert len(sst2) == 872 and {c.expected for c in sst2} == {"0", "1"}
    folder = sets / "tatoeba_en_es"
    pairs = datasets.load_parallel(folder / "tatoeba.spa-eng.eng", folder / "tatoeba.spa-eng.spa")
    assert len(pairs) + len(pairs.errors) == len(
        (folder / "tatoeba.spa-eng.eng").read_text(encoding="utf-8").splitlines()
    )
    assert len(pairs) > 500

    ragged = tmp_path / "ragged.tsv"
    ragged.write_text("sentence\tlabel\ngood one\t1\nno label here\nthree\tfields\there\n")
    data = datasets.load_tsv_pairs(ragged, input_column="sentence", expected_column="label")
    assert len(data) == 1 and [e.line for e in data.errors] == [3, 4]
    with pytest.raises(UserError, match="no column 'text'"):
        datasets.load_tsv_pairs(ragged, input_column="text", expected_column="label")
    short = tmp_path / "short.txt"
    short.write_text("one line\n")
    with pytest.raises(UserError, match=r"has 1000 lines but .* has 1 "):
        datasets.load_parallel(folder / "tatoeba.spa-eng.eng", short)
