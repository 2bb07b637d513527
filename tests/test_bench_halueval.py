"""bench/halueval.py's pure parts: loading, the stratified dev/test split, the metrics, summaries."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from bench.halueval import (
    Case,
    auc,
    balanced_accuracy,
    choose_cutoff,
    load,
    split,
    summarise,
)
from sklearn.metrics import (  # type: ignore[import-untyped]
    balanced_accuracy_score,
    roc_auc_score,
)


def test_load_reads_json_lines_and_maps_labels(tmp_path: Path) -> None:
    rows = [
        {"ID": 1, "user_query": "q1", "chatgpt_response": "r1", "hallucination": "yes"},
        {"ID": "2", "user_query": "q2", "chatgpt_response": "r2", "hallucination": "no"},
    ]
    path = tmp_path / "general_data.json"
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n\n", encoding="utf-8")
    assert load(path) == [Case("1", "q1", "r1", 1), Case("2", "q2", "r2", 0)]


def cases(yes: int, no: int) -> list[Case]:
    return [Case(str(i), f"q{i}", "x" * (i + 1), int(i < yes)) for i in range(yes + no)]


def test_split_is_stratified_disjoint_and_seeded() -> None:
    pool = cases(50, 200)
    dev, test = split(pool, 20)
    assert [sum(c.hallucinated for c in half) for half in (dev, test)] == [10, 10]
    assert len(dev) == len(test) == 20
    assert not {c.id for c in dev} & {c.id for c in test}
    assert split(pool, 20) == (dev, test)


@pytest.mark.parametrize("seed", range(5))
def test_auc_and_balanced_accuracy_match_sklearn(seed: int) -> None:
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, 80).tolist()
    scores = rng.integers(1, 6, 80).astype(float).tolist()  # many ties, as judge scores have
    assert auc(scores, labels) == pytest.approx(roc_auc_score(labels, scores), abs=1e-12)
    predicted = [int(s >= 3) for s in scores]
    expected = balanced_accuracy_score(labels, predicted)
    assert balanced_accuracy(predicted, labels) == pytest.approx(expected, abs=1e-12)


def test_metrics_are_nan_when_a_class_is_missing() -> None:
    assert math.isnan(auc([1.0, 2.0], [1, 1]))
    assert math.isnan(balanced_accuracy([1, 0], [0, 0]))


def test_choose_cutoff_takes_the_best_balanced_accuracy() -> None:
    scores = [1.0, 2.0, 3.0, 4.0, 5.0, 5.0]
    labels = [0, 0, 0, 1, 1, 1]
    assert choose_cutoff(scores, labels) == 4.0
    # A constant score separates nothing: every cut-off ties at 0.5, the lowest is kept.
    assert choose_cutoff([2.0, 2.0], [0, 1]) == 2.0


def test_summarise_never_scores_judge_failures() -> None:
    pool = cases(8, 8)
    dev, test = split(pool, 8)
    # A judge that gives hallucinated answers 1 and faithful ones 5, but fails on one of each.
    verdicts: dict[str, dict[str, Any]] = {
        c.id: {"score": 1 if c.hallucinated else 5, "latency_s": 1.0 + i}
        for i, c in enumerate(pool)
    }
    failed = [test[0].id, test[-1].id]  # one hallucinated, one faithful
    for case_id in failed:
        verdicts[case_id]["score"] = None
    got = summarise(dev, test, verdicts)
    assert got["judge_failures"] == 2 and got["judge_failure_rate"] == 2 / 16
    assert got["judge_failures_by_label"] == {"hallucinated": 1, "faithful": 1}
    assert got["judge"]["n_test"] == 6
    assert got["judge"]["auc"] == 1.0 and got["judge"]["balanced_accuracy"] == 1.0
    assert got["score_distribution"] == {"hallucinated": [7, 0, 0, 0, 0], "faithful": [0] * 4 + [7]}
    assert got["median_latency_s"] == 8.5
