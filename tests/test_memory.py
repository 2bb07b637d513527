"""ConversationMemory: the budget always holds, evicted turns are folded never dropped, sessions
expire and can be forgotten, concurrent writers lose nothing, and bad stores or entries degrade."""

from __future__ import annotations

import asyncio
import json
import logging
import random
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
from pydantic import ValidationError

from acllm.assist.memory import SUMMARY_LABEL, ConversationMemory, MemoryContext, counter_for
from acllm.assist.memory_settings import MemorySettings
from acllm.assist.memory_summary import (
    TRUNCATED,
    ExtractiveSummarizer,
    Fact,
    Turn,
    render,
    salience,
    shape,
    stale,
    truncate,
)
from acllm.errors import ServiceError, UserError
from acllm.kv.memory import MemoryKV
from acllm.kv.redis import RedisKV
from acllm.kv.sqlite import SQLiteKV
from acllm.models.fake import FakeChatModel
from acllm.types import Message
from redisserver import RedisServer, redis_server_fixture  # noqa: F401  (a fixture)

SMALL = MemorySettings(budget_tokens=200, summary_tokens=60, window_turns=3)


def words(text: str) -> int:
    return len(text.split())


def spent(memory: ConversationMemory, ctx: MemoryContext) -> int:
    """The context's tokens recounted from what it would send."""
    return sum(memory.count(m.content) + memory.message_tokens for m in ctx.messages())


class Clock:
    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def kv() -> Iterator[MemoryKV]:
    store = MemoryKV()
    yield store
    store.close()


@pytest.fixture
def sqlite_kv(tmp_path: Path) -> Iterator[SQLiteKV]:
    with SQLiteKV(tmp_path / "state.db") as store:
        yield store


def stored_keys(path: Path) -> list[str]:
    conn = sqlite3.connect(path)
    try:
        return [r[0] for r in conn.execute("SELECT key FROM kv ORDER BY key")]
    finally:
        conn.close()


# -- settings ------------------------------------------------------------------------------------


def test_settings_defaults() -> None:
    s = MemorySettings()
    assert (s.enabled, s.budget_tokens, s.window_turns, s.summary_tokens) == (False, 1024, 6, 256)
    assert s.ttl_s == 7 * 24 * 3600
    assert (s.summarizer, s.model) == ("extractive", None)


