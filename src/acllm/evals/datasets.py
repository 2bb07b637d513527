"""Evaluation datasets: cases from JSONL files and from the common public shapes.

A ``Case`` is one thing to evaluate: an ``input`` (text, or a dict such as question + context),
what is expected (a label, an answer, relevant documents) and/or ``references`` (several
acceptable outputs), and free ``metadata`` (category, language...) for per-category reports.

Loaders never stop at a bad line: each problem becomes a ``DatasetError`` with the file and line
number, and the rest is loaded — a 10,000-case file with one broken line still evaluates 9,999.
Shapes: acllm JSONL, SQuAD JSON (SQuAD, XQuAD, MLQA), BEIR folders (corpus, queries, qrels), TSV
pairs with a header, and parallel text files (one sentence per line, aligned).
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from acllm.errors import UserError

JSONL_FIELDS = {"id", "input", "expected", "references", "metadata"}


@dataclass(frozen=True)
class Case:
    id: str
    input: Any
    expected: Any = None
    references: tuple[str, ...] = ()
    metadata: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"id": self.id, "input": self.input}
        if self.expected is not None:
            out["expected"] = self.expected
        if self.references:
            out["references"] = list(self.references)
        if self.metadata:
            out["metadata"] = self.metadata
        return out


@dataclass(frozen=True)
class DatasetError:
    source: str
    line: int | None  # 1-based; None when the problem is not on one line
    reason: str

    def __str__(self) -> str:
        where = f"{self.source}:{self.line}" if self.line is not None else self.source
        return f"{where}: {self.reason}"


@dataclass
class Dataset:
    name: str
    cases: list[Case] = field(default_factory=list)
    errors: list[DatasetError] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.cases)

    def __iter__(self) -> Iterator[Case]:
        return iter(self.cases)


def _need(path: Path, what: str) -> None:
    if not path.exists():
        raise UserError(f"{what} {path} does not exist", hint="check the path in the suite file")


def load_jsonl(path: str | Path, name: str | None = None) -> Dataset:
    """acllm's own format: one JSON object per line with ``input`` and optionally ``id``,
    ``expected``, ``references`` (list of strings) and ``metadata`` (object)."""
    path = Path(path)
    _need(path, "dataset file")
    data = Dataset(name or path.stem)
    seen: set[str] = set()
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise UserError(f"{path} is not UTF-8 text: {exc}", hint="save it as UTF-8") from None
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        error = _jsonl_case(line, number, seen, data)
        if error is not None:
            data.errors.append(DatasetError(str(path), number, error))
    return data


def _jsonl_case(line: str, number: int, seen: set[str], data: Dataset) -> str | None:
    """Add the line's case to ``data``, or say what is wrong with it."""
    try:
        raw = json.loads(line)
    except json.JSONDecodeError as exc:
        return f"not valid JSON ({exc.msg} at column {exc.colno})"
    if not isinstance(raw, dict):
        return f"expected a JSON object, got {type(raw).__name__}"
    unknown = set(raw) - JSONL_FIELDS
    if unknown:
        return f"unknown fields {sorted(unknown)}; a case has {sorted(JSONL_FIELDS)}"
    if "input" not in raw or raw["input"] in (None, ""):
        return "missing 'input'"
    references = raw.get("references", [])
    if not isinstance(references, list) or not all(isinstance(r, str) for r in references):
        return "'references' must be a list of strings"
    metadata = raw.get("metadata", {})
    if not isinstance(metadata, dict):
        return "'metadata' must be an object"
    case_id = str(raw.get("id", f"line-{number}"))
    if case_id in seen:
        return f"duplicate id {case_id!r}"
    seen.add(case_id)
    data.cases.append(Case(case_id, raw["input"], raw.get("expected"), tuple(references), metadata))
    return None


def load_squad(path: str | Path, name: str | None = None) -> Dataset:
    """SQuAD-shaped JSON (SQuAD v1.1, XQuAD, MLQA): one case per question, ``input`` =
    {question, context}, ``references`` = the gold answer texts, ``metadata`` = title."""
    path = Path(path)
    _need(path, "SQuAD file")
    try:
        articles = json.loads(path.read_text(encoding="utf-8"))["data"]
    except (ValueError, KeyError, TypeError) as exc:
        raise UserError(
            f"{path} is not SQuAD-shaped JSON ({exc})",
            hint='expected {"data": [{"title", "paragraphs": [{"context", "qas"}]}]}',
        ) from None
    data = Dataset(name or path.stem)
    for article in articles:
        for para in article.get("paragraphs", []):
            context = para.get("context", "").lstrip("\ufeff")
            for qa in para.get("qas", []):
                answers = tuple(a["text"] for a in qa.get("answers", []))
                if not answers:
                    data.errors.append(DatasetError(str(path), None, f"{qa['id']}: no answers"))
                    continue
                data.cases.append(
                    Case(
                        qa["id"],
                        {"question": qa["question"], "context": context},
                        references=answers,
                        metadata={"title": article.get("title", "")},
                    )
                )
    return data


