"""Reports on a stored run: JSON, Markdown and one self-contained HTML page (inline SVG plots,
no scripts, nothing fetched), optionally against a baseline run; and the gate CI uses.

Every mean carries a 95% percentile-bootstrap interval (1,000 resamples, fixed seed, so a report is
reproducible). With ``--vs`` the comparison is paired: only cases present and scored in both runs,
and the interval is of the mean difference — a change whose interval contains 0 is not shown to
matter. Plots: each metric's score distribution, per-category bars (metadata ``category``, else
``lang``), the latency histogram, and the A/B deltas with their intervals.
"""

from __future__ import annotations

import html
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from acllm.errors import UserError
from acllm.evals.store import Result, RunInfo

RESAMPLES = 1000
SEED = 20261127


def bootstrap_ci(values: Sequence[float], seed: int = SEED) -> tuple[float, float]:
    if not values:
        return (0.0, 0.0)
    rng = random.Random(seed)
    n = len(values)
    means = sorted(sum(rng.choices(values, k=n)) / n for _ in range(RESAMPLES))
    return means[int(0.025 * RESAMPLES)], means[int(0.975 * RESAMPLES) - 1]


def _scores(results: Sequence[Result]) -> dict[str, dict[str, dict[str, float]]]:
    """dataset -> metric -> case id -> value (ok cases only)."""
    out: dict[str, dict[str, dict[str, float]]] = {}
    for r in results:
        if r.status != "ok":
            continue
        for metric, value in r.scores.items():
            out.setdefault(r.dataset, {}).setdefault(metric, {})[r.case_id] = value
    return out


def _category(result: Result) -> str:
    return str(result.metadata.get("category") or result.metadata.get("lang") or "all")


def build(
    run: RunInfo,
    results: Sequence[Result],
    baseline: tuple[RunInfo, Sequence[Result]] | None = None,
) -> dict[str, Any]:
    """The report as data: what the JSON file holds and the HTML and Markdown show."""
    scores = _scores(results)
    datasets: dict[str, Any] = {}
    for dataset in sorted({r.dataset for r in results}):
        rows = [r for r in results if r.dataset == dataset]
        block: dict[str, Any] = {
            "cases": len(rows),
            "failed": sum(r.status == "failed" for r in rows),
            "failures": [
                {"case": r.case_id, "error": r.error} for r in rows if r.status == "failed"
            ][:50],
            "metrics": {},
        }
        for metric, per_case in sorted(scores.get(dataset, {}).items()):
            values = list(per_case.values())
            low, high = bootstrap_ci(values)
            by_category: dict[str, list[float]] = {}
            for r in rows:
                if r.case_id in per_case:
                    by_category.setdefault(_category(r), []).append(per_case[r.case_id])
            block["metrics"][metric] = {
                "mean": sum(values) / len(values),
                "ci": [low, high],
                "n": len(values),
                "values": values,
                "by_category": {k: sum(v) / len(v) for k, v in sorted(by_category.items())},
            }
        datasets[dataset] = block
    report: dict[str, Any] = {"run": run.id, "suite": run.suite, "datasets": datasets}
    if baseline is not None:
        report["vs"] = {"run": baseline[0].id, "datasets": _deltas(scores, _scores(baseline[1]))}
    return report


