"""Settings: acllm.toml plus ACLLM_* overrides, and a ConfigError naming the bad key."""

from __future__ import annotations

from pathlib import Path

import pytest

from acllm.config import BackendSpec, Settings, load_settings
from acllm.errors import ConfigError, UserError


@pytest.fixture(autouse=True)
def cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Run each test in an empty directory so no ./acllm.toml is picked up by accident."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def config_error(path: Path | None = None, environ: dict[str, str] | None = None) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        load_settings(path, environ={} if environ is None else environ)
    return info.value


# --- defaults and sources ------------------------------------------------------------------------


def test_defaults_with_no_file_and_empty_environ() -> None:
    s = load_settings(None, environ={})
    assert s.default_model == "local"
    assert s.default_embedder == "e5"
    assert s.languages == ("en", "es")
    assert s.models == {"local": BackendSpec(backend="local")}
    assert set(s.embedders) == {"e5", "e5-torch", "minilm", "hash"}
    assert all(spec.backend == name for name, spec in s.embedders.items())
    assert s.kv.backend == "sqlite"
    assert s.tasks.model is None and s.tasks.embedder is None
    assert s.tasks.sentiment_method == "embedding"
    assert s.tasks.summarize_method == "extractive"
    assert s.tasks.max_input_tokens == 1500
    assert s.data_dir.name == "acllm"


def test_settings_are_frozen() -> None:
    s = load_settings(None, environ={})
    with pytest.raises(ValueError):
        s.default_model = "other"  # type: ignore[misc]


def test_toml_file_sets_values(tmp_path: Path) -> None:
    cfg = write(
        tmp_path / "conf.toml",
        """
default_model = "gpt"
default_embedder = "hash"
languages = ["en", "fr"]
data_dir = "/srv/acllm"

[models.gpt]
backend = "openai"
base_url = "http://localhost:8000/v1"
model = "qwen"
api_key_env = "MY_KEY"

[kv]
backend = "memory"

[tasks]
sentiment_method = "generate"
max_input_tokens = 900
""",
    )
    s = load_settings(cfg, environ={})
    assert s.default_model == "gpt"
    assert s.default_embedder == "hash"
    assert s.languages == ("en", "fr")
    assert s.data_dir == Path("/srv/acllm")
    gpt = s.models["gpt"]
    assert gpt.backend == "openai"
    assert gpt.options() == {
        "base_url": "http://localhost:8000/v1",
        "model": "qwen",
        "api_key_env": "MY_KEY",
    }
    assert s.kv.backend == "memory"
    assert s.tasks.sentiment_method == "generate"
    assert s.tasks.max_input_tokens == 900


def test_acllm_toml_in_working_directory_is_read(cwd: Path) -> None:
    write(cwd / "acllm.toml", 'default_embedder = "hash"\n')
    assert load_settings(None, environ={}).default_embedder == "hash"


def test_acllm_config_env_points_at_a_file(tmp_path: Path) -> None:
    cfg = write(tmp_path / "elsewhere.toml", 'default_embedder = "minilm"\n')
    s = load_settings(None, environ={"ACLLM_CONFIG": str(cfg)})
    assert s.default_embedder == "minilm"


def test_explicit_path_wins_over_acllm_config(tmp_path: Path) -> None:
    env_file = write(tmp_path / "env.toml", 'default_embedder = "minilm"\n')
    explicit = write(tmp_path / "explicit.toml", 'default_embedder = "hash"\n')
    s = load_settings(explicit, environ={"ACLLM_CONFIG": str(env_file)})
    assert s.default_embedder == "hash"


def test_acllm_config_env_wins_over_working_directory_file(cwd: Path, tmp_path: Path) -> None:
    write(cwd / "acllm.toml", 'default_embedder = "hash"\n')
    other = tmp_path / "sub"
    other.mkdir()
    cfg = write(other / "other.toml", 'default_embedder = "minilm"\n')
    assert load_settings(None, environ={"ACLLM_CONFIG": str(cfg)}).default_embedder == "minilm"


def test_acllm_home_sets_data_dir(tmp_path: Path) -> None:
    s = load_settings(None, environ={"ACLLM_HOME": str(tmp_path / "home")})
    assert s.data_dir == tmp_path / "home"


