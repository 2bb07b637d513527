"""The KV seam: small shared state (budgets, limits, cache, memory, feedback) with TTLs.

Every backend is atomic across threads and processes: ``incr`` is the primitive rate limits are built
on, so it must never lose an update. Values are bytes; callers encode. A ``ttl`` in seconds makes a key
expire; ``None`` keeps it until deleted. Every backend passes tests/conformance/kv_suite.py.
"""

from __future__ import annotations

import re
from typing import Protocol, runtime_checkable

from acllm.errors import UserError

INTEGER = re.compile(rb"-?[0-9]+")  # what incr accepts: as strict as Redis, no spaces or "1_0"


@runtime_checkable
class KV(Protocol):
    def get(self, key: str) -> bytes | None:
        """The value, or None when missing or expired."""
        ...

    def set(self, key: str, value: bytes, ttl: float | None = None) -> None: ...

    def set_if_absent(self, key: str, value: bytes, ttl: float | None = None) -> bool:
        """Store only when the key is missing or expired; True when stored."""
        ...

    def incr(self, key: str, amount: int = 1, ttl: float | None = None) -> int:
        """Atomically add ``amount`` (a missing key counts as 0) and return the new value.

        ``ttl`` applies only when this call creates the key, so a fixed window keeps its end.
        """
        ...

    def delete(self, key: str) -> bool:
        """True when a live key was removed."""
        ...

    def ttl(self, key: str) -> float | None:
        """Seconds left, None for a key without expiry; raises KeyError when missing."""
        ...

    def close(self) -> None: ...


def check_key(key: object, ttl: float | None = None) -> None:
    """The argument checks every backend applies, so they all fail the same way."""
    if not isinstance(key, str) or not key:
        raise UserError(f"KV keys are non-empty strings, got {key!r}")
    if ttl is not None and not ttl > 0:  # `not >` also rejects NaN
        raise UserError(f"KV ttl must be a positive number of seconds or None, got {ttl!r}")


def as_integer(key: str, raw: bytes) -> int:
    if not INTEGER.fullmatch(raw):
        raise UserError(f"KV key {key!r} holds a value that is not an integer; cannot incr")
    return int(raw)
