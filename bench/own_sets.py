"""check_rules and correct on acllm's own small labelled sets (bench/data), against trivial baselines.

No public set in ../shared/benchmarks covers these two tasks, so the sets are written for acllm:
32 balanced rule checks and 30 sentences with reference corrections, Spanish and English. They are
small: read the figures as rough. Run: ``python -m bench.own_sets``.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import sacrebleu

from bench import replay
from bench.common import machine, print_table, runtime_dir, wilson, write_results

DATA = Path(__file__).resolve().parent / "data"


def _load(name: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (DATA / name).read_text("utf-8").splitlines() if line]


async def _rules(tasks: Any) -> dict[str, Any]:
    cases = _load("rules_cases.jsonl")
    right, said_pass, times = 0, 0, []
    for case in cases:
        result, seconds = await replay.timed(
            tasks.check_rules(case["text"], [case["rule"]], lang=case["lang"])
        )
        times.append(seconds)
        verdict = result["results"][0]["passed"]
        right += verdict == case["passed"]
        said_pass += verdict
    baseline = sum(c["passed"] for c in cases)  # always "pass" (the set is balanced)
    return {
        "accuracy": right / len(cases),
        "ci": wilson(right, len(cases)),
        "n": len(cases),
        "said_pass": said_pass,
        "always_pass": baseline / len(cases),
        "median_latency_s": sorted(times)[len(times) // 2],
    }


async def _correct(tasks: Any) -> dict[str, Any]:
    cases = _load("correct_cases.jsonl")
    outputs, exact, rejected, times = [], 0, 0, []
    for case in cases:
        result, seconds = await replay.timed(tasks.correct(case["text"], lang=case["lang"]))
        times.append(seconds)
        outputs.append(result["corrected"])
        exact += result["corrected"].strip() == case["reference"]
        rejected += result["rejected"]
    refs = [[c["reference"] for c in cases]]
    inputs = [c["text"] for c in cases]
    copy_exact = sum(c["text"] == c["reference"] for c in cases)
    return {
        "exact": exact / len(cases),
        "exact_ci": wilson(exact, len(cases)),
        "n": len(cases),
        "chrf": sacrebleu.corpus_chrf(outputs, refs).score,
        "copy_chrf": sacrebleu.corpus_chrf(inputs, refs).score,
        "copy_exact": copy_exact / len(cases),
        "rejected": rejected,
        "median_latency_s": sorted(times)[len(times) // 2],
    }


async def _run() -> dict[str, Any]:
    from acllm import Settings, Tasks

    runtime = replay.runtime(Settings(data_dir=runtime_dir()))
    tasks = Tasks(runtime)
    out = {"check_rules": await _rules(tasks), "correct": await _correct(tasks)}
    out["replies"] = replay.summary(runtime)
    runtime.close()
    return out


def main() -> None:
    results = _run_and_time()
    r, c = results["check_rules"], results["correct"]
    print_table(
        ["task", "metric", "value", "95% CI", "n", "baseline", "median latency"],
        [
            [
                "check_rules",
                "accuracy",
                f"{r['accuracy']:.3f}",
                f"{r['ci'][0]:.2f}-{r['ci'][1]:.2f}",
                r["n"],
                f"always pass {r['always_pass']:.3f}",
                f"{r['median_latency_s']:.2f} s",
            ],
            [
                "correct",
                "exact match",
                f"{c['exact']:.3f}",
                f"{c['exact_ci'][0]:.2f}-{c['exact_ci'][1]:.2f}",
                c["n"],
                f"copy {c['copy_exact']:.3f}",
                f"{c['median_latency_s']:.2f} s",
            ],
            [
                "correct",
                "chrF vs reference",
                f"{c['chrf']:.1f}",
                "",
                c["n"],
                f"copy {c['copy_chrf']:.1f}",
                "",
            ],
        ],
    )
    print(
        f"check_rules said 'pass' {r['said_pass']} times of {r['n']}; "
        f"correct rejected {c['rejected']} rewrites"
    )


def _run_and_time() -> dict[str, Any]:
    start = time.perf_counter()
    results = asyncio.run(_run())
    write_results(
        "own-sets",
        {"machine": machine(), "seconds": time.perf_counter() - start, "results": results},
    )
    return results


if __name__ == "__main__":
    main()