# --- environment overrides -----------------------------------------------------------------------


def test_env_overrides_file(tmp_path: Path) -> None:
    cfg = write(
        tmp_path / "c.toml",
        """
default_model = "f"
[models.f]
backend = "fake"
[models.local]
n_ctx = 4096
threads = 4
""",
    )
    env = {
        "ACLLM_DEFAULT_MODEL": "local",
        "ACLLM_MODELS__LOCAL__THREADS": "2",
        "ACLLM_LANGUAGES": '["en", "es", "de"]',
    }
    s = load_settings(cfg, environ=env)
    assert s.default_model == "local"
    local = s.models["local"].options()
    assert local["threads"] == 2
    assert isinstance(local["threads"], int)
    assert local["n_ctx"] == 4096  # the file's sibling key survives the env override
    assert s.models["local"].backend == "local"
    assert s.languages == ("en", "es", "de")
    assert "f" in s.models


def test_env_values_parse_as_json_or_stay_strings() -> None:
    env = {
        "ACLLM_MODELS__LOCAL__REPEAT_PENALTY": "1.25",
        "ACLLM_MODELS__LOCAL__PATH": "/models/my model.gguf",
        "ACLLM_TASKS__MAX_INPUT_TOKENS": "700",
    }
    s = load_settings(None, environ=env)
    opts = s.models["local"].options()
    assert opts["repeat_penalty"] == 1.25
    assert opts["path"] == "/models/my model.gguf"
    assert s.tasks.max_input_tokens == 700


def test_user_model_adds_to_builtin_local(tmp_path: Path) -> None:
    cfg = write(
        tmp_path / "c.toml",
        """
[models.gpt]
backend = "openai"
base_url = "https://api.example.com/v1"
model = "gpt-x"
""",
    )
    s = load_settings(cfg, environ={})
    assert set(s.models) == {"local", "gpt"}
    assert s.models["local"].backend == "local"
    assert s.default_model == "local"


def test_user_embedder_adds_to_builtins(tmp_path: Path) -> None:
    cfg = write(tmp_path / "c.toml", '[embedders.small]\nbackend = "hash"\ndim = 64\n')
    s = load_settings(cfg, environ={})
    assert set(s.embedders) == {"e5", "e5-torch", "minilm", "hash", "small"}
    assert s.embedders["small"].options() == {"dim": 64}


def test_env_only_partial_override_of_local_keeps_backend() -> None:
    s = load_settings(None, environ={"ACLLM_MODELS__LOCAL__PATH": "/x/model.gguf"})
    assert s.models["local"].backend == "local"
    assert s.models["local"].options() == {"path": "/x/model.gguf"}


def test_file_partial_override_of_local_keeps_backend(tmp_path: Path) -> None:
    cfg = write(tmp_path / "c.toml", "[models.local]\nthreads = 3\n")
    s = load_settings(cfg, environ={})
    assert s.models["local"].backend == "local"
    assert s.models["local"].options() == {"threads": 3}


def test_env_can_define_a_whole_new_model() -> None:
    env = {"ACLLM_MODELS__F__BACKEND": "fake", "ACLLM_DEFAULT_MODEL": "f"}
    s = load_settings(None, environ=env)
    assert s.default_model == "f"
    assert s.models["f"].backend == "fake"
    assert "local" in s.models


@pytest.mark.parametrize(
    "name",
    [
        "ACLLM_BENCHMARKS",
        "ACLLM_TEST_SOMETHING",
        "ACLLM_WHEEL_CACHE",
        "ACLLM_CONFIG",
        "ACLLM_HOME",
    ],
)
def test_tool_variables_are_not_settings(name: str, tmp_path: Path) -> None:
    value = str(tmp_path / "x.toml") if name == "ACLLM_CONFIG" else "/some/where"
    if name == "ACLLM_CONFIG":
        write(tmp_path / "x.toml", "")
    s = load_settings(None, environ={name: value})
    assert s.default_model == "local"  # validated without an 'unknown setting' error


def test_non_prefixed_variables_are_ignored() -> None:
    s = load_settings(None, environ={"DEFAULT_MODEL": "nope", "ACLLMX_DEFAULT_MODEL": "nope"})
    assert s.default_model == "local"


