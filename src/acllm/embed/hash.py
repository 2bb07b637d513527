"""A deterministic embedder for tests: hashed word and character-trigram features, no model.

Texts sharing words land close together, so retrieval tests behave sensibly without weights.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Sequence

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from acllm.embed.base import EmbedKind, Vectors, normalise
from acllm.registry import Backend

_WORD = re.compile(r"\w+")


def _features(text: str) -> list[str]:
    folded = unicodedata.normalize("NFKD", text.lower())
    folded = "".join(c for c in folded if not unicodedata.combining(c))
    words = _WORD.findall(folded)
    grams = [f"#{w[i : i + 3]}" for w in words for i in range(max(1, len(w) - 2))]
    return words + grams


class HashEmbedder:
    name = "hash"

    def __init__(self, dim: int = 256) -> None:
        self.dim = dim

    def embed(self, texts: Sequence[str], kind: EmbedKind = "passage") -> Vectors:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            for feat in _features(text):
                digest = hashlib.blake2b(feat.encode(), digest_size=8).digest()
                h = int.from_bytes(digest, "little")
                out[row, h % self.dim] += 1.0 if (h >> 63) else -1.0
        return normalise(out)


class HashOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    dim: int = Field(default=256, ge=8)


BACKEND = Backend(
    "embedder",
    "hash",
    HashOptions,
    lambda o, rt: HashEmbedder(o.dim),
    "deterministic hashed features (tests; no model)",
)
