"""Extractive question answering with the Assistant, and whether it refuses when it should.

    python -m bench.qa --quick   # 60 questions per set: a few minutes once cached
    python -m bench.qa --full    # 200 questions per set

Sets: XQuAD es and en, MLQA dev es-es and en-en (SQuAD json, ../shared/benchmarks). For each set
a seeded sample of questions; their context paragraphs, one source each, go through acllm's
ingestion (``Ingestor`` + ``chunk_documents`` defaults) into a fresh ``SQLiteIndex``, and every
question is asked of an ``Assistant`` with ``AssistantOptions()`` (extractive, hybrid retrieval,
top 5, two sentences), e5 behind the benchmark's embedding cache.

Scores per question:

- SQuAD exact match and token F1 of the answer text with the ``[n]`` markers stripped, the maximum
  over the gold answers, after SQuAD v1.1's official normalisation (lower case, punctuation,
  English articles, whitespace); ``f1_mlqa`` uses MLQA's (Unicode punctuation, the question
  language's articles). A refusal scores 0. Extractive answers are whole sentences, so EM is ~0
  and F1 is bounded by the sentence length: read the hit rate.
- gold sentence hit: a gold answer (normalised) occurs inside the first cited sentence / any.
- refusal: the Assistant refuses when its evidence (best sentence cosine) is below the threshold.
  Asked twice: with every sampled paragraph indexed (should answer), then with a seeded half of the
  paragraphs REMOVED from the index, for the questions on those (should refuse).

The runs use ``threshold=-1`` so that every answer and its confidence are kept; a refusal at
threshold t is exactly ``confidence < t`` (the Assistant's own test), which gives the rates at the
default threshold and as a curve. A threshold is suggested on MLQA (maximum of answer rate when
present + refusal rate when removed) and then measured on XQuAD. Latency per answer is timed on a
separate subset with e5 uncached (what a first question costs), one question at a time.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import re
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from acllm.evals import metrics
from bench.common import SEED, data_dir, machine, mean_ci, print_table, wilson, write_results

SETS = {  # name -> (file under the benchmarks folder, language)
    "xquad es": ("xquad/xquad.es.json", "es"),
    "xquad en": ("xquad/xquad.en.json", "en"),
    "mlqa es-es": ("mlqa_es_en/dev-context-es-question-es.json", "es"),
    "mlqa en-en": ("mlqa_es_en/dev-context-en-question-en.json", "en"),
}
TUNE_ON = ("mlqa es-es", "mlqa en-en")
MEASURE_ON = ("xquad es", "xquad en")
THRESHOLDS = [round(0.70 + 0.01 * i, 2) for i in range(21)]  # 0.70 .. 0.90
_MARKER = re.compile(r"\s*\[\d{1,2}\]")


# ---------------------------------------------------------------- SQuAD scoring


# SQuAD v1.1's and MLQA's official answer normalisation and scores (checked against the official
# scripts in tests/test_metrics.py).
normalize_answer = metrics.normalize_squad
f1_score = metrics.token_f1
exact_match = metrics.exact_match


def normalize_mlqa(s: str, lang: str) -> str:
    return metrics.normalize_mlqa(s, lang)


def contains(sentence: str, golds: list[str]) -> bool:
    text = f" {normalize_answer(sentence)} "
    return any(g and f" {g} " in text for g in (normalize_answer(x) for x in golds))


# ---------------------------------------------------------------- data


def load_squad(rel: str) -> list[dict[str, Any]]:
    """Questions with their context paragraph (a BOM, as in two XQuAD es paragraphs, stripped)."""
    data = json.loads((data_dir() / rel).read_text(encoding="utf-8"))["data"]
    out = []
    for a, article in enumerate(data):
        for p, para in enumerate(article["paragraphs"]):
            context = para["context"].lstrip("\ufeff")
            for qa in para["qas"]:
                golds = [x["text"] for x in qa["answers"]]
                out.append({"id": qa["id"], "question": qa["question"], "answers": golds,
                            "context": context, "ctx": f"{a}_{p}",
                            "title": article.get("title", "")})  # fmt: skip
    return out


def sample_questions(items: list[dict[str, Any]], n: int, key: str) -> list[dict[str, Any]]:
    rng = random.Random(f"{SEED}:qa:{key}")
    picked = sorted(rng.sample(range(len(items)), min(n, len(items))))
    return [items[i] for i in picked]


# ---------------------------------------------------------------- running


def ingest(index: Any, embedder: Any, contexts: dict[str, str]) -> Any:
    """Each paragraph a source, through acllm's ingestion with its default chunking."""
    from acllm.ingest.chunking import chunk_documents
    from acllm.ingest.document import Document, sha256_text
    from acllm.ingest.pipeline import Ingestor, PendingSource

    def reader(cid: str, text: str) -> Any:
        return lambda: [Document(text, cid, f"paragraph {cid}")]

    pending = [
        PendingSource(cid, sha256_text(t), reader(cid, t), cid) for cid, t in contexts.items()
    ]
    return Ingestor(index, embedder, chunker=chunk_documents).run(pending)


