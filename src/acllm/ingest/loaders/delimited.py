"""CSV and TSV: one Document of kind "table" per data row, located "row N" (1-based data row).

The delimiter comes from ``csv.Sniffer`` (``.tsv`` falls back to tab), the encoding from
``decode_bytes``. A row with the wrong number of fields is a LoadError naming it; the rest goes on.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from pathlib import Path

from acllm.ingest.document import Document, LoadError
from acllm.ingest.loaders._common import (
    column_names,
    file_source,
    plausible_header,
    read_text,
    reason,
    row_text,
)

_DELIMITERS = ",;\t|"
_SAMPLE = 64 * 1024


def _consistency(sample: str, dialect: type[csv.Dialect] | csv.Dialect) -> tuple[float, int]:
    """(share of rows with the usual field count, that count); one-field splits score nothing."""
    lines = sample.split("\n")[:-1] if "\n" in sample else [sample]
    counts = [len(r) for r in csv.reader(lines[:100], dialect) if any(c.strip() for c in r)]
    if not counts:
        return 0.0, 0
    usual = max(set(counts), key=counts.count)
    return (counts.count(usual) / len(counts) if usual > 1 else 0.0), usual


def _dialect(sample: str, suffix: str) -> type[csv.Dialect] | csv.Dialect:
    try:
        sniffed: type[csv.Dialect] | csv.Dialect = csv.Sniffer().sniff(sample, _DELIMITERS)
    except csv.Error:  # too irregular to tell: the extension decides, unless a count says more
        sniffed = csv.excel_tab if suffix == ".tsv" else csv.excel
    # Sanity check: one bad row can make Sniffer pick the wrong delimiter (e.g. "," in "3,50"
    # over ";"); keep its choice unless another delimiter splits the rows more consistently.
    best, best_score = sniffed, _consistency(sample, sniffed)
    for delimiter in _DELIMITERS:
        candidate = type("Candidate", (csv.excel,), {"delimiter": delimiter})
        if (score := _consistency(sample, candidate)) > best_score:
            best, best_score = candidate, score
    return best


def _has_header(sample: str, first: list[str]) -> bool:
    if not plausible_header(first):
        return False  # blanks, repeats or numbers in the first row: it is data
    if len(first) > 1:
        return True  # Sniffer.has_header votes by cell length and misses all-text tables
    try:
        return csv.Sniffer().has_header(sample)
    except csv.Error:
        return False


def load(
    path: str | Path, *, header: bool | None = None, **_options: object
) -> Iterator[Document | LoadError]:
    """``header`` forces whether the first row names the columns (default: detected)."""
    resolved, source_id, source = file_source(path)
    decoded = read_text(resolved)
    if isinstance(decoded, LoadError):
        yield decoded
        return
    text, encoding = decoded
    sample = text if len(text) <= _SAMPLE else text[:_SAMPLE].rsplit("\n", 1)[0]
    dialect = _dialect(sample, resolved.suffix.lower())
    rows = csv.reader(io.StringIO(text, newline=""), dialect)
    names: tuple[str, ...] = ()
    width = 0
    number = 0  # data rows seen, the bad ones included, so numbers match the file
    fmt = "tsv" if dialect.delimiter == "\t" else "csv"
    while True:
        try:
            cells = next(rows)
        except StopIteration:
            return
        except csv.Error as exc:  # e.g. a NUL byte or an over-long field: skip that line
            number += 1
            yield LoadError(source_id, f"row {number}: {reason(exc)}", f"row {number}")
            continue
        if not any(c.strip() for c in cells):
            continue  # blank lines are layout, not rows
        if not width:
            width = len(cells)
            if header if header is not None else _has_header(sample, cells):
                names = column_names(cells, width)
                continue
        number += 1
        if len(cells) != width:
            msg = f"row {number}: expected {width} fields, got {len(cells)}"
            yield LoadError(source_id, msg, f"row {number}")
            continue
        values = [c.strip() for c in cells]
        meta = {
            "format": fmt,
            "row": number,
            "columns": list(names),
            "delimiter": dialect.delimiter,
            "encoding": encoding,
        }
        text_row = row_text(names, values)
        yield Document(text_row, source_id, source, f"row {number}", "table", names, meta)
