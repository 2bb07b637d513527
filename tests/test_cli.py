"""The real ``acllm`` console script, run as a subprocess on a fake model and the hash embedder."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

import acllm

TASK_COMMANDS = ("translate", "sentiment", "summarize", "paraphrase", "correct", "check-rules")
UNREACHABLE = "http://127.0.0.1:9/v1"  # the discard port: nothing listens, connections are refused


def _script() -> str:
    beside = Path(sys.executable).parent / "acllm"
    if beside.exists():
        return str(beside)
    found = shutil.which("acllm")
    assert found, "the acllm console script is not installed"
    return found


ACLLM = _script()


def toml_str(value: str) -> str:
    return json.dumps(value)  # a JSON string is a valid TOML basic string


def config_text(reply: str) -> str:
    return f"""
default_model = "f"
default_embedder = "hash"

[models.f]
backend = "fake"
default = {toml_str(reply)}

[models.remote]
backend = "openai"
base_url = "{UNREACHABLE}"
model = "m"
timeout = 5
"""


@dataclass
class Result:
    code: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        return json.loads(self.stdout)  # the whole stdout must be one JSON document


Run = Callable[..., Result]


@pytest.fixture
def acllm_cli(tmp_path: Path) -> Run:
    work = tmp_path / "work"  # no acllm.toml here
    work.mkdir()
    home = tmp_path / "home"
    base_env = {k: v for k, v in os.environ.items() if not k.startswith("ACLLM_")}
    base_env["ACLLM_HOME"] = str(home)

    def run(
        *args: str,
        reply: str = "ok",
        stdin: str = "",
        env: dict[str, str] | None = None,
        config: str | None = None,
    ) -> Result:
        cfg = tmp_path / "acllm-test.toml"
        cfg.write_text(config if config is not None else config_text(reply), encoding="utf-8")
        full_env = {**base_env, "ACLLM_CONFIG": str(cfg), **(env or {})}
        proc = subprocess.run(
            [ACLLM, *args],
            input=stdin,
            capture_output=True,
            text=True,
            cwd=work,
            env=full_env,
            timeout=300,
            check=False,
        )
        return Result(proc.returncode, proc.stdout, proc.stderr)

    return run


def assert_user_error(r: Result) -> None:
    assert r.code == 2, (r.stdout, r.stderr)
    assert r.stderr.startswith("error: ") or "\nerror: " in r.stderr, r.stderr
    assert "Traceback" not in r.stderr


# --- help and version ----------------------------------------------------------------------------


def test_help_lists_the_task_commands(acllm_cli: Run) -> None:
    r = acllm_cli("--help")
    assert r.code == 0
    for command in (*TASK_COMMANDS, "models", "config"):
        assert command in r.stdout


@pytest.mark.parametrize("command", TASK_COMMANDS)
def test_each_task_command_has_help(acllm_cli: Run, command: str) -> None:
    r = acllm_cli(command, "--help")
    assert r.code == 0
    assert "--json" in r.stdout


def test_version(acllm_cli: Run) -> None:
    r = acllm_cli("--version")
    assert r.code == 0
    assert r.stdout.strip() == f"acllm {acllm.__version__}"


def test_no_command_is_a_usage_error(acllm_cli: Run) -> None:
    r = acllm_cli()
    assert r.code == 2
    assert "Traceback" not in r.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["ask", "--json"], "required: question"),
        (["translate", "--to", "es", "--bogus", "--json"], "unrecognized arguments: --bogus"),
        (["review", "maybe", "--json"], "invalid choice"),
    ],
)
def test_usage_errors_with_json_are_json(acllm_cli: Run, args: list[str], message: str) -> None:
    r = acllm_cli(*args)
    assert r.code == 2
    error = json.loads(r.stdout)["error"]
    assert error["type"] == "usage_error" and message in error["message"]
    assert "usage:" in r.stderr  # people still get argparse's usage


def test_usage_errors_without_json_print_nothing_on_stdout(acllm_cli: Run) -> None:
    r = acllm_cli("ask")
    assert r.code == 2 and r.stdout == "" and "required: question" in r.stderr


# --- each task with --json -----------------------------------------------------------------------

LONG_TEXT = (
    "The city council approved the new park budget on Monday. "
    "Work on the playground starts in spring. "
    "Residents asked for more trees and benches along the river. "
    "The mayor said the park will open next year. "
    "Some shop owners worry about parking during the works."
)


@pytest.mark.parametrize(
    ("args", "reply", "keys"),
    [
        (
            ["translate", "--to", "es", "--from", "en", "Good morning, friend."],
            "Buenos días, amigo.",
            {"translation", "source_lang", "target_lang", "usage"},
        ),
        (
            ["sentiment", "I love this, it is wonderful."],
            "unused",
            {"label", "score", "scores", "method", "lang"},
        ),
        (
            ["sentiment", "--method", "generate", "I love this."],
            '{"label": "positive"}',
            {"label", "score", "scores", "method", "lang"},
        ),
        (
            ["summarize", "--max-words", "12", LONG_TEXT],
            "unused",
            {"summary", "method", "lang", "words"},
        ),
        (
            ["paraphrase", "The weather is nice today."],
            "Today the weather is pleasant.",
            {"paraphrase", "lang", "similarity"},
        ),
        (
            ["paraphrase", "The cat sat.", "--compare", "The cat sat down."],
            "unused",
            {"same", "score", "method", "threshold"},
        ),
        (
            ["correct", "--lang", "en", "She have two cats and a dog."],
            "She has two cats and a dog.",
            {"corrected", "edits", "changed", "lang", "rejected"},
        ),
        (
            ["check-rules", "--lang", "en", "--rule", "Be polite", "Thank you for your order."],
            '{"passed": true, "reason": "polite"}',
            {"passed", "results", "lang"},
        ),
    ],
    ids=[
        "translate",
        "sentiment",
        "sentiment-generate",
        "summarize",
        "paraphrase",
        "paraphrase-compare",
        "correct",
        "check-rules",
    ],
)
def test_task_json_output(acllm_cli: Run, args: list[str], reply: str, keys: set[str]) -> None:
    r = acllm_cli(*args, "--json", reply=reply)
    assert r.code == 0, r.stderr
    data = r.json()
    assert isinstance(data, dict)
    assert keys <= set(data), data


def test_translate_uses_the_model_reply(acllm_cli: Run) -> None:
    r = acllm_cli(
        "translate", "--to", "es", "--from", "en", "Good night.", "--json", reply="Buenas"
    )
    data = r.json()
    assert data["translation"] == "Buenas"
    assert (data["source_lang"], data["target_lang"]) == ("en", "es")


def test_sentiment_generate_uses_the_model_label(acllm_cli: Run) -> None:
    r = acllm_cli(
        "sentiment", "--method", "generate", "It is fine.", "--json", reply='{"label": "negative"}'
    )
    data = r.json()
    assert data["label"] == "negative"
    assert data["method"] == "generate"


def test_correct_lists_the_edits(acllm_cli: Run) -> None:
    r = acllm_cli(
        "correct", "--lang", "en", "She have two cats.", "--json", reply="She has two cats."
    )
    data = r.json()
    assert data["corrected"] == "She has two cats."
    assert data["changed"] is True
    assert [(e["original"], e["replacement"]) for e in data["edits"]] == [("have", "has")]


def test_text_output_without_json(acllm_cli: Run) -> None:
    r = acllm_cli("translate", "--to", "es", "--from", "en", "Hello.", reply="Hola.")
    assert r.code == 0, r.stderr
    assert r.stdout.strip() == "Hola."


def test_text_from_stdin_when_no_argument(acllm_cli: Run) -> None:
    r = acllm_cli(
        "translate", "--to", "es", "--from", "en", "--json", stdin="Good morning.\n", reply="Hola"
    )
    assert r.code == 0, r.stderr
    assert r.json()["translation"] == "Hola"


def test_dash_reads_stdin(acllm_cli: Run) -> None:
    r = acllm_cli("summarize", "-", "--json", stdin="Short text here.")
    assert r.code == 0, r.stderr
    assert r.json()["summary"] == "Short text here."


def test_empty_stdin_is_a_user_error(acllm_cli: Run) -> None:
    r = acllm_cli("correct", stdin="")
    assert_user_error(r)
    assert r.stdout == ""


def test_whitespace_argument_is_a_user_error(acllm_cli: Run) -> None:
    assert_user_error(acllm_cli("sentiment", "   \n "))


def test_unknown_language_code(acllm_cli: Run) -> None:
    r = acllm_cli("translate", "--to", "xx", "Hello there.")
    assert_user_error(r)
    assert "xx" in r.stderr


def test_bad_sentiment_labels(acllm_cli: Run) -> None:
    assert_user_error(acllm_cli("sentiment", "--labels", "happy,sad", "Nice."))


# --- check-rules ---------------------------------------------------------------------------------


def test_check_rules_without_rules(acllm_cli: Run) -> None:
    r = acllm_cli("check-rules", "Some text.")
    assert_user_error(r)
    assert "rule" in r.stderr


def test_check_rules_with_invalid_json_rules_file(acllm_cli: Run, tmp_path: Path) -> None:
    rules = tmp_path / "rules.json"
    rules.write_text('["Be polite", ', encoding="utf-8")
    r = acllm_cli("check-rules", "--rules-file", str(rules), "Some text.")
    assert_user_error(r)
    assert "JSON" in r.stderr


def test_check_rules_with_missing_rules_file(acllm_cli: Run, tmp_path: Path) -> None:
    r = acllm_cli("check-rules", "--rules-file", str(tmp_path / "none.json"), "Some text.")
    assert_user_error(r)


def test_check_rules_twice(acllm_cli: Run) -> None:
    r = acllm_cli(
        "check-rules",
        "--lang",
        "en",
        "--rule",
        "Be polite",
        "--rule",
        "Mention the price",
        "Thanks! It costs 5 euros.",
        "--json",
        reply='{"passed": true, "reason": "ok"}',
    )
    assert r.code == 0, r.stderr
    data = r.json()
    assert [x["rule"] for x in data["results"]] == ["Be polite", "Mention the price"]
    assert data["passed"] is True


def test_check_rules_from_a_json_file(acllm_cli: Run, tmp_path: Path) -> None:
    rules = tmp_path / "rules.json"
    rules.write_text('["Be polite", "Be brief", "Sign the message"]', encoding="utf-8")
    r = acllm_cli(
        "check-rules",
        "--lang",
        "en",
        "--rules-file",
        str(rules),
        "Thanks.",
        "--json",
        reply='{"passed": false, "reason": "no"}',
    )
    assert r.code == 0, r.stderr
    data = r.json()
    assert len(data["results"]) == 3
    assert data["passed"] is False


# --- backend failures ----------------------------------------------------------------------------


def test_missing_gguf_path(acllm_cli: Run) -> None:
    r = acllm_cli(
        "correct",
        "--model",
        "local",
        "Hello there.",
        env={"ACLLM_MODELS__LOCAL__PATH": "/nonexistent.gguf"},
    )
    assert_user_error(r)
    assert "/nonexistent.gguf" in r.stderr


@pytest.mark.parametrize("magic", [b"", b"GGUF"], ids=["random-bytes", "gguf-magic-then-garbage"])
def test_corrupt_gguf_file(acllm_cli: Run, tmp_path: Path, magic: bytes) -> None:
    bad = tmp_path / "broken.gguf"
    bad.write_bytes(magic + b"\x00" + os.urandom(4096))
    r = acllm_cli(
        "correct", "--model", "local", "Hello there.", env={"ACLLM_MODELS__LOCAL__PATH": str(bad)}
    )
    assert_user_error(r)
    assert str(bad) in r.stderr


def test_unreachable_openai_endpoint(acllm_cli: Run) -> None:
    r = acllm_cli("correct", "--lang", "en", "--model", "remote", "Hello there.")
    assert r.code == 3, (r.stdout, r.stderr)
    assert "error: " in r.stderr
    assert "127.0.0.1:9" in r.stderr
    assert "Traceback" not in r.stderr
    assert r.stdout == ""


def test_json_error_output_for_a_backend_failure(acllm_cli: Run) -> None:
    r = acllm_cli("correct", "--lang", "en", "--model", "remote", "Hello there.", "--json")
    assert r.code == 3
    data = r.json()
    assert set(data) == {"error"}
    assert data["error"]["type"] == "backend_error"
    assert data["error"]["message"]
    assert "error: " in r.stderr


def test_json_error_output_for_a_user_error(acllm_cli: Run) -> None:
    r = acllm_cli("translate", "--to", "xx", "Hello.", "--json")
    assert r.code == 2
    data = r.json()
    assert set(data) == {"error"}
    assert data["error"]["type"] == "user_error"
    assert "xx" in data["error"]["message"]
    assert data["error"]["hint"]


def test_unknown_model_name(acllm_cli: Run) -> None:
    r = acllm_cli("correct", "--model", "ghost", "Hello.")
    assert_user_error(r)
    assert "ghost" in r.stderr


def test_invalid_fake_reply_is_a_backend_error(acllm_cli: Run) -> None:
    r = acllm_cli("check-rules", "--lang", "en", "--rule", "Be polite", "Hi.", reply="not json")
    assert r.code == 3
    assert "Traceback" not in r.stderr


# --- models and config ---------------------------------------------------------------------------


def test_models_json(acllm_cli: Run) -> None:
    r = acllm_cli("models", "--json")
    assert r.code == 0, r.stderr
    data = r.json()
    families = {f["name"]: f for f in data["families"]}
    llama2 = families["Llama 2"]
    assert llama2["osd"] is False
    (smol,) = [f for name, f in families.items() if name.startswith("SmolLM2")]
    assert smol["osd"] is True
    assert smol["installed"] is True
    configured = {c["name"]: c for c in data["configured"]}
    assert configured["f"]["backend"] == "fake"
    assert configured["remote"]["target"] == UNREACHABLE
    assert configured["local"]["backend"] == "local"


def test_models_text(acllm_cli: Run) -> None:
    r = acllm_cli("models")
    assert r.code == 0, r.stderr
    assert "Llama 2" in r.stdout
    assert "SmolLM2" in r.stdout


def test_config_json(acllm_cli: Run, tmp_path: Path) -> None:
    r = acllm_cli("config", "--json")
    assert r.code == 0, r.stderr
    data = r.json()
    assert data["default_model"] == "f"
    assert data["default_embedder"] == "hash"
    assert data["data_dir"] == str(tmp_path / "home")
    assert data["models"]["f"]["backend"] == "fake"
    assert data["models"]["local"]["backend"] == "local"


def test_config_flag_overrides_acllm_config(acllm_cli: Run, tmp_path: Path) -> None:
    other = tmp_path / "other.toml"
    other.write_text('default_embedder = "minilm"\n', encoding="utf-8")
    r = acllm_cli("config", "--json", "--config", str(other))
    assert r.code == 0, r.stderr
    assert r.json()["default_embedder"] == "minilm"


def test_env_override_reaches_the_cli(acllm_cli: Run) -> None:
    r = acllm_cli("config", "--json", env={"ACLLM_MODELS__LOCAL__THREADS": "2"})
    assert r.code == 0, r.stderr
    assert r.json()["models"]["local"]["threads"] == 2


@pytest.mark.parametrize("command", ["config", "models", "correct"])
def test_bad_config_names_the_key(acllm_cli: Run, command: str) -> None:
    args = [command, "Hello."] if command == "correct" else [command]
    r = acllm_cli(*args, config="no_such_setting = 1\n")
    assert_user_error(r)
    assert "no_such_setting" in r.stderr


def test_bad_config_with_json(acllm_cli: Run) -> None:
    r = acllm_cli("config", "--json", config="no_such_setting = 1\n")
    assert r.code == 2
    data = r.json()
    assert data["error"]["type"] == "user_error"
    assert "no_such_setting" in data["error"]["message"]


def test_bad_env_setting_names_the_variable(acllm_cli: Run) -> None:
    r = acllm_cli("config", env={"ACLLM_NO_SUCH_SETTING": "1"})
    assert_user_error(r)
    assert "ACLLM_NO_SUCH_SETTING" in r.stderr


def test_missing_config_file(acllm_cli: Run, tmp_path: Path) -> None:
    r = acllm_cli("config", "--config", str(tmp_path / "missing.toml"))
    assert_user_error(r)
    assert "missing.toml" in r.stderr


def test_literal_secret_in_config(acllm_cli: Run) -> None:
    cfg = config_text("ok") + 'api_key = "sk-very-secret"\n'
    # appended under [models.remote]
    r = acllm_cli("config", config=cfg)
    assert_user_error(r)
    assert "api_key_env" in r.stderr
    assert "sk-very-secret" not in r.stderr


def test_review_commands_list_approve_and_retire(acllm_cli: Run, tmp_path: Path) -> None:
    from acllm.feedback import FeedbackStore

    store = FeedbackStore(tmp_path / "home" / "feedback.sqlite")  # where ACLLM_HOME points
    answer = {"question": "¿Horario?", "answer": "De 10 a 14. [1]", "refused": False,
              "lang": "es", "citations": [{"n": 1, "source": "horario.md", "location": "",
                                           "text": "De 10 a 14."}]}  # fmt: skip
    fb = store.add(
        store.record_answer(assistant="tienda", answer=answer, config={}),
        rating=-1,
        correction="De 9 a 14.",
    )
    store.close()
    listed = acllm_cli("review", "list", "--json")
    assert listed.code == 0 and [f["id"] for f in listed.json()["pending"]] == [fb.id]
    assert "horario.md" in acllm_cli("review", "list").stdout  # shown with its sources
    assert_user_error(acllm_cli("review", "approve"))  # which one?
    assert_user_error(acllm_cli("review", "list", "--answer", "x"))
    approved = acllm_cli("review", "approve", fb.id, "--reviewer", "ana", "--json")
    assert approved.code == 0
    override = approved.json()["override"]
    assert override["answer"] == "De 9 a 14." and override["reviewer"] == "ana"
    assert_user_error(acllm_cli("review", "reject", fb.id))  # already decided
    assert acllm_cli("review", "list", "--json").json()["pending"] == []
    active = acllm_cli("review", "overrides", "--json").json()["overrides"]
    assert [o["id"] for o in active] == [override["id"]]
    assert acllm_cli("review", "retire", override["id"], "--json").json()["active"] is False
    assert acllm_cli("review", "overrides", "--json").json()["overrides"] == []
    assert len(acllm_cli("review", "overrides", "--all", "--json").json()["overrides"]) == 1
