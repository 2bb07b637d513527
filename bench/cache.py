"""Response cache: wrong hits and right hits on PAWS-X es/en and on acllm's near-miss set; latency.

Run: ``python -m bench.cache [--quick|--full] [--fit]`` (default --full; --quick samples 400 pairs
of each half B and times fewer lookups).

1. PAWS-X (../shared/benchmarks/pawsx_es_en/dev-{es,en}.tsv, read CACHE_ANCHOR.md there): each
   pair is a cache probe, sentence1 stored and sentence2 incoming; a hit is right only when
   label = 1. Each language is split in two seeded halves: the verifier's order model is fitted
   and its min_score chosen on half A only (``--fit`` prints the constants pasted into
   src/acllm/cache/verify.py); figures are reported on half B, beside a plain cosine cache on the
   same pairs. Precision with Wilson 95% intervals, recall, false-hit rate (FHR).
2. bench/data/nearmiss.jsonl (written before any tuning): 136 near-misses (a number, date,
   negation, name, unit or word order changed) and 60 true paraphrases, es + en, each pair run
   through a real ResponseCache (SQLite): false hits on near-misses (goal 0), hits on paraphrases.
3. Latency of ResponseCache.lookup (the query vector given, so no embedding) at 1k and 10k entries
   in one scope, SQLite and Redis: exact hit and semantic hit, p50 of repeated runs.
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import shutil
import socket
import statistics
import subprocess
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from acllm.cache import CacheScope, CacheSettings, ResponseCache
from acllm.cache.store import CacheStore
from acllm.cache.store_redis import RedisCacheStore
from acllm.cache.store_sqlite import SqliteCacheStore
from acllm.cache.text import tokens
from acllm.cache.verify import (
    FEATURES,
    MIN_SCORE,
    fact_check,
    order_features,
    order_score,
    verify,
)
from bench.common import SEED, data_dir, machine, print_table, sample, wilson, write_results

DATA = Path(__file__).resolve().parent / "data"
LANGS = ("es", "en")
SETTINGS = CacheSettings(enabled=True)
BASELINE_T = (0.90, 0.95, 0.97, 0.99, 0.995)
SCORES = (0.5, 0.7, 0.8, 0.85, 0.9)
FIT_PRECISION = 0.92  # min_score: the lowest whose half-A precision reaches this in each language


def halves(lang: str) -> tuple[list[tuple[str, str, int]], list[tuple[str, str, int]]]:
    path = data_dir() / "pawsx_es_en" / f"dev-{lang}.tsv"
    with path.open(encoding="utf-8", newline="") as f:
        rows = [
            (r[0], r[1], int(r[2])) for r in csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
        ]
    order = list(range(len(rows)))
    random.Random(f"{SEED}:pawsx-halves:{lang}").shuffle(order)
    half = len(rows) // 2
    return [rows[i] for i in sorted(order[:half])], [rows[i] for i in sorted(order[half:])]


def cosines(embedder: Any, pairs: list[tuple[str, str, int]]) -> np.ndarray:
    a = embedder.embed([p[0] for p in pairs], kind="query")
    b = embedder.embed([p[1] for p in pairs], kind="query")
    return np.asarray((a * b).sum(axis=1), dtype=float)


def point(hits: np.ndarray, labels: np.ndarray) -> dict[str, Any]:
    n_hits, right = int(hits.sum()), int((hits & (labels == 1)).sum())
    negatives = int((labels == 0).sum())
    return {
        "hits": n_hits,
        "precision": right / n_hits if n_hits else None,
        "precision_ci": wilson(right, n_hits),
        "recall": right / int((labels == 1).sum()),
        "fhr": int((hits & (labels == 0)).sum()) / negatives if negatives else None,
    }


def scored(pairs: list[tuple[str, str, int]], cos: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per pair: the verifier's probability (0 when a fact check refused) and its features."""
    scores, feats = [], []
    for (s1, s2, _), c in zip(pairs, cos, strict=True):
        a, b = tokens(s1), tokens(s2)
        f = order_features(a, b, float(c))
        feats.append(f)
        scores.append(0.0 if fact_check(a, b) else order_score(f))
    return np.array(scores), np.array(feats)


