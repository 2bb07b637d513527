"""Stored feedback becomes evaluation data and fine-tuning data.

- Regression cases: every answer rated bad, or corrected, becomes a JSONL case: the question is
  the input, the correction (when a user gave one) the expected answer, and the bad answer, its
  citations and the config behind it go in the metadata — so a later run shows whether a change
  fixed it. Answers rated good become cases too (``--good``), guarding what already works.
- Fine-tuning: chat-format JSONL (``{"messages": [system?, user, assistant]}``, the shape OpenAI
  and most trainers take): the question with the corrected answer, or with an answer rated good.
  Answers rated bad without a correction teach nothing and are left out.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from acllm.feedback import Feedback


def regression_cases(
    items: Iterable[Feedback], *, include_good: bool = False
) -> list[dict[str, Any]]:
    cases: dict[str, dict[str, Any]] = {}
    corrected: set[str] = set()  # answers whose expected text came from a correction
    for fb in items:
        bad = fb.rating == -1 or fb.correction is not None
        if not bad and not (include_good and fb.rating == 1):
            continue
        answer = fb.answer
        case = cases.setdefault(
            answer["id"],
            {
                "id": answer["id"],
                "input": answer["question"],
                "metadata": {
                    "source": "feedback",
                    "assistant": answer["assistant"],
                    "rating": fb.rating,
                    "answer": answer["answer"],
                    "refused": answer["refused"],
                    "citations": answer["citations"],
                    "config": answer["config"],
                    "lang": answer.get("lang"),
                    "category": "bad" if bad else "good",
                },
            },
        )
        if fb.correction and answer["id"] not in corrected:
            case["expected"] = fb.correction  # the store lists newest first: the newest wins
            corrected.add(answer["id"])
        elif not bad and "expected" not in case:
            case["expected"] = answer["answer"]
        if fb.rating is not None and case["metadata"]["rating"] is None:
            case["metadata"]["rating"] = fb.rating
    return list(cases.values())


def finetune_records(items: Iterable[Feedback], system: str | None = None) -> list[dict[str, Any]]:
    records: dict[str, dict[str, Any]] = {}
    for fb in items:
        answer = fb.answer
        if fb.correction:
            target = fb.correction
        elif fb.rating == 1 and not answer["refused"]:
            target = answer["answer"]
        else:
            continue
        if answer["id"] in records and not fb.correction:
            continue  # a correction outranks a thumbs up on the same answer
        messages = [{"role": "system", "content": system}] if system else []
        messages += [
            {"role": "user", "content": answer["question"]},
            {"role": "assistant", "content": target},
        ]
        records[answer["id"]] = {"messages": messages}
    return list(records.values())


def write_jsonl(path: Path, rows: Iterable[dict[str, Any]]) -> int:
    rows = list(rows)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8"
    )
    return len(rows)
