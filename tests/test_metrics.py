"""acllm.evals.metrics against the reference implementations, on the real public sets.

References: the official SQuAD v1.1 and MLQA v1 evaluation functions (reproduced below verbatim
in their logic, as the oracle), scikit-learn, sacrebleu, rouge-score and pytrec_eval (trec_eval).
Agreement is to 1e-6 per case, or identical output.
"""

from __future__ import annotations

import gzip
import json
import os
import random
import re
import sqlite3
import string
import sys
import unicodedata
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from acllm.evals import metrics

ROOT = Path(__file__).resolve().parents[1]
SEED = 20261127


@pytest.fixture(scope="module")
def sets() -> Path:
    raw = os.environ.get("ACLLM_BENCHMARKS")
    path = Path(raw) if raw else ROOT.parent / "shared" / "benchmarks"
    if not path.is_dir():
        pytest.skip(f"benchmark data not found at {path} (set ACLLM_BENCHMARKS)")
    return path


# --- the reference evaluation scripts (their logic, verbatim) ------------------------------------


def squad_normalize_answer(s: str) -> str:  # SQuAD v1.1 evaluate-v1.1.py
    def remove_articles(text: str) -> str:
        return re.sub(r"\b(a|an|the)\b", " ", text)

    def white_space_fix(text: str) -> str:
        return " ".join(text.split())

    def remove_punc(text: str) -> str:
        exclude = set(string.punctuation)
        return "".join(ch for ch in text if ch not in exclude)

    return white_space_fix(remove_articles(remove_punc(s.lower())))


def squad_f1(prediction: str, ground_truth: str) -> float:
    prediction_tokens = squad_normalize_answer(prediction).split()
    ground_truth_tokens = squad_normalize_answer(ground_truth).split()
    common = Counter(prediction_tokens) & Counter(ground_truth_tokens)
    num_same = sum(common.values())
    if num_same == 0:
        return 0
    precision = 1.0 * num_same / len(prediction_tokens)
    recall = 1.0 * num_same / len(ground_truth_tokens)
    return (2 * precision * recall) / (precision + recall)


def squad_em(prediction: str, ground_truth: str) -> bool:
    return squad_normalize_answer(prediction) == squad_normalize_answer(ground_truth)


MLQA_PUNCT = {
    chr(i) for i in range(sys.maxunicode) if unicodedata.category(chr(i)).startswith("P")
}.union(string.punctuation)


def mlqa_normalize_answer(s: str, lang: str) -> str:  # MLQA mlqa_evaluation_v1.py (en, es)
    def remove_articles(text: str, lang: str) -> str:
        if lang == "en":
            return re.sub(r"\b(a|an|the)\b", " ", text)
        elif lang == "es":
            return re.sub(r"\b(un|una|unos|unas|el|la|los|las)\b", " ", text)
        raise Exception(f"Unknown Language {lang}")

    def white_space_fix(text: str, lang: str) -> str:
        tokens = text.split()
        return " ".join([t for t in tokens if t.strip() != ""])

    def remove_punc(text: str) -> str:
        return "".join(ch for ch in text if ch not in MLQA_PUNCT)

    return white_space_fix(remove_articles(remove_punc(s.lower()), lang), lang)


def mlqa_f1(prediction: str, ground_truth: str, lang: str) -> float:
    prediction_tokens = mlqa_normalize_answer(prediction, lang).split()
    ground_truth_tokens = mlqa_normalize_answer(ground_truth, lang).split()
    common = Counter(prediction_tokens) & Counter(ground_truth_tokens)
    num_same = sum(common.values())
    if num_same == 0:
        return 0
    precision = 1.0 * num_same / len(prediction_tokens)
    recall = 1.0 * num_same / len(ground_truth_tokens)
    return (2 * precision * recall) / (precision + recall)


# --- predictions to score: real answers, near misses and whole sentences --------------------------


def squad_cases(path: Path, n: int = 400) -> list[tuple[str, list[str]]]:
    """(prediction, golds): the gold itself, the gold in a wider span, the answer's sentence."""
    data = json.loads(path.read_text(encoding="utf-8"))["data"]
    cases = []
    for article in data:
        for para in article["paragraphs"]:
            context = para["context"]
            for qa in para["qas"]:
                golds = [a["text"] for a in qa["answers"]]
                start = qa["answers"][0]["answer_start"]
                end = start + len(golds[0])
                cases.append((golds[0], golds))
                cases.append((context[max(0, start - 15) : end + 10], golds))
                left = context.rfind(".", 0, start) + 1
                right = context.find(".", end)
                cases.append((context[left : right if right > 0 else None], golds))
    return random.Random(SEED).sample(cases, min(n, len(cases)))


@pytest.mark.benchmarks
@pytest.mark.parametrize("lang", ["en", "es"])
def test_squad_em_and_f1_match_the_official_script(sets: Path, lang: str) -> None:
    for prediction, golds in squad_cases(sets / "xquad" / f"xquad.{lang}.json"):
        want_f1 = max(squad_f1(prediction, g) for g in golds)
        want_em = max(float(squad_em(prediction, g)) for g in golds)
        assert metrics.best_of(metrics.token_f1, prediction, golds) == pytest.approx(
            want_f1, abs=1e-9
        )
        assert metrics.best_of(metrics.exact_match, prediction, golds) == want_em


