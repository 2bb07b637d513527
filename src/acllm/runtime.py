"""Builds backends from the settings, once each, by name."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from acllm import registry
from acllm.config import BackendSpec, IndexSpec, Settings, load_settings
from acllm.errors import UserError

if TYPE_CHECKING:
    from acllm.assist.assistant import Assistant
    from acllm.assist.pipeline import Pipeline
    from acllm.embed.base import Embedder
    from acllm.feedback import FeedbackStore
    from acllm.index.base import Index
    from acllm.kv.base import KV
    from acllm.models.base import ChatModel
    from acllm.review import ReviewQueue


_INDEX_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")


def check_index_name(name: str) -> str:
    if not _INDEX_NAME.fullmatch(name):
        raise UserError(
            f"invalid index name '{name}'", hint="use 1-63 lower-case letters, digits, '-' or '_'"
        )
    return name


# Given (kind, name, spec), a replacement for the backend the registry would build, or None.
Substitute = Callable[[registry.Kind, str, BackendSpec], Any | None]


class Runtime:
    """The pipeline's factory: ``chat()``, ``embedder()``, ``kv()``, each built lazily and cached.

    ``substitute`` may stand in for some backends: the service's workers use it to reach the one
    model process instead of loading a model each.
    """

    def __init__(
        self, settings: Settings | None = None, *, substitute: Substitute | None = None
    ) -> None:
        self.settings = settings or load_settings()
        self._built: dict[tuple[str, str], Any] = {}
        self._substitute = substitute

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
            replaced = self._substitute(kind, name, spec) if self._substitute else None
            if replaced is not None:
                self._built[(kind, name)] = replaced
                return replaced
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
        spec = self.settings.embedders[name]
        embedder: Embedder = self._build("embedder", "embedders", name, spec)
        if not self.settings.embedding_cache or spec.backend == "hash":
            return embedder
        if ("embedder-cache", name) not in self._built:
            from acllm.embed.cache import CachedEmbedder

            # Keyed by the weights where the backend knows them, else by its whole config.
            model_id = getattr(embedder, "model_id", None) or spec.model_dump_json()
            self._built[("embedder-cache", name)] = CachedEmbedder(
                embedder, self.data_dir / "embeddings.sqlite", model_id
            )
        cached: Embedder = self._built[("embedder-cache", name)]
        return cached

    def kv(self) -> KV:
        store: KV = self._build("kv", "kv", "", self.settings.kv)
        return store

    def index_spec(self, name: str) -> IndexSpec:
        return self.settings.indexes.get(name, self.settings.index_defaults)

    def index(self, name: str) -> Index:
        """The named index, created empty on first use (sqlite file or pg tables)."""
        check_index_name(name)
        spec = self.index_spec(name)
        if ("index", name) not in self._built:
            backend = registry.get("index", spec.backend, key=f"indexes.{name}.backend")
            options = backend.options.model_validate(spec.options())
            embedder = self.embedder(spec.embedder)
            opener = backend.build(options, self)
            self._built[("index", name)] = opener(name, embedder.dim, embedder.name)
        index: Index = self._built[("index", name)]
        return index

    def index_names(self) -> list[str]:
        """Configured indexes plus those the default backend holds (``acllm ingest --index NEW``
        creates one there: a folder of SQLite files, or the PostgreSQL schema's registry)."""
        spec = self.settings.index_defaults
        backend = registry.get("index", spec.backend, key="index_defaults.backend")
        found = set(self.settings.indexes)
        if backend.names is not None:
            held = backend.names(backend.options.model_validate(spec.options()), self)
            found |= {n for n in held if _INDEX_NAME.fullmatch(n)}  # only names index() opens
        return sorted(found)

    def index_exists(self, name: str) -> bool:
        """Whether ``name`` is configured or held by the default backend now (an index dropped
        by another process is gone, even if this one still has it open)."""
        return name in self.settings.indexes or name in self.index_names()

    def assistant(self, name: str | None = None, *, index: str | None = None) -> Assistant:
        """A configured assistant, or an ad-hoc one with default options over ``index``."""
        from acllm.assist.assistant import Assistant, AssistantOptions
        from acllm.config import AssistantSpec

        if name is not None:
            if name not in self.settings.assistants:
                raise UserError(
                    f"unknown assistant '{name}'",
                    hint="configured: " + (", ".join(sorted(self.settings.assistants)) or "none"),
                )
            spec = self.settings.assistants[name]
        elif index is not None:
            spec, name = AssistantSpec(index=index), f"index:{index}"
        else:
            raise UserError("no assistant or index given", hint="use --assistant or --index")
        options = AssistantOptions(
            mode=spec.mode,
            retrieval=spec.retrieval,
            top_k=spec.top_k,
            threshold=spec.threshold,
            max_sentences=spec.max_sentences,
            margin=spec.margin,
            answer_tokens=spec.answer_tokens,
            rewrite=spec.rewrite,
            languages=self.settings.languages,
        )
        return Assistant(
            name,
            self.index(spec.index),
            self.embedder(self.index_spec(spec.index).embedder),
            self.chat(spec.model),
            options,
        )

    def pipeline(self, name: str | None = None, *, index: str | None = None) -> Pipeline:
        """The assistant with its configured patterns (guards, cache, memory, reviewed overrides),
        built once per name. An ad-hoc assistant over ``index`` gets overrides only."""
        from acllm.assist.pipeline import Pipeline
        from acllm.config import AssistantSpec

        key = name if name is not None else f"index:{index}"
        if ("pipeline", key) in self._built:
            built: Pipeline = self._built[("pipeline", key)]
            return built
        assistant = self.assistant(name, index=index)
        spec = (
            self.settings.assistants[name] if name is not None else AssistantSpec(index=index or "")
        )
        model_name = spec.model or self.settings.default_model
        input_guards = output_guards = None
        if spec.guards is not None:
            from acllm.guards import InputGuards, OutputGuards

            judge = self.chat(spec.guards.judge_model) if spec.guards.judge_model else None
            input_guards = InputGuards.from_settings(
                spec.guards, embedder=assistant.embedder, model=judge
            )
            output_guards = OutputGuards.from_settings(
                spec.guards, embedder=assistant.embedder, model=judge
            )
        cache = None
        if spec.cache.enabled:
            from acllm.cache import open_cache

            cache = open_cache(spec.cache, self)
        memory = None
        if spec.memory.enabled:
            from acllm.assist.memory import ConversationMemory

            summary_model = self.chat(spec.memory.model) if spec.memory.model else None
            memory = ConversationMemory.for_model(
                self.kv(),
                assistant.model,
                spec.memory,
                summary_model=summary_model,
                namespace=f"mem:{key}",
            )
        reviews = self.reviews() if spec.overrides else None
        pipeline = Pipeline(
            assistant,
            input_guards=input_guards,
            output_guards=output_guards,
            cache=cache,
            memory=memory,
            reviews=reviews,
            model_name=model_name,
            deadline_s=spec.deadline_s,
        )
        self._built[("pipeline", key)] = pipeline
        return pipeline

    def feedback(self) -> FeedbackStore:
        """Answers, feedback, reviews and overrides: <data_dir>/feedback.sqlite, opened once."""
        if ("feedback", "") not in self._built:
            from acllm.feedback import FeedbackStore

            self._built[("feedback", "")] = FeedbackStore(self.data_dir / "feedback.sqlite")
        store: FeedbackStore = self._built[("feedback", "")]
        return store

    def reviews(self) -> ReviewQueue:
        """The review queue and its overrides, on the feedback store."""
        if ("reviews", "") not in self._built:
            from acllm.review import ReviewQueue

            self._built[("reviews", "")] = ReviewQueue(self.feedback())
        queue: ReviewQueue = self._built[("reviews", "")]
        return queue

    async def aclose(self) -> None:
        """``close()``, after awaiting ``aclose()`` of every backend built so far that has one
        (pooled HTTP clients, which only their event loop can close)."""
        for backend in list(self._built.values()):
            aclose = getattr(backend, "aclose", None)
            if callable(aclose):
                await aclose()
        self.close()

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
