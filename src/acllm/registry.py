"""One registry for every backend. Built-ins register exactly like plugins.

A backend module exposes ``BACKEND``: its kind, name, a pydantic options model (cheap to import) and a
``build`` function that does the heavy imports. Built-ins are named here by module so nothing heavy is
imported until a backend is built; third-party packages add theirs through the ``acllm.backends``
entry-point group, whose target is a function taking this module's ``register``. Nothing is ever
imported from a dotted path written in a config file.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Any, Literal

from pydantic import BaseModel

from acllm.errors import ConfigError

Kind = Literal["chat", "embedder", "kv", "index"]


@dataclass(frozen=True)
class Backend:
    kind: Kind
    name: str
    options: type[BaseModel]
    build: Callable[[Any, Any], Any]  # (validated options, Runtime) -> backend instance
    summary: str = ""
    # Index backends: (validated options, Runtime) -> the names of the indexes that exist there.
    names: Callable[[Any, Any], list[str]] | None = None


_BUILTINS: dict[tuple[Kind, str], str] = {
    ("chat", "local"): "acllm.models.local",
    ("chat", "openai"): "acllm.models.openai",
    ("chat", "router"): "acllm.models.router",
    ("chat", "fake"): "acllm.models.fake",
    ("embedder", "e5"): "acllm.embed.e5",
    ("embedder", "e5-torch"): "acllm.embed.e5_torch",
    ("embedder", "minilm"): "acllm.embed.minilm",
    ("embedder", "openai"): "acllm.embed.openai",
    ("embedder", "hash"): "acllm.embed.hash",
    ("kv", "sqlite"): "acllm.kv.sqlite",
    ("kv", "memory"): "acllm.kv.memory",
    ("kv", "redis"): "acllm.kv.redis",
    ("kv", "pg"): "acllm.kv.pg",
    ("index", "sqlite"): "acllm.index.sqlite",
    ("index", "pg"): "acllm.index.pg",
}
_registered: dict[tuple[Kind, str], Backend] = {}
_plugins_loaded = False


def register(backend: Backend) -> None:
    """Add or replace a backend (plugins call this from their entry point)."""
    _registered[(backend.kind, backend.name)] = backend


def _load_plugins() -> None:
    global _plugins_loaded
    if _plugins_loaded:
        return
    _plugins_loaded = True
    for ep in entry_points(group="acllm.backends"):
        ep.load()(register)


def names(kind: Kind) -> list[str]:
    _load_plugins()
    found = {n for k, n in _BUILTINS if k == kind} | {n for k, n in _registered if k == kind}
    return sorted(found)


def get(kind: Kind, name: str, *, key: str = "backend") -> Backend:
    """The backend ``name`` of ``kind``; ``key`` names the config setting for error messages."""
    if (kind, name) not in _registered and (kind, name) in _BUILTINS:
        module = importlib.import_module(_BUILTINS[(kind, name)])
        register(module.BACKEND)
    if (kind, name) not in _registered:
        _load_plugins()
    if (kind, name) not in _registered:
        raise ConfigError(
            key, f"unknown {kind} backend '{name}'", hint=f"choose one of: {', '.join(names(kind))}"
        )
    return _registered[(kind, name)]
