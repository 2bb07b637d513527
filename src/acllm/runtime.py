"""Builds backends from the settings, once each, by name."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from acllm import registry
from acllm.config import BackendSpec, Settings, load_settings
from acllm.errors import UserError

if TYPE_CHECKING:
    from acllm.embed.base import Embedder
    from acllm.kv.base import KV
    from acllm.models.base import ChatModel


class Runtime:
    """The pipeline's factory: ``chat()``, ``embedder()``, ``kv()``, each built lazily and cached."""

    def __init__(self, settings: Settings | None = None) -> None:
        self.settings = settings or load_settings()
        self._built: dict[tuple[str, str], Any] = {}

    @classmethod
    def from_config(cls, path: str | Path | None = None) -> Runtime:
        return cls(load_settings(path))

    @property
    def data_dir(self) -> Path:
        path = self.settings.data_dir.expanduser()
        path.mkdir(parents=True, exist_ok=True)
        return path

    def _build(self, kind: registry.Kind, section: str, name: str, spec: BackendSpec) -> Any:
        if (kind, name) not in self._built:
            backend = registry.get(kind, spec.backend, key=f"{section}.{name}.backend")
            options = backend.options.model_validate(spec.options())
            self._built[(kind, name)] = backend.build(options, self)
        return self._built[(kind, name)]

    def chat(self, name: str | None = None) -> ChatModel:
        name = name or self.settings.default_model
        if name not in self.settings.models:
            raise UserError(
                f"unknown model '{name}'",
                hint=f"configured models: {', '.join(sorted(self.settings.models))}",
            )
        model: ChatModel = self._build("chat", "models", name, self.settings.models[name])
        return model

    def embedder(self, name: str | None = None) -> Embedder:
        name = name or self.settings.default_embedder
        if name not in self.settings.embedders:
            raise UserError(
                f"unknown embedder '{name}'",
                hint=f"configured: {', '.join(sorted(self.settings.embedders))}",
            )
        embedder: Embedder = self._build(
            "embedder", "embedders", name, self.settings.embedders[name]
        )
        return embedder

    def kv(self) -> KV:
        store: KV = self._build("kv", "kv", "", self.settings.kv)
        return store

    def close(self) -> None:
        """Release every backend built so far (models, stores) that holds resources."""
        for backend in self._built.values():
            close = getattr(backend, "close", None)
            if callable(close):
                close()
        self._built.clear()

    def task_model(self) -> ChatModel:
        return self.chat(self.settings.tasks.model)

    def task_embedder(self) -> Embedder:
        return self.embedder(self.settings.tasks.embedder)