# --- errors that name the key --------------------------------------------------------------------


def test_config_error_is_a_user_error() -> None:
    err = config_error(environ={"ACLLM_BOGUS": "1"})
    assert isinstance(err, UserError)
    assert err.exit_code == 2


def test_unknown_top_level_key_in_file(tmp_path: Path) -> None:
    err = config_error(write(tmp_path / "c.toml", "bogus_setting = 1\n"))
    assert err.key == "bogus_setting"
    assert "bogus_setting" in err.message
    assert "unknown" in err.message


def test_unknown_nested_key_in_file_names_the_path(tmp_path: Path) -> None:
    err = config_error(write(tmp_path / "c.toml", "[tasks]\nsentimentt_method = 'generate'\n"))
    assert err.key == "tasks.sentimentt_method"


def test_unknown_backend_option_in_file_names_the_path(tmp_path: Path) -> None:
    err = config_error(write(tmp_path / "c.toml", "[models.local]\nthread = 2\n"))
    assert err.key == "models.local.thread"


@pytest.mark.parametrize(
    ("variable", "key"),
    [
        ("ACLLM_BOGUS", "bogus"),
        ("ACLLM_TASKS__BOGUS", "tasks.bogus"),
        ("ACLLM_MODELS__LOCAL__BOGUS", "models.local.bogus"),
    ],
)
def test_unknown_key_from_env_names_the_variable(variable: str, key: str) -> None:
    err = config_error(environ={variable: "1"})
    assert err.key == key
    assert variable in err.message


def test_wrong_type_names_the_nested_key(tmp_path: Path) -> None:
    err = config_error(write(tmp_path / "c.toml", '[models.local]\nthreads = "many"\n'))
    assert err.key == "models.local.threads"
    assert "models.local.threads" in str(err)


def test_wrong_type_from_env_names_the_nested_key() -> None:
    err = config_error(environ={"ACLLM_MODELS__LOCAL__THREADS": "two"})
    assert err.key.startswith("models.local.threads")


def test_out_of_range_task_setting_names_the_key(tmp_path: Path) -> None:
    err = config_error(write(tmp_path / "c.toml", "[tasks]\nmax_input_tokens = 0\n"))
    assert err.key == "tasks.max_input_tokens"


def test_wrong_literal_names_the_key(tmp_path: Path) -> None:
    err = config_error(write(tmp_path / "c.toml", '[tasks]\nsummarize_method = "magic"\n'))
    assert err.key == "tasks.summarize_method"


@pytest.mark.parametrize(
    ("toml", "key", "choices"),
    [
        ('[models.x]\nbackend = "nope"\n', "models.x.backend", ["fake", "local", "openai"]),
        ('[embedders.x]\nbackend = "nope"\n', "embedders.x.backend", ["e5", "hash", "minilm"]),
        ('[kv]\nbackend = "nope"\n', "kv.backend", ["memory", "sqlite"]),
    ],
)
def test_unknown_backend_lists_choices(
    tmp_path: Path, toml: str, key: str, choices: list[str]
) -> None:
    err = config_error(write(tmp_path / "c.toml", toml))
    assert err.key == key
    assert "nope" in err.message
    for choice in choices:
        assert choice in err.hint


def test_backend_options_are_validated_by_the_backend(tmp_path: Path) -> None:
    cfg = write(
        tmp_path / "c.toml",
        '[models.remote]\nbackend = "openai"\nbase_url = "ftp://x"\nmodel = "m"\n',
    )
    err = config_error(cfg)
    assert err.key == "models.remote.base_url"


def test_backend_missing_required_option(tmp_path: Path) -> None:
    cfg = write(tmp_path / "c.toml", '[models.remote]\nbackend = "openai"\nmodel = "m"\n')
    assert config_error(cfg).key == "models.remote.base_url"


def test_default_model_must_exist(tmp_path: Path) -> None:
    err = config_error(write(tmp_path / "c.toml", 'default_model = "ghost"\n'))
    assert err.key == "default_model"
    assert "ghost" in err.message
    assert "local" in err.hint


def test_default_model_from_env_must_exist() -> None:
    assert config_error(environ={"ACLLM_DEFAULT_MODEL": "ghost"}).key == "default_model"