def _jsonl_rows(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as fh:
        for number, line in enumerate(fh, 1):
            if line.strip():
                yield number, json.loads(line)


def load_beir(folder: str | Path, split: str = "test", name: str | None = None) -> Dataset:
    """A BEIR folder: one case per query in ``qrels/<split>.tsv``; ``expected`` = {doc id:
    relevance}. The corpus comes separately from ``beir_corpus``."""
    folder = Path(folder)
    qrels_path = folder / "qrels" / f"{split}.tsv"
    _need(qrels_path, "BEIR qrels file")
    queries_path = next(
        (p for p in (folder / "queries.jsonl", folder / "queries.jsonl.gz") if p.exists()), None
    )
    if queries_path is None:
        raise UserError(f"no queries.jsonl in {folder}", hint="a BEIR folder holds queries.jsonl")
    data = Dataset(name or f"{folder.name}-{split}")
    qrels: dict[str, dict[str, int]] = {}
    for number, line in enumerate(qrels_path.read_text(encoding="utf-8").splitlines(), 1):
        parts = line.split("\t")
        if number == 1 and parts[0] == "query-id":
            continue
        if len(parts) != 3 or not parts[2].strip().lstrip("-").isdigit():
            data.errors.append(DatasetError(str(qrels_path), number, "expected query, doc, score"))
            continue
        qrels.setdefault(parts[0], {})[parts[1]] = int(parts[2])
    texts = {str(row["_id"]): row["text"] for _, row in _jsonl_rows(queries_path)}
    for query_id, relevant in qrels.items():
        if query_id not in texts:
            data.errors.append(DatasetError(str(qrels_path), None, f"no query text for {query_id}"))
            continue
        data.cases.append(Case(query_id, texts[query_id], expected=relevant))
    return data


def beir_corpus(folder: str | Path) -> dict[str, str]:
    """Document id -> ``title + " " + text`` (BEIR's convention)."""
    folder = Path(folder)
    path = next(
        (p for p in (folder / "corpus.jsonl", folder / "corpus.jsonl.gz") if p.exists()), None
    )
    if path is None:
        raise UserError(f"no corpus.jsonl(.gz) in {folder}")
    return {
        str(row["_id"]): f"{row.get('title', '')} {row['text']}".strip()
        for _, row in _jsonl_rows(path)
    }


def load_tsv_pairs(
    path: str | Path, *, input_column: str, expected_column: str, name: str | None = None
) -> Dataset:
    """A TSV file with a header: ``input_column`` -> ``expected_column``, other columns as
    metadata. A row with the wrong number of fields is reported by line number."""
    path = Path(path)
    _need(path, "TSV file")
    lines = path.read_text(encoding="utf-8").splitlines()
    if not lines:
        raise UserError(f"{path} is empty")
    header = lines[0].split("\t")
    missing = [c for c in (input_column, expected_column) if c not in header]
    if missing:
        raise UserError(f"{path} has no column {missing[0]!r}", hint=f"columns: {header}")
    data = Dataset(name or path.stem)
    for number, line in enumerate(lines[1:], 2):
        if not line.strip():
            continue
        fields = line.split("\t")
        if len(fields) != len(header):
            reason = f"{len(fields)} fields, the header has {len(header)}"
            data.errors.append(DatasetError(str(path), number, reason))
            continue
        row = dict(zip(header, fields, strict=True))
        extra = {k: v for k, v in row.items() if k not in (input_column, expected_column)}
        data.cases.append(
            Case(
                f"line-{number}", row[input_column].strip(), row[expected_column].strip(), (), extra
            )
        )
    return data


def load_parallel(source: str | Path, target: str | Path, name: str | None = None) -> Dataset:
    """Two aligned text files, one sentence per line: ``input`` = source line, ``references`` =
    the target line. Files of different lengths are refused: the alignment would be wrong."""
    source, target = Path(source), Path(target)
    _need(source, "source file")
    _need(target, "target file")
    src = source.read_text(encoding="utf-8").splitlines()
    tgt = target.read_text(encoding="utf-8").splitlines()
    if len(src) != len(tgt):
        raise UserError(
            f"{source} has {len(src)} lines but {target} has {len(tgt)}",
            hint="parallel files must hold one aligned sentence per line",
        )
    data = Dataset(name or source.stem)
    for number, (s, t) in enumerate(zip(src, tgt, strict=True), 1):
        if not s.strip() or not t.strip():
            data.errors.append(DatasetError(str(source), number, "empty sentence on one side"))
            continue
        data.cases.append(Case(f"line-{number}", s, references=(t,)))
    return data
