"""Shared benchmark plumbing: data lookup, seeded sampling, confidence intervals, results files."""

from __future__ import annotations

import json
import math
import os
import platform
import random
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

T = TypeVar("T")
Row = dict[str, Any]

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results"
SEED = 20261127
BOOTSTRAP = 1000


def runtime_dir() -> Path:
    """The benchmarks' acllm data dir (embedding cache, ...): ``$ACLLM_BENCH_DATA`` or
    bench/results/runtime, kept between runs so vectors are embedded once."""
    raw = os.environ.get("ACLLM_BENCH_DATA")
    return Path(raw).expanduser() if raw else RESULTS / "runtime"


def data_dir() -> Path:
    """The public benchmark sets: ``$ACLLM_BENCHMARKS`` or ``<repo>/../shared/benchmarks``."""
    raw = os.environ.get("ACLLM_BENCHMARKS")
    path = Path(raw).expanduser() if raw else ROOT.parent / "shared" / "benchmarks"
    if not path.is_dir():
        sys.exit(
            f"benchmark data not found at {path}\n"
            "set ACLLM_BENCHMARKS to the folder holding sst2_dev/, pawsx_es_en/, ... "
            "(see ../shared/benchmarks/README.md)"
        )
    return path


def sample(items: Sequence[T], n: int | None, *, seed: int = SEED, key: str = "") -> list[T]:
    """A seeded sample of ``n`` items in their original order (all of them when n is None)."""
    if n is None or n >= len(items):
        return list(items)
    rng = random.Random(f"{seed}:{key}")
    picked = sorted(rng.sample(range(len(items)), n))
    return [items[i] for i in picked]


def wilson(successes: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson score 95% interval for a proportion."""
    if n == 0:
        return (0.0, 1.0)
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))


def bootstrap_ci(
    n: int,
    statistic: Callable[[np.ndarray], float],
    *,
    rounds: int = BOOTSTRAP,
    seed: int = SEED,
) -> tuple[float, float]:
    """Percentile bootstrap 95% CI of ``statistic(indices)`` over resamples of range(n)."""
    if n == 0:
        return (float("nan"), float("nan"))
    rng = np.random.default_rng(seed)
    values = [statistic(rng.integers(0, n, n)) for _ in range(rounds)]
    lo, hi = np.percentile(values, [2.5, 97.5])
    return (float(lo), float(hi))


def mean_ci(values: Sequence[float]) -> tuple[float, tuple[float, float]]:
    """Mean of ``values`` with its bootstrap 95% CI."""
    arr = np.asarray(values, dtype=float)
    if arr.size == 0:
        return float("nan"), (float("nan"), float("nan"))
    return float(arr.mean()), bootstrap_ci(arr.size, lambda idx: float(arr[idx].mean()))


def median(values: Sequence[float]) -> float | None:
    return statistics.median(values) if values else None


async def run_cases(
    items: Sequence[Any], call: Callable[[Any], Awaitable[dict[str, Any]]], what: str
) -> list[dict[str, Any]]:
    """``call`` on each item in turn: output, latency in seconds, error text (acllm errors only).

    A case whose model replies were replayed (bench.replay) reports the time they took when they
    were generated plus the time measured now, and is counted in ``replayed``.
    """
    from acllm.errors import AcllmError
    from bench import replay

    cases: list[dict[str, Any]] = []
    began = time.perf_counter()
    replayed = 0
    for item in items:
        token = replay.start_case()
        start = time.perf_counter()
        try:
            out, err = await call(item), None
        except AcllmError as exc:
            out, err = None, f"{type(exc).__name__}: {str(exc)[:160]}"
        spent_now = time.perf_counter() - start
        then, replies = replay.end_case(token)
        replayed += replies > 0
        cases.append(
            {"out": out, "latency_s": spent_now + then, "error": err, "replayed": replies > 0}
        )
    spent = time.perf_counter() - began
    note = f" ({replayed} replayed)" if replayed else ""
    print(f"  {what}: {len(items)} cases in {spent:.0f}s{note}", file=sys.stderr, flush=True)
    return cases


def row(task: str, dataset: str, method: str, metric: str, **kw: Any) -> Row:
    """One result line: what was measured, on which set, by which method."""
    return {"task": task, "set": dataset, "method": method, "metric": metric, **kw}


def latency(cases: list[dict[str, Any]]) -> dict[str, Any]:
    """Median per-case latency and the number of cases that raised."""
    return {
        "median_latency_s": median([c["latency_s"] for c in cases]),
        "errors": sum(c["error"] is not None for c in cases),
        "replayed": sum(bool(c.get("replayed")) for c in cases),
        "load_avg_after": round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None,
    }


def machine() -> dict[str, Any]:
    """Where the numbers were taken (the CPU is shared: other jobs may run beside the bench)."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=False,
        ).stdout.strip()
    except OSError:
        commit = ""
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    return {
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "python": platform.python_version(),
        "commit": commit,
        "load_avg_at_start": [round(x, 2) for x in load] if load else None,
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def write_results(name: str, payload: dict[str, Any]) -> Path:
    """Write ``bench/results/<name>.json`` (git-ignored) and return its path."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(payload, indent=1, ensure_ascii=False, default=float) + "\n")
    return path


def fmt_ci(ci: Sequence[float] | None, digits: int = 3) -> str:
    if not ci or any(math.isnan(x) for x in ci):
        return "-"
    return f"{ci[0]:.{digits}f} to {ci[1]:.{digits}f}"


def print_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """A plain aligned text table on stdout."""
    cells = [[str(c) for c in headers]] + [[str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    for j, row in enumerate(cells):
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
        if j == 0:
            print("  ".join("-" * w for w in widths))
