"""``acllm review list|approve|reject|overrides|retire``: the review queue of bad or corrected
answers, and the reviewed overrides the assistants serve (kept in <data_dir>/feedback.sqlite)."""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from acllm.cli.output import emit
from acllm.errors import UserError

_NEEDS_ID = {"approve", "reject", "retire"}


@contextmanager
def _queue(args: argparse.Namespace) -> Iterator[Any]:
    from acllm.runtime import Runtime

    runtime = Runtime.from_config(args.config)
    try:
        yield runtime.reviews()
    finally:
        runtime.close()


def _pending(args: argparse.Namespace, queue: Any) -> int:
    items = [f.as_dict() for f in queue.pending(assistant=args.assistant, limit=args.limit)]
    lines = []
    for f in items:
        a = f["answer"]
        verdict = {1: "good", -1: "bad"}.get(f["rating"], "-")
        lines.append(f"{f['id']}  [{a['assistant']}] rated {verdict}")
        lines.append(f"  question:   {a['question']}")
        lines.append(f"  answer:     {a['answer']}")
        if f["correction"]:
            lines.append(f"  correction: {f['correction']}")
        if f["comment"]:
            lines.append(f"  comment:    {f['comment']}")
        for c in a["citations"]:
            lines.append(f"  [{c['n']}] {c['source']} · {c['location']}: {c['text'][:120]}")
    text = "\n".join(lines) or "nothing to review"
    return emit({"pending": items}, as_json=args.json, text=text)


def _overrides(args: argparse.Namespace, queue: Any) -> int:
    found = [
        o.as_dict() for o in queue.overrides(assistant=args.assistant, include_retired=args.all)
    ]
    lines = [
        f"{o['id']}  [{o['assistant']}] {'active ' if o['active'] else 'retired'}  "
        f"{o['question']!r} -> {o['answer']!r}"
        for o in found
    ]
    text = "\n".join(lines) or "no reviewed overrides"
    return emit({"overrides": found}, as_json=args.json, text=text)


def run(args: argparse.Namespace) -> int:
    if args.action in _NEEDS_ID and not args.id:
        what = "override" if args.action == "retire" else "feedback"
        raise UserError(
            f"'acllm review {args.action}' needs the id of the {what}",
            hint="see acllm review list" if what == "feedback" else "see acllm review overrides",
        )
    if args.action not in _NEEDS_ID and args.id:
        raise UserError(f"'acllm review {args.action}' takes no id")
    if args.answer is not None and args.action != "approve":
        raise UserError("--answer only applies to 'acllm review approve'")
    with _queue(args) as queue:
        if args.action == "list":
            return _pending(args, queue)
        if args.action == "overrides":
            return _overrides(args, queue)
        if args.action == "reject":
            queue.reject(args.id, reviewer=args.reviewer, note=args.note)
            data = {"feedback_id": args.id, "decision": "rejected"}
            return emit(data, as_json=args.json, text=f"rejected {args.id}: nothing is served")
        if args.action == "retire":
            override = queue.retire(args.id)
            text = (
                f"retired override {override.id}: the assistant answers that question itself again"
            )
            return emit(override.as_dict(), as_json=args.json, text=text)
        override = queue.approve(
            args.id, answer=args.answer, reviewer=args.reviewer, note=args.note
        )
        text = (
            f"approved {args.id}: assistant '{override.assistant}' now answers "
            f"{override.question!r} with {override.answer!r} (override {override.id})"
        )
        return emit(
            {"decision": "approved", "override": override.as_dict()}, as_json=args.json, text=text
        )