@pytest.mark.parametrize(
    "bad",
    [
        {"budget_tokens": 100, "summary_tokens": 90},  # no room left for the window
        {"model": "local"},  # a model without summarizer = "model"
        {"window_turns": 0},
        {"summarizer": "abstractive"},
        {"ttl_s": 0},
        {"budget": 10},  # unknown key
    ],
)
def test_settings_refuse_bad_values(bad: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        MemorySettings.model_validate(bad)


def test_settings_are_frozen() -> None:
    with pytest.raises(ValidationError):
        MemorySettings().budget_tokens = 5  # type: ignore[misc]


def test_a_budget_too_small_for_the_tokenizer_is_refused(kv: MemoryKV) -> None:
    settings = MemorySettings(budget_tokens=64, summary_tokens=16)
    with pytest.raises(UserError, match="budget_tokens"):
        ConversationMemory(kv, words, settings, message_tokens=10)


# -- the window and the summary ------------------------------------------------------------------


async def test_recent_turns_verbatim_older_ones_folded(kv: MemoryKV) -> None:
    memory = ConversationMemory(kv, words, SMALL)
    await memory.remember("s", "Hola, buenos días", "¡Hola! ¿En qué puedo ayudarte?")
    await memory.remember(
        "s", "Me llamo Lucía y mi número de pedido es 48213.", "Gracias, Lucía: pedido anotado."
    )
    for i in range(6):
        await memory.remember("s", f"question {i}", f"answer {i}")
    ctx = await memory.context("s")
    assert [m.content for m in ctx.turns] == [
        "question 3",
        "answer 3",
        "question 4",
        "answer 4",
        "question 5",
        "answer 5",
    ]
    assert [m.role for m in ctx.turns] == ["user", "assistant"] * 3
    assert "user: Me llamo Lucía y mi número de pedido es 48213." in ctx.summary
    assert "buenos días" not in ctx.summary  # small talk is not a fact
    assert ctx.tokens == spent(memory, ctx) <= SMALL.budget_tokens
    assert ctx.messages()[0] == Message("system", SUMMARY_LABEL + ctx.summary)


async def test_empty_session(kv: MemoryKV) -> None:
    ctx = await ConversationMemory(kv, words).context("nobody")
    assert ctx == MemoryContext("", [], 0)
    assert ctx.messages() == []


async def test_budget_holds_for_any_mix_of_turns(kv: MemoryKV) -> None:
    rng = random.Random(7)
    memory = ConversationMemory(kv, words, SMALL, message_tokens=2)
    vocab = [
        "pedido",
        "order",
        "48213",
        "Lucía",
        "Madrid",
        "I",
        "live",
        "in",
        "prefiero",
        "me",
        "llamo",
        "the",
        "a",
        "de",
        "2025",
        "ok",
    ]
    for i in range(60):
        sizes = [rng.choice([0, 1, 5, 30, 90, 400]) for _ in range(2)]
        user, answer = (" ".join(rng.choice(vocab) for _ in range(n)) for n in sizes)
        await memory.remember("s", user, answer)
        ctx = await memory.context("s")
        assert ctx.tokens == spent(memory, ctx), i
        assert ctx.tokens <= SMALL.budget_tokens, i
        assert len(ctx.turns) <= 2 * SMALL.window_turns
        assert words(ctx.summary) <= SMALL.summary_tokens


async def test_tokens_match_the_models_own_count(kv: MemoryKV) -> None:
    model = FakeChatModel()  # one token a word plus 3 a message
    memory = ConversationMemory.for_model(kv, model, SMALL)
    for i in range(8):
        await memory.remember("s", f"my order number is {1000 + i}", f"noted order {1000 + i}")
    ctx = await memory.context("s")
    assert ctx.summary
    assert ctx.tokens == model.count_tokens(ctx.messages()) <= SMALL.budget_tokens


def test_counter_for_a_model() -> None:
    count, frame = counter_for(FakeChatModel())
    assert frame == 3
    assert count("uno dos tres") == 3
    assert count("") == 0


async def test_a_huge_turn_is_cut_with_a_marker(kv: MemoryKV) -> None:
    memory = ConversationMemory(kv, words, SMALL)
    await memory.remember("s", "word " * 100_000, "short answer")
    ctx = await memory.context("s")
    user = ctx.turns[0].content
    assert user.endswith(TRUNCATED.strip())
    assert ctx.turns[1].content == "short answer"  # the short side is kept whole
    assert ctx.tokens <= SMALL.budget_tokens
    assert words(user) + words("short answer") <= memory.turn_tokens


async def test_a_huge_word_is_cut_too(kv: MemoryKV) -> None:
    def chars(text: str) -> int:  # a tokenizer where length matters: 4 characters a token
        return (len(text) + 3) // 4

    memory = ConversationMemory(kv, chars, SMALL)
    await memory.remember("s", "x" * 1_000_000, "y" * 1_000_000)
    ctx = await memory.context("s")
    assert all(m.content.endswith(TRUNCATED.strip()) for m in ctx.turns)
    assert ctx.tokens == spent(memory, ctx) <= SMALL.budget_tokens


async def test_turns_leave_the_window_only_through_the_summary(kv: MemoryKV) -> None:
    roomy = MemorySettings(budget_tokens=600, summary_tokens=400, window_turns=2)
    memory = ConversationMemory(kv, words, roomy)
    for i in range(12):
        await memory.remember("s", f"My ticket is T{i:04d}7.", "Noted.")
    ctx = await memory.context("s")
    shown = ctx.summary + " ".join(m.content for m in ctx.turns)
    assert all(f"T{i:04d}7" in shown for i in range(12))


async def test_a_smaller_budget_later_still_holds(kv: MemoryKV) -> None:
    """A config change (or another tokenizer) must not break the budget of stored sessions."""
    big = MemorySettings(budget_tokens=1000, summary_tokens=400, window_turns=10)
    memory = ConversationMemory(kv, words, big)
    for i in range(30):
        await memory.remember("s", f"My order number is {i} and I live in Sevilla.", "ok " * 30)
    small = ConversationMemory(kv, words, SMALL)
    ctx = await small.context("s")
    assert ctx.tokens == spent(small, ctx) <= SMALL.budget_tokens
    assert len(ctx.turns) <= 2 * SMALL.window_turns


# -- the extractive summariser -------------------------------------------------------------------


@pytest.mark.parametrize(
    "sentence",
    [
        "Me llamo Lucía.",
        "My name is Tom.",
        "I live in Valencia.",
        "Vivo en Sevilla.",
        "Prefiero el envío urgente.",
        "I prefer email to phone calls.",
        "Mi número de pedido es 48213.",
        "The meeting is on 12/03/2025.",
    ],
)
def test_facts_are_salient(sentence: str) -> None:
    assert salience(sentence, "user") >= 2


@pytest.mark.parametrize("sentence", ["Hola.", "Thanks!", "ok", "¿Qué tal?", "Gracias.", ""])
def test_small_talk_is_not(sentence: str) -> None:
    assert salience(sentence, "user") < 2


def test_summary_drops_the_least_salient_then_the_oldest() -> None:
    summarizer = ExtractiveSummarizer(words)
    turns = [Turn("Me llamo Lucía y mi número de pedido es 48213.", "", (0, 1), 0.0)]
    things = (
        "box bag lamp desk sofa bike tent drum kite vase rug fan oven sink bed tv cot pram hat mat"
    )
    turns += [
        Turn(f"The {t} weighs {i} kg.", "", (0, i + 2), 0.0) for i, t in enumerate(things.split())
    ]
    facts = summarizer.merge([], turns, bound=30)
    text = render(facts)
    assert words(text) <= 30
    assert "48213" in text  # the most salient survives 20 newer facts
    assert "mat weighs 19 kg" in text and "box weighs 0 kg" not in text  # among equals, the newest
    assert text.index("48213") < text.index("weighs 19")  # rendered in conversation order


def _said(*lines: str, role: str = "user") -> list[Turn]:
    return [
        Turn(line if role == "user" else "", line if role == "assistant" else "", (0, i), 0.0)
        for i, line in enumerate(lines)
    ]


def test_a_stale_value_leaves_first_and_only_when_room_runs_out() -> None:
    summarizer = ExtractiveSummarizer(words)
    said = _said("Mi código postal es 25004.", "Vivo en Granada, cerca del centro.")
    first = summarizer.merge([], said, 200)
    later = [Turn("Mi código postal es 28004.", "", (1, 0), 0.0)]
    roomy = render(summarizer.merge(first, later, 200))
    assert roomy.index("25004") < roomy.index("28004")  # room for all: both, in order
    # Room for two lines (6 + 7 words + a break). By salience alone the postcodes (score 5) would
    # push out the city (score 4); the stale postcode goes instead, even folded in from an old summary.
    tight = render(summarizer.merge(first, later, 14))
    assert "28004" in tight and "Granada" in tight and "25004" not in tight


def test_only_the_same_wording_about_the_same_thing_is_stale() -> None:
    assert stale(_facts("assistant: El envío a Bilbao tarda 10 días.", "assistant: El envío a Granada tarda 4 días.",
                        "assistant: El envío a Bilbao tarda 7 días.")) == [True, False, False]  # fmt: skip
    same_value = _facts("assistant: El envío a Bilbao tarda 7 días.", "assistant: El envío a Granada tarda 7 días.",
                        "user: My order 123 arrives on Monday.", "user: My order 456 arrives on Monday.")  # fmt: skip
    assert stale(same_value) == [False] * 4  # a shared value is not a shared subject
    different = _facts("user: Mi código postal es 25004.", "user: Mi hermana vive en Bilbao.",
                       "user: Vivo en Sevilla.", "user: My order number is 48213.")  # fmt: skip
    assert stale(different) == [False] * 4
    speakers = _facts("user: Mi código postal es 25004.", "assistant: Mi código postal es 28004.")
    assert stale(speakers) == [False, False]  # another speaker never makes the user's value stale
    one_turn = [
        Fact("user: Mi código es 25004.", 5, (0, 0)),
        Fact("user: Mi código es 28004.", 5, (0, 0)),
    ]
    assert stale(one_turn) == [True, False]  # later in the same turn is later


def _facts(*lines: str) -> list[Fact]:
    return [Fact(line, 5.0, (0, i)) for i, line in enumerate(lines)]


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("user: Mi código postal es 25004.", ("user: mi código postal es #", ("25004",))),
        (
            "user: Vivo en Granada, cerca del centro.",
            ("user: vivo en # cerca del centro", ("granada",)),
        ),
        (
            "assistant: Write to ana@example.com today.",
            ("assistant: write to # today", ("ana@example.com",)),
        ),
        ("user: Madrid 2024", None),  # one word besides the value: too little to compare
        ("user: I prefer email over phone calls.", None),  # no value to supersede
    ],
)
def test_shape(line: str, expected: tuple[str, tuple[str, ...]] | None) -> None:
    assert shape(line) == expected