def fit(embedder: Any) -> None:
    from sklearn.linear_model import LogisticRegression

    xs, ys, passed, langs = [], [], [], []
    for lang in LANGS:
        a, _ = halves(lang)
        cos = cosines(embedder, a)
        _, feats = scored(a, cos)
        ok = np.array([not fact_check(tokens(s1), tokens(s2)) for s1, s2, _ in a])
        xs.append(feats)
        ys.append(np.array([p[2] for p in a]))
        passed.append(ok & (cos >= SETTINGS.threshold))
        langs.append(lang)
    x_fit = np.vstack([x[p] for x, p in zip(xs, passed, strict=True)])
    y_fit = np.concatenate([y[p] for y, p in zip(ys, passed, strict=True)])
    model = LogisticRegression(C=1.0, max_iter=2000).fit(x_fit, y_fit)
    weights = [round(float(w), 4) for w in model.coef_[0]]
    bias = round(float(model.intercept_[0]), 4)
    chosen = None
    for t in np.arange(0.50, 0.96, 0.05):
        ok_all = True
        for x, y, p in zip(xs, ys, passed, strict=True):
            prob = model.predict_proba(x)[:, 1]
            hits = p & (prob >= t)
            if not hits.sum() or (y[hits] == 1).mean() < FIT_PRECISION:
                ok_all = False
        if ok_all:
            chosen = round(float(t), 2)
            break
    print("# paste into src/acllm/cache/verify.py (fitted on PAWS-X half A, es + en)")
    print(f"FEATURES = {FEATURES}")
    print(f"WEIGHTS = {tuple(weights)}")
    print(f"BIAS = {bias}")
    print(f"MIN_SCORE = {chosen}")


def verify_cost(pairs: list[tuple[str, str, int]]) -> dict[str, float]:
    """Microseconds per verify() call on pairs never seen before (token cache cleared)."""
    tokens.cache_clear()
    times = []
    for s1, s2, _ in pairs:
        start = time.perf_counter()
        verify(s1, s2, 0.98)
        times.append((time.perf_counter() - start) * 1e6)
    return {"p50_us": statistics.median(times), "p95_us": float(np.percentile(times, 95))}


def paws(embedder: Any, quick: bool) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for lang in LANGS:
        _, b = halves(lang)
        b = sample(b, 400 if quick else None, key=f"cache-{lang}")
        labels = np.array([p[2] for p in b])
        cos = cosines(embedder, b)
        scores, _ = scored(b, cos)
        out[lang] = {
            "verify_cost": verify_cost(b),
            "n": len(b),
            "positives": int(labels.sum()),
            "baseline": {str(t): point(cos >= t, labels) for t in BASELINE_T},
            "acllm": {
                str(m): point((cos >= SETTINGS.threshold) & (scores >= m), labels) for m in SCORES
            },
        }
    return out


def nearmiss(embedder: Any, root: Path) -> dict[str, Any]:
    cases = [json.loads(x) for x in (DATA / "nearmiss.jsonl").read_text("utf-8").splitlines() if x]
    vec_a = embedder.embed([c["stored"] for c in cases], kind="query")
    vec_b = embedder.embed([c["incoming"] for c in cases], kind="query")
    cache = ResponseCache(SqliteCacheStore(root / "nearmiss.sqlite"), settings=SETTINGS)
    plain = ResponseCache(
        SqliteCacheStore(root / "nearmiss-plain.sqlite"),
        settings=CacheSettings(enabled=True, verify=False),
    )
    cost = verify_cost([(c["stored"], c["incoming"], c["label"]) for c in cases])
    by_kind: dict[str, Counter[str]] = {}
    false_hits: list[dict[str, Any]] = []
    for i, case in enumerate(cases):
        scope = CacheScope("bench", "v1", "p", "m", tenant=str(i))
        row = by_kind.setdefault(f"{case['lang']}:{case['kind']}", Counter())
        for name, c in (("acllm", cache), ("plain", plain)):
            c.store(scope, case["stored"], {"answer": i}, vec_a[i])
            hit = c.lookup(scope, case["incoming"], vec_b[i]) is not None
            row[f"{name}_hits"] += hit
            if name == "acllm" and hit and not case["label"]:
                false_hits.append(case)
        row["n"] += 1
    cache.close()
    plain.close()
    return {
        "by_kind": {k: dict(v) for k, v in sorted(by_kind.items())},
        "false_hits": false_hits,
        "verify_cost": cost,
    }


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def timed(cache: ResponseCache, scope: CacheScope, probes: list[tuple[str, np.ndarray]]) -> float:
    """Median ms of lookup over ``probes`` (each must hit; a miss is an error in the bench)."""
    times = []
    for question, vector in probes:
        start = time.perf_counter()
        hit = cache.lookup(scope, question, vector)
        times.append((time.perf_counter() - start) * 1000)
        if hit is None:
            raise RuntimeError(f"bench probe missed: {question!r}")
    return statistics.median(times)


