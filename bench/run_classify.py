"""One evaluation per task: run acllm on seeded samples, score beside a trivial baseline.

Each function returns result rows (plain dicts) and records every case with its latency. A case that
raises an acllm error is kept: it counts as wrong (classification) or as an empty output (text), and
the row says how many there were.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from acllm.tasks import Tasks
from acllm.tasks.paraphrase import DEFAULT_THRESHOLD
from bench import datasets
from bench.common import SEED, Row, latency, row, run_cases, sample, wilson
from bench.metrics import classification, majority, paired_delta


async def sentiment(tasks: Tasks, sizes: dict[str, int | None]) -> tuple[list[Row], list[Row]]:
    sets = [
        ("sst2_dev/en", datasets.sst2(), ("positive", "negative")),
        ("sentiment_es_xlmt/es", datasets.xlmt("es"), ("positive", "negative", "neutral")),
        ("sentiment_es_xlmt/en", datasets.xlmt("en"), ("positive", "negative", "neutral")),
    ]
    rows, records = [], []
    for name, items, labels in sets:
        for method in ("embedding", "generate"):
            sub = sample(items, sizes[f"sentiment_{method}"], key=name)

            async def call(x: datasets.Labelled, m: str = method, lb: Any = labels) -> Any:
                return await tasks.sentiment(x.text, method=m, labels=list(lb))

            cases = await run_cases(sub, call, f"sentiment {name} {method}")
            gold = [x.label for x in sub]
            pred = [c["out"]["label"] if c["out"] else None for c in cases]
            top = majority(gold)
            base = classification(gold, [top] * len(gold), labels)
            score = classification(gold, pred, labels)
            rows.append(
                row(
                    "sentiment",
                    name,
                    method,
                    "accuracy",
                    **score,
                    **latency(cases),
                    baseline={"name": f"majority ({top})", **base},
                    delta_vs_baseline=paired_delta(
                        [p == g for p, g in zip(pred, gold, strict=True)],
                        [top == g for g in gold],
                    ),
                )
            )
            for x, c, p in zip(sub, cases, pred, strict=True):
                records.append(
                    {
                        "set": name,
                        "method": method,
                        "text": x.text,
                        "gold": x.label,
                        "pred": p,
                        "latency_s": c["latency_s"],
                        "error": c["error"],
                    }
                )
    return rows, records


def _best_threshold(scores: np.ndarray, gold: np.ndarray) -> tuple[float, float]:
    """The cosine threshold with the best accuracy on these cases (same = score >= t)."""
    cands = np.unique(np.concatenate([scores, [scores.max() + 1e-6]]))
    accs = [float(np.mean((scores >= t) == gold)) for t in cands]
    best = int(np.argmax(accs))
    return float(cands[best]), accs[best]


async def paraphrase(tasks: Tasks, sizes: dict[str, int | None]) -> tuple[list[Row], list[Row]]:
    rows, records = [], []
    labels = ("same", "different")
    for lang in ("es", "en"):
        name = f"pawsx_es_en/{lang}"
        items = datasets.pawsx(lang)
        for method in ("embedding", "generate"):
            sub = sample(items, sizes[f"paraphrase_{method}"], key=name)

            async def call(x: datasets.Pair, m: str = method) -> Any:
                return await tasks.same_meaning(x.a, x.b, method=m)

            cases = await run_cases(sub, call, f"paraphrase {name} {method}")
            gold = ["same" if x.same else "different" for x in sub]
            pred = [
                None if not c["out"] else "same" if c["out"]["same"] else "different" for c in cases
            ]
            base = classification(gold, ["different"] * len(gold), labels)
            score = classification(gold, pred, labels)
            extra = {"threshold": DEFAULT_THRESHOLD} if method == "embedding" else {}
            rows.append(
                row(
                    "paraphrase",
                    name,
                    method,
                    "accuracy",
                    **score,
                    **latency(cases),
                    **extra,
                    baseline={"name": "majority (different)", **base},
                    predicted_same=sum(p == "same" for p in pred) / len(pred),
                    delta_vs_baseline=paired_delta(
                        [p == g for p, g in zip(pred, gold, strict=True)],
                        [g == "different" for g in gold],
                    ),
                )
            )
            for x, c, p in zip(sub, cases, pred, strict=True):
                records.append(
                    {
                        "set": name,
                        "method": method,
                        "a": x.a,
                        "b": x.b,
                        "gold": x.same,
                        "pred": p,
                        "latency_s": c["latency_s"],
                        "score": c["out"]["score"] if c["out"] else None,
                    }
                )
            if method == "embedding":
                rows.append(_oracle(name, sub, cases))
    return rows, records


def _auc(scores: np.ndarray, gold: np.ndarray) -> float:
    """ROC AUC of the cosine for telling paraphrases apart (0.5 = no signal), ties counted half."""
    pos, neg = scores[gold], scores[~gold]
    if not len(pos) or not len(neg):
        return float("nan")
    wins = (pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()
    return float(wins / (len(pos) * len(neg)))


def _oracle(name: str, sub: list[datasets.Pair], cases: list[dict[str, Any]]) -> Row:
    """Analysis only: tune the threshold on one seeded half, score it on the other half."""
    scores = np.asarray([c["out"]["score"] if c["out"] else -1.0 for c in cases])
    gold = np.asarray([x.same for x in sub])
    order = np.random.default_rng(SEED).permutation(len(sub))
    tune, test = order[: len(sub) // 2], order[len(sub) // 2 :]
    t, tune_acc = _best_threshold(scores[tune], gold[tune])
    said = scores[test] >= t
    hits = int(np.sum(said == gold[test]))
    maj = int(np.sum(~gold[test]))
    default = float(np.mean((scores[test] >= DEFAULT_THRESHOLD) == gold[test]))
    return row(
        "paraphrase",
        name,
        "embedding, oracle threshold (analysis)",
        "accuracy",
        accuracy=hits / len(test),
        accuracy_ci=wilson(hits, len(test)),
        n=len(test),
        auc_all=_auc(scores, gold),
        tuned_threshold=t,
        tune_accuracy=tune_acc,
        tune_n=len(tune),
        predicted_same=float(said.mean()),
        default_threshold_accuracy_same_half=default,
        delta_vs_baseline=paired_delta(list(said == gold[test]), list(~gold[test])),
        baseline={
            "name": "majority (different)",
            "accuracy": maj / len(test),
            "accuracy_ci": wilson(maj, len(test)),
            "n": len(test),
        },
    )
