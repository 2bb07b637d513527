"""Scores with 95% CIs: accuracy (Wilson), macro-F1 and chrF (bootstrap), ROUGE-L F (bootstrap).

Every ``*_report`` returns a plain dict: value, ci, n, and for a method scored beside a baseline the
paired bootstrap CI of (method - baseline) on the very same cases.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np

from bench.common import SEED, bootstrap_ci, wilson


def majority(gold: Sequence[str]) -> str:
    """The most frequent class (ties broken by name, so the choice is stable)."""
    counts = Counter(gold)
    return sorted(counts, key=lambda k: (-counts[k], k))[0]


def _macro_f1(gold: np.ndarray, pred: np.ndarray, labels: Sequence[str]) -> float:
    scores = []
    for label in labels:
        tp = int(np.sum((pred == label) & (gold == label)))
        fp = int(np.sum((pred == label) & (gold != label)))
        fn = int(np.sum((pred != label) & (gold == label)))
        scores.append(2 * tp / (2 * tp + fp + fn) if tp else 0.0)
    return float(np.mean(scores))


def classification(
    gold: Sequence[str], pred: Sequence[str | None], labels: Sequence[str]
) -> dict[str, Any]:
    """Accuracy with a Wilson CI and macro-F1 with a bootstrap CI (None counts as wrong)."""
    g = np.asarray(gold, dtype=object)
    p = np.asarray([x if x is not None else "<none>" for x in pred], dtype=object)
    correct = int(np.sum(g == p))
    n = len(g)
    return {
        "accuracy": correct / n if n else float("nan"),
        "accuracy_ci": wilson(correct, n),
        "macro_f1": _macro_f1(g, p, labels),
        "macro_f1_ci": bootstrap_ci(n, lambda idx: _macro_f1(g[idx], p[idx], labels)),
        "n": n,
    }


def paired_delta(a: Sequence[float], b: Sequence[float]) -> dict[str, Any]:
    """Mean of (a - b) over the same cases with its bootstrap 95% CI."""
    d = np.asarray(a, dtype=float) - np.asarray(b, dtype=float)
    return {"delta": float(d.mean()), "delta_ci": bootstrap_ci(d.size, lambda i: d[i].mean())}


class Chrf:
    """Corpus chrF (sacrebleu defaults) with a bootstrap CI over sentences."""

    def __init__(self) -> None:
        from sacrebleu.metrics import CHRF

        self.metric = CHRF()

    def _stats(self, hyps: Sequence[str], refs: Sequence[Sequence[str]]) -> np.ndarray:
        width = max(len(r) for r in refs)
        streams = [[r[i] if i < len(r) else r[0] for r in refs] for i in range(width)]
        return np.asarray(self.metric._extract_corpus_statistics(list(hyps), streams))

    def _score(self, stats: np.ndarray) -> float:
        return float(self.metric._compute_score_from_stats(list(stats.sum(axis=0))).score)

    def report(
        self,
        hyps: Sequence[str],
        refs: Sequence[Sequence[str]],
        baseline: Sequence[str] | None = None,
    ) -> dict[str, Any]:
        stats = self._stats(hyps, refs)
        n = len(hyps)
        out: dict[str, Any] = {
            "chrf": self._score(stats),
            "chrf_ci": bootstrap_ci(n, lambda idx: self._score(stats[idx]), rounds=500),
            "n": n,
        }
        if baseline is not None:
            base = self._stats(baseline, refs)

            def gap(idx: np.ndarray) -> float:
                return self._score(stats[idx]) - self._score(base[idx])

            out["delta_vs_baseline"] = self._score(stats) - self._score(base)
            out["delta_ci"] = bootstrap_ci(n, gap, rounds=500, seed=SEED + 1)
        return out

    def sentence(self, hyp: str, refs: Sequence[str]) -> float:
        return float(self.metric.sentence_score(hyp, list(refs)).score)


class RougeL:
    """ROUGE-L F-measure (rouge-score, Porter stemming), per case."""

    def __init__(self) -> None:
        from rouge_score import rouge_scorer

        self.scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)

    def __call__(self, reference: str, summary: str) -> float:
        return float(self.scorer.score(reference, summary)["rougeL"].fmeasure)
