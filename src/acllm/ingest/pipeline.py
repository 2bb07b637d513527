"""Incremental ingestion: only what changed is embedded, what disappeared is removed.

Each source (a file, a table or query) is hashed; a source whose hash the index already holds is
skipped without being parsed. Changed sources are loaded, chunked, embedded and written in batches;
each batch is ONE index transaction, so a crash or Ctrl-C leaves the index as it was before the
interrupted batch and the next run picks up from there. Errors are reported per source and the
rest of the run goes on.
"""

from __future__ import annotations

import hashlib
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from acllm.embed.base import Embedder
from acllm.index.base import Index, SourceWrite
from acllm.ingest.document import Chunk, Document, LoadError, sha256_text

LOADER_VERSION = "1"  # bump when loaders change what they extract: forces a re-read


@dataclass
class IngestReport:
    sources_seen: int = 0
    unchanged: int = 0
    written: int = 0
    removed: int = 0
    chunks: int = 0
    tokens: int = 0
    seconds: float = 0.0
    errors: list[LoadError] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        rate = self.tokens / self.seconds if self.seconds else 0.0
        return {
            "sources_seen": self.sources_seen,
            "unchanged": self.unchanged,
            "written": self.written,
            "removed": self.removed,
            "chunks": self.chunks,
            "tokens": self.tokens,
            "seconds": round(self.seconds, 3),
            "tokens_per_s": round(rate, 1),
            "errors": [
                {"source": e.source, "location": e.location, "reason": e.reason}
                for e in self.errors
            ],
        }


@dataclass(frozen=True)
class PendingSource:
    """A source to (re)load: its id, content hash, and how to read its documents."""

    source_id: str
    content_hash: str
    read: Callable[[], Iterable[Document | LoadError]]
    label: str


def file_hash(path: Path) -> str:
    digest = hashlib.sha256(LOADER_VERSION.encode())
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def documents_hash(docs: Sequence[Document]) -> str:
    return sha256_text(LOADER_VERSION + "\x00".join(f"{d.location}\x01{d.text}" for d in docs))


def _progress(total: int, enabled: bool) -> Any:
    if not enabled:
        return None
    from tqdm import tqdm

    return tqdm(total=total, unit="src", file=sys.stderr, leave=False)


class Ingestor:
    def __init__(
        self,
        index: Index,
        embedder: Embedder,
        *,
        chunker: Callable[[Iterable[Document]], Iterator[Chunk]],
        batch_chunks: int = 256,
        count_tokens: Callable[[str], int] | None = None,
        progress: bool = False,
    ) -> None:
        self.index = index
        self.embedder = embedder
        self.chunker = chunker
        self.batch_chunks = batch_chunks
        self.count_tokens = count_tokens or (lambda text: len(text.split()))
        self.progress = progress

    def run(
        self,
        pending: Sequence[PendingSource],
        *,
        remove: Sequence[str] = (),
        report: IngestReport | None = None,
    ) -> IngestReport:
        """Write ``pending`` sources that changed, remove ``remove``; batch by chunk count."""
        report = report or IngestReport()
        start = time.perf_counter()
        held = self.index.sources()
        todo = [p for p in pending if held.get(p.source_id) != p.content_hash]
        report.sources_seen += len(pending)
        report.unchanged += len(pending) - len(todo)
        bar = _progress(len(todo), self.progress)
        batch: list[SourceWrite] = []
        size = 0
        for item in todo:
            write = self._prepare(item, report)
            if write is not None:
                batch.append(write)
                size += len(write.chunks)
            if size >= self.batch_chunks:
                self._commit(batch, (), report)
                batch, size = [], 0
            if bar is not None:
                bar.update(1)
        gone = [s for s in remove if s in held]
        if batch or gone:
            self._commit(batch, gone, report)
        report.removed += len(gone)
        if bar is not None:
            bar.close()
        report.seconds += time.perf_counter() - start
        return report

    def _prepare(self, item: PendingSource, report: IngestReport) -> SourceWrite | None:
        docs: list[Document] = []
        for got in item.read():
            if isinstance(got, LoadError):
                report.errors.append(got)
            else:
                docs.append(got)
        if not docs:
            return None  # nothing readable: keep whatever the index held before
        chunks = list(self.chunker(docs))
        if not chunks:
            return None
        vectors = self.embedder.embed([c.text for c in chunks], kind="passage")
        report.tokens += sum(self.count_tokens(c.text) for c in chunks)
        return SourceWrite(
            item.source_id,
            item.content_hash,
            chunks,
            np.asarray(vectors, dtype=np.float32),
            {"label": item.label},
        )

    def _commit(
        self, batch: list[SourceWrite], remove: Sequence[str], report: IngestReport
    ) -> None:
        self.index.write(replace=batch, remove=remove)
        report.written += len(batch)
        report.chunks += sum(len(w.chunks) for w in batch)
