"""acllm: build private LLM applications on a local model or any OpenAI-compatible endpoint.

The names below load on first use, so ``import acllm`` stays cheap.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS = {
    "Settings": "acllm.config",
    "load_settings": "acllm.config",
    "Runtime": "acllm.runtime",
    "Tasks": "acllm.tasks",
    "TaskContext": "acllm.tasks.base",
    "Message": "acllm.types",
    "ChatOptions": "acllm.types",
    "Reply": "acllm.types",
    "Delta": "acllm.types",
    "Usage": "acllm.types",
    "ChatModel": "acllm.models.base",
    "Embedder": "acllm.embed.base",
    "KV": "acllm.kv.base",
    "FakeChatModel": "acllm.models.fake",
    "HashEmbedder": "acllm.embed.hash",
    "MemoryKV": "acllm.kv.memory",
    "AcllmError": "acllm.errors",
    "UserError": "acllm.errors",
    "ServiceError": "acllm.errors",
    "ConfigError": "acllm.errors",
    "ContextOverflowError": "acllm.errors",
}
__all__ = [
    "KV",
    "AcllmError",
    "ChatModel",
    "ChatOptions",
    "ConfigError",
    "ContextOverflowError",
    "Delta",
    "Embedder",
    "FakeChatModel",
    "HashEmbedder",
    "MemoryKV",
    "Message",
    "Reply",
    "Runtime",
    "ServiceError",
    "Settings",
    "TaskContext",
    "Tasks",
    "Usage",
    "UserError",
    "load_settings",
]

if TYPE_CHECKING:
    from acllm.config import Settings, load_settings
    from acllm.embed.base import Embedder
    from acllm.embed.hash import HashEmbedder
    from acllm.errors import (
        AcllmError,
        ConfigError,
        ContextOverflowError,
        ServiceError,
        UserError,
    )
    from acllm.kv.base import KV
    from acllm.kv.memory import MemoryKV
    from acllm.models.base import ChatModel
    from acllm.models.fake import FakeChatModel
    from acllm.runtime import Runtime
    from acllm.tasks import Tasks
    from acllm.tasks.base import TaskContext
    from acllm.types import ChatOptions, Delta, Message, Reply, Usage


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'acllm' has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return [*__all__, "__version__"]
