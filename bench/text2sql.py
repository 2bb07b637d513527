"""Execution accuracy of generated SQL on GeoQuery (question split; Finegan-Dollak et al., 2018).

    python -m bench.text2sql --quick   # 30 seeded test questions
    python -m bench.text2sql --full    # 150 seeded test questions of the 279

A generated query is right when it returns the same rows as the gold query on the real SQLite
database (``acllm.evals.metrics.execution_match``: multisets, or in order when the gold query
sorts). Queries run on a read-only connection with a time limit, so a runaway join is a wrong
answer, not a hung benchmark. Three methods, on the same questions:

- ``generate, schema only``: the chat model sees the tables and the question (zero-shot);
- ``generate, schema + 4 nearest examples``: also the four training questions closest to this one
  (e5 cosine) with their gold SQL, the retrieve-examples pattern a text-to-SQL agent uses;
- ``nearest template (no model)``: the closest training question's SQL, with this question's
  entity values put in its slots from the dataset's annotations (the "entities given" setting of
  the paper's template baseline) -- a strong reference, not a fair rival, since it is told the
  entities.

The two gold templates that do not run on SQLite (one uses ``> ALL``, one names an undefined
alias) are left out, with their questions counted. Shares have Wilson
CIs; the difference between methods is a paired bootstrap on the same questions.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import sqlite3
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bench import replay
from bench.common import (
    bootstrap_ci,
    data_dir,
    machine,
    print_table,
    runtime_dir,
    sample,
    wilson,
    write_results,
)

SIZES = {"quick": 30, "full": 150}
SHOTS = 4
TIME_LIMIT_S = 2.0
SYSTEM = (
    "You translate questions into SQLite queries over the tables below. "
    "Reply with one SQL query and nothing else."
)
METHODS = ("generate, schema only", f"generate, schema + {SHOTS} nearest examples",
           "nearest template (no model)")  # fmt: skip


@dataclass(frozen=True)
class Case:
    question: str  # with the entity values in place
    sql: str  # gold, values in place
    template_sql: str
    variables: dict[str, str]
    split: str


def fill(text: str, variables: dict[str, str]) -> str:
    for name, value in sorted(variables.items(), key=lambda kv: -len(kv[0])):
        text = text.replace(name, value)
    return text


def load(folder: Path) -> list[Case]:
    items = json.loads((folder / "geography.json").read_text(encoding="utf-8"))
    cases = []
    for item in items:
        template = item["sql"][0]
        for s in item["sentences"]:
            cases.append(
                Case(
                    question=fill(s["text"], s["variables"]),
                    sql=fill(template, s["variables"]).rstrip(" ;"),
                    template_sql=template.rstrip(" ;"),
                    variables=dict(s["variables"]),
                    split=s["question-split"],
                )
            )
    return cases


class Database:
    """The GeoQuery SQLite file, read-only, each query cut off after TIME_LIMIT_S."""

    def __init__(self, path: Path) -> None:
        self.conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, check_same_thread=False)
        self._deadline = 0.0
        self.conn.set_progress_handler(self._stop_late, 10_000)

    def _stop_late(self) -> int:
        return int(time.monotonic() > self._deadline)

    def run(self, sql: str) -> list[tuple[Any, ...]]:
        if not re.match(r"\s*(select|with)\b", sql, re.IGNORECASE):
            raise ValueError("not a SELECT query")
        self._deadline = time.monotonic() + TIME_LIMIT_S
        return self.conn.execute(sql).fetchall()

    def schema(self) -> str:
        rows = self.conn.execute("SELECT sql FROM sqlite_master WHERE type = 'table' ORDER BY name")
        return "\n".join(r[0].strip() + ";" for r in rows if r[0])


def extract_sql(reply: str) -> str:
    """The query in a reply: inside a code fence if there is one, up to its first semicolon."""
    fence = re.search(r"```(?:sql)?\s*(.*?)(?:```|$)", reply, re.DOTALL | re.IGNORECASE)
    text = fence.group(1) if fence else reply
    start = re.search(r"\bselect\b|\bwith\s+\w+\s+as\s*\(", text, re.IGNORECASE)
    text = text[start.start() :] if start else text
    return text.split(";")[0].strip()


def prompt(schema: str, question: str, examples: list[Case]) -> list[Any]:
    from acllm.types import Message

    shots = "".join(f"Question: {e.question}\nSQL: {e.sql};\n\n" for e in examples)
    user = f"{schema}\n\n{shots}Question: {question}\nSQL:"
    return [Message("system", SYSTEM), Message("user", user)]


def nearest(train_vecs: np.ndarray, query_vecs: np.ndarray, k: int) -> np.ndarray:
    """Indices of the k closest training questions for each query, closest first."""
    sims = query_vecs @ train_vecs.T
    return np.argsort(-sims, axis=1, kind="stable")[:, :k]


def template_answer(train: Case, case: Case) -> str:
    """The training question's template with this question's entity values in its slots."""
    values = {**train.variables, **case.variables}
    return fill(train.template_sql, values)


async def generate(model: Any, messages: list[Any]) -> tuple[str, float]:
    from acllm.types import ChatOptions

    opts = ChatOptions(max_tokens=160, temperature=0.0, stop=(";", "\n\n"))
    reply, seconds = await replay.timed(model.chat(messages, opts))
    return str(reply.text), seconds


def share(flags: list[bool]) -> dict[str, Any]:
    hits = int(sum(flags))
    return {"value": hits / len(flags) if flags else float("nan"), "hits": hits,
            "n": len(flags), "ci": wilson(hits, len(flags))}  # fmt: skip


def paired(a: list[bool], b: list[bool]) -> dict[str, Any]:
    x = np.asarray(a, dtype=float) - np.asarray(b, dtype=float)
    return {"delta": float(x.mean()), "ci": bootstrap_ci(x.size, lambda i: float(x[i].mean()))}


def run(mode: str, model_name: str | None, config: str | None) -> dict[str, Any]:
    from acllm.config import Settings, load_settings
    from acllm.evals.metrics import execution_match
    from bench.retrieval import cached_e5

    folder = data_dir() / "text2sql_geoquery"
    db = Database(folder / "geography.sqlite")
    everything = load(folder)
    usable, broken = [], 0
    for case in everything:  # 2 gold templates do not run on SQLite: left out, counted
        try:
            db.run(case.sql)
            usable.append(case)
        except sqlite3.Error:
            broken += 1
    train = [c for c in usable if c.split == "train"]
    test = sample([c for c in usable if c.split == "test"], SIZES[mode], key="geoquery")
    e5 = cached_e5()
    train_vecs = np.asarray(e5.embed([c.question for c in train], kind="query"), np.float32)
    test_vecs = np.asarray(e5.embed([c.question for c in test], kind="query"), np.float32)
    shots = nearest(train_vecs, test_vecs, SHOTS)

    settings = load_settings(config) if config else Settings(data_dir=runtime_dir())
    runtime = replay.runtime(settings)
    model = runtime.chat(model_name)
    schema = db.schema()
    started, began = machine(), time.perf_counter()
    records: list[dict[str, Any]] = []
    for i, case in enumerate(test):
        examples = [train[j] for j in shots[i]]
        record: dict[str, Any] = {"question": case.question, "gold": case.sql}
        for method in METHODS:
            if method.startswith("nearest"):
                sql, seconds, raw = template_answer(examples[0], case), 0.0, None
            else:
                use = examples if "examples" in method else []
                raw, seconds = asyncio.run(generate(model, prompt(schema, case.question, use)))
                sql = extract_sql(raw)
            ok, error = execution_match(db.run, sql, case.sql)
            record[method] = {"sql": sql, "correct": ok, "error": error, "latency_s": seconds}
        records.append(record)
        if (i + 1) % 20 == 0:
            print(f"  {i + 1}/{len(test)} questions in {time.perf_counter() - began:.0f}s",
                  file=sys.stderr, flush=True)  # fmt: skip
    results = {}
    for method in METHODS:
        flags = [r[method]["correct"] for r in records]
        errors = [r[method]["error"] is not None for r in records]
        lat = [r[method]["latency_s"] for r in records]
        results[method] = {
            "execution_accuracy": share(flags),
            "failed_to_run": share(errors),
            "median_latency_s": float(np.median(lat)) if lat else None,
        }
    zero, few, tmpl = METHODS
    flags_of = {m: [r[m]["correct"] for r in records] for m in METHODS}
    out = {
        "machine": started,
        "mode": mode,
        "model": model.name,
        "n": len(test),
        "train_questions": len(train),
        "gold_unrunnable_left_out": broken,
        "methods": results,
        "paired": {
            f"{few} minus {zero}": paired(flags_of[few], flags_of[zero]),
            f"{few} minus {tmpl}": paired(flags_of[few], flags_of[tmpl]),
        },
        "replayed": replay.summary(runtime),
        "seconds": round(time.perf_counter() - began, 1),
        "cases": records,
    }
    runtime.close()
    return out


def report(r: dict[str, Any]) -> None:
    print_table(
        ["method", "execution accuracy", "95% CI", "failed to run", "median latency", "n"],
        [
            [m, f"{v['execution_accuracy']['value']:.3f}",
             "{:.3f}-{:.3f}".format(*v["execution_accuracy"]["ci"]),
             f"{v['failed_to_run']['value']:.3f}", f"{v['median_latency_s']:.2f}s",
             v["execution_accuracy"]["n"]]
            for m, v in r["methods"].items()
        ],
    )  # fmt: skip
    for name, d in r["paired"].items():
        print(f"{name}: {d['delta']:+.3f} [{d['ci'][0]:+.3f}, {d['ci'][1]:+.3f}]")
    print(f"gold queries SQLite cannot run, left out: {r['gold_unrunnable_left_out']}; "
          f"replies {r['replayed']}; {r['seconds']:.0f}s")  # fmt: skip


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true", help="30 test questions (default)")
    mode.add_argument("--full", action="store_true", help="150 of the 279 test questions")
    parser.add_argument("--model", help="a configured chat model (default: the default model)")
    parser.add_argument("--config", help="an acllm.toml defining it")
    args = parser.parse_args(argv)
    name = "full" if args.full else "quick"
    data_dir()
    result = run(name, args.model, args.config)
    report(result)
    path = write_results(f"text2sql-{name}", result)
    print(f"results: {path}", file=sys.stderr)
    return result


if __name__ == "__main__":
    main()
