"""An Embedder wrapper that keeps every vector it computes in SQLite, so no text is embedded twice.

Re-ingesting a folder re-embeds only the chunks that changed, and a repeated query skips the
model. Entries are keyed by ``(model_id, sha256(kind + "\\n" + text))``: ``model_id`` must name the
weights (the caller passes e.g. the embedder name plus the sha256 of its model file), so a new
model never reads an old model's vectors, and ``kind`` keeps query and passage embeddings of the
same text apart (e5 prefixes them differently). Lookups are batched; all misses of a call go to
the inner embedder in ONE call. The file is opened by acllm.sqlitedb: WAL, a busy timeout and one
connection behind a lock, so threads and processes share it safely. The model runs outside the
lock: two callers missing the same text may both embed it, and the second write simply replaces
the first with the same vector.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from acllm.embed.base import Embedder, EmbedKind, Vectors
from acllm.errors import ServiceError
from acllm.sqlitedb import Database

MIGRATIONS: list[tuple[str, ...]] = [
    (
        "CREATE TABLE vectors (model_id TEXT NOT NULL, key BLOB NOT NULL, vector BLOB NOT NULL,"
        " PRIMARY KEY (model_id, key)) WITHOUT ROWID",
    ),
]
LOOKUP_BATCH = 500  # keys per SELECT: well under SQLite's bound-parameter limit


def cache_key(kind: EmbedKind, text: str) -> bytes:
    return hashlib.sha256(f"{kind}\n{text}".encode()).digest()


class CachedEmbedder:
    def __init__(self, inner: Embedder, path: str | Path, model_id: str) -> None:
        self.inner = inner
        self.name = inner.name  # indexes check the embedder by name: the cache is transparent
        self.dim = inner.dim
        self.model_id = model_id
        self.path = Path(path)
        self.hits = 0  # texts served from the file, and texts sent to the model (for stats)
        self.misses = 0
        self._lock = threading.Lock()  # guards the counters; the Database has its own lock
        self._db = Database(
            self.path,
            MIGRATIONS,
            what="embedding cache",
            hint="delete the file (it only saves time) or point embedding_cache elsewhere",
        )

    def embed(self, texts: Sequence[str], kind: EmbedKind = "passage") -> Vectors:
        keys = [cache_key(kind, t) for t in texts]
        found = self._lookup(list(dict.fromkeys(keys)))
        todo = {k: t for k, t in zip(keys, texts, strict=True) if k not in found}  # unique misses
        with self._lock:  # counters only; += is not atomic across threads
            self.hits += sum(1 for k in keys if k in found)
            self.misses += len(todo)
        if todo:
            fresh = np.asarray(self.inner.embed(list(todo.values()), kind), dtype=np.float32)
            if fresh.shape != (len(todo), self.dim):
                raise ServiceError(
                    f"embedder '{self.name}' returned shape {fresh.shape} for {len(todo)} texts "
                    f"(dim {self.dim})"
                )
            new = dict(zip(todo, fresh, strict=True))
            self._store(new)
            found.update(new)
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        for row, key in enumerate(keys):
            out[row] = found[key]
        return out

    def _lookup(self, keys: list[bytes]) -> dict[bytes, Vectors]:
        found: dict[bytes, Vectors] = {}
        with self._db.read() as conn:
            for start in range(0, len(keys), LOOKUP_BATCH):
                part = keys[start : start + LOOKUP_BATCH]
                sql = (
                    "SELECT key, vector FROM vectors WHERE model_id = ?"
                    f" AND key IN ({','.join('?' * len(part))})"
                )
                for key, blob in conn.execute(sql, (self.model_id, *part)):
                    if len(blob) == 4 * self.dim:  # another dim under this model_id: a miss
                        found[bytes(key)] = np.frombuffer(blob, dtype="<f4").astype(np.float32)
        return found

    def _store(self, vectors: dict[bytes, Vectors]) -> None:
        rows = [(self.model_id, k, v.astype("<f4").tobytes()) for k, v in vectors.items()]
        with self._db.write() as conn:
            conn.executemany(
                "INSERT OR REPLACE INTO vectors (model_id, key, vector) VALUES (?, ?, ?)", rows
            )

    def __len__(self) -> int:
        """Entries held for this model_id."""
        with self._db.read() as conn:
            query = "SELECT count(*) FROM vectors WHERE model_id = ?"
            count: int = conn.execute(query, (self.model_id,)).fetchone()[0]
        return count

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> CachedEmbedder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
