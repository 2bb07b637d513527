"""The Index seam: chunks with vectors and a keyword index, written per source atomically.

Writes are grouped by source (a file, a table): ``write`` replaces whole sources and removes others
in ONE transaction, so a crash or Ctrl-C mid-ingest leaves the index as it was before that batch.
Backends provide the two primitive searches; fusion, MMR and reranking live in
``acllm.index.retrieval`` and work on any backend. Every backend passes
tests/conformance/index_suite.py.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

from acllm.ingest.document import Chunk

Filters = Mapping[str, Any]  # metadata key -> value (equality) or list of values (any of)


@dataclass(frozen=True)
class SourceWrite:
    """All chunks of one source, replacing whatever the index held for it."""

    source_id: str
    content_hash: str  # hash of the source's content: unchanged sources are skipped next time
    chunks: Sequence[Chunk]
    vectors: npt.NDArray[np.float32]  # (len(chunks), dim), unit rows
    metadata: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Hit:
    chunk: Chunk
    score: float  # higher is better; comparable only within one search mode
    rank: int  # 1-based within its result list
    vector: npt.NDArray[np.float32] | None = None  # filled by dense search (for MMR)


@runtime_checkable
class Index(Protocol):
    name: str
    dim: int

    def write(self, replace: Sequence[SourceWrite] = (), remove: Sequence[str] = ()) -> None:
        """Replace the given sources and remove others, all in one transaction."""
        ...

    def sources(self) -> dict[str, str]:
        """source_id -> content_hash of every source held (for incremental ingestion)."""
        ...

    def keyword_search(self, query: str, k: int, filters: Filters | None = None) -> list[Hit]:
        """BM25-style search, accent- and case-insensitive."""
        ...

    def dense_search(
        self, vector: npt.NDArray[np.float32], k: int, filters: Filters | None = None
    ) -> list[Hit]:
        """Nearest chunks by cosine similarity (vectors are unit length)."""
        ...

    def get(self, chunk_ids: Sequence[str]) -> list[Chunk]: ...

    def version(self) -> int:
        """Grows on every write: caches keyed on it are invalidated by re-ingestion."""
        ...

    def stats(self) -> dict[str, Any]:
        """Counts (sources, chunks), dim, embedder, size on disk where known."""
        ...

    def drop(self) -> None:
        """Delete the index and its storage."""
        ...

    def close(self) -> None: ...
