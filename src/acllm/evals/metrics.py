"""Evaluation metrics, each matching its reference implementation (checked in tests/test_metrics.py
on real data): SQuAD v1.1 and MLQA answer normalisation, exact match and token F1, plus a
Spanish-aware normalisation; accuracy, macro-F1 and the confusion matrix (as scikit-learn);
chrF and BLEU (sacrebleu itself); ROUGE-L (rouge-score itself); retrieval Recall@k, MRR@k and
nDCG@k (as trec_eval's ``recall.k``, ``recip_rank`` on the run cut at k, ``ndcg_cut.k``); and
execution accuracy for generated SQL (both queries run, result multisets compared).

Pure functions over plain values: the runner, reports and benchmarks all score through here.
"""

from __future__ import annotations

import importlib
import math
import re
import string
import unicodedata
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from acllm.errors import MissingExtraError

# --- answers -------------------------------------------------------------------------------------

_EN_ARTICLES = re.compile(r"\b(a|an|the)\b")
# MLQA's evaluation script (mlqa_evaluation_v1.py): per language, the articles it removes.
_MLQA_ARTICLES = {
    "en": _EN_ARTICLES,
    "es": re.compile(r"\b(un|una|unos|unas|el|la|los|las)\b"),
}
_ES_ARTICLES = re.compile(r"\b(un|una|unos|unas|el|la|los|las|lo|al|del)\b")
_PUNCT = set(string.punctuation)


def normalize_squad(text: str) -> str:
    """SQuAD v1.1's official normalisation: lower case, no punctuation, no English articles."""
    text = "".join(ch for ch in text.lower() if ch not in _PUNCT)
    return " ".join(_EN_ARTICLES.sub(" ", text).split())


def normalize_mlqa(text: str, lang: str = "en") -> str:
    """MLQA's official normalisation (es, en): lower case, Unicode punctuation removed (not
    replaced: ``e-mail`` becomes ``email``), the language's articles, whitespace squeezed."""
    if lang not in _MLQA_ARTICLES:
        raise ValueError(f"MLQA normalisation is defined here for en and es, not {lang!r}")
    text = "".join(
        ch for ch in text.lower() if ch not in _PUNCT and unicodedata.category(ch)[0] != "P"
    )
    return " ".join(_MLQA_ARTICLES[lang].sub(" ", text).split())


def normalize_spanish(text: str) -> str:
    """For Spanish answers: MLQA's rules, plus accents folded (``días`` = ``dias``) and ``lo``,
    ``al`` and ``del`` dropped with the articles."""
    text = normalize_mlqa(text, "es")
    folded = "".join(
        ch for ch in unicodedata.normalize("NFKD", text) if not unicodedata.combining(ch)
    )
    return " ".join(_ES_ARTICLES.sub(" ", unicodedata.normalize("NFC", folded)).split())


Normalizer = Callable[[str], str]


def exact_match(prediction: str, gold: str, normalize: Normalizer = normalize_squad) -> float:
    return float(normalize(prediction) == normalize(gold))


def token_f1(prediction: str, gold: str, normalize: Normalizer = normalize_squad) -> float:
    """Harmonic mean of token precision and recall after normalisation (SQuAD's definition)."""
    pred, ref = normalize(prediction).split(), normalize(gold).split()
    same = sum((Counter(pred) & Counter(ref)).values())
    if same == 0:
        return 0.0
    precision, recall = same / len(pred), same / len(ref)
    return 2 * precision * recall / (precision + recall)


def best_of(metric: Callable[[str, str], float], prediction: str, golds: Iterable[str]) -> float:
    """A metric against several gold answers: the best one counts (SQuAD's max over ground truths)."""
    return max((metric(prediction, g) for g in golds), default=0.0)


# --- classification ------------------------------------------------------------------------------


def accuracy(gold: Sequence[Any], predicted: Sequence[Any]) -> float:
    _same_length(gold, predicted)
    return sum(g == p for g, p in zip(gold, predicted, strict=True)) / len(gold) if gold else 0.0


def confusion_matrix(
    gold: Sequence[Any], predicted: Sequence[Any], labels: Sequence[Any] | None = None
) -> tuple[list[Any], list[list[int]]]:
    """(labels, rows): rows[i][j] counts gold labels[i] predicted as labels[j] (scikit-learn's
    layout); labels default to every label seen, sorted."""
    _same_length(gold, predicted)
    names = list(labels) if labels is not None else sorted(set(gold) | set(predicted), key=str)
    at = {name: i for i, name in enumerate(names)}
    rows = [[0] * len(names) for _ in names]
    for g, p in zip(gold, predicted, strict=True):
        if g in at and p in at:
            rows[at[g]][at[p]] += 1
    return names, rows


def macro_f1(
    gold: Sequence[Any], predicted: Sequence[Any], labels: Sequence[Any] | None = None
) -> float:
    """Unweighted mean of per-label F1 (a label never predicted nor present scores 0, as
    scikit-learn's ``f1_score(average="macro", zero_division=0)``)."""
    names, rows = confusion_matrix(gold, predicted, labels)
    if not names:
        return 0.0
    scores = []
    for i in range(len(names)):
        tp = rows[i][i]
        fp = sum(rows[r][i] for r in range(len(names))) - tp
        fn = sum(rows[i]) - tp
        scores.append(2 * tp / (2 * tp + fp + fn) if tp else 0.0)
    return sum(scores) / len(scores)


