"""HTML (.html, .htm) with the standard library's parser: headings split sections, tables by row.

script, style, nav and other non-content elements are dropped. Sections are located by heading
path like Markdown; each row of a data table is a Document of kind "table" located "table M, row R",
its header being the first row. Layout tables (one row or one column) are read as text.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path

from acllm.ingest.document import Document, LoadError
from acllm.ingest.loaders._common import (
    Sections,
    column_names,
    file_source,
    plausible_header,
    read_text,
    row_text,
)

_SKIP = {"script", "style", "nav", "noscript", "template", "svg", "head", "iframe", "object"}
_VOID = {
    "area",
    "base",
    "br",
    "col",
    "embed",
    "hr",
    "img",
    "input",
    "link",
    "meta",
    "source",
    "wbr",
}
# Paragraph-level elements end a paragraph ("\n\n"); line-level ones only a line ("\n").
_PARAGRAPH = {
    "p", "section", "article", "main", "aside", "header", "footer", "ul", "ol", "dl",
    "blockquote", "pre", "figure", "form", "address",
}  # fmt: skip
_LINE = {"div", "li", "dt", "dd", "br", "hr", "figcaption"}
_PARA_MARK, _LINE_MARK = "\x01", "\x02"  # private marks, resolved when text is flushed
_BREAKS = re.compile(r"[\s\x01\x02]*[\x01\x02][\s\x01\x02]*")
_HEADINGS = {f"h{i}": i for i in range(1, 7)}


@dataclass(frozen=True)
class _Block:
    kind: str  # "h" heading, "p" text, "t" table
    text: str = ""
    level: int = 0
    rows: list[list[str]] = field(default_factory=list)
    th: bool = False


@dataclass
class _Table:
    rows: list[list[str]] = field(default_factory=list)
    row: list[str] | None = None
    cell: list[str] | None = None  # text pieces of the open cell
    th: bool = False  # a header cell was seen


class _Parser(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.blocks: list[_Block] = []
        self.buf: list[str] = []
        self.skip: list[str] = []
        self.pre = 0
        self.heading = 0
        self.title: list[str] = []
        self.in_title = False
        self.tables: list[_Table] = []

    def _flush(self) -> None:
        text = "".join(self.buf)
        self.buf = []
        # A run of breaks is one paragraph break if any element in it was a paragraph.
        text = _BREAKS.sub(lambda m: "\n\n" if _PARA_MARK in m.group() else "\n", text)
        text = "\n".join(" ".join(line.split()) for line in text.split("\n")).strip()
        if not text:
            return
        if self.tables and self.tables[-1].cell is not None:
            self.tables[-1].cell.append(text)
        elif self.heading:
            self.blocks.append(_Block("h", " ".join(text.split()), self.heading))
        else:  # body text, or a table's caption
            self.blocks.append(_Block("p", re.sub(r"\n{3,}", "\n\n", text)))

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "title":
            self.in_title = True
        if self.skip or tag in _SKIP:
            if tag not in _VOID:
                self.skip.append(tag)
            return
        if tag in _HEADINGS and not self.tables:
            self._flush()
            self.heading = _HEADINGS[tag]
        elif tag == "table":
            self._flush()
            self.tables.append(_Table())
        elif tag == "tr" and self.tables:
            self._close_row()
            self.tables[-1].row = []
        elif tag in ("td", "th") and self.tables:
            self._close_cell()
            table = self.tables[-1]
            table.cell, table.th = [], table.th or tag == "th"
        elif tag in _PARAGRAPH or tag in _LINE:
            self.buf.append(_PARA_MARK if tag in _PARAGRAPH else _LINE_MARK)
        if tag == "pre":
            self.pre += 1

    def handle_endtag(self, tag: str) -> None:
        if tag == "title":
            self.in_title = False
        if self.skip:
            if tag in self.skip:  # tolerate unclosed children of a skipped element
                del self.skip[self.skip.index(tag) :]
            return
        if tag in _HEADINGS and self.heading and not self.tables:
            self._flush()
            self.heading = 0
        elif tag in ("td", "th") and self.tables:
            self._close_cell()
        elif tag == "tr" and self.tables:
            self._close_row()
        elif tag == "table" and self.tables:
            self._close_row()
            table = self.tables.pop()
            self.blocks.append(_Block("t", rows=table.rows, th=table.th))
        elif tag in _PARAGRAPH or tag in _LINE:
            self.buf.append(_PARA_MARK if tag in _PARAGRAPH else _LINE_MARK)
        if tag == "pre":
            self.pre = max(0, self.pre - 1)

    def handle_data(self, data: str) -> None:
        if self.in_title:
            self.title.append(data)
        if not self.skip:
            self.buf.append(data if self.pre else re.sub(r"\s+", " ", data))

    def _close_cell(self) -> None:
        self._flush()
        table = self.tables[-1]
        if table.cell is None:
            return
        if table.row is None:  # a cell outside any <tr>
            table.row = []
        table.row.append(" ".join(" ".join(table.cell).split()))
        table.cell = None

    def _close_row(self) -> None:
        self._close_cell()
        table = self.tables[-1]
        if table.row is not None and any(table.row):
            table.rows.append(table.row)
        table.row = None

    def close(self) -> None:
        super().close()
        while self.tables:
            self.handle_endtag("table")
        self._flush()


def _table_docs(
    rows: list[list[str]], th: bool, number: int, sections: Sections
) -> Iterator[Document]:
    ids = (sections.source_id, sections.source)
    meta = {"format": "html", "section": " > ".join(t for _, t in sections.path)}
    has_header = th or plausible_header(rows[0])
    header = column_names(rows[0], max(len(r) for r in rows)) if has_header else ()
    for r, values in enumerate(rows[1:] if has_header else rows, start=1):
        row_meta = {**meta, "table": number, "row": r, "columns": list(header)}
        where = f"table {number}, row {r}"
        yield Document(row_text(header, values), *ids, where, "table", header, row_meta)


def load(path: str | Path, **_options: object) -> Iterator[Document | LoadError]:
    resolved, source_id, source = file_source(path)
    decoded = read_text(resolved)
    if isinstance(decoded, LoadError):
        yield decoded
        return
    parser = _Parser()
    parser.feed(decoded[0])
    parser.close()
    meta: dict[str, str] = {"format": "html"}
    if title := " ".join("".join(parser.title).split()):
        meta["title"] = title
    sections = Sections(source_id, source, meta)
    tables = 0
    for block in parser.blocks:
        if block.kind == "h":
            if done := sections.heading(block.level, block.text):
                yield done
        elif block.kind == "p":
            sections.add(block.text)
        elif block.rows:
            rows = block.rows
            if len(rows) < 2 or all(len(r) < 2 for r in rows):
                sections.add("\n".join("; ".join(c for c in r if c) for r in rows))
                continue  # layout table
            tables += 1
            yield from _table_docs(rows, block.th, tables, sections)
    if done := sections.flush():
        yield done
