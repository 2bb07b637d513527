"""The Embedder seam: texts in, L2-normalised float32 vectors out.

``kind`` tells asymmetric models (e5) whether a text is a search query or a passage to index; the
backend adds whatever prefix its model needs, so callers never write ``query: `` themselves.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

EmbedKind = Literal["query", "passage"]
Vectors = npt.NDArray[np.float32]


@runtime_checkable
class Embedder(Protocol):
    name: str
    dim: int

    def embed(self, texts: Sequence[str], kind: EmbedKind = "passage") -> Vectors:
        """An (n, dim) array, each row of unit length."""
        ...


def normalise(vectors: npt.NDArray[np.floating]) -> Vectors:
    """Rows scaled to unit length (zero rows stay zero)."""
    arr = np.asarray(vectors, dtype=np.float32)
    if arr.ndim == 1:
        arr = arr[None, :]
    norms = np.linalg.norm(arr, axis=1, keepdims=True)
    out: Vectors = (arr / np.where(norms == 0, 1.0, norms)).astype(np.float32, copy=False)
    return out


def batched(texts: Sequence[str], size: int) -> list[Sequence[str]]:
    return [texts[i : i + size] for i in range(0, len(texts), size)]
