"""Word documents (.docx) with python-docx: paragraphs grouped under headings, tables by row.

Sections are located by heading path like Markdown ("section Intro > Pricing"); each table row is
a Document of kind "table" located "table M, row R" with the table's first row as header.
Heading styles are recognised in English and Spanish Word ("Heading 2", "Título 2", "Title").
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from acllm.errors import MissingExtraError
from acllm.ingest.document import Document, LoadError
from acllm.ingest.loaders._common import Sections, column_names, file_source, reason, row_text

_HEADING = re.compile(r"^(?:heading|t[ií]tulo|encabezado)\s*(\d)$", re.IGNORECASE)
_TITLE = re.compile(r"^(?:title|t[ií]tulo)$", re.IGNORECASE)


def _level(paragraph: Any) -> int | None:
    name = (paragraph.style.name if paragraph.style is not None else "") or ""
    if m := _HEADING.match(name.strip()):
        return int(m.group(1))
    return 0 if _TITLE.match(name.strip()) else None


def _row_cells(row: Any) -> list[str]:
    cells: list[str] = []
    last = None
    for cell in row.cells:
        if cell._tc is last:
            continue  # a merged cell repeats for every grid column it spans
        last = cell._tc
        cells.append(" ".join(cell.text.split()))
    return cells


def _table(
    table: Any, number: int, ids: tuple[str, str], meta: dict[str, Any]
) -> Iterator[Document]:
    rows = [r for r in (_row_cells(row) for row in table.rows) if any(r)]
    if not rows:
        return
    if len(rows) == 1:  # a one-row table is layout: keep its words as text
        where = f"table {number}"
        yield Document("; ".join(c for c in rows[0] if c), *ids, where, "text", metadata=meta)
        return
    header = column_names(rows[0], max(len(r) for r in rows))
    for r, values in enumerate(rows[1:], start=1):
        row_meta = {**meta, "table": number, "row": r, "columns": list(header)}
        where = f"table {number}, row {r}"
        yield Document(row_text(header, values), *ids, where, "table", header, row_meta)


def load(path: str | Path, **_options: object) -> Iterator[Document | LoadError]:
    try:
        import docx
    except ImportError:
        raise MissingExtraError("docx", "docs") from None
    resolved, source_id, source = file_source(path)
    try:
        document = docx.Document(str(resolved))
    except Exception as exc:  # zipfile, XML and python-docx errors: not a Word document
        yield LoadError(source_id, f"not a readable .docx document: {reason(exc)}")
        return
    ids = (source_id, source)
    sections = Sections(source_id, source, {"format": "docx"})
    tables = 0
    try:
        for block in document.iter_inner_content():
            if hasattr(block, "rows"):  # a Table; paragraphs have no rows
                tables += 1
                meta = {"format": "docx", "section": " > ".join(t for _, t in sections.path)}
                yield from _table(block, tables, ids, meta)
                continue
            level = _level(block)
            if level is None:
                sections.add(block.text)
            elif done := sections.heading(level, block.text):
                yield done
    except Exception as exc:  # broken XML deep in the body: keep what was read
        yield LoadError(source_id, f"unreadable content: {reason(exc)}")
    if done := sections.flush():
        yield done
