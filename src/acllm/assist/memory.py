"""Bounded conversation memory: a window of recent turns plus a rolling summary, under a token budget.

    memory = ConversationMemory.for_model(runtime.kv(), model, settings)
    ctx = await memory.context(session)          # summary + recent turns, ctx.tokens <= budget
    messages = [system, *ctx.messages(), Message("user", question)]
    await memory.remember(session, question, answer)
    memory.forget(session)                       # a user's request to delete their conversation

The budget. ``summary_tokens`` (plus the summary's label) are reserved for the summary and the rest
holds the window of recent turns, at most ``window_turns`` of them, each turn at most half the
window (a longer one is cut when stored, ending in an explicit ``[…truncated]``). A turn leaves the
window only by being folded into the summary, so nothing is cut silently: the summary keeps its
salient facts (``acllm.assist.memory_summary``). Every count uses the ``count_tokens`` given, plus
``message_tokens`` per message for the chat template's frame, so ``context`` always fits.

Storage goes through the KV seam, so SQLite, Redis and PostgreSQL all work. Per session:
``<ns>:<session>:state`` (the summary and the last folded turn), ``:n:<slot>`` (turn counters),
``:t:<slot>:<n>`` (one turn each) and ``:lock``. Two workers may append to one session at once:
each turn takes its number from ``incr``, so none is overwritten; folding runs under a lock
(``set_if_absent`` with a TTL), never passes a number whose turn is still being written, and checks
the state did not change under it before writing. A worker that took a number and died leaves a
gap that folding passes once a later turn is ``HOLE_GRACE_S`` old.

Expiry. A session idle for ``ttl_s`` is forgotten: every turn and the state carry that TTL (the
state is rewritten on each turn). Counters cannot have their TTL renewed (``incr`` keeps a key's
expiry), so turn numbers are per time slot of ``ttl_s``: a counter lives two slots, and the live
turns are always in the current slot or the one before.

Bad input: a store that is down makes ``context`` return an empty memory and ``remember`` skip the
turn, with a warning in the log (``forget`` raises: a deletion request is never dropped); corrupt
entries are ignored and deleted; a failing or overflowing summary model falls back to extractive.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import json
import logging
import re
import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from acllm.assist.memory_settings import MemorySettings
from acllm.assist.memory_summary import (
    Count,
    ExtractiveSummarizer,
    Fact,
    ModelSummarizer,
    Position,
    Summarizer,
    Turn,
    render,
    truncate,
)
from acllm.errors import ServiceError, UserError
from acllm.types import Message

if TYPE_CHECKING:
    from acllm.kv.base import KV
    from acllm.models.base import ChatModel

log = logging.getLogger("acllm.memory")

SUMMARY_LABEL = "Summary of the earlier conversation:\n"
LOCK_TTL_S = 60.0  # a folding worker that dies holds the session's lock this long at most
SUMMARY_TIMEOUT_S = 30.0  # a summariser slower than this is abandoned for the extractive one
HOLE_GRACE_S = 30.0  # a turn number still unwritten after this is taken for abandoned
FORGET_MARGIN = 64  # forget also deletes this many numbers below the folded mark (late writes)
COUNT_CACHE = 4096  # texts whose token counts are kept (per memory instance)
_SAFE_ID = re.compile(r"[A-Za-z0-9_.@+=-]{1,128}")
_START: Position = (-1, 0)


@dataclass(frozen=True)
class MemoryContext:
    """What a session remembers: ``tokens`` is the size of ``messages()``, within the budget."""

    summary: str
    turns: list[Message] = field(default_factory=list)
    tokens: int = 0

    def messages(self) -> list[Message]:
        """The summary as a system message (when there is one), then the recent turns."""
        head = [Message("system", SUMMARY_LABEL + self.summary)] if self.summary else []
        return [*head, *self.turns]


@dataclass
class _Loaded:
    state: bytes | None  # the stored state as read, to notice a concurrent change
    upto: Position  # the last turn folded into the summary
    facts: list[Fact]
    turns: list[Turn]  # stored turns after ``upto``, oldest first
    holes: list[Position]  # numbers taken whose turn is not (yet) written


@dataclass(frozen=True)
class _Keys:
    base: str
    tag: str  # for logs: a digest, never the session id itself

    @property
    def state(self) -> str:
        return f"{self.base}:state"

    @property
    def lock(self) -> str:
        return f"{self.base}:lock"

    def counter(self, slot: int) -> str:
        return f"{self.base}:n:{slot}"

    def turn(self, position: Position) -> str:
        return f"{self.base}:t:{position[0]}:{position[1]}"


def counter_for(model: ChatModel) -> tuple[Count, int]:
    """A text counter from the model's tokenizer, and the tokens each message's frame adds.

    The frame is what one more (empty) message adds to a prompt: its role header and end marker.
    """
    empty = Message("user", "")
    one = model.count_tokens([empty])
    frame = max(0, model.count_tokens([empty, empty]) - one)

    def count(text: str) -> int:
        return max(0, model.count_tokens([Message("user", text)]) - one)

    return count, frame


class ConversationMemory:
    def __init__(
        self,
        kv: KV,
        count_tokens: Count,
        settings: MemorySettings | None = None,
        *,
        summarizer: Summarizer | None = None,
        namespace: str = "mem",
        message_tokens: int = 0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = s = settings or MemorySettings()
        self.kv = kv
        # The same turns are counted on every call: a bounded cache saves the tokenizer's time.
        self.count: Count = functools.lru_cache(maxsize=COUNT_CACHE)(count_tokens)
        self.extractive = ExtractiveSummarizer(self.count)
        self.summarizer: Summarizer = summarizer or self.extractive
        if not namespace:
            raise UserError("the memory namespace (its keys' prefix) must not be empty")
        self.namespace = namespace
        self.message_tokens = message_tokens
        self.clock = clock
        self.label_tokens = self.count(SUMMARY_LABEL) + message_tokens
        self.window_tokens = s.budget_tokens - s.summary_tokens - self.label_tokens
        self.turn_tokens = self.window_tokens // 2  # one turn never takes the whole window
        if self.turn_tokens - 2 * message_tokens < 8:
            raise UserError(
                f"memory budget_tokens {s.budget_tokens} leaves {self.window_tokens} tokens for "
                f"recent turns after the summary ({s.summary_tokens}) and its frame",
                hint="raise budget_tokens or lower summary_tokens",
            )
        self.read_cap = 4 * s.window_turns + 32  # unfolded turns read at most

    @classmethod
    def for_model(
        cls,
        kv: KV,
        model: ChatModel,
        settings: MemorySettings,
        *,
        summary_model: ChatModel | None = None,
        namespace: str = "mem",
    ) -> ConversationMemory:
        """Counted with ``model``'s tokenizer; summarised by ``summary_model`` (or ``model``) when
        ``settings.summarizer`` is "model"."""
        count, frame = counter_for(model)
        summarizer = (
            ModelSummarizer(summary_model or model, count)
            if settings.summarizer == "model"
            else None
        )
        return cls(
            kv, count, settings, summarizer=summarizer, namespace=namespace, message_tokens=frame
        )

    # -- public API ------------------------------------------------------------------------------

    async def context(self, session: str) -> MemoryContext:
        """The session's summary and recent turns, within the budget; empty if the store is down."""
        keys = self._keys(session)
        try:
            return await asyncio.to_thread(self._context, keys)
        except ServiceError as exc:
            log.warning("memory unavailable, answering without it (session %s): %s", keys.tag, exc)
            return MemoryContext("")

    async def remember(self, session: str, user_text: str, assistant_text: str) -> bool:
        """Store one turn, folding the oldest turns into the summary when the window is full.

        False when the store is down (the turn is dropped, with a warning in the log).
        """
        keys = self._keys(session)
        if not isinstance(user_text, str) or not isinstance(assistant_text, str):
            raise UserError("memory stores text: user_text and assistant_text must be str")
        token = secrets.token_hex(8)
        try:
            loaded = await asyncio.to_thread(self._append, keys, user_text, assistant_text, token)
        except ServiceError as exc:
            log.warning("memory unavailable, turn not stored (session %s): %s", keys.tag, exc)
            return False
        if loaded is not None:
            await self._fold(keys, loaded, token)
        return True

    async def compact(self, session: str) -> bool:
        """Fold what the window cannot hold now (``remember`` does it as it goes); False when
        another worker holds the session's lock or the store is down."""
        keys = self._keys(session)
        token = secrets.token_hex(8)
        try:
            loaded = await asyncio.to_thread(self._lock_and_load, keys, token)
        except ServiceError as exc:
            log.warning("memory unavailable (session %s): %s", keys.tag, exc)
            return False
        if loaded is None:
            return False
        await self._fold(keys, loaded, token)
        return True

    def forget(self, session: str) -> bool:
        """Delete everything stored for the session; True when there was something.

        Raises ServiceError when the store is down: a deletion request is never dropped quietly.
        """
        return self._forget(self._keys(session))

    def _forget(self, keys: _Keys) -> bool:
        _, upto, _ = self._state(keys, self.kv.get(keys.state))
        existed = False
        now_slot = self._slot(self.clock())
        for slot in (now_slot - 1, now_slot, now_slot + 1):  # +1: a writer's clock running ahead
            last = self._number(keys, slot)
            low = max(0, (upto[1] if upto[0] == slot else 0) - FORGET_MARGIN, last - self.read_cap)
            for n in range(low + 1, last + 1):
                existed = self.kv.delete(keys.turn((slot, n))) or existed
            existed = self.kv.delete(keys.counter(slot)) or existed
        existed = self.kv.delete(keys.state) or existed
        self.kv.delete(keys.lock)
        return existed

    # -- turns in and out ------------------------------------------------------------------------

    def _keys(self, session: str) -> _Keys:
        if not isinstance(session, str) or not session or len(session) > 512:
            raise UserError(
                f"a memory session id is a non-empty string of at most 512 characters, "
                f"got {session if not isinstance(session, str) else session[:40]!r}"
            )
        digest = hashlib.sha256(session.encode("utf-8", "surrogatepass")).hexdigest()
        # Ids with other characters (":" above all) are hashed so no two sessions share a key.
        sid = session if _SAFE_ID.fullmatch(session) else f"#{digest[:32]}"
        return _Keys(f"{self.namespace}:{sid}", digest[:10])

    def _slot(self, now: float) -> int:
        return int(now // self.settings.ttl_s)

    def _cost(self, turn: Turn) -> int:
        return self.count(turn.user) + self.count(turn.assistant) + 2 * self.message_tokens

    def _fit(self, user: str, assistant: str) -> tuple[str, str]:
        """The turn cut to ``turn_tokens`` with explicit markers; each side keeps at least half."""
        room = self.turn_tokens - 2 * self.message_tokens
        cu, ca = self.count(user), self.count(assistant)
        if cu + ca <= room:
            return user, assistant
        half = room // 2
        if cu <= half:
            return user, truncate(assistant, room - cu, self.count)
        if ca <= half:
            return truncate(user, room - ca, self.count), assistant
        return truncate(user, room - half, self.count), truncate(assistant, half, self.count)

    def _append(self, keys: _Keys, user: str, assistant: str, token: str) -> _Loaded | None:
        now = self.clock()
        user, assistant = self._fit(user, assistant)
        record = json.dumps({"u": user, "a": assistant, "at": now}, ensure_ascii=False).encode()
        slot, ttl = self._slot(now), self.settings.ttl_s
        try:
            number = self.kv.incr(keys.counter(slot), 1, ttl=2 * ttl)
        except UserError:  # the counter holds something else: the session's keys are not ours
            log.warning("corrupt memory counter, session %s reset", keys.tag)
            self._forget(keys)
            number = self.kv.incr(keys.counter(slot), 1, ttl=2 * ttl)
        self.kv.set(keys.turn((slot, number)), record, ttl=ttl)
        return self._lock_and_load(keys, token)

    def _lock_and_load(self, keys: _Keys, token: str) -> _Loaded | None:
        if not self.kv.set_if_absent(keys.lock, token.encode(), ttl=LOCK_TTL_S):
            return None  # another worker is folding this session; it will see our turn
        try:
            return self._load(keys, oldest=True)
        except BaseException:
            self._unlock(keys, token)
            raise

    def _unlock(self, keys: _Keys, token: str) -> None:
        if self.kv.get(keys.lock) == token.encode():
            self.kv.delete(keys.lock)

    # -- reading ---------------------------------------------------------------------------------

    def _number(self, keys: _Keys, slot: int) -> int:
        raw = self.kv.get(keys.counter(slot))
        if raw is None:
            return 0
        if re.fullmatch(rb"[0-9]{1,18}", raw) is None:
            log.warning("corrupt memory counter ignored (session %s)", keys.tag)
            return 0
        return int(raw)

    def _state(self, keys: _Keys, raw: bytes | None) -> tuple[bytes | None, Position, list[Fact]]:
        """The stored state as (raw bytes, last folded turn, facts); a corrupt one is deleted."""
        if raw is None:
            return None, _START, []
        try:
            data = json.loads(raw)
            upto = (int(data["upto"][0]), int(data["upto"][1]))
            facts = [
                Fact(str(text), float(score), (int(g), int(n)))
                for text, score, g, n in data["facts"]
            ]
            if data.get("v") != 1 or not all(isinstance(f[0], str) for f in data["facts"]):
                raise ValueError("not a memory state")
        except (ValueError, TypeError, KeyError, IndexError) as exc:
            log.warning("corrupt memory state deleted (session %s): %s", keys.tag, exc)
            self.kv.delete(keys.state)
            return None, _START, []
        return raw, upto, facts

    def _turn(self, keys: _Keys, position: Position, raw: bytes) -> Turn | None:
        try:
            data = json.loads(raw)
            user, assistant, at = data["u"], data["a"], float(data["at"])
            if not isinstance(user, str) or not isinstance(assistant, str):
                raise TypeError("turn text is not a string")
        except (ValueError, TypeError, KeyError) as exc:
            log.warning("corrupt memory turn deleted (session %s): %s", keys.tag, exc)
            self.kv.delete(keys.turn(position))
            return None
        return Turn(user, assistant, position, at)

    def _load(self, keys: _Keys, *, oldest: bool = False) -> _Loaded:
        """The state and the unfolded turns, at most ``read_cap`` of them a slot: the newest for
        a context, the OLDEST for a fold (``oldest``), which must never step over unread turns
        (when folds lag behind many writers, the newest-first read skipped the oldest ones and
        the fold's mark then passed them: turns lost)."""
        raw, upto, facts = self._state(keys, self.kv.get(keys.state))
        current = self._slot(self.clock())
        turns: list[Turn] = []
        holes: list[Position] = []
        for slot in (current - 1, current):
            if upto[0] > slot:
                continue
            last = self._number(keys, slot)
            base = upto[1] if upto[0] == slot else 0
            if oldest:
                low, high = base, min(last, base + self.read_cap)
            else:
                low, high = max(base, last - self.read_cap), last
            for n in range(low + 1, high + 1):
                stored = self.kv.get(keys.turn((slot, n)))
                if stored is None:
                    holes.append((slot, n))
                elif (turn := self._turn(keys, (slot, n), stored)) is not None:
                    turns.append(turn)
            if high < last:  # this slot has more: a later slot's turns must wait their turn
                break
        return _Loaded(raw, upto, facts, turns, holes)

    def _leaving(self, loaded: _Loaded, strict: bool) -> list[Turn]:
        """The oldest turns that must leave the window. ``strict`` (a fold that is stored) stops
        before a number still being written, so a turn that lands late is never skipped."""
        turns, s = loaded.turns, self.settings
        costs = [self._cost(t) for t in turns]
        total, out = sum(costs), 0
        while out < len(turns) and (
            len(turns) - out > s.window_turns or total > self.window_tokens
        ):
            total -= costs[out]
            out += 1
        leaving = turns[:out]
        if strict and leaving:
            now = self.clock()
            for hole in loaded.holes:
                abandoned = any(t.at < now - HOLE_GRACE_S for t in turns if t.position > hole)
                if hole < leaving[-1].position and not abandoned:
                    leaving = [t for t in leaving if t.position < hole]
                    break
        return leaving

    def _context(self, keys: _Keys) -> MemoryContext:
        loaded = self._load(keys)
        loaded.turns = [  # stored under this budget already, unless the model or budget changed
            Turn(*self._fit(t.user, t.assistant), t.position, t.at) for t in loaded.turns
        ]
        leaving = self._leaving(loaded, strict=False)
        facts, bound = loaded.facts, self.settings.summary_tokens
        if leaving or self.count(render(facts)) > bound:
            # Not stored: the worker holding the lock (or the next turn) folds for real.
            facts = self.extractive.merge(facts, leaving, bound)
        summary = render(facts)
        window = loaded.turns[len(leaving) :]
        messages = [
            m for t in window for m in (Message("user", t.user), Message("assistant", t.assistant))
        ]
        tokens = sum(self._cost(t) for t in window)
        if summary:
            tokens += self.count(summary) + self.label_tokens
        return MemoryContext(summary, messages, tokens)

    # -- folding ---------------------------------------------------------------------------------

    async def _fold(self, keys: _Keys, loaded: _Loaded, token: str) -> None:
        """Under the session's lock: fold the turns that must leave, store, unlock."""
        try:
            leaving = self._leaving(loaded, strict=True)
            facts = await self._summarise(loaded.facts, leaving) if leaving else loaded.facts
            await asyncio.to_thread(self._commit, keys, loaded, leaving, facts, token)
        except ServiceError as exc:
            log.warning("memory not folded (session %s): %s", keys.tag, exc)

    async def _summarise(self, facts: Sequence[Fact], leaving: Sequence[Turn]) -> list[Fact]:
        bound = self.settings.summary_tokens
        if self.summarizer is not self.extractive:
            try:
                out = await asyncio.wait_for(
                    self.summarizer.fold(facts, leaving, bound), SUMMARY_TIMEOUT_S
                )
                if out and self.count(render(out)) <= bound:
                    return out
                log.warning("summary over its %d-token bound or empty: extractive instead", bound)
            except Exception as exc:  # any failure of a pluggable summariser degrades the same way
                log.warning("summariser failed, extractive instead: %s", exc)
        return self.extractive.merge(facts, leaving, bound)

    def _commit(
        self,
        keys: _Keys,
        loaded: _Loaded,
        leaving: Sequence[Turn],
        facts: Sequence[Fact],
        token: str,
    ) -> None:
        try:
            ttl = self.settings.ttl_s
            if not leaving:
                if loaded.state is not None:
                    self.kv.set(keys.state, loaded.state, ttl=ttl)  # in use: keep it alive
                return
            if self.kv.get(keys.lock) != token.encode() or self.kv.get(keys.state) != loaded.state:
                log.warning("memory fold dropped: the lock expired (session %s)", keys.tag)
                return
            state: dict[str, Any] = {
                "v": 1,
                "upto": list(leaving[-1].position),
                "facts": [[f.text, f.score, *f.position] for f in facts],
            }
            self.kv.set(keys.state, json.dumps(state, ensure_ascii=False).encode(), ttl=ttl)
            for turn in leaving:
                self.kv.delete(keys.turn(turn.position))
        finally:
            self._unlock(keys, token)
