"""A fair admission queue in front of one model: FIFO per caller key, round-robin between keys.

``slots`` callers hold the model at once (one for llama.cpp); the rest wait. Waiters are kept in one
FIFO per key and served by turns, so a client that sends a burst cannot starve another that sends
one request. The queue is bounded twice: at most ``depth`` waiters (more are refused at once with
QueueFullError) and at most ``max_wait`` seconds of waiting (then QueueTimeoutError). Both are
UnavailableError (HTTP 503) carrying ``retry_after``: the waiters ahead times the recent service
time. A waiter that is cancelled (its client went away) leaves the queue; a holder that is
cancelled gives its slot to the next waiter. The clock is injectable so estimates are testable.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import OrderedDict, deque
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from acllm.errors import UnavailableError

Clock = Callable[[], float]


class QueueFullError(UnavailableError):
    """Every place in the queue is taken: come back after ``retry_after`` seconds."""


class QueueTimeoutError(UnavailableError):
    """Waited ``max_wait`` seconds without getting a slot."""


@dataclass(eq=False)
class _Waiter:
    key: str
    future: asyncio.Future[None]


@dataclass(eq=False)
class Lease:
    """A held slot; ``release`` it exactly once (later calls do nothing)."""

    queue: FairQueue
    key: str
    started: float
    released: bool = field(default=False)

    def release(self) -> None:
        if not self.released:
            self.released = True
            self.queue._release(self)


class FairQueue:
    def __init__(
        self,
        *,
        depth: int,
        max_wait: float,
        slots: int = 1,
        clock: Clock = time.monotonic,
        service_s: float = 1.0,  # prior for the service time until one is measured
        name: str = "model",
    ) -> None:
        if depth < 1 or slots < 1 or max_wait <= 0:
            raise ValueError("depth and slots must be >= 1 and max_wait > 0")
        self.depth = depth
        self.max_wait = max_wait
        self.slots = slots
        self.name = name
        self._clock = clock
        self._service_s = service_s
        self._keys: OrderedDict[str, deque[_Waiter]] = OrderedDict()  # turn order: first is next
        self._waiting = 0
        self._active = 0

    @property
    def waiting(self) -> int:
        return self._waiting

    @property
    def active(self) -> int:
        return self._active

    @property
    def service_s(self) -> float:
        """Recent mean time a holder keeps its slot (moving average)."""
        return self._service_s

    def retry_after(self) -> float:
        """Seconds until a newcomer could expect a slot: everyone ahead, served ``slots`` at a time."""
        ahead = self._waiting + self._active
        return max(1.0, math.ceil(ahead * self._service_s / self.slots))

    def waiting_for(self, key: str) -> int:
        return len(self._keys.get(key, ()))

    async def acquire(self, key: str) -> Lease:
        """Wait for a slot (fairly); raise QueueFullError or QueueTimeoutError when bounded out."""
        if self._active < self.slots and not self._waiting:
            return self._grant(key)
        if self._waiting >= self.depth:
            raise QueueFullError(
                f"the {self.name} queue is full ({self._waiting} requests waiting)",
                hint="it answers one request at a time: retry after Retry-After seconds",
                retry_after=self.retry_after(),
            )
        waiter = _Waiter(key, asyncio.get_running_loop().create_future())
        self._keys.setdefault(key, deque()).append(waiter)
        self._waiting += 1
        try:
            async with asyncio.timeout(self.max_wait):
                await waiter.future
        except TimeoutError:
            if self._granted(waiter):  # the slot came as the clock ran out: keep it
                return self._lease(key)
            self._remove(waiter)
            raise QueueTimeoutError(
                f"waited {self.max_wait:g} s for the {self.name} without getting a turn",
                hint="the service is busy: retry after Retry-After seconds",
                retry_after=self.retry_after(),
            ) from None
        except asyncio.CancelledError:
            if self._granted(waiter):  # granted, but nobody will use it: pass it on
                self._lease(key).release()
            else:
                self._remove(waiter)
            raise
        return self._lease(key)

    @asynccontextmanager
    async def slot(self, key: str) -> AsyncIterator[Lease]:
        lease = await self.acquire(key)
        try:
            yield lease
        finally:
            lease.release()

    # --- internals ---------------------------------------------------------------------------

    @staticmethod
    def _granted(waiter: _Waiter) -> bool:
        return waiter.future.done() and not waiter.future.cancelled()

    def _grant(self, key: str) -> Lease:
        self._active += 1
        return self._lease(key)

    def _lease(self, key: str) -> Lease:
        # _active was already counted by _grant or by _release handing the slot over.
        return Lease(self, key, self._clock())

    def _remove(self, waiter: _Waiter) -> None:
        queue = self._keys.get(waiter.key)
        if queue is not None and waiter in queue:
            queue.remove(waiter)
            self._waiting -= 1
            if not queue:
                del self._keys[waiter.key]

    def _next(self) -> _Waiter | None:
        """The first waiter of the key whose turn it is; that key then goes to the back."""
        while self._keys:
            key, queue = next(iter(self._keys.items()))
            waiter = queue.popleft()
            self._waiting -= 1
            if queue:
                self._keys.move_to_end(key)
            else:
                del self._keys[key]
            if not waiter.future.done():
                return waiter
        return None

    def _release(self, lease: Lease) -> None:
        held = max(0.0, self._clock() - lease.started)
        self._service_s = 0.7 * self._service_s + 0.3 * held
        waiter = self._next()
        if waiter is None:
            self._active -= 1
        else:
            waiter.future.set_result(None)  # the slot passes straight to the waiter
