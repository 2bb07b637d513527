"""Exact + semantic response cache, scoped and verified (see cache.py and verify.py).

The names below load on first use (PEP 562): ``acllm.config`` imports ``acllm.cache.settings``,
and that must not pull numpy into ``import acllm`` / ``acllm --help``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from acllm.cache.build import build_cache, open_cache, open_store
    from acllm.cache.cache import CacheHit, ResponseCache
    from acllm.cache.scope import CacheScope
    from acllm.cache.settings import CacheSettings
    from acllm.cache.store import CacheStore, RawEntry, VectorRows
    from acllm.cache.verify import Verdict

_WHERE = {
    "build_cache": "build",
    "open_cache": "build",
    "open_store": "build",
    "CacheHit": "cache",
    "ResponseCache": "cache",
    "CacheScope": "scope",
    "CacheSettings": "settings",
    "CacheStore": "store",
    "RawEntry": "store",
    "VectorRows": "store",
    "Verdict": "verify",  # the function is acllm.cache.verify.verify (the module owns the name)
}

__all__ = [
    "CacheHit",
    "CacheScope",
    "CacheSettings",
    "CacheStore",
    "RawEntry",
    "ResponseCache",
    "VectorRows",
    "Verdict",
    "build_cache",
    "open_cache",
    "open_store",
]


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module 'acllm.cache' has no attribute {name!r}")
    return getattr(importlib.import_module(f"acllm.cache.{_WHERE[name]}"), name)