def test_repeated_facts_are_kept_once() -> None:
    summarizer = ExtractiveSummarizer(words)
    turns = [Turn("I live in Valencia.", "", (0, i), 0.0) for i in range(5)]
    assert render(summarizer.merge([], turns, bound=50)) == "user: I live in Valencia."


def test_truncate() -> None:
    assert truncate("short text", 5, words) == "short text"
    cut = truncate("one two three four five six seven", 4, words)
    assert cut.endswith(TRUNCATED.strip()) and words(cut) <= 4
    assert truncate("one two three", 0, words) == ""


# -- the model summariser ------------------------------------------------------------------------


def _memory_with_model(kv: MemoryKV, model: FakeChatModel) -> ConversationMemory:
    settings = MemorySettings(
        budget_tokens=200, summary_tokens=60, window_turns=2, summarizer="model"
    )
    return ConversationMemory.for_model(kv, model, settings)


async def _three_turns(memory: ConversationMemory) -> MemoryContext:
    await memory.remember("s", "Me llamo Lucía, pedido 48213.", "Anotado.")
    await memory.remember("s", "¿Cuándo llega?", "El martes.")
    await memory.remember("s", "Gracias", "De nada")
    return await memory.context("s")


async def test_model_summary_is_used_when_it_fits(kv: MemoryKV) -> None:
    model = FakeChatModel(default="La usuaria Lucía tiene el pedido 48213.")
    ctx = await _three_turns(_memory_with_model(kv, model))
    assert ctx.summary == "La usuaria Lucía tiene el pedido 48213."
    prompt = model.calls[0][0]
    assert "Me llamo Lucía, pedido 48213." in prompt[-1].content  # the evicted turn was sent


