"""Evaluation cases generated from a client's own documents.

For a sample of chunks, a model writes one question each (and the short answer, copied from the
chunk). A question is kept only when its answer occurs in the chunk (a small model invents
answers) and retrieval over the index finds its source chunk again in the top ``k``. What remains
are questions the documents answer and the index can reach: a regression set for retrieval and
answers that costs no hand labelling. Generated questions are only as good as the model that
writes them; the checks remove the unfounded, the unanswerable and the off-topic, not the merely
clumsy — read a sample before trusting the set.
"""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import jsonschema

from acllm.errors import AcllmError
from acllm.evals.metrics import normalize_spanish
from acllm.ingest.document import Chunk
from acllm.lang import detect
from acllm.tasks.prompts import load
from acllm.types import ChatOptions

SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "question": {"type": "string", "minLength": 8, "maxLength": 300},
        "answer": {"type": "string", "minLength": 1, "maxLength": 200},
    },
    "required": ["question", "answer"],
    "additionalProperties": False,
}


@dataclass
class Generated:
    cases: list[dict[str, Any]]  # acllm JSONL cases
    tried: int
    dropped_unparsed: int  # the model's output was not a question
    dropped_unretrieved: int  # retrieval did not find the source chunk in the top k
    dropped_unfounded: int = 0  # the "answer" does not occur in the chunk: the model made it up


async def generate(
    model: Any,
    index: Any,
    embedder: Any,
    chunks: Sequence[Chunk],
    *,
    n: int,
    k: int = 5,
    seed: int = 20261127,
    languages: Sequence[str] = ("en", "es"),
) -> Generated:
    from acllm.index.retrieval import search

    rng = random.Random(seed)
    pool = [c for c in chunks if len(c.text.split()) >= 5]
    picked = rng.sample(pool, min(n, len(pool)))
    prompt = load("question_gen")
    out = Generated([], len(picked), 0, 0)
    for chunk in picked:
        lang = detect(chunk.text, languages)
        try:
            reply = await model.chat(
                prompt.render(lang=lang, text=chunk.text[:1500]),
                ChatOptions(max_tokens=120, schema=SCHEMA),
            )
            data = json.loads(reply.text)
            jsonschema.validate(data, SCHEMA)
        except (AcllmError, ValueError, jsonschema.ValidationError):
            out.dropped_unparsed += 1
            continue
        if normalize_spanish(data["answer"]) not in normalize_spanish(chunk.text):
            out.dropped_unfounded += 1
            continue
        hits = search(index, data["question"], embedder=embedder, k=k)
        if chunk.id not in {h.chunk.id for h in hits}:
            out.dropped_unretrieved += 1
            continue
        out.cases.append(
            {
                "id": f"doc-{chunk.id[:12]}",
                "input": data["question"],
                "references": [data["answer"]],
                "metadata": {
                    "source": chunk.source,
                    "location": chunk.location,
                    "chunk_id": chunk.id,
                    "lang": lang,
                    "category": "generated",
                    "answerable": True,
                },
            }
        )
    return out