def _same_length(a: Sequence[Any], b: Sequence[Any]) -> None:
    if len(a) != len(b):
        raise ValueError(f"{len(a)} gold labels but {len(b)} predictions")


# --- generated text ------------------------------------------------------------------------------


def chrf(hypotheses: Sequence[str], references: Sequence[str]) -> float:
    """Corpus chrF (sacrebleu's defaults: character 6-grams, beta 2), 0-100."""
    CHRF = _need("sacrebleu.metrics.chrf", "chrF").CHRF
    _same_length(references, hypotheses)
    return float(CHRF().corpus_score(list(hypotheses), [list(references)]).score)


def bleu(hypotheses: Sequence[str], references: Sequence[str]) -> float:
    """Corpus BLEU with sacrebleu's defaults (13a tokenisation, exponential smoothing), 0-100."""
    BLEU = _need("sacrebleu.metrics.bleu", "BLEU").BLEU
    _same_length(references, hypotheses)
    return float(BLEU().corpus_score(list(hypotheses), [list(references)]).score)


def rouge_l(hypothesis: str, reference: str) -> float:
    """ROUGE-L F-measure of one pair (rouge-score, English stemmer off: works for Spanish too)."""
    rouge_scorer = _need("rouge_score.rouge_scorer", "ROUGE-L")
    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)
    return float(scorer.score(reference, hypothesis)["rougeL"].fmeasure)


def _need(module: str, metric: str) -> Any:
    """The reference library behind ``metric``, or a clear error naming the extra to install."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise MissingExtraError(metric, "evals") from None


# --- retrieval -----------------------------------------------------------------------------------

Qrels = Mapping[str, Mapping[str, int]]  # query -> document -> graded relevance (> 0: relevant)
Run = Mapping[str, Mapping[str, float]]  # query -> document -> score (higher first)


def _ranked(scores: Mapping[str, float]) -> list[str]:
    # trec_eval's order: score descending, then document id descending.
    return [d for d, _ in sorted(scores.items(), key=lambda x: (x[1], x[0]), reverse=True)]


def recall_at(qrels: Qrels, run: Run, k: int) -> dict[str, float]:
    """Per query: relevant documents in the top k / all relevant documents (trec_eval recall.k)."""
    out = {}
    for q, rels in qrels.items():
        relevant = {d for d, r in rels.items() if r > 0}
        if not relevant:
            continue
        top = _ranked(run.get(q, {}))[:k]
        out[q] = len(relevant.intersection(top)) / len(relevant)
    return out


def mrr_at(qrels: Qrels, run: Run, k: int) -> dict[str, float]:
    """Per query: 1 / rank of the first relevant document in the top k, else 0."""
    out = {}
    for q, rels in qrels.items():
        if not any(r > 0 for r in rels.values()):
            continue
        out[q] = 0.0
        for rank, d in enumerate(_ranked(run.get(q, {}))[:k], 1):
            if rels.get(d, 0) > 0:
                out[q] = 1.0 / rank
                break
    return out


def ndcg_at(qrels: Qrels, run: Run, k: int) -> dict[str, float]:
    """Per query: DCG of the top k (gain = relevance, discount log2(rank + 1)) over the ideal."""
    out = {}
    for q, rels in qrels.items():
        ideal_gains = sorted((r for r in rels.values() if r > 0), reverse=True)[:k]
        if not ideal_gains:
            continue
        ideal = sum(g / math.log2(i + 2) for i, g in enumerate(ideal_gains))
        ranked = _ranked(run.get(q, {}))[:k]
        dcg = sum(max(rels.get(d, 0), 0) / math.log2(i + 2) for i, d in enumerate(ranked))
        out[q] = dcg / ideal
    return out


def mean(per_query: Mapping[str, float], queries: Iterable[str] | None = None) -> float:
    """Averaged over ``queries`` (default: those scored), a query missing from the run counts 0."""
    names = list(per_query) if queries is None else list(queries)
    return sum(per_query.get(q, 0.0) for q in names) / len(names) if names else 0.0


# --- SQL -----------------------------------------------------------------------------------------


def execution_match(
    run: Callable[[str], Sequence[Sequence[Any]]], predicted_sql: str, gold_sql: str
) -> tuple[bool, str | None]:
    """Whether two queries return the same rows (as multisets; in order when the gold query has
    ORDER BY). ``run`` executes one query; a predicted query that fails scores False with the
    error, a gold query that fails raises (the dataset is wrong, not the model)."""
    gold = [tuple(r) for r in run(gold_sql)]
    try:
        got = [tuple(r) for r in run(predicted_sql)]
    except Exception as exc:  # any failure of generated SQL is a wrong answer, with its reason
        return False, f"{type(exc).__name__}: {exc}"
    if re.search(r"\border\s+by\b", gold_sql, re.IGNORECASE):
        return got == gold, None
    return Counter(map(_hashable, got)) == Counter(map(_hashable, gold)), None


def _hashable(row: tuple[Any, ...]) -> tuple[Any, ...]:
    return tuple(round(v, 9) if isinstance(v, float) else v for v in row)
