"""Conversation memory: prompt size per turn against a full-history buffer, recall of an early fact,
whether the embedded model answers from it, and the memory's own latency on the SQLite KV.

    python -m bench.memory --quick   # no generation: sizes, recall, latency (seconds)
    python -m bench.memory           # also asks the embedded 135M model at turns 50-201
    python -m bench.memory --full    # and runs the model summariser too (several minutes)

A scripted 200-turn customer-support conversation in Spanish and English. Turn 3 states the fact
("Me llamo Lucía y mi número de pedido es 48213"); the other turns are questions, small talk and
competing facts (other numbers, places, preferences, dates). Both sides are counted with the
embedded model's own tokenizer and chat template: ``memory`` sends system prompt + memory context +
the new question, ``full history`` sends system prompt + every earlier turn + the new question
(the buffer the issue criticises). Recall: the share of turns after the 3rd whose memory context
still holds "48213". Current values: the user restates a postcode with a new value every few
turns; per turn, whether the context holds the latest one and whether it still holds a stale one
(the summary keeps stale lines only while it has room). Latency: median of ``context()`` and
``remember()`` per turn, side by side in the same run, on a fresh SQLite KV file. Results:
bench/results/memory-{quick,default,full}.json.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import machine, print_table, runtime_dir, wilson, write_results

TURNS = 200
FACT_TURN = 3
FACT = "Me llamo Lucía y mi número de pedido es 48213."
ANSWER = "48213"
POSTCODE = re.compile(r"\b2\d{1,2}004\b")  # the script's postcodes, 2{n}004
QUESTION = "¿Cuál es mi número de pedido?"
SYSTEM = "You are a helpful customer-support assistant. Answer briefly, from the conversation."

_ES = [
    ("¿Cuánto tarda el envío a {city}?", "El envío a {city} tarda {n} días laborables."),
    ("Prefiero que me llaméis por la tarde.", "Anotado: te llamaremos por la tarde."),
    ("¿Tenéis la talla {n}?", "Sí, la talla {n} está disponible en azul y negro."),
    ("Vivo en {city}, cerca del centro.", "Perfecto, {city} tiene entrega en 24 horas."),
    ("Gracias, muy amable.", "¡De nada! ¿Algo más?"),
    ("¿Puedo pagar con tarjeta?", "Sí, aceptamos tarjeta, transferencia y Bizum."),
    ("Mi código postal es 2{n}004.", "Gracias, código postal 2{n}004 guardado."),
    ("¿La devolución es gratis?", "Sí, tienes 30 días para devolverlo sin coste."),
]
_EN = [
    ("Do you ship to {city}?", "Yes, we ship to {city} in about {n} days."),
    ("I prefer email over phone calls.", "Noted, we will contact you by email."),
    ("What colours does the jacket come in?", "It comes in blue, black and olive green."),
    ("My sister lives in {city} and wants one too.", "Great, we can ship to {city} as well."),
    ("ok thanks", "You're welcome!"),
    ("Is there a discount for {n} items?", "Orders of {n} items or more get 10% off."),
    ("The delivery on {day} did not arrive.", "Sorry about that, I have opened ticket 7{n}31."),
    ("How do I change my password?", "Use 'Forgot password' on the sign-in page."),
]
_CITIES = ["Madrid", "Sevilla", "Valencia", "Bilbao", "London", "Lisboa", "Porto", "Granada"]
_DAYS = ["Monday", "Tuesday", "martes", "viernes", "March 3", "12/05"]


def script() -> list[tuple[str, str]]:
    """The conversation: (user, assistant) for turns 1..TURNS; deterministic."""
    turns = [
        ("Hola, buenos días.", "¡Hola! ¿En qué puedo ayudarte?"),
        ("Tengo una consulta sobre un pedido.", "Claro, dime."),
        (FACT, "Gracias, Lucía. He encontrado tu pedido."),
    ]
    for i in range(FACT_TURN, TURNS):
        pool = _ES if i % 2 else _EN
        user, answer = pool[(i * 7 + i // 3) % len(pool)]
        fill = {"city": _CITIES[i % len(_CITIES)], "n": i % 9 + 2, "day": _DAYS[i % len(_DAYS)]}
        turns.append((user.format(**fill), answer.format(**fill)))
    return turns


async def conversation(model: Any, settings: Any, kv_path: Path) -> dict[str, Any]:
    from acllm.assist.memory import ConversationMemory
    from acllm.kv.sqlite import SQLiteKV
    from acllm.types import Message

    turns = script()
    system = Message("system", SYSTEM)
    per_turn: list[dict[str, Any]] = []
    context_s: list[float] = []
    remember_s: list[float] = []
    contexts: dict[int, Any] = {}
    history: list[Message] = []
    postcode: str | None = None  # the latest the user stated
    with SQLiteKV(kv_path) as kv:
        memory = ConversationMemory.for_model(kv, model, settings)
        for n, (user, answer) in enumerate(turns, 1):
            start = time.perf_counter()
            ctx = await memory.context("lucia")
            context_s.append(time.perf_counter() - start)
            question = Message("user", user)
            per_turn.append(
                {
                    "turn": n,
                    "memory_tokens": ctx.tokens,
                    "memory_prompt": model.count_tokens([system, *ctx.messages(), question]),
                    "full_prompt": model.count_tokens([system, *history, question]),
                    "fact_in_context": ANSWER in ctx.summary
                    or any(ANSWER in m.content for m in ctx.turns),
                    **postcodes_seen(ctx, postcode),
                }
            )
            if stated := POSTCODE.search(user):  # only the postcode turn says one
                postcode = stated.group()
            contexts[n] = ctx
            history += [question, Message("assistant", answer)]
            start = time.perf_counter()
            stored = await memory.remember("lucia", user, answer)
            remember_s.append(time.perf_counter() - start)
            assert stored, "the SQLite KV refused a turn"
        contexts[TURNS + 1] = await memory.context("lucia")
    return {
        "per_turn": per_turn,
        "contexts": contexts,
        "context_ms_p50": statistics.median(context_s) * 1000,
        "remember_ms_p50": statistics.median(remember_s) * 1000,
        "context_ms_p90": statistics.quantiles(context_s, n=10)[-1] * 1000,
        "remember_ms_p90": statistics.quantiles(remember_s, n=10)[-1] * 1000,
    }


def postcodes_seen(ctx: Any, latest: str | None) -> dict[str, Any]:
    """Whether the context holds the latest postcode stated, and how many stale ones."""
    if latest is None:
        return {}
    text = "\n".join([ctx.summary, *(m.content for m in ctx.turns)])
    seen = set(POSTCODE.findall(text))
    return {"current_value": latest in seen, "stale_values": len(seen - {latest})}


def value_counts(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Over the turns after the first postcode: the latest one present, a stale one present."""
    later = [r for r in rows if "current_value" in r]
    current = sum(r["current_value"] for r in later)
    stale = sum(r["stale_values"] > 0 for r in later)
    return {
        "turns": len(later),
        "current": current,
        "current_ci": wilson(current, len(later)),
        "with_stale": stale,
        "with_stale_ci": wilson(stale, len(later)),
        "max_stale": max((r["stale_values"] for r in later), default=0),
    }


