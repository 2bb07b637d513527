"""Model replies kept across benchmark runs, so a re-run only generates what changed.

A reply is filed under everything that decides it: the model's backend and options (weights path,
context, ...), the weights file's size, the exact messages and the generation options. Change a
prompt, the model or a setting and the key changes, so that case is generated again; re-run
unchanged and the stored reply comes back in well under a millisecond. Only deterministic calls
are kept (temperature 0, or a fixed seed).

A replayed call still reports the latency it took when it was generated: ``run_cases`` adds
``replayed_seconds()`` to the time it measured, and counts the cases that were replayed, so the
latency columns stay the model's. Set ``ACLLM_BENCH_REPLAY=0`` (``bench.suite --fresh``) to
generate everything again; the store is bench/results/replies.sqlite (git-ignored).
"""

from __future__ import annotations

import contextvars
import hashlib
import json
import os
import sqlite3
import threading
import time
import weakref
from collections.abc import AsyncIterator, Awaitable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any, TypeVar

from bench.common import RESULTS

T = TypeVar("T")
STORE = RESULTS / "replies.sqlite"
ENV = "ACLLM_BENCH_REPLAY"

# Per case (set by run_cases): [seconds the replayed replies took when generated, replies replayed].
_REPLAYED: contextvars.ContextVar[list[float] | None] = contextvars.ContextVar(
    "bench_replayed", default=None
)


def enabled() -> bool:
    return os.environ.get(ENV, "1").strip().lower() not in ("0", "false", "no", "off")


def start_case() -> contextvars.Token[list[float] | None]:
    """Begin counting replayed time for one case; pass the token to ``end_case``."""
    return _REPLAYED.set([0.0, 0.0])


def end_case(token: contextvars.Token[list[float] | None]) -> tuple[float, int]:
    """(seconds the case's replayed replies took when generated, how many were replayed)."""
    counted = _REPLAYED.get() or [0.0, 0.0]
    _REPLAYED.reset(token)
    return counted[0], int(counted[1])


async def timed(awaitable: Awaitable[T]) -> tuple[T, float]:
    """Await ``awaitable``; its result and its latency, replayed model time included."""
    token = start_case()
    start = time.perf_counter()
    try:
        result = await awaitable
    finally:
        then, _ = end_case(token)
    return result, time.perf_counter() - start + then


class ReplayStore:
    """SQLite file of replies by key; safe to share between threads."""

    def __init__(self, path: Path = STORE) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._conn = sqlite3.connect(path, check_same_thread=False, timeout=30)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("CREATE TABLE IF NOT EXISTS replies (key TEXT PRIMARY KEY, reply TEXT)")
        self._lock = threading.Lock()

    def get(self, key: str) -> dict[str, Any] | None:
        with self._lock:
            row = self._conn.execute("SELECT reply FROM replies WHERE key = ?", (key,)).fetchone()
        return json.loads(row[0]) if row else None

    def put(self, key: str, reply: dict[str, Any]) -> None:
        with self._lock, self._conn:
            self._conn.execute(
                "INSERT OR REPLACE INTO replies (key, reply) VALUES (?, ?)",
                (key, json.dumps(reply, ensure_ascii=False)),
            )

    def __len__(self) -> int:
        with self._lock:
            return int(self._conn.execute("SELECT count(*) FROM replies").fetchone()[0])

    def close(self) -> None:
        with self._lock:
            self._conn.close()


def model_identity(spec_json: str, model: Any) -> str:
    """The backend's config plus the weights file's size where the model has a local file."""
    path = getattr(model, "path", None)
    size = Path(path).stat().st_size if path and Path(path).is_file() else None
    return json.dumps({"spec": spec_json, "weights_bytes": size}, sort_keys=True)


class ReplayModel:
    """A ChatModel that answers from the store when it can and files what the model says."""

    def __init__(self, inner: Any, store: ReplayStore, identity: str) -> None:
        self.inner = inner
        self.store = store
        self.identity = identity
        self.name: str = inner.name
        self.hits = 0
        self.misses = 0

    @property
    def context_window(self) -> int:
        return int(self.inner.context_window)

    def count_tokens(self, messages: Sequence[Any]) -> int:
        return int(self.inner.count_tokens(messages))

    def key(self, messages: Sequence[Any], opts: Any) -> str | None:
        from acllm.types import ChatOptions

        opts = opts or ChatOptions()
        if opts.temperature != 0 and opts.seed is None:
            return None  # a sampled reply: replaying one draw would hide the variance
        payload = {
            "model": self.identity,
            "messages": [[m.role, m.content] for m in messages],
            "opts": {k: v for k, v in asdict(opts).items() if k != "timeout"},
        }
        raw = json.dumps(payload, sort_keys=True, ensure_ascii=False, default=str)
        return hashlib.sha256(raw.encode()).hexdigest()

    async def chat(self, messages: Sequence[Any], opts: Any = None) -> Any:
        from acllm.types import Reply, Usage

        key = self.key(messages, opts) if enabled() else None
        stored = self.store.get(key) if key else None
        if stored is not None:
            self.hits += 1
            counted = _REPLAYED.get()
            if counted is not None:
                counted[0] += float(stored["usage"]["latency_s"])
                counted[1] += 1
            return Reply(
                text=stored["text"],
                model=stored["model"],
                usage=Usage(**stored["usage"]),
                finish_reason=stored["finish_reason"],
            )
        reply = await self.inner.chat(messages, opts)
        self.misses += 1
        if key:
            self.store.put(
                key,
                {
                    "text": reply.text,
                    "model": reply.model,
                    "usage": asdict(reply.usage),
                    "finish_reason": reply.finish_reason,
                },
            )
        return reply

    def stream(self, messages: Sequence[Any], opts: Any = None) -> AsyncIterator[Any]:
        result: AsyncIterator[Any] = self.inner.stream(messages, opts)  # streams are timed live
        return result

    def close(self) -> None:
        close = getattr(self.inner, "close", None)
        if callable(close):
            close()

    def __getattr__(self, name: str) -> Any:  # chat_sync, path, ... of the wrapped model
        return getattr(self.inner, name)


_MODELS: weakref.WeakKeyDictionary[Any, list[ReplayModel]] = weakref.WeakKeyDictionary()


def runtime(settings: Any = None, store: ReplayStore | None = None) -> Any:
    """A Runtime whose chat models replay stored replies (see the module doc)."""
    from acllm import registry
    from acllm.runtime import Runtime

    store = store if store is not None else ReplayStore()  # an empty store is falsy (__len__)
    built: Runtime | None = None

    def substitute(kind: str, name: str, spec: Any) -> Any:
        if kind != "chat":
            return None
        backend = registry.get("chat", spec.backend, key=f"models.{name}.backend")
        model = backend.build(backend.options.model_validate(spec.options()), built)
        replay = ReplayModel(model, store, model_identity(spec.model_dump_json(), model))
        _MODELS.setdefault(built, []).append(replay)
        return replay

    built = Runtime(settings, substitute=substitute)
    return built


def summary(rt: Any) -> dict[str, int]:
    """Replies replayed and generated by every chat model ``rt`` built (for the results file)."""
    models = _MODELS.get(rt, [])
    return {"replayed": sum(m.hits for m in models), "generated": sum(m.misses for m in models)}
