"""Loaders for the public sets in $ACLLM_BENCHMARKS (formats as described in each SOURCE.txt)."""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path

from bench.common import data_dir

XLMT_LABELS = {"0": "negative", "1": "neutral", "2": "positive"}


@dataclass(frozen=True)
class Labelled:
    text: str
    label: str


@dataclass(frozen=True)
class Pair:
    a: str
    b: str
    same: bool


@dataclass(frozen=True)
class Parallel:
    source: str
    refs: tuple[str, ...]


@dataclass(frozen=True)
class Article:
    id: str
    dataset: str
    article: str
    reference: str


def _lines(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").rstrip("\n").split("\n")


def sst2() -> list[Labelled]:
    """GLUE SST-2 dev: 872 English sentences, 1 = positive, 0 = negative."""
    with (data_dir() / "sst2_dev" / "dev.tsv").open(encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh, delimiter="\t", quoting=csv.QUOTE_NONE))
    return [
        Labelled(r["sentence"].strip(), "positive" if r["label"] == "1" else "negative")
        for r in rows
    ]


def xlmt(lang: str, split: str = "test") -> list[Labelled]:
    """UMSAB / XLM-T tweets, 3 classes; ``lang`` is "es" or "en"."""
    folder = data_dir() / "sentiment_es_xlmt"
    stem = {"es": "spanish", "en": "english"}[lang]
    texts = _lines(folder / f"{stem}_{split}_text.txt")
    labels = _lines(folder / f"{stem}_{split}_labels.txt")
    assert len(texts) == len(labels), f"{stem} {split}: texts and labels differ in length"
    return [Labelled(t.strip(), XLMT_LABELS[y.strip()]) for t, y in zip(texts, labels, strict=True)]


def pawsx(lang: str) -> list[Pair]:
    """PAWS-X dev pairs (adversarial word-order swaps), ``lang`` "es" or "en"; 1 = paraphrase."""
    out = []
    for line in _lines(data_dir() / "pawsx_es_en" / f"dev-{lang}.tsv"):
        a, b, label = line.split("\t")
        if a.strip() and b.strip():
            out.append(Pair(a.strip(), b.strip(), label.strip() == "1"))
    return out


def tatoeba(direction: str) -> list[Parallel]:
    """Tatoeba es-en, 1,000 line-aligned pairs; ``direction`` "en-es" or "es-en"."""
    folder = data_dir() / "tatoeba_en_es"
    en = _lines(folder / "tatoeba.spa-eng.eng")
    es = _lines(folder / "tatoeba.spa-eng.spa")
    src, tgt = (en, es) if direction == "en-es" else (es, en)
    return [Parallel(s.strip(), (t.strip(),)) for s, t in zip(src, tgt, strict=True)]


def ntrex() -> list[Parallel]:
    """NTREX-128 news, en->es, with the two Spanish (Spain) references."""
    folder = data_dir() / "ntrex_en_es"
    src = _lines(folder / "newstest2019-src.eng.txt")
    refs = [
        _lines(p)
        for p in (folder / "newstest2019-ref.spa.txt", folder / "newstest2019-ref-2.spa.txt")
        if p.is_file()
    ]
    return [Parallel(s.strip(), tuple(r[i].strip() for r in refs)) for i, s in enumerate(src)]


def frank() -> list[Article]:
    """FRANK: 250 CNN/DM + 251 XSum test articles with their reference summaries."""
    rows = [
        json.loads(line)
        for line in _lines(data_dir() / "summarization_frank" / "frank_articles.jsonl")
    ]
    return [Article(r["id"], r["dataset"], r["article"], r["reference"]) for r in rows]
