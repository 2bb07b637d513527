"""In-process KV: a test double and a store for single-process tools. Not shared across processes."""

from __future__ import annotations

import threading
import time

from pydantic import BaseModel, ConfigDict

from acllm.errors import UserError
from acllm.kv.base import as_integer, check_key
from acllm.registry import Backend


class MemoryKV:
    def __init__(self) -> None:
        self._data: dict[str, tuple[bytes, float | None]] = {}
        self._lock = threading.Lock()

    def _live(self, key: str, now: float) -> tuple[bytes, float | None] | None:
        item = self._data.get(key)
        if item is not None and item[1] is not None and item[1] <= now:
            del self._data[key]
            return None
        return item

    @staticmethod
    def _expiry(ttl: float | None, now: float) -> float | None:
        return None if ttl is None else now + ttl

    def get(self, key: str) -> bytes | None:
        check_key(key)
        with self._lock:
            item = self._live(key, time.monotonic())
            return None if item is None else item[0]

    def set(self, key: str, value: bytes, ttl: float | None = None) -> None:
        check_key(key, ttl)
        with self._lock:
            self._data[key] = (bytes(value), self._expiry(ttl, time.monotonic()))

    def set_if_absent(self, key: str, value: bytes, ttl: float | None = None) -> bool:
        check_key(key, ttl)
        with self._lock:
            now = time.monotonic()
            if self._live(key, now) is not None:
                return False
            self._data[key] = (bytes(value), self._expiry(ttl, now))
            return True

    def incr(self, key: str, amount: int = 1, ttl: float | None = None) -> int:
        check_key(key, ttl)
        if not isinstance(amount, int) or isinstance(amount, bool):
            raise UserError(f"KV incr amount must be an integer, got {amount!r}")
        with self._lock:
            now = time.monotonic()
            item = self._live(key, now)
            if item is None:
                value, expires = amount, self._expiry(ttl, now)
            else:
                value, expires = as_integer(key, item[0]) + amount, item[1]
            self._data[key] = (str(value).encode(), expires)
            return value

    def delete(self, key: str) -> bool:
        check_key(key)
        with self._lock:
            return self._live(key, time.monotonic()) is not None and bool(self._data.pop(key))

    def ttl(self, key: str) -> float | None:
        check_key(key)
        with self._lock:
            now = time.monotonic()
            item = self._live(key, now)
            if item is None:
                raise KeyError(key)
            return None if item[1] is None else max(0.0, item[1] - now)

    def close(self) -> None:
        with self._lock:
            self._data.clear()


class MemoryOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")


BACKEND = Backend(
    "kv",
    "memory",
    MemoryOptions,
    lambda opts, rt: MemoryKV(),
    "in-process dict (tests, single-process tools)",
)