def latency(store: CacheStore, n: int, repeats: int, probes: int) -> dict[str, float]:
    rng = np.random.default_rng(SEED)
    settings = CacheSettings(enabled=True, max_entries=n)
    cache = ResponseCache(store, settings=settings)
    scope = CacheScope("bench", f"v{n}", "p", "m")
    cache.forget(scope)
    vectors = rng.standard_normal((n, 384)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    for i in range(n):
        cache.store(scope, f"How many days of leave do I get in office {i}?", {"a": i}, vectors[i])
    picks = rng.choice(n, probes, replace=False)
    exact = [(f"how many days of leave do i get in office {i}", vectors[i]) for i in picks]
    near = []
    for i in picks:
        v = vectors[i] + 0.01 * rng.standard_normal(384).astype(np.float32)
        near.append((f"How many days of leave do I get in the office {i}?", v / np.linalg.norm(v)))
    timed(cache, scope, exact[:5])  # warm up: connections, scripts,
    timed(cache, scope, near[:5])  # and the first semantic lookup loads the scope's vectors
    runs = {"exact": [timed(cache, scope, exact) for _ in range(repeats)]}
    runs["semantic"] = [timed(cache, scope, near) for _ in range(repeats)]
    cache.forget(scope)
    cache.close()
    return {k: statistics.median(v) for k, v in runs.items()}


def latencies(root: Path, quick: bool) -> dict[str, Any]:
    sizes, repeats, probes = ((1000, 10000), 3 if quick else 5, 100 if quick else 200)
    out: dict[str, Any] = {}
    for n in sizes:
        out[f"sqlite-{n}"] = latency(SqliteCacheStore(root / f"lat{n}.sqlite"), n, repeats, probes)
    binary = shutil.which("redis-server")
    if binary is None:
        print("redis-server not installed: Redis latency skipped")
        return out
    port = _free_port()
    proc = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        url = f"redis://127.0.0.1:{port}/0"
        for _ in range(200):
            try:
                RedisCacheStore(url).clear()
                break
            except Exception:
                time.sleep(0.05)
        for n in sizes:
            out[f"redis-{n}"] = latency(RedisCacheStore(url), n, repeats, probes)
    finally:
        proc.terminate()
        proc.wait(10)
    return out


def fmt(x: float | None) -> str:
    return "-" if x is None else f"{x:.3f}"


def report(results: dict[str, Any]) -> None:
    print(
        "\n## PAWS-X half B: plain cosine cache vs acllm (threshold "
        f"{SETTINGS.threshold}, verifier; shipped min_score {MIN_SCORE})\n"
    )
    rows = []
    for lang, r in results["paws"].items():
        for t, p in r["baseline"].items():
            rows.append([lang, f"cosine >= {t}", p["hits"], fmt(p["precision"]),
                         f"{p['precision_ci'][0]:.2f}-{p['precision_ci'][1]:.2f}",
                         fmt(p["recall"]), fmt(p["fhr"])])  # fmt: skip
        for m, p in r["acllm"].items():
            mark = " (shipped)" if float(m) == MIN_SCORE else ""
            rows.append([lang, f"acllm min_score {m}{mark}", p["hits"], fmt(p["precision"]),
                         f"{p['precision_ci'][0]:.2f}-{p['precision_ci'][1]:.2f}",
                         fmt(p["recall"]), fmt(p["fhr"])])  # fmt: skip
    print_table(["lang", "rule", "hits", "precision", "95% CI", "recall", "FHR"], rows)
    for lang, r in results["paws"].items():
        cost = r["verify_cost"]
        print(
            f"verify() on {lang} PAWS-X pairs: p50 {cost['p50_us']:.0f} us, p95 {cost['p95_us']:.0f} us"
        )
    print("\n## Near-miss set (bench/data/nearmiss.jsonl) through ResponseCache\n")
    rows = [[k, v["n"], v.get("acllm_hits", 0), v.get("plain_hits", 0)]
            for k, v in results["nearmiss"]["by_kind"].items()]  # fmt: skip
    print_table(["lang:kind", "pairs", "acllm hits", "plain cosine hits"], rows)
    cost = results["nearmiss"]["verify_cost"]
    print(
        f"verify() on the near-miss questions: p50 {cost['p50_us']:.0f} us, p95 {cost['p95_us']:.0f} us"
    )
    for case in results["nearmiss"]["false_hits"]:
        print(f"  FALSE HIT: {case['stored']} -> {case['incoming']}")
    print("\n## Lookup latency, ms p50 (query vector given; median of repeated runs)\n")
    rows = [[k, f"{v['exact']:.3f}", f"{v['semantic']:.3f}"] for k, v in results["latency"].items()]
    print_table(["store-entries", "exact hit", "semantic hit"], rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true")
    mode.add_argument("--full", action="store_true")
    parser.add_argument("--fit", action="store_true", help="fit the order model on half A")
    args = parser.parse_args()
    from acllm.runtime import Runtime

    embedder = Runtime().embedder("e5")
    if args.fit:
        fit(embedder)
        return
    root = Path(tempfile.mkdtemp(prefix="acllm-bench-cache-"))
    try:
        results = {
            "machine": machine(),
            "mode": "quick" if args.quick else "full",
            "settings": SETTINGS.model_dump(),
            "paws": paws(embedder, args.quick),
            "nearmiss": nearmiss(embedder, root),
            "latency": latencies(root, args.quick),
        }
    finally:
        shutil.rmtree(root, ignore_errors=True)
    report(results)
    print(f"\nwritten {write_results('cache-' + results['mode'], results)}")


if __name__ == "__main__":
    main()
