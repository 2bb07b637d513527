"""acllm eval run: suites, scoring, failures that do not stop a run, resuming, the CLI."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from acllm.cli.main import main
from acllm.errors import ConfigError, ServiceError
from acllm.evals import runner
from acllm.evals.datasets import Case, Dataset
from acllm.evals.store import RunStore

CASES = [
    {"id": "q1", "input": "¿Cuántos días tengo para devolver una bici?", "references": ["30 días"]},
    {"id": "q2", "input": "How many days of paid leave?", "references": ["23 working days"]},
    {"id": "q3", "input": "Who won the 2010 World Cup?", "expected": "refuse"},
]


def suite(tmp: Path, target: str, *, metrics: str = '["token_f1", "contains", "latency"]') -> Path:
    (tmp / "cases.jsonl").write_text(
        "\n".join(json.dumps(c, ensure_ascii=False) for c in CASES) + "\n{broken\n",
        encoding="utf-8",
    )
    path = tmp / "suite.toml"
    path.write_text(
        f'name = "demo"\nmetrics = {metrics}\nconcurrency = 2\n\n[target]\n{target}\n\n'
        '[[datasets]]\npath = "cases.jsonl"\n',
        encoding="utf-8",
    )
    return path


def test_suite_errors_name_the_key(tmp_path: Path) -> None:
    path = suite(tmp_path, 'kind = "oracle"\nname = "x"')
    with pytest.raises(ConfigError, match=r"target\.kind"):
        runner.load_suite(path)


async def test_scores_failures_and_resume(tmp_path: Path) -> None:
    path = suite(tmp_path, 'kind = "assistant"\nname = "x"')
    spec, base = runner.load_suite(path)
    [data] = runner.load_datasets(spec, base)
    assert [c.id for c in data] == ["q1", "q2", "q3"] and data.errors[0].line == 4
    attempts: dict[str, int] = {}

    async def flaky(case: Case) -> tuple[str, Any, int, int]:
        attempts[case.id] = attempts.get(case.id, 0) + 1
        if case.id == "q2" and attempts[case.id] == 1:
            raise ServiceError("upstream dropped the connection")
        answers = {"q1": "Tienes 30 días naturales.", "q2": "23 working days a year."}
        text = answers.get(case.id, "The documents do not say.")
        return text, {"answer": text, "refused": case.id == "q3"}, 5, 2

    store = RunStore(tmp_path / "evals.sqlite")
    try:
        run_id = store.create("demo", runner.config_snapshot(spec, None))
        counts = await runner.run_suite(spec, [data], flaky, store, run_id, price=(1.0, 3.0))
        assert counts == {"ok": 2, "failed": 1, "skipped": 0}
        failed = [r for r in store.results(run_id) if r.status == "failed"]
        assert [(r.case_id, r.error) for r in failed] == [("q2", "upstream dropped the connection")]

        again = await runner.run_suite(spec, [data], flaky, store, run_id)  # resume
        assert again == {"ok": 1, "failed": 0, "skipped": 2}
        assert attempts == {"q1": 1, "q2": 2, "q3": 1}
        results = {r.case_id: r for r in store.results(run_id)}
        assert results["q1"].scores["contains"] == 1.0
        assert results["q2"].scores["token_f1"] == pytest.approx(0.857142857, abs=1e-6)
        assert results["q3"].scores["token_f1"] == 0.0  # "expected" is its reference
        assert results["q1"].tokens == 7 and results["q1"].latency_s is not None
        assert results["q1"].scores["cost"] == pytest.approx((5 * 1.0 + 2 * 3.0) / 1000)
        summary = runner.summary(store.results(run_id))["cases"]
        assert summary["cases"] == 3 and summary["failed"] == 0
        assert summary["scores"]["contains"]["n"] == 3
        assert summary["scores"]["contains"]["mean"] == pytest.approx(2 / 3)
    finally:
        store.close()


def test_cli_runs_a_task_suite_on_the_fake_model(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "acllm.toml"
    config.write_text(
        f'data_dir = "{tmp_path / "home"}"\ndefault_model = "fake"\ndefault_embedder = "hash"\n'
        '[models.fake]\nbackend = "fake"\ndefault = \'{"label": "positive"}\'\n'
        '[tasks]\nsentiment_method = "generate"\n'
        "[service.prices.fake]\nprompt_per_1k = 1.0\ncompletion_per_1k = 2.0\n",
        encoding="utf-8",
    )
    path = tmp_path / "suite.toml"
    (tmp_path / "sentiment.jsonl").write_text(
        '{"id": "a", "input": "Me encanta", "expected": "positive"}\n'
        '{"id": "b", "input": "Lo odio", "expected": "negative"}\n',
        encoding="utf-8",
    )
    path.write_text(
        'name = "sentiment"\nmetrics = ["correct"]\n[target]\nkind = "task"\nname = "sentiment"\n'
        '[[datasets]]\npath = "sentiment.jsonl"\n',
        encoding="utf-8",
    )
    assert main(["eval", "run", str(path), "--config", str(config), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["counts"] == {"ok": 2, "failed": 0, "skipped": 0}
    assert out["summary"]["sentiment"]["scores"]["correct"]["mean"] == 0.5
    assert out["summary"]["sentiment"]["scores"]["cost"]["mean"] > 0  # priced: the task's model

    assert main(["eval", "list", "--config", str(config), "--json"]) == 0
    runs = json.loads(capsys.readouterr().out)["runs"]
    assert [r["id"] for r in runs] == [out["run"]] and runs[0]["finished"]
    assert main(["eval", "show", out["run"], "--config", str(config)]) == 0
    assert "sentiment: 2 cases, 0 failed; correct 0.500" in capsys.readouterr().out
    assert main(["eval", "show", "nope", "--config", str(config)]) == 2
    assert main(["eval", "run", str(tmp_path / "missing.toml"), "--config", str(config)]) == 2


def test_dataset_objects_iterate() -> None:
    data = Dataset("d", [Case("1", "x")])
    assert len(data) == 1 and [c.id for c in data] == ["1"]


def store_with_two_runs(path: Path) -> tuple[RunStore, str, str]:
    from acllm.evals.store import Result

    store = RunStore(path)
    old = store.create("demo", {})
    new = store.create("demo", {})
    for i in range(40):
        meta = {"lang": "es" if i % 2 else "en"}
        base = 0.5 + 0.01 * (i % 10)
        store.save(
            old,
            Result("qa", f"c{i}", "ok", None, {"f1": base, "latency_s": 0.2}, 0.2, 5, None, meta),
        )
        store.save(
            new,
            Result(
                "qa", f"c{i}", "ok", None, {"f1": base - 0.2, "latency_s": 0.1}, 0.1, 5, None, meta
            ),
        )
    store.save(new, Result("qa", "broken", "failed", None, {}, None, None, "HTTP 500", {}))
    return store, old, new


def test_report_and_gate(tmp_path: Path) -> None:
    from acllm.evals import report

    store, old, new = store_with_two_runs(tmp_path / "e.sqlite")
    try:
        built = report.build(
            store.run(new), store.results(new), (store.run(old), store.results(old))
        )
    finally:
        store.close()
    qa = built["datasets"]["qa"]
    assert qa["cases"] == 41 and qa["failed"] == 1 and qa["failures"][0]["error"] == "HTTP 500"
    f1 = qa["metrics"]["f1"]
    assert f1["mean"] == pytest.approx(0.345) and f1["ci"][0] < f1["mean"] < f1["ci"][1]
    assert set(f1["by_category"]) == {"en", "es"}
    delta = built["vs"]["datasets"]["qa"]["f1"]
    assert delta["delta"] == pytest.approx(-0.2) and delta["n"] == 40
    assert delta["ci"][1] < 0
    page = report.html_page(built)
    assert page.count("<svg") >= 4 and "change in the mean" in page and "<script" not in page
    assert "| f1 | 0.3450 |" in report.markdown(built)

    rules = report.parse_rules(["f1=0.3"], None)
    assert report.gate(built, rules) == []
    assert report.gate(built, report.parse_rules(["f1=0.4"], None)) == ["qa: f1 0.3450 < 0.4"]
    drop = report.gate(built, report.parse_rules([], 0.05))
    assert drop == ["qa: f1 regressed 0.5450 -> 0.3450"]  # latency improved: not a regression
    assert report.gate(built, report.parse_rules(["nope=1"], None)) == [
        "no dataset has the metric 'nope'"
    ]
    with pytest.raises(Exception, match="METRIC=VALUE"):
        report.parse_rules(["f1"], None)


def test_cli_report_and_gate_exit_codes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    home = tmp_path / "home"
    config = tmp_path / "acllm.toml"
    config.write_text(f'data_dir = "{home}"\n', encoding="utf-8")
    home.mkdir()
    store, old, new = store_with_two_runs(home / "evals.sqlite")
    store.close()
    out = tmp_path / "report"
    args = ["eval", "report", new, "--vs", old, "--out", str(out), "--config", str(config)]
    assert main(args) == 0
    assert {p.name for p in out.iterdir()} == {"report.html", "report.md", "report.json"}
    assert json.loads((out / "report.json").read_text())["vs"]["run"] == old
    gate = ["eval", "gate", new, "--config", str(config)]
    assert main([*gate, "--min", "f1=0.3"]) == 0
    assert main([*gate, "--min", "f1=0.9"]) == 4
    assert main([*gate, "--vs", old, "--max-drop", "0.05"]) == 4
    assert main([*gate, "--max-drop", "0.05"]) == 4  # needs a baseline: said, and failed
    assert "needs a baseline" in capsys.readouterr().out
    assert main(gate) == 2  # no rule at all


def test_feedback_becomes_regression_cases_and_finetuning_data(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from acllm.evals.datasets import load_jsonl
    from acllm.feedback import FeedbackStore

    home = tmp_path / "home"
    config = tmp_path / "acllm.toml"
    config.write_text(f'data_dir = "{home}"\n', encoding="utf-8")
    store = FeedbackStore(home / "feedback.sqlite")
    cites = [{"n": 1, "source": "handbook.md", "location": "Paid leave", "text": "23 days"}]

    def answer(question: str, text: str, refused: bool = False) -> str:
        body = {"question": question, "answer": text, "refused": refused, "citations": cites}
        return store.record_answer(assistant="bicis", answer=body, config={"threshold": 0.84})

    wrong = answer("How many days of leave?", "30 days.")
    store.add(wrong, rating=-1, now=1.0)
    store.add(wrong, correction="23 working days a year.", now=2.0)
    right = answer("¿Cuánto cuesta la revisión completa?", "79 euros. [1]")
    store.add(right, rating=1, now=3.0)
    vague = answer("Where is the shop?", "Somewhere.")
    store.add(vague, rating=-1, now=4.0)  # bad, no correction
    store.close()

    out = tmp_path / "export"
    args = ["eval", "export-feedback", "--out", str(out), "--config", str(config), "--json"]
    assert main(args) == 0
    assert json.loads(capsys.readouterr().out)["cases"] == 2
    cases = load_jsonl(out / "regression.jsonl")
    assert not cases.errors  # the export is a valid dataset for acllm eval run
    by_id = {c.id: c for c in cases}
    assert by_id[wrong].expected == "23 working days a year."
    assert by_id[wrong].metadata["answer"] == "30 days." and by_id[wrong].metadata["rating"] == -1
    assert by_id[wrong].metadata["citations"] == cites
    assert by_id[vague].expected is None and by_id[vague].metadata["category"] == "bad"
    finetune = [json.loads(x) for x in (out / "finetune.jsonl").read_text().splitlines()]
    pairs = {r["messages"][0]["content"]: r["messages"][1]["content"] for r in finetune}
    assert pairs == {
        "How many days of leave?": "23 working days a year.",
        "¿Cuánto cuesta la revisión completa?": "79 euros. [1]",
    }
    assert main([*args[:-1], "--good"]) == 0  # good answers become cases too
    assert len(load_jsonl(out / "regression.jsonl")) == 3


@pytest.mark.model
def test_the_example_suite_runs_reports_and_gates(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """examples/evals/bicis.toml on the example assistant, as a team would run it in CI."""
    root = Path(__file__).resolve().parents[1]
    config = tmp_path / "acllm.toml"
    config.write_text(
        f'data_dir = "{tmp_path / "home"}"\n[assistants.bicis]\nindex = "bicis"\n',
        encoding="utf-8",
    )
    assert main(["ingest", str(root / "examples" / "data"), "--index", "bicis",
                 "--config", str(config), "--json"]) == 0  # fmt: skip
    capsys.readouterr()
    suite_file = root / "examples" / "evals" / "bicis.toml"
    assert main(["eval", "run", str(suite_file), "--config", str(config), "--json"]) == 0
    done = json.loads(capsys.readouterr().out)
    scores = done["summary"]["bicis"]["scores"]
    assert scores["refusal_correct"]["n"] == 6 and scores["contains"]["n"] == 4
    gate = ["eval", "gate", done["run"], "--config", str(config)]
    assert main([*gate, "--min", "contains=0.75", "--min", "refusal_correct=0.8"]) == 0
    assert main([*gate, "--min", "contains=1.01"]) == 4
    out = tmp_path / "report"
    assert main(["eval", "report", done["run"], "--out", str(out), "--config", str(config)]) == 0
    page = (out / "report.html").read_text(encoding="utf-8")
    assert page.count("<svg") >= 4 and "refusal_correct" in page


def test_questions_generated_from_documents_are_kept_only_when_retrieved_back(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from acllm.evals.datasets import load_jsonl

    root = Path(__file__).resolve().parents[1]
    config = tmp_path / "acllm.toml"
    # The fake "model" asks about the passage with the passage's own words (retrievable), except
    # that every third call it answers garbage (unparsable, dropped).
    config.write_text(
        f'data_dir = "{tmp_path / "home"}"\ndefault_model = "fake"\ndefault_embedder = "hash"\n'
        '[models.fake]\nbackend = "fake"\n',
        encoding="utf-8",
    )
    assert main(["ingest", str(root / "examples" / "data"), "--index", "bicis",
                 "--config", str(config), "--json"]) == 0  # fmt: skip
    capsys.readouterr()

    from acllm import FakeChatModel, Runtime
    from acllm.config import load_settings
    from acllm.evals.from_documents import generate
    from acllm.ingest import sources
    from acllm.ingest.chunking import chunk_documents
    from acllm.ingest.document import Document

    calls = {"n": 0}

    def ask_back(messages: Any) -> str:
        calls["n"] += 1
        if calls["n"] % 3 == 0:
            return "I cannot write a question."
        passage = messages[-1].content.removeprefix("Passage: ")
        words = passage.split()
        return json.dumps({"question": " ".join(words[:12]) + "?", "answer": words[0]})

    runtime = Runtime(load_settings(config, environ={}))
    try:
        pending, _ = sources.from_path(root / "examples" / "data")
        docs = [d for p in pending for d in p.read() if isinstance(d, Document)]
        chunks = list(chunk_documents(docs))
        made = asyncio.run(
            generate(FakeChatModel(default=ask_back), runtime.index("bicis"),
                     runtime.embedder("hash"), chunks, n=12)
        )  # fmt: skip
    finally:
        runtime.close()
    assert made.tried == 12 and made.dropped_unparsed == 4
    assert made.dropped_unfounded == 0  # its "answer" is the passage's first word
    assert len(made.cases) + made.dropped_unretrieved == 8 and len(made.cases) >= 6
    ids = {c.id for c in chunks}
    for case in made.cases:
        assert case["metadata"]["chunk_id"] in ids and case["references"]
    out = tmp_path / "generated.jsonl"
    from acllm.evals.from_feedback import write_jsonl

    write_jsonl(out, made.cases)
    assert not load_jsonl(out).errors  # a valid dataset for acllm eval run

    # The CLI says what it needs.
    assert main(["eval", "make-dataset", "--config", str(config)]) == 2
    assert main(["eval", "make-dataset", str(root / "examples" / "data"), "--index", "nope",
                 "--config", str(config)]) == 2  # fmt: skip
