"""Plain text (.txt): one Document per file; an empty file yields nothing."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from acllm.ingest.document import Document, LoadError
from acllm.ingest.loaders._common import file_source, read_text


def load(path: str | Path, **_options: object) -> Iterator[Document | LoadError]:
    resolved, source_id, source = file_source(path)
    decoded = read_text(resolved)
    if isinstance(decoded, LoadError):
        yield decoded
        return
    text, encoding = decoded
    if text.strip():
        meta = {"format": "text", "encoding": encoding}
        yield Document(text.strip(), source_id, source, "", "text", metadata=meta)