@pytest.mark.parametrize("reply", ["pedido " * 500, "   "])
async def test_model_summary_overflowing_or_empty_falls_back(
    kv: MemoryKV, reply: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="acllm.memory"):
        ctx = await _three_turns(_memory_with_model(kv, FakeChatModel(default=reply)))
    assert ctx.summary == "user: Me llamo Lucía, pedido 48213."  # extractive instead
    assert "extractive instead" in caplog.text


async def test_failing_summary_model_falls_back(
    kv: MemoryKV, caplog: pytest.LogCaptureFixture
) -> None:
    model = FakeChatModel()  # no scripted reply: every call raises ServiceError
    with caplog.at_level(logging.WARNING, logger="acllm.memory"):
        ctx = await _three_turns(_memory_with_model(kv, model))
    assert "48213" in ctx.summary
    assert "summariser failed" in caplog.text


# -- sessions: ids, forgetting, expiry -----------------------------------------------------------


async def test_sessions_are_separate_whatever_their_ids(kv: MemoryKV) -> None:
    memory = ConversationMemory(kv, words, SMALL)
    ids = ["a", "a:b", "a:t:0:1", "tenant/user 7", "ñ", "#x"]
    for sid in ids:
        await memory.remember(sid, f"I am {sid}", "hi")
    for sid in ids:
        ctx = await memory.context(sid)
        assert [m.content for m in ctx.turns] == [f"I am {sid}", "hi"]


