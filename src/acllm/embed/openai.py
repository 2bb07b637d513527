"""Embedder for any OpenAI-compatible ``/embeddings`` endpoint (vLLM, Ollama, TEI, OpenAI).

Vectors come back L2-normalised as float32, so a dot product is the cosine similarity whatever the
server does. e5-style models want "query: " / "passage: " prefixes: set them in the options.
Each ``embed`` call opens one ``httpx.Client`` for all its batches and closes it, so no pooled
socket outlives the call.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import httpx
import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator

from acllm.embed.base import EmbedKind, Vectors, batched, normalise
from acllm.errors import ServiceError
from acllm.models.openai import (
    mapped_errors,
    parse_json,
    read_api_key,
    request_headers,
    status_error,
    tls_verify,
)
from acllm.registry import Backend


class OpenAIEmbedOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    base_url: str  # up to and including the version, e.g. http://localhost:8000/v1
    model: str
    api_key_env: str | None = None
    dim: int | None = Field(default=None, gt=0)  # None: learnt from the first answer
    batch_size: int = Field(default=64, gt=0)
    timeout: float = Field(default=60, gt=0)
    query_prefix: str = ""
    passage_prefix: str = ""

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value.rstrip("/")


class OpenAIEmbedder:
    def __init__(self, options: OpenAIEmbedOptions, *, api_key: str | None = None) -> None:
        self.options = options
        self.name = options.model
        self._dim = options.dim
        self._url = f"{options.base_url}/embeddings"
        self._headers = request_headers(api_key, {})

    @property
    def dim(self) -> int:
        """Vector size; when not configured, one probe request asks the server."""
        if self._dim is None:
            self.embed(["dimension probe"])
        assert self._dim is not None  # set by the probe or it raised
        return self._dim

    @dim.setter
    def dim(self, value: int) -> None:  # the Embedder seam declares dim a plain attribute
        self._dim = value

    def embed(self, texts: Sequence[str], kind: EmbedKind = "passage") -> Vectors:
        if isinstance(texts, str):
            texts = [texts]  # a bare string would otherwise be embedded character by character
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        prefix = self.options.query_prefix if kind == "query" else self.options.passage_prefix
        inputs = [prefix + t for t in texts]
        base = self.options.base_url
        client = httpx.Client(
            timeout=self.options.timeout, headers=self._headers, verify=tls_verify(base)
        )
        with mapped_errors(base), client:
            batches = batched(inputs, self.options.batch_size)
            rows = [row for batch in batches for row in self._batch(client, list(batch))]
        vectors = np.asarray(rows, dtype=np.float32)
        if self._dim is None:
            self._dim = int(vectors.shape[1])
        elif vectors.shape[1] != self._dim:
            raise ServiceError(
                f"{base} returned {vectors.shape[1]}-dimensional vectors, expected {self._dim}",
                hint="fix the embedder's dim option or the served model",
            )
        return normalise(vectors)

    def _batch(self, client: httpx.Client, inputs: list[str]) -> list[list[float]]:
        base = self.options.base_url
        resp = client.post(self._url, json={"model": self.options.model, "input": inputs})
        if resp.status_code >= 400:
            raise status_error(base, resp.status_code, resp.text, resp.headers)
        data = parse_json(base, resp.text)
        try:
            items: list[dict[str, Any]] = sorted(data["data"], key=lambda d: d["index"])
            rows = [[float(x) for x in item["embedding"]] for item in items]
        except (KeyError, TypeError, ValueError):
            msg = f"{base} sent an unexpected embeddings answer"
            raise ServiceError(msg, body=resp.text[:2000]) from None
        if len(rows) != len(inputs) or len({len(r) for r in rows}) > 1:
            raise ServiceError(
                f"{base} returned {len(rows)} vectors for {len(inputs)} texts",
                body=resp.text[:2000],
            )
        return rows


def build(options: OpenAIEmbedOptions, runtime: Any) -> OpenAIEmbedder:
    return OpenAIEmbedder(options, api_key=read_api_key(options.api_key_env))


BACKEND = Backend(
    "embedder", "openai", OpenAIEmbedOptions, build, "any OpenAI-compatible /embeddings endpoint"
)
