"""Text-producing tasks: translation (chrF) and summarisation (ROUGE-L F), beside trivial baselines.

Baselines: translation copies the source unchanged; summarisation takes the lead sentences up to the
same word budget, or copies the whole article.
"""

from __future__ import annotations

from typing import Any

from acllm.tasks import Tasks
from acllm.tasks.summarize import split_sentences
from acllm.types import Message
from bench import datasets
from bench.common import Row, latency, mean_ci, row, run_cases, sample
from bench.metrics import Chrf, RougeL, paired_delta

MAX_WORDS = 60


async def translation(tasks: Tasks, sizes: dict[str, int | None]) -> tuple[list[Row], list[Row]]:
    chrf = Chrf()
    sets = [
        ("tatoeba_en_es/en-es", datasets.tatoeba("en-es"), "en", "es"),
        ("tatoeba_en_es/es-en", datasets.tatoeba("es-en"), "es", "en"),
        ("ntrex_en_es/en-es", datasets.ntrex(), "en", "es"),
    ]
    rows, records = [], []
    for name, items, src, tgt in sets:
        sub = sample(items, sizes["translate"], key=name)

        async def call(x: datasets.Parallel, s: str = src, t: str = tgt) -> Any:
            return await tasks.translate(x.source, target=t, source=s)

        cases = await run_cases(sub, call, f"translate {name}")
        hyps = [c["out"]["translation"] if c["out"] else "" for c in cases]
        refs = [x.refs for x in sub]
        copy = [x.source for x in sub]
        base = chrf.report(copy, refs)
        score = chrf.report(hyps, refs, baseline=copy)
        rows.append(
            row(
                "translate",
                name,
                "generate",
                "chrF",
                value=score["chrf"],
                ci=score["chrf_ci"],
                n=score["n"],
                references=len(refs[0]),
                **latency(cases),
                baseline={"name": "copy input", "value": base["chrf"], "ci": base["chrf_ci"]},
                delta_vs_baseline={
                    "delta": score["delta_vs_baseline"],
                    "delta_ci": score["delta_ci"],
                },
            )
        )
        for x, c, h in zip(sub, cases, hyps, strict=True):
            records.append(
                {
                    "set": name,
                    "source": x.source,
                    "refs": list(x.refs),
                    "hyp": h,
                    "chrf": chrf.sentence(h, x.refs),
                    "latency_s": c["latency_s"],
                    "error": c["error"],
                }
            )
    return rows, records


def lead(text: str, max_words: int = MAX_WORDS) -> str:
    """The first sentences while they fit ``max_words``; a longer first sentence is cut there."""
    out: list[str] = []
    words = 0
    for sentence in split_sentences(text):
        n = len(sentence.split())
        if words + n > max_words:
            if not out:  # e.g. lower-cased XSum text, where no sentence boundary is found
                out.append(" ".join(sentence.split()[:max_words]))
            break
        out.append(sentence)
        words += n
    return " ".join(out)


def fitting_articles(tasks: Tasks) -> tuple[list[datasets.Article], int]:
    """Articles within the task input budget (longer ones are refused by design, not scored)."""
    model = tasks.runtime.task_model()
    budget = tasks.runtime.settings.tasks.max_input_tokens
    articles = datasets.frank()
    keep = [a for a in articles if model.count_tokens([Message("user", a.article)]) <= budget]
    return keep, len(articles) - len(keep)


async def summarization(tasks: Tasks, sizes: dict[str, int | None]) -> tuple[list[Row], list[Row]]:
    rouge = RougeL()
    articles, too_long = fitting_articles(tasks)
    name = "summarization_frank"
    sub = sample(articles, sizes["summarize"], key=name)
    lead_scores = [rouge(a.reference, lead(a.article)) for a in sub]
    copy_scores = [rouge(a.reference, a.article) for a in sub]
    lead_mean, lead_ci = mean_ci(lead_scores)
    copy_mean, copy_ci = mean_ci(copy_scores)
    mix = {d: sum(a.dataset == d for a in sub) for d in ("cnndm", "xsum")}
    rows, records = [], []
    for method in ("extractive", "generate"):

        async def call(a: datasets.Article, m: str = method) -> Any:
            return await tasks.summarize(a.article, max_words=MAX_WORDS, method=m)

        cases = await run_cases(sub, call, f"summarize {method}")
        outs = [c["out"]["summary"] if c["out"] else "" for c in cases]
        scores = [rouge(a.reference, s) for a, s in zip(sub, outs, strict=True)]
        value, ci = mean_ci(scores)
        by_set = {
            d: sum(s for a, s in zip(sub, scores, strict=True) if a.dataset == d) / max(1, k)
            for d, k in mix.items()
        }
        rows.append(
            row(
                "summarize",
                name,
                method,
                "ROUGE-L F",
                value=value,
                ci=ci,
                n=len(sub),
                **latency(cases),
                by_dataset=by_set,
                mix=mix,
                excluded_over_budget=too_long,
                max_words=MAX_WORDS,
                baseline={"name": "lead sentences", "value": lead_mean, "ci": lead_ci},
                baseline_copy={"name": "copy input", "value": copy_mean, "ci": copy_ci},
                delta_vs_baseline=paired_delta(scores, lead_scores),
                summary_words=sum(len(s.split()) for s in outs) / max(1, len(outs)),
                over_budget=sum(len(s.split()) > MAX_WORDS for s in outs),
            )
        )
        for a, c, s, r in zip(sub, cases, outs, scores, strict=True):
            records.append(
                {
                    "set": name,
                    "id": a.id,
                    "dataset": a.dataset,
                    "method": method,
                    "summary": s,
                    "rougeL": r,
                    "latency_s": c["latency_s"],
                    "error": c["error"],
                }
            )
    return rows, records