@pytest.mark.parametrize("session", ["", "x" * 513, None, 5])
async def test_bad_session_ids_are_user_errors(kv: MemoryKV, session: object) -> None:
    memory = ConversationMemory(kv, words)
    with pytest.raises(UserError, match="session id"):
        await memory.context(session)  # type: ignore[arg-type]
    with pytest.raises(UserError, match="session id"):
        memory.forget(session)  # type: ignore[arg-type]


async def test_forget_deletes_every_key(sqlite_kv: SQLiteKV) -> None:
    memory = ConversationMemory(sqlite_kv, words, SMALL)
    other = ConversationMemory(sqlite_kv, words, SMALL, namespace="other")
    for i in range(10):
        await memory.remember("gone", f"My phone is 600 000 00{i}.", "ok")
    await memory.remember("kept", "I live in Cádiz.", "ok")
    await other.remember("gone", "I live in Jaén.", "ok")
    assert memory.forget("gone") is True
    assert (await memory.context("gone")).tokens == 0
    assert memory.forget("gone") is False
    assert all(k.startswith(("mem:kept:", "other:gone:")) for k in stored_keys(sqlite_kv.path))
    assert (await memory.context("kept")).turns[0].content == "I live in Cádiz."
    assert (await other.context("gone")).turns[0].content == "I live in Jaén."


async def test_sessions_expire(sqlite_kv: SQLiteKV) -> None:
    memory = ConversationMemory(sqlite_kv, words, SMALL.model_copy(update={"ttl_s": 0.3}))
    for i in range(5):
        await memory.remember("s", f"My order is {i}.", "ok")
    assert (await memory.context("s")).tokens > 0
    await asyncio.sleep(0.5)
    assert await memory.context("s") == MemoryContext("", [], 0)


async def test_turns_across_a_time_slot_stay_in_order(kv: MemoryKV) -> None:
    clock = Clock(now=10 * SMALL.ttl_s - 5)  # the counters' slot changes 5 s from now
    memory = ConversationMemory(kv, words, SMALL, clock=clock)
    for i in range(8):
        await memory.remember("s", f"My ticket is {i}00.", f"a{i}")
        clock.now += 2
    ctx = await memory.context("s")
    assert [m.content for m in ctx.turns if m.role == "assistant"] == ["a5", "a6", "a7"]
    order = [ctx.summary.index(f"{i}00") for i in range(5)]
    assert order == sorted(order)


# -- concurrency ---------------------------------------------------------------------------------


class Recording:
    """A summariser whose summary lists the evicted turns, to check none is lost or repeated."""

    async def fold(self, summary: Sequence[Fact], turns: Sequence[Turn], bound: int) -> list[Fact]:
        return [*summary, *(Fact(t.user, 1.0, t.position) for t in turns)]


