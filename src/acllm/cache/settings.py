"""``[assistants.NAME.cache]`` settings: a pydantic model that imports nothing from acllm.

config.py imports this module, so it must stay free of acllm imports (no cycles).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class CacheSettings(BaseModel):
    """The response cache of one assistant. Off by default: a cache must be asked for."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = False  # look up and store answers at all
    semantic: bool = True  # after an exact miss, look for a near question (needs the query vector)
    threshold: float = Field(default=0.90, gt=0.0, le=1.0)
    """Lowest cosine between the stored and the incoming question for a semantic candidate (e5)."""
    verify: bool = True
    """Check numbers, units, dates, negation, names and word order before serving a semantic hit.
    Turning it off gives a plain cosine cache: measured to serve wrong answers (bench/cache.py)."""
    min_score: float = Field(default=0.85, ge=0.0, le=1.0)
    """The verifier's order-model probability a semantic hit needs (0.85 was chosen on PAWS-X half
    A for precision >= 0.92; lower serves more paraphrases and more wrong answers)."""
    candidates: int = Field(default=3, ge=1, le=20)  # nearest stored questions the verifier tries
    ttl_s: float | None = Field(default=86400.0, gt=0)  # seconds an answer is served; None: forever
    max_entries: int = Field(default=10_000, ge=1, le=1_000_000)
    """Entries kept per scope; beyond it the least recently hit (or stored) are evicted."""
    backend: Literal["sqlite", "redis"] = "sqlite"
    path: str | None = None  # SQLite file; None: <data_dir>/cache.sqlite
    url: str | None = None  # Redis URL without a password; None: url_env, else the [kv] Redis
    url_env: str | None = None  # name of an environment variable holding the Redis URL
    prefix: str = "acllm:cache:"  # Redis key prefix, so apps can share one Redis

    @model_validator(mode="after")
    def _one_url(self) -> CacheSettings:
        if self.url is not None and self.url_env is not None:
            raise ValueError("set cache.url or cache.url_env, not both")
        if self.backend == "sqlite" and (self.url is not None or self.url_env is not None):
            raise ValueError('cache.url and cache.url_env are for backend = "redis"')
        return self
