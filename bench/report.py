"""Markdown tables for docs/BENCHMARKS.md from bench/results/*.json.

python -m bench.report [tasks-full]
"""

from __future__ import annotations

import json
import sys
from typing import Any

from bench.common import RESULTS, fmt_ci


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


if __name__ == "__main__":
    task_tables(sys.argv[1] if len(sys.argv) > 1 else "tasks-full")
