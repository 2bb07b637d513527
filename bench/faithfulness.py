"""The faithfulness checker against human judgements: FRANK (Pagnoni et al., 2021).

    python -m bench.faithfulness --quick   # 300 validation + 500 test summaries
    python -m bench.faithfulness --full    # all 671 validation + 1,575 test summaries

Each model summary is checked against its source article with ``acllm.evals.faithfulness``
(e5-small embeddings through the benchmark's embedding cache). Humans marked every summary
sentence factual or not; a summary is *faithful* when its factuality is 1.0. The checker's score
(its weakest claim's support) should rank faithful summaries above unfaithful ones: AUC. The
threshold and the novelty weight are tuned on the validation split only, then the test split
reports AUC and balanced accuracy with bootstrap CIs, beside the two signals alone (cosine only,
novelty only) and the trivial "everything is faithful" (balanced accuracy 0.5).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

import numpy as np

from bench.common import data_dir, machine, print_table, sample, write_results


def auc(scores: list[float], labels: list[int]) -> float:
    """Probability that a random faithful item outscores a random unfaithful one (ties: 1/2)."""
    order = np.argsort(scores, kind="mergesort")
    ranks = np.empty(len(scores))
    sorted_scores = np.asarray(scores)[order]
    i = 0
    while i < len(scores):  # average ranks over ties
        j = i
        while j + 1 < len(scores) and sorted_scores[j + 1] == sorted_scores[i]:
            j += 1
        ranks[order[i : j + 1]] = (i + j) / 2 + 1
        i = j + 1
    pos = np.asarray(labels) == 1
    n_pos, n_neg = int(pos.sum()), int((~pos).sum())
    if not n_pos or not n_neg:
        return float("nan")
    return float((ranks[pos].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def balanced_accuracy(predicted: list[int], labels: list[int]) -> float:
    p, y = np.asarray(predicted), np.asarray(labels)
    tpr = float((p[y == 1] == 1).mean()) if (y == 1).any() else 0.0
    tnr = float((p[y == 0] == 0).mean()) if (y == 0).any() else 0.0
    return (tpr + tnr) / 2


def bootstrap(stat: Any, scores: list[float], labels: list[int], n: int = 1000) -> list[float]:
    rng = np.random.default_rng(20261127)
    values = []
    idx = np.arange(len(scores))
    for _ in range(n):
        pick = rng.choice(idx, size=len(idx))
        values.append(stat([scores[i] for i in pick], [labels[i] for i in pick]))
    clean = [v for v in values if v == v]
    return [float(np.percentile(clean, 2.5)), float(np.percentile(clean, 97.5))]


def load(quick: bool) -> tuple[list[dict[str, Any]], dict[str, str]]:
    root = data_dir()
    articles = {}
    with (root / "summarization_frank" / "frank_articles.jsonl").open(encoding="utf-8") as fh:
        for line in fh:
            row = json.loads(line)
            articles[row["id"]] = row["article"]
    rows = []
    with (root / "faithfulness_frank" / "frank_human_factuality.jsonl").open(
        encoding="utf-8"
    ) as fh:
        for line in fh:
            row = json.loads(line)
            if row["article_id"] in articles:
                rows.append(row)
    if quick:
        valid = sample([r for r in rows if r["split"] == "valid"], 300, key="frank-valid")
        test = sample([r for r in rows if r["split"] == "test"], 500, key="frank-test")
        rows = valid + test
    return rows, articles


def features(
    rows: list[dict[str, Any]], articles: dict[str, str]
) -> list[list[tuple[float, float]]]:
    """Per summary, per claim: (best cosine, novelty) — computed once, every setting reuses them."""
    from acllm.evals.faithfulness import Checker
    from bench.retrieval import cached_e5

    checker = Checker(cached_e5(), threshold=0.0, novelty_weight=0.0)
    out = []
    began = time.perf_counter()
    for i, row in enumerate(rows):
        result = checker.check(row["summary"], articles[row["article_id"]])
        out.append([(c.cosine, c.novelty) for c in result.claims] or [(1.0, 0.0)])
        if (i + 1) % 100 == 0:
            print(f"  {i + 1}/{len(rows)} summaries in {time.perf_counter() - began:.0f}s",
                  file=sys.stderr, flush=True)  # fmt: skip
    return out


def score(claims: list[tuple[float, float]], weight: float) -> float:
    return min(cos - weight * novelty for cos, novelty in claims)


def run(quick: bool) -> dict[str, Any]:
    rows, articles = load(quick)
    feats = features(rows, articles)
    labels = [int(r["factuality"] >= 1.0) for r in rows]
    split = [r["split"] for r in rows]
    valid = [i for i, s in enumerate(split) if s == "valid"]
    test = [i for i, s in enumerate(split) if s == "test"]

    def part(idx: list[int], weight: float) -> tuple[list[float], list[int]]:
        return [score(feats[i], weight) for i in idx], [labels[i] for i in idx]

    # Tune on validation: the weight by AUC, then the threshold by balanced accuracy.
    weights = [0.0, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0]
    by_weight = {w: auc(*part(valid, w)) for w in weights}
    best_w = max(weights, key=lambda w: by_weight[w])
    v_scores, v_labels = part(valid, best_w)
    candidates = sorted(set(np.round(v_scores, 3)))
    best_t = max(
        candidates,
        key=lambda t: balanced_accuracy([int(s >= t) for s in v_scores], v_labels),
    )
    methods = {
        "acllm checker (tuned on valid)": best_w,
        "cosine only": 0.0,
        "novelty only": None,
    }
    results: dict[str, Any] = {}
    for name, weight in methods.items():
        if weight is None:
            t_scores = [-max(n for _, n in feats[i]) for i in test]
            t_labels = [labels[i] for i in test]
        else:
            t_scores, t_labels = part(test, weight)
        entry: dict[str, Any] = {
            "auc": auc(t_scores, t_labels),
            "auc_ci": bootstrap(auc, t_scores, t_labels),
        }
        if weight == best_w and name.startswith("acllm"):
            predicted = [int(s >= best_t) for s in t_scores]
            entry["balanced_accuracy"] = balanced_accuracy(predicted, t_labels)
            entry["balanced_accuracy_ci"] = bootstrap(
                lambda s, y: balanced_accuracy([int(x >= best_t) for x in s], y), t_scores, t_labels
            )
        results[name] = entry
    return {
        "quick": quick,
        "n_valid": len(valid),
        "n_test": len(test),
        "faithful_share_test": float(np.mean([labels[i] for i in test])),
        "tuned": {"novelty_weight": best_w, "threshold": float(best_t)},
        "valid_auc_by_weight": by_weight,
        "test": results,
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true")
    mode.add_argument("--full", action="store_true")
    args = parser.parse_args(argv)
    result = {"machine": machine(), **run(quick=not args.full)}
    rows = []
    for name, r in result["test"].items():
        ba = r.get("balanced_accuracy")
        rows.append([
            name,
            f"{r['auc']:.3f} [{r['auc_ci'][0]:.3f}, {r['auc_ci'][1]:.3f}]",
            "" if ba is None else
            f"{ba:.3f} [{r['balanced_accuracy_ci'][0]:.3f}, {r['balanced_accuracy_ci'][1]:.3f}]",
        ])  # fmt: skip
    rows.append(["everything faithful (trivial)", "0.500", "0.500"])
    print_table(["method (FRANK test)", "AUC [95% CI]", "balanced accuracy [95% CI]"], rows)
    print(f"tuned on {result['n_valid']} validation summaries: {result['tuned']}; test "
          f"n={result['n_test']}, faithful share {result['faithful_share_test']:.3f}")  # fmt: skip
    path = write_results(f"faithfulness-{'full' if args.full else 'quick'}", result)
    print(f"results: {path}", file=sys.stderr)
    return result


if __name__ == "__main__":
    main()