async def ask(model: Any, ctx: Any) -> str:
    from acllm.types import ChatOptions, Message

    messages = [Message("system", SYSTEM), *ctx.messages(), Message("user", QUESTION)]
    reply = await model.chat(messages, ChatOptions(max_tokens=48, temperature=0.0))
    return str(reply.text).strip()


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true")
    mode.add_argument("--full", action="store_true")
    args = parser.parse_args(argv)
    label = "quick" if args.quick else "full" if args.full else "default"

    from acllm.assist.memory import MemoryContext
    from acllm.assist.memory_settings import MemorySettings
    from acllm.config import Settings
    from bench import replay

    runtime = replay.runtime(Settings(data_dir=runtime_dir()))
    model = runtime.chat("local")
    settings = MemorySettings(enabled=True)
    out: dict[str, Any] = {"machine": machine(), "mode": label, "settings": settings.model_dump()}
    runs = [("extractive", settings)]
    if args.full:
        runs.append(("model", settings.model_copy(update={"summarizer": "model"})))
    for name, chosen in runs:
        with tempfile.TemporaryDirectory() as tmp:
            began = time.perf_counter()
            result = asyncio.run(conversation(model, chosen, Path(tmp) / "state.db"))
            result["seconds"] = time.perf_counter() - began
        rows = result["per_turn"]
        later = [r for r in rows if r["turn"] > FACT_TURN + 1]
        hits = sum(r["fact_in_context"] for r in later)
        result["recall"] = {"turns": len(later), "hits": hits, "ci": wilson(hits, len(later))}
        result["fact_at_150"] = rows[149]["fact_in_context"]
        result["postcode"] = value_counts(rows)
        result["max_memory_tokens"] = max(r["memory_tokens"] for r in rows)
        result["max_memory_prompt"] = max(r["memory_prompt"] for r in rows)
        result["summary_at_150"] = result["contexts"][150].summary
        checkpoints = [] if args.quick else [50, 100, 150, TURNS + 1]
        asked = {}
        for turn in checkpoints:
            text = asyncio.run(ask(model, result["contexts"][turn]))
            asked[turn] = {"answer": text, "correct": ANSWER in text}
        if checkpoints:  # the model's own ability: the fact alone, as the whole summary
            text = asyncio.run(ask(model, MemoryContext(f"user: {FACT}")))
            asked[0] = {"answer": text, "correct": ANSWER in text, "oracle": True}
        result["model_answers"] = asked
        del result["contexts"]
        out[name] = result
        report(name, result, settings)
    out["replies"] = replay.summary(runtime)
    path = write_results(f"memory-{label}", out)
    print(f"\nresults: {path}")
    return out