@pytest.mark.benchmarks
@pytest.mark.parametrize(("lang", "file"), [("en", "en-question-en"), ("es", "es-question-es")])
def test_mlqa_normalisation_and_f1_match_the_official_script(
    sets: Path, lang: str, file: str
) -> None:
    path = sets / "mlqa_es_en" / f"dev-context-{file}.json"
    seen = 0
    for prediction, golds in squad_cases(path):
        for gold in golds:
            assert metrics.normalize_mlqa(prediction, lang) == mlqa_normalize_answer(
                prediction, lang
            )
            norm = lambda t: metrics.normalize_mlqa(t, lang)  # noqa: E731
            assert metrics.token_f1(prediction, gold, norm) == pytest.approx(
                mlqa_f1(prediction, gold, lang), abs=1e-9
            )
            seen += 1
    assert seen >= 400


def test_spanish_normalisation_folds_accents_and_articles() -> None:
    norm = metrics.normalize_spanish
    assert norm("¿Los 30 días?") == norm("30 dias") == "30 dias"
    assert norm("Del río al mar") == "rio mar"
    assert metrics.exact_match("El Niño", "nino", norm) == 1.0
    assert metrics.exact_match("El Niño", "nino") == 0.0  # SQuAD's rules keep the accent
    with pytest.raises(ValueError, match="en and es"):
        metrics.normalize_mlqa("x", "de")


# --- classification against scikit-learn ---------------------------------------------------------


def sst2(sets: Path) -> list[str]:
    lines = (sets / "sst2_dev" / "dev.tsv").read_text(encoding="utf-8").splitlines()[1:]
    return [line.rsplit("\t", 1)[1].strip() for line in lines]


@pytest.mark.benchmarks
def test_accuracy_macro_f1_and_confusion_match_scikit_learn(sets: Path) -> None:
    from sklearn.metrics import accuracy_score, f1_score
    from sklearn.metrics import confusion_matrix as sk_confusion

    gold = sst2(sets)
    rng = random.Random(SEED)
    # A noisy classifier, plus a third label it sometimes invents: macro-F1 must count it.
    predicted = [g if rng.random() < 0.8 else rng.choice(["0", "1", "neutral"]) for g in gold]
    labels = ["0", "1", "neutral"]
    assert metrics.accuracy(gold, predicted) == pytest.approx(
        accuracy_score(gold, predicted), abs=1e-12
    )
    assert metrics.macro_f1(gold, predicted, labels) == pytest.approx(
        f1_score(gold, predicted, labels=labels, average="macro", zero_division=0), abs=1e-12
    )
    names, rows = metrics.confusion_matrix(gold, predicted, labels)
    assert names == labels
    assert rows == sk_confusion(gold, predicted, labels=labels).tolist()
    with pytest.raises(ValueError, match="predictions"):
        metrics.accuracy(gold, predicted[:-1])


# --- text generation against sacrebleu and rouge-score -------------------------------------------


def tatoeba(sets: Path, n: int = 300) -> tuple[list[str], list[str]]:
    folder = sets / "tatoeba_en_es"
    en = (folder / "tatoeba.spa-eng.eng").read_text(encoding="utf-8").splitlines()[:n]
    es = (folder / "tatoeba.spa-eng.spa").read_text(encoding="utf-8").splitlines()[:n]
    return en, es


@pytest.mark.benchmarks
def test_chrf_and_bleu_are_sacrebleus(sets: Path) -> None:
    import sacrebleu

    refs, hyps = tatoeba(sets)
    hyps = [h.replace("a", "o") for h in hyps]  # not identical, not disjoint
    assert metrics.chrf(hyps, refs) == pytest.approx(
        sacrebleu.corpus_chrf(hyps, [refs]).score, abs=1e-9
    )
    assert metrics.bleu(refs, refs) == pytest.approx(100.0)
    assert metrics.bleu(hyps, refs) == pytest.approx(
        sacrebleu.corpus_bleu(hyps, [refs]).score, abs=1e-9
    )


@pytest.mark.benchmarks
def test_rouge_l_is_rouge_scores(sets: Path) -> None:
    from rouge_score import rouge_scorer

    refs, hyps = tatoeba(sets, 100)
    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)
    for hyp, ref in zip(hyps, refs, strict=True):
        want = scorer.score(ref, hyp)["rougeL"].fmeasure
        assert metrics.rouge_l(hyp, ref) == pytest.approx(want, abs=1e-12)


# --- retrieval against pytrec_eval (trec_eval) ---------------------------------------------------


