"""One typed config: ``acllm.toml`` plus ``ACLLM_*`` environment variables.

Everything is built from it through :class:`acllm.runtime.Runtime`. Environment variables override
the file; nesting uses a double underscore (``ACLLM_MODELS__LOCAL__THREADS=2``). Values are parsed as
JSON where they parse (numbers, booleans, lists) and kept as strings otherwise. Secrets are never
written in the config: a backend names the environment variable that holds them (``api_key_env``).
"""

from __future__ import annotations

import json
import os
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from acllm import registry
from acllm.assist.memory_settings import MemorySettings
from acllm.cache.settings import CacheSettings
from acllm.errors import ConfigError
from acllm.guards.settings import GuardSettings

ENV_PREFIX = "ACLLM_"
CONFIG_FILE = "acllm.toml"
_SECRET_SUFFIXES = ("api_key", "password", "secret", "token", "apikey")
# ACLLM_* variables that steer tools rather than the config.
_NOT_SETTINGS = {"ACLLM_CONFIG", "ACLLM_HOME", "ACLLM_BENCHMARKS", "ACLLM_WHEEL_CACHE"}


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class BackendSpec(BaseModel):
    """``backend`` picks the implementation; the other keys are that backend's options."""

    model_config = ConfigDict(extra="allow", frozen=True)
    backend: str

    def options(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


class TaskSettings(Strict):
    model: str | None = None  # None: the default model
    embedder: str | None = None  # None: the default embedder
    sentiment_method: Literal["embedding", "generate"] = "embedding"
    paraphrase_method: Literal["embedding", "generate"] = "embedding"
    summarize_method: Literal["extractive", "generate"] = "extractive"
    max_input_tokens: int = Field(default=1500, gt=0)


class KVSpec(BackendSpec):
    backend: str = "sqlite"


class IndexSpec(BackendSpec):
    """An index: its storage backend (sqlite file or pg) and the embedder its vectors come from."""

    backend: str = "sqlite"
    embedder: str | None = None  # None: the default embedder


class AssistantSpec(Strict):
    """A named assistant over one index; the CLI, the service and the evals address it by name."""

    index: str
    model: str | None = None  # None: the default model
    description: str = ""
    mode: Literal["extractive", "generative"] = "extractive"
    retrieval: Literal["hybrid", "keyword", "dense"] = "hybrid"
    top_k: int = Field(default=5, ge=1, le=50)
    threshold: float = Field(default=0.84, ge=-1, le=1)
    max_sentences: int = Field(default=2, ge=1, le=10)
    margin: float = Field(default=0.03, ge=0)
    answer_tokens: int = Field(default=256, ge=16)
    rewrite: Literal["model", "concat", "off"] = "concat"
    # The patterns around the assistant (acllm.assist.pipeline), each off until switched on:
    guards: GuardSettings | None = None  # [assistants.X.guards]: present = on, with its defaults
    cache: CacheSettings = Field(default_factory=CacheSettings)
    memory: MemorySettings = Field(default_factory=MemorySettings)
    overrides: bool = True  # serve reviewed corrections (acllm review) for the same question
    deadline_s: float | None = Field(default=None, gt=0)  # then: what is known, and a notice


class ModelPrice(Strict):
    """What a model's tokens cost, for the per-key cost in logs and metrics (any currency)."""

    prompt_per_1k: float = Field(default=0.0, ge=0)
    completion_per_1k: float = Field(default=0.0, ge=0)


class ServiceSettings(Strict):
    """``acllm serve``: HTTP workers, the shared model process's queue, auth and default budgets."""

    workers: int = Field(default=2, ge=1, le=64)  # HTTP worker processes
    auth: Literal["auto", "on", "off"] = "auto"  # auto: keys required unless bound to loopback
    queue_depth: int = Field(default=64, ge=1)  # generations waiting in the model process at most
    queue_wait_s: float = Field(default=30.0, gt=0)  # longest wait for a model slot, then 503
    max_inflight: int = Field(default=256, ge=1)  # open requests per worker, then 503
    request_timeout_s: float = Field(default=120.0, gt=0)
    max_body_bytes: int = Field(default=1_000_000, ge=1024)  # larger request bodies get 413
    default_rpm: int | None = Field(default=None, ge=1)  # for keys created without their own
    default_tpm: int | None = Field(default=None, ge=1)
    cors_origins: tuple[str, ...] = ()
    prices: dict[str, ModelPrice] = Field(default_factory=dict)  # by model name; unset: free


def _default_models() -> dict[str, BackendSpec]:
    return {"local": BackendSpec(backend="local")}


def _default_embedders() -> dict[str, BackendSpec]:
    return {
        "e5": BackendSpec(backend="e5"),
        "e5-torch": BackendSpec(backend="e5-torch"),  # the same model on torch: bulk ingestion
        "minilm": BackendSpec(backend="minilm"),
        "hash": BackendSpec(backend="hash"),
    }


def _default_data_dir() -> Path:
    return Path(os.environ.get("XDG_DATA_HOME", Path.home() / ".local" / "share")) / "acllm"


class Settings(Strict):
    data_dir: Path = Field(default_factory=_default_data_dir)
    default_model: str = "local"
    default_embedder: str = "e5"
    languages: tuple[str, ...] = ("en", "es")
    embedding_cache: bool = True  # vectors kept in <data_dir>/embeddings.sqlite by model and text
    models: dict[str, BackendSpec] = Field(default_factory=_default_models)
    embedders: dict[str, BackendSpec] = Field(default_factory=_default_embedders)
    kv: KVSpec = Field(default_factory=KVSpec)
    tasks: TaskSettings = Field(default_factory=TaskSettings)
    indexes: dict[str, IndexSpec] = Field(default_factory=dict)
    index_defaults: IndexSpec = Field(default_factory=IndexSpec)  # for indexes not listed
    assistants: dict[str, AssistantSpec] = Field(default_factory=dict)
    service: ServiceSettings = Field(default_factory=ServiceSettings)


def _reject_literal_secrets(data: Any, path: str) -> None:
    if isinstance(data, dict):
        for k, v in data.items():
            key = f"{path}.{k}" if path else str(k)
            if str(k).lower().endswith(_SECRET_SUFFIXES) and not str(k).endswith("_env"):
                raise ConfigError(
                    key,
                    "secrets are not written in the config",
                    hint=f'set {k}_env = "VARIABLE" and export the secret there',
                )
            _reject_literal_secrets(v, key)
    elif isinstance(data, list):
        for i, item in enumerate(data):
            _reject_literal_secrets(item, f"{path}[{i}]")


def _parse_env_value(raw: str) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        return raw


def env_secret(variable: str | None, key: str, *, example: str = "<password>") -> str | None:
    """The value of the environment variable a ``*_env`` setting names (None when unnamed).

    Named but unset or empty is a ConfigError on ``key``, raised when the backend is built, so a
    missing secret fails at start-up rather than on the first request.
    """
    if variable is None:
        return None
    value = os.environ.get(variable)
    if not value:
        raise ConfigError(
            key,
            f"environment variable {variable} is not set",
            hint=f"export {variable}={example}",
        )
    return value


def secret_variables(data: Any) -> set[str]:
    """The environment variables that ``*_env`` keys name: they hold secrets, not settings."""
    if isinstance(data, dict):
        found = {v for k, v in data.items() if str(k).endswith("_env") and isinstance(v, str)}
        return found.union(*(secret_variables(v) for v in data.values()))
    if isinstance(data, list):
        return set().union(*(secret_variables(v) for v in data))
    return set()


def env_overrides(environ: dict[str, str], skip: set[str] | None = None) -> dict[str, Any]:
    """Nested dict from ``ACLLM_A__B=v`` variables (``ACLLM_CONFIG`` and ``ACLLM_HOME`` aside).

    ``skip`` names variables the config points secrets at (``password_env = "ACLLM_PG_PW"``):
    read by their backend, never parsed as settings.
    """
    out: dict[str, Any] = {}
    for name, raw in environ.items():
        if (
            not name.startswith(ENV_PREFIX)
            or name in _NOT_SETTINGS
            or name in (skip or set())
            or name.startswith("ACLLM_TEST")
        ):
            continue
        parts = [p.lower() for p in name[len(ENV_PREFIX) :].split("__")]
        node = out
        for p in parts[:-1]:
            node = node.setdefault(p, {})
            if not isinstance(node, dict):
                raise ConfigError(name, "conflicts with another ACLLM_ variable")
        node[parts[-1]] = _parse_env_value(raw)
    if "ACLLM_HOME" in environ:
        out.setdefault("data_dir", environ["ACLLM_HOME"])
    return out


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(merged.get(k), dict):
            merged[k] = _merge(merged[k], v)
        else:
            merged[k] = v
    return merged


def _env_name(key: str) -> str:
    return ENV_PREFIX + key.replace(".", "__").upper()


def _first_error(
    exc: ValidationError, environ: dict[str, str] | None = None, prefix: str = ""
) -> ConfigError:
    err = exc.errors()[0]
    key = ".".join([prefix, *(str(p) for p in err["loc"])]).strip(".") or "(root)"
    msg = "unknown setting" if err["type"] == "extra_forbidden" else err["msg"]
    if environ and _env_name(key) in environ:
        msg += f" (set by {_env_name(key)})"
    return ConfigError(key, msg, hint="see docs/configuration.md for the settings")


def _validate_backends(settings: Settings, environ: dict[str, str]) -> None:
    groups: list[tuple[registry.Kind, str, dict[str, BackendSpec]]] = [
        ("chat", "models", settings.models),
        ("embedder", "embedders", settings.embedders),
        ("kv", "kv", {"": settings.kv}),
    ]
    for kind, section, specs in groups:
        for name, spec in specs.items():
            where = f"{section}.{name}" if name else section
            backend = registry.get(kind, spec.backend, key=f"{where}.backend")
            try:
                backend.options.model_validate(spec.options())
            except ValidationError as exc:
                raise _first_error(exc, environ, prefix=where) from None
    if settings.default_model not in settings.models:
        raise ConfigError(
            "default_model",
            f"no model named '{settings.default_model}'",
            hint=f"define [models.{settings.default_model}] or pick one of "
            f"{sorted(settings.models)}",
        )
    if settings.default_embedder not in settings.embedders:
        raise ConfigError(
            "default_embedder",
            f"no embedder named '{settings.default_embedder}'",
            hint=f"pick one of {sorted(settings.embedders)}",
        )
    _check_references(settings)


def _check_references(settings: Settings) -> None:
    """Names that point at other entries must exist: a typo fails at load, not mid-request."""
    refs: list[tuple[str, str | None, dict[str, Any]]] = [
        ("tasks.model", settings.tasks.model, settings.models),
        ("tasks.embedder", settings.tasks.embedder, settings.embedders),
        ("index_defaults.embedder", settings.index_defaults.embedder, settings.embedders),
    ]
    refs += [
        (f"indexes.{n}.embedder", s.embedder, settings.embedders)
        for n, s in settings.indexes.items()
    ]
    refs += [
        (f"assistants.{n}.model", s.model, settings.models) for n, s in settings.assistants.items()
    ]
    refs += [
        (f"assistants.{n}.memory.model", s.memory.model, settings.models)
        for n, s in settings.assistants.items()
    ]
    refs += [
        (f"assistants.{n}.guards.judge_model", s.guards.judge_model, settings.models)
        for n, s in settings.assistants.items()
        if s.guards is not None
    ]
    for key, name, known in refs:
        if name is not None and name not in known:
            raise ConfigError(
                key, f"no entry named '{name}'", hint=f"pick one of {', '.join(sorted(known))}"
            )


def find_config_file(explicit: str | Path | None, environ: dict[str, str]) -> Path | None:
    if explicit:
        return Path(explicit)
    if environ.get("ACLLM_CONFIG"):
        return Path(environ["ACLLM_CONFIG"])
    local = Path.cwd() / CONFIG_FILE
    return local if local.exists() else None


def load_settings(
    path: str | Path | None = None, environ: dict[str, str] | None = None
) -> Settings:
    """Read the config file (if any) and the environment; raise ConfigError naming a bad key."""
    env = dict(os.environ) if environ is None else environ
    data: dict[str, Any] = {}
    file = find_config_file(path, env)
    if file is not None:
        try:
            data = tomllib.loads(file.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(
                "ACLLM_CONFIG" if not path else "--config", f"config file {file} does not exist"
            ) from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(str(file), f"not valid TOML: {exc}") from None
        except UnicodeDecodeError:
            raise ConfigError(str(file), "config file is not UTF-8 text") from None
        except OSError as exc:
            raise ConfigError(str(file), f"cannot read the config file: {exc.strerror}") from None
    data = _merge(data, env_overrides(env, skip=secret_variables(data)))
    # A user's [models.x] adds to the built-in entries rather than replacing them.
    for section, defaults in (("models", _default_models()), ("embedders", _default_embedders())):
        if isinstance(data.get(section), dict):
            base = {k: v.model_dump() for k, v in defaults.items()}
            data[section] = _merge(base, data[section])
    _reject_literal_secrets(data, "")
    try:
        settings = Settings.model_validate(data)
    except ValidationError as exc:
        raise _first_error(exc, env) from None
    _validate_backends(settings, env)
    return settings
