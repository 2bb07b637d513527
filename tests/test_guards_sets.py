"""The labelled guard sets are frozen: tuning must not have edited them (bench/data/README.md)."""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from acllm.guards import injection, pii

SETS = Path(__file__).resolve().parent.parent / "bench" / "data" / "guards"
FROZEN = {
    "pii.jsonl": "f54f4240873222038b9478396183943b9ada93cd6f01b15d0f6af23f49ca8084",
    "injection.jsonl": "95b5c06332a07b7126e3a8623a1b67ad52a01421235ef0cc0a3048b9d827fb4d",
}


@pytest.mark.parametrize(("name", "digest"), sorted(FROZEN.items()))
def test_set_is_unchanged(name: str, digest: str) -> None:
    assert hashlib.sha256((SETS / name).read_bytes()).hexdigest() == digest


def test_pii_spans_are_inside_their_text() -> None:
    rows = [json.loads(line) for line in (SETS / "pii.jsonl").read_text("utf-8").splitlines()]
    assert len(rows) >= 300
    for row in rows:
        for span in row["spans"]:
            assert 0 <= span["start"] < span["end"] <= len(row["text"])
            assert row["text"][span["start"]].strip() and row["text"][span["end"] - 1].strip()


def test_injection_set_is_balanced_enough() -> None:
    rows = [json.loads(line) for line in (SETS / "injection.jsonl").read_text("utf-8").splitlines()]
    assert len(rows) >= 200
    assert {r["lang"] for r in rows} == {"en", "es"}
    assert 0.3 < sum(r["injection"] for r in rows) / len(rows) < 0.7


# -- regression floors on the frozen sets (what the detectors meet now; see bench/guards.py) ---
def _rows(name: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (SETS / name).read_text("utf-8").splitlines()]


def test_pii_precision_and_recall_floors() -> None:
    tp: Counter[str] = Counter()
    fp: Counter[str] = Counter()
    fn: Counter[str] = Counter()
    for row in _rows("pii.jsonl"):
        gold = [(s["kind"], s["start"], s["end"]) for s in row["spans"]]
        pred = [(f.kind, f.start, f.end) for f in pii.find(row["text"])]
        for kind, a, b in pred:
            hit = any(g[0] == kind and a < g[2] and g[1] < b for g in gold)
            (tp if hit else fp)[kind] += 1
        for kind, a, b in gold:
            if not any(p[0] == kind and p[1] < b and a < p[2] for p in pred):
                fn[kind] += 1
    total_tp, total_fp, total_fn = sum(tp.values()), sum(fp.values()), sum(fn.values())
    assert total_tp / (total_tp + total_fp) >= 0.97
    assert total_tp / (total_tp + total_fn) >= 0.98
    for kind in pii.KINDS:
        assert tp[kind] / (tp[kind] + fn[kind]) >= 0.9, kind
        assert tp[kind] / (tp[kind] + fp[kind]) >= 0.9, kind


def test_injection_detection_and_false_alarm_floors() -> None:
    caught = missed = false_alarms = clean = 0
    for row in _rows("injection.jsonl"):
        said = injection.detect(row["text"], document=row["where"] == "document").flagged(0.5)
        if row["injection"]:
            caught, missed = caught + said, missed + (not said)
        else:
            false_alarms, clean = false_alarms + said, clean + (not said)
    assert caught / (caught + missed) >= 0.9
    assert false_alarms / (false_alarms + clean) <= 0.06
