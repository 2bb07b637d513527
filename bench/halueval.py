"""The LLM judge against human hallucination labels: HaluEval "general" (Li et al., 2023).

    python -m bench.halueval --quick                 # 60 + 60 cases, the embedded judge ("local")
    python -m bench.halueval --full --judge big      # 200 + 200 cases, [models.big] of acllm.toml
    python -m bench.halueval --config acllm.toml --judge big

HaluEval's general set holds real ChatGPT answers to user queries, each labelled by people as
hallucinated or not (815 yes, 3,692 no). It has no context passages, so the embedding checker of
``acllm.evals.faithfulness`` has nothing to compare against: only a judge model can grade these,
from what it knows. ``acllm.evals.judge.pointwise`` scores each answer 1-5 for factual accuracy;
``6 - score`` is the hallucination score. A sample stratified by label (seeded) is split in two
halves: the dev half chooses the cut-off, the test half reports ROC AUC and balanced accuracy with
bootstrap CIs. Judge failures (output that is not a valid verdict) are counted, never scored.
References: "always no hallucination" (balanced accuracy 0.5) and the answer's length alone.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bench.common import (
    BOOTSTRAP,
    SEED,
    data_dir,
    fmt_ci,
    machine,
    median,
    print_table,
    sample,
    write_results,
)

RUBRIC = (
    "The answer is factually correct: every claim in it is true, and it invents no facts, "
    "names, numbers or sources."
)
SIZES = {"quick": 60, "full": 200}  # cases per label


@dataclass(frozen=True)
class Case:
    id: str
    query: str
    response: str
    hallucinated: int  # the human label: 1 = hallucination "yes"


def load(path: Path) -> list[Case]:
    """HaluEval's general_data.json (JSON Lines despite its name)."""
    cases = []
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                row = json.loads(line)
                label = {"yes": 1, "no": 0}[row["hallucination"]]
                cases.append(
                    Case(str(row["ID"]), row["user_query"], row["chatgpt_response"], label)
                )
    return cases