def test_concurrent_writers_lose_no_turn(tmp_path: Path) -> None:
    """Four workers, each with its own connection to one SQLite file, append to one session."""
    path, workers, each = tmp_path / "state.db", 4, 25
    settings = MemorySettings(budget_tokens=400, summary_tokens=250, window_turns=3)
    start = threading.Barrier(workers)
    errors: list[BaseException] = []

    def work(w: int) -> None:
        async def turns(memory: ConversationMemory) -> None:
            for i in range(each):
                assert await memory.remember("shared", f"w{w}-{i}", "ok")

        try:
            with SQLiteKV(path) as kv:
                memory = ConversationMemory(kv, words, settings, summarizer=Recording())
                start.wait()
                asyncio.run(turns(memory))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(w,)) for w in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []

    with SQLiteKV(path) as kv:
        memory = ConversationMemory(kv, words, settings, summarizer=Recording())
        assert asyncio.run(memory.compact("shared")) is True
        ctx = asyncio.run(memory.context("shared"))
    seen = ctx.summary.split("\n") + [m.content for m in ctx.turns if m.role == "user"]
    expected = [f"w{w}-{i}" for w in range(workers) for i in range(each)]
    assert sorted(seen) == sorted(expected)  # every turn once: none lost, none folded twice
    assert len(ctx.turns) == 2 * settings.window_turns
    for w in range(workers):  # each worker's turns keep their order
        mine = [s for s in seen if s.startswith(f"w{w}-")]
        assert mine == sorted(mine, key=lambda s: int(s.split("-")[1]))


