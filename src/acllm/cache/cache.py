"""The response cache: exact, then semantic with a verifier, in one scope, never in the way.

``lookup`` tries the exact key (the normalised question, text.exact_form) and then, when semantic
lookups are on and the caller passes the query vector, the nearest stored questions of the same
scope above the cosine threshold, best first, each through the verifier (verify.py); the first
that passes is served. ``store`` keeps an answer; ``forget`` drops a scope or everything.

Speed. A scope's vectors are kept in process as one float32 matrix (``_Mirror``), brought up to
date from the store with a single "ids after N" read per lookup; it is rebuilt only after a
quarter of it was removed. The scan is one matrix-vector product.

Failure. A store that is down, slow or corrupt never fails a request: every store error becomes a
miss (or a skipped store), logged once as a warning until the store works again. Entries that do
not decode (bad JSON, a vector of the wrong length) are ignored and dropped from the store.
"""

from __future__ import annotations

import json
import logging
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

import numpy as np
import numpy.typing as npt

from acllm.cache.scope import CacheScope, question_key
from acllm.cache.settings import CacheSettings
from acllm.cache.store import CacheStore, RawEntry
from acllm.cache.verify import verify

log = logging.getLogger("acllm.cache")
T = TypeVar("T")
Vector = npt.NDArray[np.float32]
MIRRORED_SCOPES = 256  # scopes whose vectors a process keeps (least recently used go first)
MIRRORED_ROWS = 100_000  # vectors kept in all (~150 MB at 384-d); the busiest scope always stays
REBUILD_SHARE = 0.25  # rebuild a scope's copy once this share of it was removed elsewhere
SHORTLIST = 8  # nearest ids read from the store per lookup (some may have expired)


@dataclass(frozen=True, slots=True)
class CacheHit:
    """A served answer and where it came from (shown as hit metadata and a badge)."""

    payload: dict[str, Any]
    kind: Literal["exact", "semantic"]
    similarity: float  # 1.0 for an exact hit; the cosine for a semantic one
    question: str  # the stored question that matched
    age_s: float  # seconds since the answer was stored
    score: float = 1.0  # the verifier's probability (1.0 for an exact hit)

    def as_dict(self) -> dict[str, Any]:
        """The JSON-ready hit metadata for a response ("cache": {...}) and the chat's badge."""
        return {
            "kind": self.kind,
            "similarity": round(self.similarity, 4),
            "matched_question": self.question,
            "age_s": round(self.age_s, 1),
            "verifier_score": round(self.score, 3),
        }


@dataclass
class _Mirror:
    """One scope's vectors in process memory, kept in step with the store."""

    dim: int
    after: int = 0  # the highest id seen
    removed: int = 0  # the store's removal counter when last in step
    ids: list[int] = field(default_factory=list)
    matrix: Vector = field(default_factory=lambda: np.zeros((0, 0), dtype=np.float32))
    lock: threading.Lock = field(default_factory=threading.Lock)

    def reset(self) -> None:
        self.after, self.removed, self.ids = 0, 0, []
        self.matrix = np.zeros((0, self.dim), dtype=np.float32)

    def forget(self, gone: set[int]) -> None:
        keep = [i for i, entry_id in enumerate(self.ids) if entry_id not in gone]
        self.ids = [self.ids[i] for i in keep]
        self.matrix = self.matrix[keep]


def _encode_vector(vector: Vector) -> bytes:
    return np.ascontiguousarray(vector, dtype="<f4").tobytes()