def scifact_run(sets: Path) -> tuple[dict[str, dict[str, int]], dict[str, dict[str, float]]]:
    """Test qrels and a real (if simple) run: word-overlap scores, 100 deep, ties included."""
    folder = sets / "beir_scifact"
    with gzip.open(folder / "corpus.jsonl.gz", "rt", encoding="utf-8") as fh:
        docs = {d["_id"]: set(re.findall(r"\w+", (d["title"] + " " + d["text"]).lower()))
                for d in map(json.loads, fh)}  # fmt: skip
    queries = {
        q["_id"]: set(re.findall(r"\w+", q["text"].lower()))
        for q in map(json.loads, (folder / "queries.jsonl").read_text().splitlines())
    }
    qrels: dict[str, dict[str, int]] = {}
    for line in (folder / "qrels" / "test.tsv").read_text().splitlines()[1:]:
        q, d, rel = line.split("\t")
        qrels.setdefault(q, {})[d] = int(rel)
    run = {}
    for q in qrels:
        scores = {d: float(len(queries[q] & words)) for d, words in docs.items()}
        top = sorted(scores.items(), key=lambda x: -x[1])[:100]
        run[q] = dict(top)
    return qrels, run


@pytest.fixture(scope="module")
def scifact(sets: Path) -> Iterator[tuple[dict[str, dict[str, int]], dict[str, dict[str, float]]]]:
    yield scifact_run(sets)


@pytest.mark.benchmarks
def test_retrieval_metrics_match_trec_eval(
    scifact: tuple[dict[str, dict[str, int]], dict[str, dict[str, float]]],
) -> None:
    import pytrec_eval

    qrels, run = scifact
    measures = {"ndcg_cut.10", "recall.10", "recall.100"}
    want = pytrec_eval.RelevanceEvaluator(qrels, measures).evaluate(run)
    ndcg = metrics.ndcg_at(qrels, run, 10)
    recall10, recall100 = metrics.recall_at(qrels, run, 10), metrics.recall_at(qrels, run, 100)
    for q, got in want.items():
        assert ndcg[q] == pytest.approx(got["ndcg_cut_10"], abs=1e-6)
        assert recall10[q] == pytest.approx(got["recall_10"], abs=1e-6)
        assert recall100[q] == pytest.approx(got["recall_100"], abs=1e-6)
    # MRR@10 = trec_eval's recip_rank on the run cut at 10 (as BASELINES.md measures it).
    cut = {q: dict(sorted(s.items(), key=lambda x: (x[1], x[0]), reverse=True)[:10])
           for q, s in run.items()}  # fmt: skip
    rr = pytrec_eval.RelevanceEvaluator(qrels, {"recip_rank"}).evaluate(cut)
    mrr = metrics.mrr_at(qrels, run, 10)
    for q, got in rr.items():
        assert mrr[q] == pytest.approx(got["recip_rank"], abs=1e-6)
    assert len(want) == len(qrels) == 300


def test_retrieval_means_count_missing_queries_as_zero() -> None:
    qrels = {"q1": {"a": 1}, "q2": {"b": 1}}
    run = {"q1": {"a": 2.0, "c": 1.0}}
    assert metrics.mean(metrics.recall_at(qrels, run, 10)) == 0.5
    assert metrics.mean(metrics.mrr_at(qrels, run, 10), ["q1", "q2", "q3"]) == pytest.approx(1 / 3)


# --- SQL execution accuracy on the GeoQuery database ---------------------------------------------


def geoquery(sets: Path) -> tuple[sqlite3.Connection, list[str]]:
    folder = sets / "text2sql_geoquery"
    conn = sqlite3.connect(f"file:{folder / 'geography.sqlite'}?mode=ro", uri=True)
    items = json.loads((folder / "geography.json").read_text(encoding="utf-8"))
    queries = []
    for item in items[:40]:
        sql = item["sql"][0]
        for var in item["variables"]:
            sql = sql.replace(f'"{var["name"]}"', f'"{var["example"]}"')
        queries.append(sql.rstrip(" ;"))
    return conn, queries


@pytest.mark.benchmarks
def test_execution_match_compares_result_sets(sets: Path) -> None:
    conn, queries = geoquery(sets)
    try:

        def run(sql: str) -> list[Any]:
            return conn.execute(sql).fetchall()

        usable = []
        for sql in queries:  # a few gold queries use MySQL-only syntax: skip those, not the test
            try:
                run(sql)
            except sqlite3.OperationalError:
                continue
            usable.append(sql)
        assert len(usable) >= 20
        for sql in usable:
            assert metrics.execution_match(run, sql, sql) == (True, None)
        same_rows = "SELECT STATE_NAME FROM STATE"
        assert metrics.execution_match(run, same_rows + " ORDER BY STATE_NAME DESC", same_rows)[0]
        ordered = same_rows + " ORDER BY STATE_NAME"
        assert not metrics.execution_match(run, same_rows + " ORDER BY STATE_NAME DESC", ordered)[0]
        assert not metrics.execution_match(run, "SELECT CAPITAL FROM STATE", same_rows)[0]
        ok, error = metrics.execution_match(run, "SELEC nonsense", same_rows)
        assert not ok and error is not None and "OperationalError" in error
        with pytest.raises(sqlite3.OperationalError):
            metrics.execution_match(run, same_rows, "SELECT nothing FROM nowhere")
    finally:
        conn.close()
