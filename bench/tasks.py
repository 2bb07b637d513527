"""Quality of acllm's language tasks on public sets, each beside a trivial baseline.

    python -m bench.tasks --quick   # seeded samples, a few minutes on 2 CPU cores
    python -m bench.tasks --full    # larger samples, about 25 minutes

Data: $ACLLM_BENCHMARKS (default <repo>/../shared/benchmarks). Results: bench/results/tasks-*.json.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from typing import Any

from bench import replay, run_classify, run_text
from bench.common import Row, data_dir, fmt_ci, machine, print_table, runtime_dir, write_results

# Cases per (set, method); None = the whole set. Embedding methods are cheap, so they see more.
SIZES: dict[str, dict[str, int | None]] = {
    "quick": {
        "sentiment_embedding": 100,
        "sentiment_generate": 100,
        "paraphrase_embedding": 100,
        "paraphrase_generate": 100,
        "translate": 40,
        "summarize": 12,
    },
    "full": {
        "sentiment_embedding": None,
        "sentiment_generate": 250,
        "paraphrase_embedding": 1000,
        "paraphrase_generate": 200,
        "translate": 100,
        "summarize": 40,
    },
}
RUNNERS = {
    "sentiment": run_classify.sentiment,
    "paraphrase": run_classify.paraphrase,
    "translate": run_text.translation,
    "summarize": run_text.summarization,
}


def _fmt(value: float | None, metric: str) -> str:
    if value is None:
        return "-"
    return f"{value:.1f}" if metric == "chrF" else f"{value:.3f}"


def table(rows: list[Row]) -> None:
    lines = []
    for r in rows:
        m = r["metric"]
        digits = 1 if m == "chrF" else 3
        value = r.get("value", r.get("accuracy"))
        ci = r.get("ci", r.get("accuracy_ci"))
        base = r["baseline"]
        bvalue = base.get("value", base.get("accuracy"))
        bci = base.get("ci", base.get("accuracy_ci"))
        lat = r.get("median_latency_s")
        lines.append(
            [
                r["task"],
                r["set"],
                r["method"],
                m,
                _fmt(value, m),
                fmt_ci(ci, digits),
                _fmt(r.get("macro_f1"), m) if "macro_f1" in r else "",
                r["n"],
                base["name"],
                f"{_fmt(bvalue, m)} [{fmt_ci(bci, digits)}]",
                "-" if lat is None else f"{lat:.3f}s",
                r.get("errors", ""),
            ]
        )
    print_table(
        [
            "task",
            "set",
            "method",
            "metric",
            "value",
            "95% CI",
            "macroF1",
            "n",
            "baseline",
            "baseline value [CI]",
            "median lat",
            "errors",
        ],
        lines,
    )


async def warm_up(tasks: Any) -> None:
    """Load the model and the embedder before anything is timed."""
    await tasks.sentiment("warm up", method="embedding", labels=["positive", "negative"])
    await tasks.sentiment("¡qué buen día!", method="generate", labels=["positive", "negative"])
    await tasks.same_meaning("El perro duerme.", "The dog sleeps.", method="embedding")


async def main_async(mode: str, only: list[str]) -> dict[str, Any]:
    from acllm.config import Settings
    from acllm.tasks import Tasks

    data = data_dir()
    info = machine()
    runtime = replay.runtime(Settings(data_dir=runtime_dir()))
    tasks = Tasks(runtime)
    await warm_up(tasks)
    rows: list[Row] = []
    cases: dict[str, list[Row]] = {}
    began = time.perf_counter()
    for name in only:
        print(f"{name} ...", file=sys.stderr, flush=True)
        got, records = await RUNNERS[name](tasks, SIZES[mode])
        rows += got
        cases[name] = records
    return {
        "mode": mode,
        "sizes": SIZES[mode],
        "data": str(data),
        "machine": info,
        "model": tasks.runtime.task_model().name,
        "replies": replay.summary(runtime),
        "seconds": round(time.perf_counter() - began, 1),
        "load_avg_at_end": [round(x, 2) for x in os.getloadavg()],
        "results": rows,
        "cases": cases,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.tasks", description=__doc__.split("\n")[0]
    )
    mode = parser.add_mutually_exclusive_group()
    for name in SIZES:
        mode.add_argument(
            f"--{name}",
            action="store_const",
            dest="mode",
            const=name,
            help=", ".join(f"{k}={v or 'all'}" for k, v in SIZES[name].items()),
        )
    parser.add_argument("--only", nargs="+", choices=list(RUNNERS), default=list(RUNNERS))
    parser.add_argument("--cases", type=int, help="cap every sample at this many (a smoke run)")
    args = parser.parse_args(argv)
    mode_name = args.mode or "quick"
    if args.cases:
        SIZES["smoke"] = {k: args.cases for k in SIZES[mode_name]}
        mode_name = "smoke"
    data_dir()  # fail early and clearly when the data is missing
    payload = asyncio.run(main_async(mode_name, args.only))
    table(payload["results"])
    suffix = "" if args.only == list(RUNNERS) else "-" + "-".join(args.only)
    path = write_results(f"tasks-{mode_name}{suffix}", payload)
    print(f"\n{payload['seconds']:.0f}s; written {path}")


if __name__ == "__main__":
    main()