def split(cases: Sequence[Case], per_label: int) -> tuple[list[Case], list[Case]]:
    """A seeded sample of ``per_label`` cases of each label, halved (per label) into dev and test."""
    dev: list[Case] = []
    test: list[Case] = []
    for label in (1, 0):
        picked = sample(
            [c for c in cases if c.hallucinated == label], per_label, key=f"halu{label}"
        )
        chosen = {c.id for c in sample(picked, len(picked) // 2, key=f"halu-dev{label}")}
        dev += [c for c in picked if c.id in chosen]
        test += [c for c in picked if c.id not in chosen]
    return dev, test


def auc(scores: Sequence[float], labels: Sequence[int]) -> float:
    """ROC AUC: the chance a positive outscores a negative, ties counting one half (NaN if one
    class is missing)."""
    s, y = np.asarray(scores, dtype=float), np.asarray(labels) == 1
    pos, neg = s[y], s[~y]
    if not pos.size or not neg.size:
        return float("nan")
    greater = (pos[:, None] > neg[None, :]).sum()
    ties = (pos[:, None] == neg[None, :]).sum()
    return float((greater + 0.5 * ties) / (pos.size * neg.size))


def balanced_accuracy(predicted: Sequence[int], labels: Sequence[int]) -> float:
    """Mean of the recall of each class (NaN if one class is missing)."""
    p, y = np.asarray(predicted), np.asarray(labels)
    if not (y == 1).any() or not (y == 0).any():
        return float("nan")
    return float(((p[y == 1] == 1).mean() + (p[y == 0] == 0).mean()) / 2)


def choose_cutoff(scores: Sequence[float], labels: Sequence[int]) -> float:
    """The cut-off t (flag when score >= t) with the best balanced accuracy; ties: the lowest."""
    candidates = sorted(set(scores)) or [0.0]
    return max(
        candidates,
        key=lambda t: (balanced_accuracy([int(s >= t) for s in scores], labels), -t),
    )


def evaluate(
    dev: tuple[Sequence[float], Sequence[int]], test: tuple[Sequence[float], Sequence[int]]
) -> dict[str, Any]:
    """Cut-off chosen on dev; AUC and balanced accuracy (bootstrap 95% CIs) on test."""
    cutoff = choose_cutoff(*dev)
    s, y = np.asarray(test[0], dtype=float), np.asarray(test[1])

    def ba(idx: np.ndarray) -> float:
        return balanced_accuracy((s[idx] >= cutoff).astype(int).tolist(), y[idx].tolist())

    def area(idx: np.ndarray) -> float:
        return auc(s[idx].tolist(), y[idx].tolist())

    every = np.arange(s.size)
    return {
        "n_test": int(s.size),
        "auc": area(every),
        "auc_ci": _nan_safe_ci(s.size, area),
        "cutoff": cutoff,
        "balanced_accuracy": ba(every),
        "balanced_accuracy_ci": _nan_safe_ci(s.size, ba),
    }


def _nan_safe_ci(n: int, stat: Callable[[np.ndarray], float]) -> tuple[float, float]:
    """Percentile bootstrap 95% CI; resamples that lost a class (NaN) are left out."""
    rng = np.random.default_rng(SEED)
    values = [stat(rng.integers(0, n, n)) for _ in range(BOOTSTRAP)] if n else []
    kept = [v for v in values if v == v]
    if not kept:
        return (float("nan"), float("nan"))
    lo, hi = np.percentile(kept, [2.5, 97.5])
    return (float(lo), float(hi))


async def judge_all(model: Any, cases: Sequence[Case]) -> list[dict[str, Any]]:
    """One pointwise verdict per case: the score or the failure, and the latency."""
    from acllm.evals.judge import JudgeFailure, pointwise

    out = []
    began = time.perf_counter()
    for i, case in enumerate(cases, 1):
        start = time.perf_counter()
        verdict = await pointwise(model, RUBRIC, case.query, case.response, lang="en")
        record: dict[str, Any] = {"id": case.id, "label": case.hallucinated}
        record["latency_s"] = round(time.perf_counter() - start, 3)
        if isinstance(verdict, JudgeFailure):
            record |= {"score": None, "failure": verdict.reason, "raw": verdict.raw[:200]}
        else:
            record |= {"score": verdict.score, "reason": verdict.reason[:200]}
        out.append(record)
        if i % 20 == 0 or i == len(cases):
            spent = time.perf_counter() - began
            print(f"  {i}/{len(cases)} judged in {spent:.0f}s", file=sys.stderr, flush=True)
    return out


def summarise(
    dev: list[Case], test: list[Case], verdicts: dict[str, dict[str, Any]]
) -> dict[str, Any]:
    """The figures, from the verdicts of dev and test cases (keyed by case id)."""

    def scored(cases: list[Case], score: Callable[[Case], float]) -> tuple[list[float], list[int]]:
        kept = [c for c in cases if verdicts[c.id]["score"] is not None]
        return [score(c) for c in kept], [c.hallucinated for c in kept]

    def judge(c: Case) -> float:
        return float(6 - verdicts[c.id]["score"])

    # Length alone, its direction chosen on dev (longer or shorter = more hallucinated).
    lengths = scored(dev, lambda c: float(len(c.response)))
    sign = 1.0 if not auc(*lengths) < 0.5 else -1.0

    def length(c: Case) -> float:
        return sign * len(c.response)

    everything = dev + test
    failures = {
        label: sum(verdicts[c.id]["score"] is None for c in everything if c.hallucinated == label)
        for label in (1, 0)
    }
    per_label = {label: sum(c.hallucinated == label for c in everything) for label in (1, 0)}
    distribution = {
        name: [
            sum(verdicts[c.id]["score"] == k for c in everything if c.hallucinated == label)
            for k in range(1, 6)
        ]
        for name, label in (("hallucinated", 1), ("faithful", 0))
    }
    return {
        "n_dev": len(dev),
        "n_test": len(test),
        "judge_failures": sum(failures.values()),
        "judge_failure_rate": sum(failures.values()) / len(everything),
        "judge_failures_by_label": {"hallucinated": failures[1], "faithful": failures[0]},
        "cases_by_label": {"hallucinated": per_label[1], "faithful": per_label[0]},
        "score_distribution": distribution,  # counts of scores 1..5 per human label
        "median_latency_s": median([v["latency_s"] for v in verdicts.values()]),
        "judge": evaluate(scored(dev, judge), scored(test, judge)),
        "length_only": {
            "direction": "longer" if sign > 0 else "shorter",
            **evaluate(scored(dev, length), scored(test, length)),
        },
        "always_no": {"balanced_accuracy": 0.5, "auc": 0.5},
    }


def report(result: dict[str, Any]) -> None:
    s = result["summary"]
    print(f"\nHaluEval general, judge '{result['judge_model']}' ({result['mode']}): "
          f"dev {s['n_dev']} / test {s['n_test']} cases, half hallucinated\n")  # fmt: skip
    rows = []
    for name, key in (
        (f"acllm judge ({result['judge_model']}), 6 - score", "judge"),
        (f"length only ({s['length_only']['direction']} = hallucinated)", "length_only"),
    ):
        r = s[key]
        cut = float(r["cutoff"])
        if key == "judge":  # flagged when 6 - score >= cut, that is score <= 6 - cut
            rule = f"score <= {6 - cut:g}"
        else:  # the score is +-length: say it in characters
            rule = f"{'>=' if cut >= 0 else '<='} {abs(cut):.0f} chars"
        rows.append([
            name, r["n_test"], f"{r['auc']:.3f}", fmt_ci(r["auc_ci"]), rule,
            f"{r['balanced_accuracy']:.3f}", fmt_ci(r["balanced_accuracy_ci"]),
        ])  # fmt: skip
    rows.append(["always 'no hallucination'", s["n_test"], "0.500", "-", "-", "0.500", "-"])
    print_table(
        ["method (test half)", "n", "AUC", "95% CI", "cut-off (dev)", "bal. acc.", "95% CI"], rows
    )
    everyone = result["length_auc_all"]
    print(f"length only on all {everyone['n']} answers: AUC "
          f"{everyone['shorter_is_hallucinated']:.3f} (shorter = hallucinated)")  # fmt: skip
    fails = s["judge_failures_by_label"]
    print(f"\njudge failures: {s['judge_failures']} of {s['n_dev'] + s['n_test']} "
          f"({s['judge_failure_rate']:.1%}; hallucinated {fails['hallucinated']}, "
          f"faithful {fails['faithful']}), never scored; median latency "
          f"{s['median_latency_s']:.2f} s per case\n")  # fmt: skip
    print_table(
        ["human label", "score 1", "2", "3", "4", "5"],
        [[name, *counts] for name, counts in s["score_distribution"].items()],
    )


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true", help="60 + 60 cases (default)")
    mode.add_argument("--full", action="store_true", help="200 + 200 cases")
    parser.add_argument("--judge", default="local", help="a configured model name")
    parser.add_argument("--config", help="an acllm.toml with the judge's [models.NAME]")
    args = parser.parse_args(argv)
    from acllm.config import load_settings
    from bench import replay

    name = "full" if args.full else "quick"
    runtime = replay.runtime(load_settings(args.config))
    model = runtime.chat(args.judge)  # an unknown name fails here, before any work
    everything = load(data_dir() / "halueval" / "general_data.json")
    dev, test = split(everything, SIZES[name])
    started = machine()
    try:
        records = asyncio.run(judge_all(model, dev + test))
    finally:
        runtime.close()
    verdicts = {r["id"]: r for r in records}
    dev_ids = {c.id for c in dev}
    for r in records:
        r["half"] = "dev" if r["id"] in dev_ids else "test"
    result = {
        "machine": started,
        "mode": name,
        "judge_model": args.judge,
        "rubric": RUBRIC,
        "summary": summarise(dev, test, verdicts),
        # The length reference on all 4,507 answers (free to compute): the population value.
        "length_auc_all": {
            "n": len(everything),
            "shorter_is_hallucinated": auc(
                [-len(c.response) for c in everything], [c.hallucinated for c in everything]
            ),
        },
        "cases": records,
    }
    report(result)
    path = write_results(f"halueval-{name}-{args.judge}", result)
    print(f"results: {path}", file=sys.stderr)
    return result


if __name__ == "__main__":
    main()
