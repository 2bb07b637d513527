"""The model process's admission queue: fair between keys, bounded in depth and wait, cancellable.

Everything runs on asyncio with a hand-moved clock; no assertion depends on real time passing.
"""

from __future__ import annotations

import asyncio

import pytest

from acllm.errors import UnavailableError
from acllm.service.fairqueue import FairQueue, Lease, QueueFullError, QueueTimeoutError


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


async def settle() -> None:
    """Let every ready task run until they all wait again."""
    for _ in range(20):
        await asyncio.sleep(0)


class Recorder:
    """Tasks that take a slot from ``queue`` under a key and note the order they got it."""

    def __init__(self, queue: FairQueue) -> None:
        self.queue = queue
        self.order: list[str] = []
        self.leases: dict[str, Lease] = {}
        self.tasks: dict[str, asyncio.Task[None]] = {}

    def start(self, key: str, label: str) -> None:
        async def take() -> None:
            lease = await self.queue.acquire(key)
            self.order.append(label)
            self.leases[label] = lease

        self.tasks[label] = asyncio.create_task(take())

    async def release(self, label: str) -> None:
        self.leases.pop(label).release()
        await settle()


def queue(**kwargs: object) -> FairQueue:
    options: dict[str, object] = {"depth": 10, "max_wait": 60.0, "clock": Clock(), **kwargs}
    return FairQueue(**options)  # type: ignore[arg-type]


async def test_a_free_slot_is_taken_at_once() -> None:
    q = queue()
    lease = await q.acquire("a")
    assert (q.active, q.waiting) == (1, 0)
    lease.release()
    lease.release()  # a second release does nothing
    assert (q.active, q.waiting) == (0, 0)


async def test_round_robin_between_keys_fifo_within_a_key() -> None:
    q = queue()
    rec = Recorder(q)
    holder = await q.acquire("x")
    for label in ("a1", "a2", "a3"):  # a burst from one client...
        rec.start("a", label)
    await settle()
    rec.start("b", "b1")  # ...then one request each from two others
    rec.start("c", "c1")
    await settle()
    assert q.waiting == 5 and rec.order == []
    holder.release()
    await settle()
    for label in ("a1", "b1", "c1", "a2", "a3"):
        assert rec.order[-1] == label
        await rec.release(label)
    assert rec.order == ["a1", "b1", "c1", "a2", "a3"]
    assert (q.active, q.waiting) == (0, 0)


async def test_a_newcomer_waits_behind_queued_callers_even_if_a_slot_frees() -> None:
    q = queue()
    rec = Recorder(q)
    holder = await q.acquire("a")
    rec.start("b", "b1")
    await settle()
    holder.release()  # the slot goes to b1 directly, not to whoever asks next
    rec.start("c", "c1")
    await settle()
    assert rec.order == ["b1"]
    await rec.release("b1")
    assert rec.order == ["b1", "c1"]


async def test_full_queue_refuses_with_a_retry_estimate() -> None:
    clock = Clock()
    q = queue(depth=2, clock=clock)
    first = await q.acquire("a")
    clock.now += 4.0  # the first request held the model for 4 s
    first.release()
    holder = await q.acquire("a")
    rec = Recorder(q)
    rec.start("b", "b1")
    rec.start("c", "c1")
    await settle()
    with pytest.raises(QueueFullError) as info:
        await q.acquire("d")
    err = info.value
    assert isinstance(err, UnavailableError) and err.status == 503
    # Three ahead (one holder, two waiting) at the measured mean service time.
    assert err.retry_after == pytest.approx(3 * q.service_s, abs=1.0)
    assert err.retry_after >= 3
    assert q.waiting == 2  # the refused caller took no place
    holder.release()
    await settle()
    await rec.release("b1")
    await rec.release("c1")


async def test_retry_estimate_is_at_least_a_second() -> None:
    q = queue(depth=1, service_s=0.01)
    holder = await q.acquire("a")
    rec = Recorder(q)
    rec.start("b", "b1")
    await settle()
    with pytest.raises(QueueFullError) as info:
        await q.acquire("c")
    assert info.value.retry_after == 1
    holder.release()
    await settle()
    await rec.release("b1")


async def test_bounded_wait_gives_up_and_frees_the_place() -> None:
    q = queue(max_wait=0.01)
    holder = await q.acquire("a")  # held for the whole test: the waiter can only time out
    with pytest.raises(QueueTimeoutError) as info:
        await q.acquire("b")
    assert info.value.status == 503
    assert info.value.retry_after is not None and info.value.retry_after >= 1
    assert (q.active, q.waiting) == (1, 0)
    assert q.waiting_for("b") == 0
    holder.release()
    assert (q.active, q.waiting) == (0, 0)


async def test_cancelling_a_waiter_frees_its_place() -> None:
    q = queue(depth=1)
    holder = await q.acquire("a")
    rec = Recorder(q)
    rec.start("b", "b1")
    await settle()
    assert q.waiting == 1
    rec.tasks["b1"].cancel()  # its client went away
    await settle()
    assert q.waiting == 0
    rec.start("c", "c1")  # the place can be taken again
    await settle()
    holder.release()
    await settle()
    assert rec.order == ["c1"]  # the slot went to the live waiter, not the cancelled one
    await rec.release("c1")
    assert (q.active, q.waiting) == (0, 0)


async def test_a_granted_but_cancelled_waiter_passes_the_slot_on() -> None:
    q = queue()
    holder = await q.acquire("a")
    rec = Recorder(q)
    rec.start("b", "b1")
    rec.start("c", "c1")
    await settle()
    holder.release()  # b1 is granted the slot...
    rec.tasks["b1"].cancel()  # ...but is cancelled before it runs
    await settle()
    assert rec.order == ["c1"]
    assert q.active == 1
    await rec.release("c1")
    assert (q.active, q.waiting) == (0, 0)


async def test_slot_context_releases_on_error() -> None:
    q = queue()
    with pytest.raises(RuntimeError):
        async with q.slot("a"):
            assert q.active == 1
            raise RuntimeError("generation failed")
    assert (q.active, q.waiting) == (0, 0)


async def test_several_slots_serve_in_parallel() -> None:
    q = queue(slots=2)
    a = await q.acquire("a")
    b = await q.acquire("b")
    rec = Recorder(q)
    rec.start("c", "c1")
    await settle()
    assert rec.order == [] and q.waiting == 1
    a.release()
    await settle()
    assert rec.order == ["c1"]
    b.release()
    await rec.release("c1")
    assert (q.active, q.waiting) == (0, 0)


async def test_service_time_follows_the_clock() -> None:
    clock = Clock()
    q = queue(clock=clock, service_s=1.0)
    for _ in range(20):
        lease = await q.acquire("a")
        clock.now += 10.0
        lease.release()
    assert q.service_s == pytest.approx(10.0, rel=0.01)


def test_bad_bounds_are_refused() -> None:
    with pytest.raises(ValueError):
        FairQueue(depth=0, max_wait=1)
    with pytest.raises(ValueError):
        FairQueue(depth=1, max_wait=0)
