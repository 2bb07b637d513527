"""Guardrails on acllm's frozen labelled sets (bench/data/guards, see bench/data/README.md):
PII precision and recall per kind with Wilson intervals, injection detection and false-positive
rates, and the latency the non-model checks add per request (p50 / p95).

A predicted PII span counts when it overlaps a gold span of the same kind (exact boundaries are
counted apart). The detectors were tuned looking at the dev split only; test is reported apart.
Run: ``python -m bench.guards [--quick|--full] [--misses]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bench.common import Row, fmt_ci, machine, row, wilson, write_results

SETS = Path(__file__).resolve().parent / "data" / "guards"
KINDS = ("email", "phone", "card", "iban", "dni", "nie", "curp", "rfc")


def load(name: str, split: str | None = None) -> list[dict[str, Any]]:
    rows = [json.loads(line) for line in (SETS / name).read_text("utf-8").splitlines() if line]
    return [r for r in rows if split is None or r["split"] == split]


@dataclass
class KindCount:
    tp: int = 0  # predicted spans that overlap a gold span of the same kind
    fp: int = 0
    fn: int = 0  # gold spans no prediction of the same kind overlaps
    exact: int = 0  # true positives whose boundaries match exactly


@dataclass
class PIIScore:
    kinds: dict[str, KindCount] = field(default_factory=lambda: {k: KindCount() for k in KINDS})
    misses: list[tuple[str, str, str]] = field(default_factory=list)  # (id, kind, why)

    def total(self) -> KindCount:
        out = KindCount()
        for c in self.kinds.values():
            out.tp, out.fp, out.fn, out.exact = (
                out.tp + c.tp, out.fp + c.fp, out.fn + c.fn, out.exact + c.exact
            )  # fmt: skip
        return out


Span = tuple[str, int, int]


def score_pii(rows: Iterable[dict[str, Any]], find: Callable[[str], list[Span]]) -> PIIScore:
    score = PIIScore()
    for rec in rows:
        gold = [(s["kind"], s["start"], s["end"]) for s in rec["spans"]]
        pred = find(rec["text"])
        for kind, a, b in pred:
            hit = [g for g in gold if g[0] == kind and a < g[2] and g[1] < b]
            count = score.kinds[kind]
            if hit:
                count.tp += 1
                count.exact += any(g[1] == a and g[2] == b for g in hit)
            else:
                count.fp += 1
                score.misses.append((rec["id"], kind, f"false alarm {rec['text'][a:b]!r}"))
        for kind, a, b in gold:
            if not any(p[0] == kind and p[1] < b and a < p[2] for p in pred):
                score.kinds[kind].fn += 1
                score.misses.append((rec["id"], kind, f"missed {rec['text'][a:b]!r}"))
    return score


@dataclass
class InjectionScore:
    tp: int = 0
    fn: int = 0
    fp: int = 0
    tn: int = 0
    misses: list[tuple[str, str, str]] = field(default_factory=list)  # (id, what, text)

    @property
    def positives(self) -> int:
        return self.tp + self.fn

    @property
    def negatives(self) -> int:
        return self.fp + self.tn


def score_injection(
    rows: Iterable[dict[str, Any]], flagged: Callable[[dict[str, Any]], bool]
) -> InjectionScore:
    score = InjectionScore()
    for rec in rows:
        said = flagged(rec)
        if rec["injection"]:
            score.tp += said
            score.fn += not said
        else:
            score.fp += said
            score.tn += not said
        if said != rec["injection"]:
            what = "missed" if rec["injection"] else "false alarm"
            score.misses.append((rec["id"], what, rec["text"][:160]))
    return score


# -- the benchmark --------------------------------------------------------------------------
def _pii_table(split: str | None) -> tuple[list[Row], PIIScore]:
    from acllm.guards import pii

    score = score_pii(
        load("pii.jsonl", split), lambda t: [(f.kind, f.start, f.end) for f in pii.find(t)]
    )
    rows: list[Row] = []
    for kind, c in [*score.kinds.items(), ("all", score.total())]:
        p_ci, r_ci = wilson(c.tp, c.tp + c.fp), wilson(c.tp, c.tp + c.fn)
        rows.append(
            row(
                "pii", f"pii.jsonl:{split or 'all'}", "regex+checks", kind,
                precision=c.tp / (c.tp + c.fp) if c.tp + c.fp else None, precision_ci=p_ci,
                recall=c.tp / (c.tp + c.fn) if c.tp + c.fn else None, recall_ci=r_ci,
                gold=c.tp + c.fn, predicted=c.tp + c.fp, exact_boundaries=c.exact,
            )
        )  # fmt: skip
    return rows, score


def _injection_rows(split: str | None, threshold: float) -> list[Row]:
    from acllm.guards.injection import detect

    out: list[Row] = []
    rows = load("injection.jsonl", split)
    for where in ("message", "document", "all"):
        part = [r for r in rows if where in ("all", r["where"])]
        s = score_injection(
            part, lambda r: detect(r["text"], document=r["where"] == "document").score >= threshold
        )
        out.append(
            row(
                "injection", f"injection.jsonl:{split or 'all'}", f"patterns@{threshold}", where,
                detection_rate=s.tp / s.positives, detection_ci=wilson(s.tp, s.positives),
                false_positive_rate=s.fp / s.negatives, fp_ci=wilson(s.fp, s.negatives),
                positives=s.positives, negatives=s.negatives,
            )
        )  # fmt: skip
    return out


async def _latency(passes: int) -> dict[str, Any]:
    """Added latency per request of the non-model checks: input guards (length, injection,
    topics by keyword, PII; all in flag mode so none stops the others) on each message, output
    PII on an answer-sized text, and the screening of a request's five retrieved chunks."""
    from acllm.guards import GuardSettings, InputGuards, OutputGuards

    settings = GuardSettings(  # flag rather than block, so that every check runs on every message
        injection="flag",
        topics_allow=("pedido", "order", "factura", "invoice", "tarjeta", "card", "envío"),
        topics_deny=("política", "politics"),
        topic_action="flag",
        grounding="off",
    )
    inputs, outputs = InputGuards.from_settings(settings), OutputGuards.from_settings(settings)
    messages = [r["text"] for r in load("pii.jsonl")] + [
        r["text"] for r in load("injection.jsonl") if r["where"] == "message"
    ]
    chunks = [r["text"] for r in load("injection.jsonl") if r["where"] == "document"]
    answer = " ".join(chunks[:3])  # an answer of a few sentences
    per_input, per_output, per_screen = [], [], []
    for _ in range(passes):
        for text in messages:
            start = time.perf_counter()
            await inputs.check_input(text, "es")
            per_input.append(time.perf_counter() - start)
            start = time.perf_counter()
            await outputs.check_output(answer, [], "es")
            per_output.append(time.perf_counter() - start)
        start = time.perf_counter()
        inputs.screen_context(chunks[:5])  # a request's top-5 retrieved chunks
        per_screen.append(time.perf_counter() - start)

    def ms(values: list[float]) -> dict[str, float]:
        arr = np.asarray(values) * 1000
        return {"p50_ms": float(np.percentile(arr, 50)), "p95_ms": float(np.percentile(arr, 95))}

    return {
        "messages": len(messages),
        "passes": passes,
        "check_input": ms(per_input),
        "check_output_pii": ms(per_output),
        "screen_context_top5": ms(per_screen),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="one latency pass")
    parser.add_argument("--full", action="store_true", help="five latency passes")
    parser.add_argument("--misses", action="store_true", help="print the dev split's errors")
    args = parser.parse_args()
    mode = "full" if args.full else "quick"
    payload: dict[str, Any] = {"machine": machine(), "mode": mode}
    pii_rows: list[Row] = []
    for split in ("dev", "test", None):
        rows, score = _pii_table(split)
        pii_rows += rows
        if args.misses and split == "dev":
            for miss in score.misses:
                print("pii", *miss)
    inj_rows = [r for split in ("dev", "test", None) for r in _injection_rows(split, 0.5)]
    payload["pii"], payload["injection"] = pii_rows, inj_rows
    payload["latency"] = asyncio.run(_latency(5 if args.full else 1))
    path = write_results(f"guards-{mode}", payload)

    print("\n### PII detection (frozen set; tuned on dev, reported on test)\n")
    print("| split | kind | gold | precision (95% CI) | recall (95% CI) |")
    print("|---|---|---:|---|---|")
    for r in pii_rows:
        p = "-" if r["precision"] is None else f"{r['precision']:.3f} ({fmt_ci(r['precision_ci'])})"
        rc = "-" if r["recall"] is None else f"{r['recall']:.3f} ({fmt_ci(r['recall_ci'])})"
        print(f"| {r['set'].split(':')[1]} | {r['metric']} | {r['gold']} | {p} | {rc} |")
    print("\n### Prompt injection (threshold 0.5)\n")
    print("| split | where | detection rate (95% CI) | false-positive rate (95% CI) | n+ / n- |")
    print("|---|---|---|---|---|")
    for r in inj_rows:
        print(
            f"| {r['set'].split(':')[1]} | {r['metric']} | {r['detection_rate']:.3f} "
            f"({fmt_ci(r['detection_ci'])}) | {r['false_positive_rate']:.3f} "
            f"({fmt_ci(r['fp_ci'])}) | {r['positives']} / {r['negatives']} |"
        )
    lat = payload["latency"]
    print(f"\n### Added latency per request (non-model checks, {lat['messages']} messages)\n")
    print("| check | p50 ms | p95 ms |")
    print("|---|---:|---:|")
    for name in ("check_input", "check_output_pii", "screen_context_top5"):
        print(f"| {name} | {lat[name]['p50_ms']:.3f} | {lat[name]['p95_ms']:.3f} |")
    print(f"\nresults: {path}")


if __name__ == "__main__":
    main()