def assistant(index: Any, embedder: Any, threshold: float | None = None) -> Any:
    import dataclasses

    from acllm.assist.assistant import Assistant, AssistantOptions
    from acllm.models.fake import FakeChatModel

    options = AssistantOptions()
    if threshold is not None:
        options = dataclasses.replace(options, threshold=threshold)
    # Extractive mode never calls the model; this one would raise if it were called.
    return Assistant("bench", index, embedder, FakeChatModel(), options)


def score(answer: Any, item: dict[str, Any], lang: str) -> dict[str, Any]:
    text = _MARKER.sub("", answer.answer).strip()
    cited = [c.text for c in answer.citations]
    golds = item["answers"]
    return {
        "id": item["id"],
        "ctx": item["ctx"],
        "confidence": answer.confidence,
        "em": max(exact_match(text, g) for g in golds),
        "f1": max(f1_score(text, g) for g in golds),
        "f1_mlqa": max(f1_score(text, g, lambda s: normalize_mlqa(s, lang)) for g in golds),
        "hit_first": bool(cited) and contains(cited[0], golds),
        "hit_any": any(contains(c, golds) for c in cited),
    }


async def ask_all(bot: Any, items: list[dict[str, Any]], lang: str) -> list[dict[str, Any]]:
    out = []
    for item in items:
        answer = await bot.ask(item["question"])
        out.append(score(answer, item, lang))
    return out


