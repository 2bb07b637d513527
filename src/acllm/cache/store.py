"""The cache store seam: a tiny Protocol the SQLite and Redis stores implement.

A store keeps entries per scope (a 32-hex digest, see scope.py). Entry ids are integers that only
grow, across every scope and process, so a reader can ask for "vectors added after id N" and keep an
in-process copy of a scope's vectors up to date cheaply (cache.py). Every removal (replace, expiry,
eviction, corrupt entry) adds to the scope's ``removed`` counter, which tells that copy to rebuild.

Stores keep bytes and leave decoding to the cache, which drops what it cannot decode. Stores raise
on failure (ServiceError or the driver's own error); the cache turns every failure into a miss.
Every store passes tests/conformance/cache_suite.py.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable


@dataclass(frozen=True, slots=True)
class RawEntry:
    id: int
    question: str
    payload: bytes  # JSON, as the cache wrote it
    created: float  # unix time


@dataclass(frozen=True, slots=True)
class VectorRows:
    removed: int  # the scope's removal counter now
    rows: list[tuple[int, bytes]]  # (id, float32 vector) of live-or-recent entries with id > after


@runtime_checkable
class CacheStore(Protocol):
    def get(self, scope: str, key: str, now: float) -> RawEntry | None:
        """The live entry stored under ``key`` (an exact hit), marked as used at ``now``."""
        ...

    def fetch(self, scope: str, ids: Sequence[int], now: float) -> list[RawEntry]:
        """The live entries among ``ids`` (expired or removed ones are left out)."""
        ...

    def vectors(self, scope: str, after: int) -> VectorRows:
        """Vectors of entries with id > ``after`` (possibly some just expired; fetch filters)."""
        ...

    def put(
        self,
        scope: str,
        key: str,
        entry: RawEntry,
        vector: bytes | None,
        *,
        ttl_s: float | None,
        max_entries: int,
    ) -> int:
        """Store an entry (replacing one with the same key), evict beyond ``max_entries`` the
        least recently used, and return the new id (``entry.id`` is ignored)."""
        ...

    def touch(self, scope: str, entry_id: int, now: float) -> None:
        """Mark an entry used at ``now`` (a semantic hit), so eviction spares it."""
        ...

    def drop(self, scope: str, ids: Sequence[int]) -> None:
        """Remove entries (corrupt or expired ones the cache found)."""
        ...

    def clear(self, scope: str | None = None) -> int:
        """Remove one scope's entries, or every entry; returns how many were removed."""
        ...

    def close(self) -> None: ...