def report(name: str, result: dict[str, Any], settings: Any) -> None:
    rows = result["per_turn"]
    print(f"\n## Memory ({name} summariser), {TURNS} turns, budget {settings.budget_tokens}\n")
    print("Prompt tokens sent with each new question (system + memory or history + question):\n")
    print_table(
        ["turn", "memory context", "prompt with memory", "prompt with full history", "ratio"],
        [
            [
                r["turn"],
                r["memory_tokens"],
                r["memory_prompt"],
                r["full_prompt"],
                f"{r['full_prompt'] / r['memory_prompt']:.1f}x",
            ]
            for r in rows
            if r["turn"] in (1, 5, 10, 25, 50, 100, 150, 200)
        ],
    )
    lo, hi = result["recall"]["ci"]
    hits, turns = result["recall"]["hits"], result["recall"]["turns"]
    print(
        f"\nmax memory context {result['max_memory_tokens']} tokens (budget "
        f"{settings.budget_tokens}); max prompt with memory {result['max_memory_prompt']}"
    )
    print(
        f"fact of turn {FACT_TURN} in context at turn 150: {result['fact_at_150']}; over turns "
        f"{FACT_TURN + 2}-{TURNS}: {hits}/{turns} ({lo:.3f} to {hi:.3f})"
    )
    pc = result["postcode"]
    print(
        f"latest postcode in context: {pc['current']}/{pc['turns']} turns; a stale one too: "
        f"{pc['with_stale']}/{pc['turns']} (at most {pc['max_stale']} stale at once)"
    )
    print(
        f"latency on SQLite KV, p50 (p90): context() {result['context_ms_p50']:.2f} ms "
        f"({result['context_ms_p90']:.2f}), remember() {result['remember_ms_p50']:.2f} ms "
        f"({result['remember_ms_p90']:.2f})"
    )
    print("summary at turn 150:\n  " + result["summary_at_150"].replace("\n", "\n  "))
    for turn, item in sorted(result["model_answers"].items()):
        where = "fact alone in context (oracle)" if item.get("oracle") else f"turn {turn}"
        print(f"model asked '{QUESTION}' at {where}: correct={item['correct']} {item['answer']!r}")


if __name__ == "__main__":
    main()