class ResponseCache:
    """The response cache of one assistant over a store (SQLite or Redis)."""

    def __init__(self, store: CacheStore, *, settings: CacheSettings) -> None:
        self.backend = store
        self.settings = settings
        self._mirrors: OrderedDict[tuple[str, int], _Mirror] = OrderedDict()
        self._lock = threading.Lock()
        self._failing = False  # a warning was logged; the next success logs the recovery

    # -- failure handling ----------------------------------------------------------------------

    def _safe(self, what: str, call: Callable[[], T], default: T) -> T:
        try:
            result = call()
        except Exception as exc:  # any store failure: the request must go on without the cache
            if not self._failing:
                self._failing = True
                log.warning(
                    "response cache unavailable (%s failed: %s); serving without it", what, exc
                )
            return default
        if self._failing:
            self._failing = False
            log.warning("response cache available again")
        return result

    # -- lookup --------------------------------------------------------------------------------

    def lookup(
        self, scope: CacheScope, question: str, vector: Vector | None = None
    ) -> CacheHit | None:
        """The cached answer for ``question`` in ``scope``, or None. Never raises."""
        if not self.settings.enabled:
            return None
        now = time.time()
        key = scope.key()
        raw = self._safe(
            "exact lookup", lambda: self.backend.get(key, question_key(question), now), None
        )
        if raw is not None:
            payload = self._decode(key, raw)
            if payload is not None:
                return CacheHit(payload, "exact", 1.0, raw.question, max(0.0, now - raw.created))
        if not self.settings.semantic or vector is None:
            return None
        return self._safe(
            "semantic lookup", lambda: self._semantic(key, question, vector, now), None
        )

    def _semantic(self, key: str, question: str, vector: Vector, now: float) -> CacheHit | None:
        query = np.asarray(vector, dtype=np.float32).reshape(-1)
        norm = float(np.linalg.norm(query))
        if not norm or not math.isfinite(norm):
            return None
        query = query / norm
        mirror = self._mirror(key, query.shape[0])
        with mirror.lock:
            self._sync(key, mirror)
            self._trim()
            if not mirror.ids:
                return None
            sims = mirror.matrix @ query
            order = np.argsort(-sims)[:SHORTLIST]
            order = order[sims[order] >= self.settings.threshold]
            shortlist = [(mirror.ids[i], float(sims[i])) for i in order]
        if not shortlist:
            return None
        found = {e.id: e for e in self.backend.fetch(key, [i for i, _ in shortlist], now)}
        gone = {i for i, _ in shortlist if i not in found}
        tried = 0
        hit: CacheHit | None = None
        for entry_id, similarity in shortlist:
            entry = found.get(entry_id)
            if entry is None:
                continue
            payload = self._decode(key, entry)
            if payload is None:
                gone.add(entry_id)
                continue
            if self.settings.verify:
                verdict = verify(
                    entry.question, question, similarity, min_score=self.settings.min_score
                )
                score = verdict.score
                if not verdict.ok:
                    tried += 1
                    if tried >= self.settings.candidates:
                        break
                    continue
            else:
                score = 1.0
            hit = CacheHit(
                payload,
                "semantic",
                similarity,
                entry.question,
                max(0.0, now - entry.created),
                score,
            )
            self.backend.touch(key, entry_id, now)
            break
        if gone:
            with mirror.lock:
                mirror.forget(gone)
        return hit

    def _mirror(self, key: str, dim: int) -> _Mirror:
        with self._lock:
            mirror = self._mirrors.get((key, dim))
            if mirror is None:
                mirror = self._mirrors[(key, dim)] = _Mirror(dim)
                mirror.reset()
                while len(self._mirrors) > MIRRORED_SCOPES:
                    self._mirrors.popitem(last=False)
            else:
                self._mirrors.move_to_end((key, dim))
            return mirror

    def _trim(self) -> None:
        """Forget the least recently used scopes' vectors beyond MIRRORED_ROWS (not the newest)."""
        with self._lock:
            total = sum(len(m.ids) for m in self._mirrors.values())
            while total > MIRRORED_ROWS and len(self._mirrors) > 1:
                _, oldest = self._mirrors.popitem(last=False)
                total -= len(oldest.ids)

    def _sync(self, key: str, mirror: _Mirror) -> None:
        """Bring ``mirror`` up to date: new vectors appended; rebuilt after many removals."""
        rows = self.backend.vectors(key, mirror.after)
        removed_since = rows.removed - mirror.removed
        if removed_since < 0 or (
            removed_since and removed_since >= REBUILD_SHARE * len(mirror.ids)
        ):
            mirror.reset()
            rows = self.backend.vectors(key, 0)
        mirror.removed = rows.removed
        if not rows.rows:
            return
        ids: list[int] = []
        vectors: list[Vector] = []
        bad: list[int] = []
        for entry_id, blob in rows.rows:
            mirror.after = max(mirror.after, entry_id)
            if len(blob) != 4 * mirror.dim:  # another embedder, or a corrupt row
                bad.append(entry_id)
                continue
            row = np.frombuffer(blob, dtype="<f4").astype(np.float32)
            norm = float(np.linalg.norm(row))
            if not norm or not math.isfinite(norm):
                bad.append(entry_id)
                continue
            ids.append(entry_id)
            vectors.append(row / norm)
        if ids:
            mirror.ids = mirror.ids + ids
            mirror.matrix = np.vstack([mirror.matrix, np.stack(vectors)])
        if bad:
            self.backend.drop(key, bad)
            mirror.removed += len(bad)

    def _decode(self, key: str, entry: RawEntry) -> dict[str, Any] | None:
        """The payload, or None after dropping an entry that does not decode."""
        try:
            payload = json.loads(entry.payload)
            if not isinstance(payload, dict) or not math.isfinite(entry.created):
                raise ValueError("not a JSON object")
        except (ValueError, UnicodeDecodeError):
            log.warning("response cache: dropping corrupt entry %s", entry.id)
            self._safe("drop", lambda: self.backend.drop(key, [entry.id]), None)
            return None
        return payload

    # -- store / forget ------------------------------------------------------------------------

    def store(
        self,
        scope: CacheScope,
        question: str,
        payload: dict[str, Any],
        vector: Vector | None = None,
    ) -> None:
        """Keep ``payload`` (a JSON-ready dict) as the answer to ``question``. Never raises on a
        store failure; a payload that is not JSON-serialisable is the caller's bug (TypeError)."""
        if not self.settings.enabled:
            return
        data = json.dumps(payload, ensure_ascii=False, allow_nan=False).encode("utf-8")
        blob: bytes | None = None
        if vector is not None and self.settings.semantic:
            arr = np.asarray(vector, dtype=np.float32).reshape(-1)
            if arr.size and np.all(np.isfinite(arr)):
                blob = _encode_vector(arr)
        entry = RawEntry(0, question, data, time.time())
        key = scope.key()
        self._safe(
            "store",
            lambda: self.backend.put(
                key,
                question_key(question),
                entry,
                blob,
                ttl_s=self.settings.ttl_s,
                max_entries=self.settings.max_entries,
            ),
            0,
        )

    def forget(self, scope: CacheScope | None = None) -> int:
        """Drop one scope's answers, or every answer; the number dropped (0 if the store failed)."""
        key = scope.key() if scope is not None else None
        with self._lock:
            for mirror_key in [k for k in self._mirrors if key is None or k[0] == key]:
                del self._mirrors[mirror_key]
        return self._safe("forget", lambda: self.backend.clear(key), 0)

    def close(self) -> None:
        self._safe("close", self.backend.close, None)