async def test_folding_waits_for_a_turn_being_written(kv: MemoryKV) -> None:
    clock = Clock()
    memory = ConversationMemory(kv, words, SMALL, summarizer=Recording(), clock=clock)
    await memory.remember("s", "first", "ok")
    slot = int(clock.now // SMALL.ttl_s)
    late = kv.incr(f"mem:s:n:{slot}")  # another worker took number 2 and has not written it yet
    for i in range(5):
        await memory.remember("s", f"t{i}", "ok")
    ctx = await memory.context("s")
    assert ctx.tokens <= SMALL.budget_tokens
    state = json.loads(kv.get("mem:s:state") or b"{}")
    assert state["upto"] == [slot, 1]  # only "first" was stored folded: number 2 is pending
    kv.set(f"mem:s:t:{slot}:{late}", json.dumps({"u": "late", "a": "ok", "at": clock.now}).encode())
    assert await memory.compact("s")
    ctx = await memory.context("s")
    assert ctx.summary.split("\n") == ["first", "late", "t0", "t1"]


async def test_an_abandoned_number_is_passed_after_the_grace(kv: MemoryKV) -> None:
    clock = Clock()
    memory = ConversationMemory(kv, words, SMALL, summarizer=Recording(), clock=clock)
    slot = int(clock.now // SMALL.ttl_s)
    kv.incr(f"mem:s:n:{slot}")  # a worker took number 1 and died
    for i in range(5):
        await memory.remember("s", f"t{i}", "ok")
    assert kv.get("mem:s:state") is None
    clock.now += 60
    await memory.compact("s")
    state = json.loads(kv.get("mem:s:state") or b"{}")
    assert state["upto"] == [slot, 3]


# -- a store that is down, corrupt entries -------------------------------------------------------


async def test_a_store_that_is_down_degrades(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    kv = SQLiteKV(tmp_path / "state.db")
    memory = ConversationMemory(kv, words, SMALL)
    await memory.remember("s", "I live in Lugo.", "ok")
    kv.close()  # every call now raises ServiceError, like a Redis that went away
    with caplog.at_level(logging.WARNING, logger="acllm.memory"):
        assert await memory.context("s") == MemoryContext("", [], 0)
        assert await memory.remember("s", "more", "text") is False
    assert "answering without it" in caplog.text and "not stored" in caplog.text
    assert "Lugo" not in caplog.text  # logs never carry the conversation
    with pytest.raises(ServiceError):
        memory.forget("s")  # a deletion request is never dropped quietly


@pytest.mark.parametrize(
    "garbage",
    [
        b"not json",
        b"{}",
        b'{"v": 1, "upto": [0], "facts": []}',
        b'{"v": 1, "upto": [0, 1], "facts": [[1, 2, 3, 4]]}',
        b"\xff\xfe",
    ],
)
async def test_a_corrupt_state_is_ignored_and_deleted(kv: MemoryKV, garbage: bytes) -> None:
    memory = ConversationMemory(kv, words, SMALL)
    await memory.remember("s", "I live in Lugo.", "ok")
    kv.set("mem:s:state", garbage)
    ctx = await memory.context("s")
    assert ctx.turns[0].content == "I live in Lugo."
    assert kv.get("mem:s:state") is None


async def test_a_corrupt_turn_is_ignored_and_deleted(kv: MemoryKV) -> None:
    clock = Clock()
    memory = ConversationMemory(kv, words, SMALL, clock=clock)
    await memory.remember("s", "I live in Lugo.", "ok")
    await memory.remember("s", "I live in Vigo.", "ok")
    slot = int(clock.now // SMALL.ttl_s)
    kv.set(f"mem:s:t:{slot}:1", b'{"u": 3, "a": "x", "at": 0}')
    ctx = await memory.context("s")
    assert [m.content for m in ctx.turns] == ["I live in Vigo.", "ok"]
    assert kv.get(f"mem:s:t:{slot}:1") is None
    for i in range(5):  # folding goes on past the evicted entry
        await memory.remember("s", f"My code is {i}1.", "ok")
    assert "Vigo" in (await memory.context("s")).summary


async def test_a_corrupt_counter_resets_the_session(
    kv: MemoryKV, caplog: pytest.LogCaptureFixture
) -> None:
    clock = Clock()
    memory = ConversationMemory(kv, words, SMALL, clock=clock)
    await memory.remember("s", "I live in Lugo.", "ok")
    kv.set(f"mem:s:n:{int(clock.now // SMALL.ttl_s)}", b"garbage")
    with caplog.at_level(logging.WARNING, logger="acllm.memory"):
        assert await memory.remember("s", "I live in Vigo.", "ok") is True
    assert "session" in caplog.text and "reset" in caplog.text
    ctx = await memory.context("s")
    assert [m.content for m in ctx.turns] == ["I live in Vigo.", "ok"]


async def test_memory_on_redis_then_redis_down(
    redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    """The same memory on the shared store; when Redis goes away, answers go on without it."""
    with RedisKV(redis_server.url, prefix=f"memtest-{id(caplog)}:", socket_timeout=1) as kv:
        memory = ConversationMemory(kv, words, SMALL)
        await memory.remember("s", "Me llamo Lucía y mi número de pedido es 48213.", "Anotado.")
        for i in range(5):
            await memory.remember("s", f"question {i}", f"answer {i}")
        ctx = await memory.context("s")
        assert "48213" in ctx.summary and ctx.tokens <= SMALL.budget_tokens
        assert memory.forget("s") is True
    with caplog.at_level(logging.WARNING, logger="acllm.memory"):
        assert await memory.context("s") == MemoryContext("", [], 0)  # the client is closed
    assert "answering without it" in caplog.text


def test_folds_that_lag_far_behind_the_writers_lose_no_turn() -> None:
    """Another worker holds the session's lock while 80 turns arrive (more than a fold reads at
    once): when folding resumes it must start from the oldest unfolded turn, not skip to the
    newest and pass the rest by."""
    kv = MemoryKV()
    settings = MemorySettings(budget_tokens=400, summary_tokens=250, window_turns=3)
    memory = ConversationMemory(kv, words, settings, summarizer=Recording())
    keys = memory._keys("lagging")
    kv.set(keys.lock, b"someone else", ttl=60)
    for i in range(80):
        assert asyncio.run(memory.remember("lagging", f"t{i}", "ok"))
    kv.delete(keys.lock)
    for _ in range(10):  # each fold reads a bounded number of turns
        assert asyncio.run(memory.compact("lagging"))
    ctx = asyncio.run(memory.context("lagging"))
    seen = ctx.summary.split("\n") + [m.content for m in ctx.turns if m.role == "user"]
    assert seen == [f"t{i}" for i in range(80)]  # all, once, in order