def test_default_embedder_must_exist(tmp_path: Path) -> None:
    err = config_error(write(tmp_path / "c.toml", 'default_embedder = "ghost"\n'))
    assert err.key == "default_embedder"


@pytest.mark.parametrize(
    ("toml", "key"),
    [
        (
            '[models.gpt]\nbackend = "openai"\nbase_url = "https://x/v1"\nmodel = "m"\n'
            'api_key = "sk-abc123"\n',
            "models.gpt.api_key",
        ),
        ('api_key = "sk-abc123"\n', "api_key"),
        ('[models.gpt.headers]\napi_key = "sk-abc123"\n', "models.gpt.headers.api_key"),
        ('[embedders.remote]\nbackend = "openai"\nOPENAI_API_KEY = "sk-1"\n', None),
        ('[kv]\nbackend = "sqlite"\npassword = "hunter2"\n', "kv.password"),
    ],
)
def test_literal_secret_is_rejected(tmp_path: Path, toml: str, key: str | None) -> None:
    err = config_error(write(tmp_path / "c.toml", toml))
    if key is not None:
        assert err.key == key
    assert "api_key_env" in err.hint or "_env" in err.hint
    assert "sk-abc123" not in str(err)
    assert "secret" in err.message


def test_literal_api_key_hint_names_api_key_env(tmp_path: Path) -> None:
    err = config_error(write(tmp_path / "c.toml", '[models.local]\napi_key = "sk-x"\n'))
    assert "api_key_env" in err.hint


def test_literal_secret_from_env_is_rejected() -> None:
    err = config_error(environ={"ACLLM_MODELS__GPT__API_KEY": "sk-abc"})
    assert err.key == "models.gpt.api_key"
    assert "api_key_env" in err.hint


def test_api_key_env_is_allowed(tmp_path: Path) -> None:
    cfg = write(
        tmp_path / "c.toml",
        '[models.gpt]\nbackend = "openai"\nbase_url = "https://x/v1"\nmodel = "m"\n'
        'api_key_env = "OPENAI_API_KEY"\n',
    )
    assert load_settings(cfg, environ={}).models["gpt"].options()["api_key_env"] == "OPENAI_API_KEY"


def test_invalid_toml(tmp_path: Path) -> None:
    cfg = write(tmp_path / "c.toml", "default_model = \n[models\n")
    err = config_error(cfg)
    assert "TOML" in err.message
    assert str(cfg) in str(err)


def test_missing_explicit_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.toml"
    err = config_error(missing)
    assert str(missing) in err.message
    assert "does not exist" in err.message


def test_missing_file_named_by_acllm_config(tmp_path: Path) -> None:
    missing = tmp_path / "nope.toml"
    err = config_error(environ={"ACLLM_CONFIG": str(missing)})
    assert err.key == "ACLLM_CONFIG"
    assert str(missing) in err.message


@pytest.mark.parametrize("kind", ["directory", "not-utf8"])
def test_unreadable_config_file_is_a_config_error(tmp_path: Path, kind: str) -> None:
    if kind == "directory":
        path = tmp_path / "conf.d"
        path.mkdir()
    else:
        path = tmp_path / "latin1.toml"
        path.write_bytes('default_model = "caf\xe9"\n'.encode("latin-1"))
    err = config_error(path)
    assert str(path) in err.key


def test_settings_constructed_directly_keep_builtin_defaults() -> None:
    s = Settings()
    assert s.models["local"].backend == "local"
    assert s.kv.backend == "sqlite"


def test_a_secret_variable_named_by_the_config_is_not_read_as_a_setting(tmp_path: Path) -> None:
    path = tmp_path / "acllm.toml"
    path.write_text(
        '[indexes.archive]\nbackend = "pg"\ndsn = "postgresql://u@h/db"\n'
        'password_env = "ACLLM_PG_PASSWORD"\n'
    )
    settings = load_settings(path, environ={"ACLLM_PG_PASSWORD": "s3cret"})
    assert settings.indexes["archive"].options()["password_env"] == "ACLLM_PG_PASSWORD"
    with pytest.raises(ConfigError):  # not named by the config: still a (bad) setting
        load_settings(path, environ={"ACLLM_OTHER_PASSWORD": "s3cret"})
