"""What loaders produce and what indexes store: documents and their chunks, each knowing its source.

A ``Document`` is one unit a loader reads (a page, a CSV row, a JSON record, a Markdown section, a
table row from SQL) with where it came from. Chunking turns documents into ``Chunk``s that fit the
embedder's token budget; every chunk keeps ``source`` (file name or table) and ``location`` (page,
row, key or section) so an answer can cite it.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any, Literal

DocKind = Literal["text", "table", "record"]


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class Document:
    text: str
    source_id: str  # stable id of the whole source: resolved file path, or "db-url#table"
    source: str  # what a citation shows: the file name or the table
    location: str = ""  # "page 3", "row 12", "id=42", "section Pricing"; "" for the whole source
    kind: DocKind = "text"
    header: tuple[str, ...] = ()  # column names for table rows, repeated in every table chunk
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Chunk:
    id: str  # stable: hash of source_id, location and ordinal
    source_id: str
    source: str
    location: str
    text: str
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def content_hash(self) -> str:
        return sha256_text(self.text)


@dataclass(frozen=True)
class LoadError:
    """A source (or part of one) that could not be read: reported, and the batch goes on."""

    source: str
    reason: str
    location: str = ""