def run_set(name: str, n: int, embedder: Any, folder: Path, latency_n: int) -> dict[str, Any]:
    from acllm.embed.e5 import E5Embedder
    from acllm.index.sqlite import SQLiteIndex

    rel, lang = SETS[name]
    items = sample_questions(load_squad(rel), n, name)
    contexts = {it["ctx"]: it["context"] for it in items}
    index = SQLiteIndex(folder / f"{name.replace(' ', '_')}.sqlite", name="qa", dim=384,
                        embedder=E5Embedder.name)  # fmt: skip
    report = ingest(index, embedder, contexts)
    chunks = index.stats()["chunks"]
    bot = assistant(index, embedder, threshold=-1.0)
    began = time.perf_counter()
    present = asyncio.run(ask_all(bot, items, lang))
    rng = random.Random(f"{SEED}:qa-remove:{name}")
    removed = set(rng.sample(sorted(contexts), len(contexts) // 2))
    index.write(remove=sorted(removed))
    absent_items = [it for it in items if it["ctx"] in removed]
    absent = asyncio.run(ask_all(bot, absent_items, lang))
    asked_s = time.perf_counter() - began
    # Latency: the default Assistant on e5 without the cache (sentences embedded afresh).
    ingest(index, embedder, contexts)  # the removed paragraphs back (the rest is unchanged)
    raw = E5Embedder()
    timed_bot = assistant(index, raw)
    times = []
    for item in items[:latency_n]:
        start = time.perf_counter()
        asyncio.run(timed_bot.ask(item["question"]))
        times.append(time.perf_counter() - start)
    raw.close()
    index.drop()
    print(f"  {name}: {len(items)} questions, {len(contexts)} paragraphs -> {chunks} chunks, "
          f"asked in {asked_s:.0f}s", file=sys.stderr, flush=True)  # fmt: skip
    return {
        "lang": lang,
        "n": len(items),
        "paragraphs": len(contexts),
        "chunks": chunks,
        "ingest": {k: v for k, v in report.as_dict().items() if k != "errors"},
        "present": present,
        "absent": absent,
        "latency_s": times,
    }


# ---------------------------------------------------------------- summaries


def at_threshold(block: dict[str, Any], t: float) -> dict[str, Any]:
    """Quality and refusal rates as the Assistant would give them at threshold ``t``."""
    present, absent = block["present"], block["absent"]
    answered = [r for r in present if r["confidence"] >= t]

    def rate(rows: list[dict[str, Any]], key: str) -> float:
        return float(np.mean([r[key] for r in rows])) if rows else float("nan")

    refused_present = sum(r["confidence"] < t for r in present)
    refused_absent = sum(r["confidence"] < t for r in absent)
    em, em_ci = mean_ci([r["em"] if r["confidence"] >= t else 0.0 for r in present])
    f1, f1_ci = mean_ci([r["f1"] if r["confidence"] >= t else 0.0 for r in present])
    hit = sum(r["hit_any"] and r["confidence"] >= t for r in present)
    return {
        "threshold": t,
        "em": em,
        "em_ci": em_ci,
        "f1": f1,
        "f1_ci": f1_ci,
        "f1_mlqa": float(np.mean([r["f1_mlqa"] if r["confidence"] >= t else 0.0 for r in present])),
        "hit_any": hit / len(present),
        "hit_any_ci": wilson(hit, len(present)),
        "hit_first_when_answered": rate(answered, "hit_first"),
        "hit_any_when_answered": rate(answered, "hit_any"),
        "refusal_present": refused_present / len(present),
        "refusal_present_ci": wilson(refused_present, len(present)),
        "refusal_absent": refused_absent / len(absent) if absent else float("nan"),
        "refusal_absent_ci": wilson(refused_absent, len(absent)),
        "n_present": len(present),
        "n_absent": len(absent),
    }


def never_refusing(block: dict[str, Any]) -> dict[str, Any]:
    present = block["present"]
    hit_first = sum(r["hit_first"] for r in present)
    hit_any = sum(r["hit_any"] for r in present)
    return {
        "em": float(np.mean([r["em"] for r in present])),
        "f1": float(np.mean([r["f1"] for r in present])),
        "f1_ci": mean_ci([r["f1"] for r in present])[1],
        "f1_mlqa": float(np.mean([r["f1_mlqa"] for r in present])),
        "hit_first": hit_first / len(present),
        "hit_first_ci": wilson(hit_first, len(present)),
        "hit_any": hit_any / len(present),
        "hit_any_ci": wilson(hit_any, len(present)),
    }


def suggest(blocks: list[dict[str, Any]]) -> tuple[float, list[dict[str, float]]]:
    """The threshold with the most (answer rate when present + refusal rate when removed)."""
    curve = []
    for t in THRESHOLDS:
        stats = [at_threshold(b, t) for b in blocks]
        answer = float(np.mean([1 - s["refusal_present"] for s in stats]))
        refuse = float(np.mean([s["refusal_absent"] for s in stats]))
        curve.append({"threshold": t, "answer_present": answer, "refuse_absent": refuse,
                      "sum": answer + refuse})  # fmt: skip
    best = max(curve, key=lambda c: (round(c["sum"], 6), -abs(c["threshold"] - 0.80)))
    return best["threshold"], curve


def run(quick: bool, n: int | None = None) -> dict[str, Any]:
    from acllm.assist.assistant import AssistantOptions
    from bench.retrieval import cached_e5

    n = n or (60 if quick else 200)
    began = time.perf_counter()
    embedder = cached_e5()
    default = AssistantOptions().threshold
    out: dict[str, Any] = {"quick": quick, "default_threshold": default, "sets": {}}
    with tempfile.TemporaryDirectory(prefix="acllm-qa-") as tmp:
        for name in SETS:
            out["sets"][name] = run_set(name, n, embedder, Path(tmp), 10 if quick else 30)
    sets = out["sets"]
    suggested, curve = suggest([sets[s] for s in TUNE_ON])
    out["suggested_threshold"] = suggested
    out["tuning_curve_mlqa"] = curve
    for block in sets.values():
        block["at_default"] = at_threshold(block, default)
        block["at_suggested"] = at_threshold(block, suggested)
        block["never_refusing"] = never_refusing(block)
        block["curve"] = [
            {k: at_threshold(block, t)[k] for k in ("threshold", "refusal_present",
                                                     "refusal_absent", "hit_any")}
            for t in THRESHOLDS
        ]  # fmt: skip
        block["median_latency_s"] = float(np.median(block["latency_s"]))
    out["cache_hits"], out["cache_misses"] = embedder.hits, embedder.misses
    out["seconds"] = time.perf_counter() - began
    return out


def report(result: dict[str, Any]) -> None:
    sets = result["sets"]
    print(f"\ndefault threshold {result['default_threshold']}, suggested (MLQA) "
          f"{result['suggested_threshold']}")  # fmt: skip
    rows = []
    for name, b in sets.items():
        nr, d = b["never_refusing"], b["at_default"]
        rows.append([name, b["n"], f"{nr['em']:.3f}", f"{nr['f1']:.3f}", f"{nr['f1_mlqa']:.3f}",
                     f"{nr['hit_first']:.3f}", f"{nr['hit_any']:.3f}",
                     f"{d['f1']:.3f}", f"{b['median_latency_s']:.2f}s"])  # fmt: skip
    print_table(["set", "n", "EM", "F1", "F1 mlqa", "hit first", "hit any", "F1 @default",
                 "latency p50"], rows)  # fmt: skip
    print()
    rows = []
    for name, b in sets.items():
        for label in ("at_default", "at_suggested"):
            s = b[label]
            rows.append([name, s["threshold"],
                         f"{s['refusal_present']:.3f} ({s['refusal_present_ci'][0]:.2f}-"
                         f"{s['refusal_present_ci'][1]:.2f})",
                         f"{s['refusal_absent']:.3f} ({s['refusal_absent_ci'][0]:.2f}-"
                         f"{s['refusal_absent_ci'][1]:.2f})", s["n_absent"],
                         f"{s['hit_any']:.3f}"])  # fmt: skip
    print_table(["set", "threshold", "refused, passage present", "refused, passage removed",
                 "n removed", "answered with gold"], rows)  # fmt: skip


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true")
    size.add_argument("--full", action="store_true")
    parser.add_argument("--n", type=int, default=None, help="questions per set")
    args = parser.parse_args(argv)
    result = {"machine": machine(), **run(quick=not args.full, n=args.n)}
    report(result)
    path = write_results(f"qa-{'full' if args.full else 'quick'}", result)
    print(f"\nresults: {path}", file=sys.stderr)
    return result


if __name__ == "__main__":
    main()