def _deltas(
    new: dict[str, dict[str, dict[str, float]]], old: dict[str, dict[str, dict[str, float]]]
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for dataset in sorted(set(new) & set(old)):
        for metric in sorted(set(new[dataset]) & set(old[dataset])):
            common = sorted(set(new[dataset][metric]) & set(old[dataset][metric]))
            if not common:
                continue
            diffs = [new[dataset][metric][c] - old[dataset][metric][c] for c in common]
            low, high = bootstrap_ci(diffs)
            out.setdefault(dataset, {})[metric] = {
                "delta": sum(diffs) / len(diffs),
                "ci": [low, high],
                "n": len(common),
                "new": sum(new[dataset][metric][c] for c in common) / len(common),
                "old": sum(old[dataset][metric][c] for c in common) / len(common),
            }
    return out


# --- gate ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class GateRule:
    metric: str
    minimum: float | None = None  # the mean must be at least this
    max_drop: float | None = None  # vs the baseline: the mean may fall at most this much


def parse_rules(minimums: Sequence[str], max_drop: float | None) -> list[GateRule]:
    rules = []
    for text in minimums:
        name, _, value = text.partition("=")
        try:
            rules.append(GateRule(name.strip(), minimum=float(value)))
        except ValueError:
            raise UserError(
                f"bad --min {text!r}", hint="write METRIC=VALUE, e.g. --min token_f1=0.5"
            ) from None
    if max_drop is not None:
        rules.append(GateRule("*", max_drop=max_drop))
    if not rules:
        raise UserError("the gate has no rule", hint="give --min METRIC=VALUE and/or --max-drop")
    return rules


def gate(report: dict[str, Any], rules: Sequence[GateRule]) -> list[str]:
    """What fails: a mean under its minimum, a regression beyond the allowed drop (the whole
    interval below -max_drop, so noise alone does not fail a build), or a metric that is missing."""
    problems = []
    for rule in rules:
        if rule.minimum is not None:
            found = False
            for dataset, block in report["datasets"].items():
                stats = block["metrics"].get(rule.metric)
                if stats is None:
                    continue
                found = True
                if stats["mean"] < rule.minimum:
                    problems.append(
                        f"{dataset}: {rule.metric} {stats['mean']:.4f} < {rule.minimum:g}"
                    )
            if not found:
                problems.append(f"no dataset has the metric {rule.metric!r}")
        if rule.max_drop is not None:
            if "vs" not in report:
                problems.append("--max-drop needs a baseline run (--vs RUN)")
                continue
            for dataset, metrics_ in report["vs"]["datasets"].items():
                for metric, d in metrics_.items():
                    worse = -d["delta"] if metric == "latency_s" else d["delta"]
                    high = -d["ci"][0] if metric == "latency_s" else d["ci"][1]
                    if worse < -rule.max_drop and high < -rule.max_drop:
                        problems.append(
                            f"{dataset}: {metric} regressed {d['old']:.4f} -> {d['new']:.4f}"
                        )
    return problems


# --- Markdown ------------------------------------------------------------------------------------


def markdown(report: dict[str, Any]) -> str:
    lines = [f"# Evaluation {report['suite']} — run {report['run']}", ""]
    for dataset, block in report["datasets"].items():
        lines += [f"## {dataset}", "", f"{block['cases']} cases, {block['failed']} failed.", ""]
        lines += ["| metric | mean | 95% CI | n |", "|---|---:|---|---:|"]
        for metric, s in block["metrics"].items():
            lines.append(
                f"| {metric} | {s['mean']:.4f} | [{s['ci'][0]:.4f}, {s['ci'][1]:.4f}] | {s['n']} |"
            )
        lines.append("")
    if "vs" in report:
        lines += [f"## Against run {report['vs']['run']} (paired)", ""]
        lines += ["| dataset | metric | old | new | delta | 95% CI | n |"]
        lines += ["|---|---|---:|---:|---:|---|---:|"]
        for dataset, metrics_ in report["vs"]["datasets"].items():
            for metric, d in metrics_.items():
                lines.append(
                    f"| {dataset} | {metric} | {d['old']:.4f} | {d['new']:.4f} | "
                    f"{d['delta']:+.4f} | [{d['ci'][0]:+.4f}, {d['ci'][1]:+.4f}] | {d['n']} |"
                )
        lines.append("")
    return "\n".join(lines)


# --- HTML with inline SVG ------------------------------------------------------------------------

_W, _H, _PAD = 420, 160, 30


def _histogram(values: Sequence[float], title: str, bins: int = 20) -> str:
    if not values:
        return ""
    low, high = min(values), max(values)
    width = (high - low) / bins or 1.0
    counts = [0] * bins
    for v in values:
        counts[min(bins - 1, int((v - low) / width))] += 1
    top = max(counts)
    bar_w = (_W - 2 * _PAD) / bins
    bars = "".join(
        f'<rect x="{_PAD + i * bar_w:.1f}" y="{_H - _PAD - (c / top) * (_H - 2 * _PAD):.1f}" '
        f'width="{bar_w - 1:.1f}" height="{(c / top) * (_H - 2 * _PAD):.1f}" fill="#3b6fd4">'
        f"<title>{c} cases</title></rect>"
        for i, c in enumerate(counts)
    )
    axis = (
        f'<text x="{_PAD}" y="{_H - 8}" font-size="11">{low:.3g}</text>'
        f'<text x="{_W - _PAD}" y="{_H - 8}" font-size="11" text-anchor="end">{high:.3g}</text>'
    )
    return _figure(title, bars + axis)


def _bars(items: dict[str, float], title: str, ci: dict[str, list[float]] | None = None) -> str:
    if not items:
        return ""
    lo = min(0.0, *items.values(), *(c[0] for c in (ci or {}).values()))
    hi = max(0.0, *items.values(), *(c[1] for c in (ci or {}).values())) or 1.0
    span = (hi - lo) or 1.0
    row_h = 22
    height = row_h * len(items) + 2 * _PAD

    def x(v: float) -> float:
        return 140 + (v - lo) / span * (_W - 190)

    parts = [f'<line x1="{x(0):.1f}" x2="{x(0):.1f}" y1="10" y2="{height - 10}" stroke="#999"/>']
    for i, (name, value) in enumerate(items.items()):
        y = _PAD + i * row_h
        left, right = sorted((x(0), x(value)))
        parts.append(
            f'<text x="135" y="{y + 14}" font-size="11" text-anchor="end">{html.escape(name)}</text>'
            f'<rect x="{left:.1f}" y="{y + 3}" width="{max(right - left, 1):.1f}" height="14" '
            f'fill="{"#3b6fd4" if value >= 0 else "#c8553d"}"><title>{value:.4f}</title></rect>'
            f'<text x="{right + 4:.1f}" y="{y + 14}" font-size="10" fill="#555">{value:.3g}</text>'
        )
        if ci and name in ci:
            a, b = x(ci[name][0]), x(ci[name][1])
            parts.append(
                f'<line x1="{a:.1f}" x2="{b:.1f}" y1="{y + 10}" y2="{y + 10}" stroke="#222"/>'
            )
    return _figure(title, "".join(parts), height)


def _figure(title: str, body: str, height: int = _H) -> str:
    return (
        f'<figure><figcaption>{html.escape(title)}</figcaption><svg xmlns="http://www.w3.org/2000/svg" '
        f'width="{_W}" height="{height}" role="img" aria-label="{html.escape(title)}">{body}</svg>'
        "</figure>"
    )


def html_page(report: dict[str, Any]) -> str:
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>acllm eval {html.escape(report['suite'])}</title><style>",
        "body{font:14px system-ui,sans-serif;margin:24px;color:#1d2330}"
        "table{border-collapse:collapse;margin:8px 0}td,th{border:1px solid #ccd;padding:3px 8px}"
        "figure{display:inline-block;margin:6px 12px 6px 0}figcaption{font-size:12px;color:#555}",
        "</style></head><body>",
        f"<h1>{html.escape(report['suite'])} — run {html.escape(report['run'])}</h1>",
    ]
    for dataset, block in report["datasets"].items():
        parts.append(f"<h2>{html.escape(dataset)}</h2>")
        parts.append(f"<p>{block['cases']} cases, {block['failed']} failed.</p>")
        parts.append("<table><tr><th>metric</th><th>mean</th><th>95% CI</th><th>n</th></tr>")
        for metric, s in block["metrics"].items():
            parts.append(
                f"<tr><td>{html.escape(metric)}</td><td>{s['mean']:.4f}</td>"
                f"<td>[{s['ci'][0]:.4f}, {s['ci'][1]:.4f}]</td><td>{s['n']}</td></tr>"
            )
        parts.append("</table>")
        for metric, s in block["metrics"].items():
            name = "latency (s)" if metric == "latency_s" else metric
            parts.append(_histogram(s["values"], f"{dataset}: {name} distribution"))
            if len(s["by_category"]) > 1:
                parts.append(_bars(s["by_category"], f"{dataset}: {name} by category"))
        if block["failures"]:
            items = "".join(
                f"<li>{html.escape(f['case'])}: {html.escape(str(f['error']))}</li>"
                for f in block["failures"]
            )
            parts.append(f"<details><summary>failures</summary><ul>{items}</ul></details>")
    if "vs" in report:
        parts.append(f"<h2>Against run {html.escape(report['vs']['run'])} (paired)</h2>")
        for dataset, metrics_ in report["vs"]["datasets"].items():
            deltas = {m: d["delta"] for m, d in metrics_.items()}
            cis = {m: d["ci"] for m, d in metrics_.items()}
            parts.append(_bars(deltas, f"{dataset}: change in the mean, with 95% CI", cis))
    parts.append("</body></html>")
    return "\n".join(p for p in parts if p)
