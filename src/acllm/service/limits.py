"""Per-key budgets (requests and tokens per minute) and usage per key per day, kept in the KV.

Every counter lives in the KV and changes only through its atomic ``incr``, so all workers, and all
replicas on a shared Redis, spend one budget; nothing is counted per process.

The scheme is the sliding-window approximation: two fixed one-minute counters per key and budget,
this minute's and the last one's, and the spend at time ``t`` is::

    previous * (1 - elapsed_in_this_minute / 60) + current

that is, the previous minute's use is taken as evenly spread and only the part still inside the
last 60 seconds counts. It needs one ``incr`` and one ``get`` per check on any KV backend (an exact
sliding log needs sorted sets or scripts that the SQLite and memory backends lack) and constant
space per key. A plain fixed window would let a client spend twice its budget across a window edge;
this caps the burst near the budget, off only by how unevenly the last minute was spent. With an
empty previous minute it is exact: ``incr`` hands every request its rank, so rpm=50 admits exactly
50 however many processes race. A refused request is uncounted again, so hammering does not push
the wait further out.

Windows are numbered from the wall clock (``time.time``, injectable): every process must agree on
where a minute starts. TTLs only collect old counters; they never decide a budget.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime

from acllm.errors import OverBudgetError, UserError
from acllm.kv.base import KV, as_integer

WINDOW_S = 60.0
WINDOW_TTL_S = 2 * WINDOW_S + 30  # a window is read as "previous" for one more window
USAGE_KEEP_DAYS = 90
USAGE_TTL_S = (USAGE_KEEP_DAYS + 1) * 86400.0
_DAY = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_EPS = 1e-6  # float slack: at the moment retry_after names, the request fits


@dataclass(frozen=True)
class Usage:
    """One key's use on one UTC day."""

    key_id: str
    day: str  # YYYY-MM-DD, UTC
    requests: int  # admitted
    tokens: int  # charged (prompt + answer)
    refused: int  # turned away over budget

    def as_dict(self) -> dict[str, str | int]:
        return asdict(self)


def parse_day(day: str) -> date:
    """A UTC day given as YYYY-MM-DD; UserError otherwise."""
    try:
        if _DAY.fullmatch(day):  # fromisoformat alone also takes "20240131" and "2024-W05-3"
            return date.fromisoformat(day)
    except ValueError:
        pass
    raise UserError(f"invalid day {day!r}", hint="give a UTC date as YYYY-MM-DD")


def _wait(prev: int, cur: int, frac: float, need: int, limit: int) -> float:
    """Windows (fractions of one) until ``need`` more fits, if nothing else is spent meanwhile."""
    room = limit - need - cur
    if room >= 0:  # this window has room: wait until the previous one's share shrinks to it
        return max(0.0, 1 - room / prev - frac) if prev > 0 else 0.0
    # This window alone is too full: it must become the previous one, and its share shrink.
    return (1 - frac) + max(0.0, 1 - (limit - need) / cur)


def _retry_after(prev: int, cur: int, frac: float, need: int, limit: int) -> float:
    """Seconds to wait, rounded up to the millisecond (float noise would turn 80 into 81 s)."""
    return math.ceil(_wait(prev, cur, frac, need, limit) * WINDOW_S * 1000 - 1e-6) / 1000


def _seconds(retry_after: float) -> int:
    return max(1, math.ceil(retry_after))  # as the Retry-After header will say it


class Budgets:
    """Requests and tokens per minute per key, and usage per key per day, on any KV backend."""

    def __init__(self, kv: KV, *, clock: Callable[[], float] = time.time) -> None:
        self._kv = kv
        self._clock = clock

    def _position(self) -> tuple[int, float, float]:
        """The current window's number, how far into it we are (0..1), and the time."""
        now = self._clock()
        window = math.floor(now / WINDOW_S)
        return window, now / WINDOW_S - window, now

    def _read(self, key: str) -> int:
        raw = self._kv.get(key)
        return 0 if raw is None else as_integer(key, raw)

    def today(self) -> date:
        """The current UTC day, by this object's clock."""
        return datetime.fromtimestamp(self._clock(), UTC).date()

    def _count(self, key_id: str, metric: str, amount: int, now: float) -> None:
        day = datetime.fromtimestamp(now, UTC).date().isoformat()
        self._kv.incr(f"guard:usage:{key_id}:{day}:{metric}", amount, ttl=USAGE_TTL_S)

    def check_request(self, key_id: str, rpm: int | None) -> None:
        """Count one request; raise OverBudgetError (and count nothing) when rpm is spent."""
        window, frac, now = self._position()
        if rpm is not None:
            current = f"guard:rpm:{key_id}:{window}"
            prev = self._read(f"guard:rpm:{key_id}:{window - 1}")
            cur = self._kv.incr(current, 1, ttl=WINDOW_TTL_S)  # this request's rank
            if prev * (1 - frac) + cur > rpm + _EPS:
                self._kv.incr(current, -1, ttl=WINDOW_TTL_S)
                self._count(key_id, "refused", 1, now)
                retry = _retry_after(prev, cur - 1, frac, 1, rpm)
                raise OverBudgetError(
                    f"API key {key_id} has used its {rpm} requests per minute",
                    retry_after=retry,
                    hint=f"retry after {_seconds(retry)} s, or use a key with a higher rpm",
                )
        self._count(key_id, "requests", 1, now)

    def check_tokens(self, key_id: str, tpm: int | None, estimate: int) -> None:
        """Refuse a request whose prompt (``estimate`` tokens) does not fit the TPM budget left.

        Counts nothing: ``charge`` records what was actually used. A request costs at least one
        token, so an overdrawn budget refuses even requests of unknown size.
        """
        if tpm is None:
            return
        window, frac, now = self._position()
        need = max(estimate, 1)
        if need > tpm:  # no wait would help: say so instead of a 429 that invites retries
            self._count(key_id, "refused", 1, now)
            raise UserError(
                f"this request needs about {estimate} tokens but API key {key_id} may use only "
                f"{tpm} tokens per minute, so it can never be admitted",
                hint="shorten the input or lower max_tokens, or use a key with a higher tpm",
            )
        prev = self._read(f"guard:tpm:{key_id}:{window - 1}")
        cur = self._read(f"guard:tpm:{key_id}:{window}")
        if prev * (1 - frac) + cur + need > tpm + _EPS:
            self._count(key_id, "refused", 1, now)
            retry = _retry_after(prev, cur, frac, need, tpm)
            raise OverBudgetError(
                f"API key {key_id} has not enough of its {tpm} tokens per minute left for a "
                f"request of about {need} tokens",
                retry_after=retry,
                hint=f"retry after {_seconds(retry)} s, shorten the request, or use a key with a "
                "higher tpm",
            )

    def charge(self, key_id: str, tpm: int | None, tokens: int) -> None:
        """Record tokens actually used. It may overdraw the budget; the next request then waits."""
        if tokens < 0:
            raise ValueError(f"cannot charge a negative number of tokens ({tokens})")
        if tokens == 0:
            return
        window, _, now = self._position()
        if tpm is not None:  # an unlimited key needs no window counter
            self._kv.incr(f"guard:tpm:{key_id}:{window}", tokens, ttl=WINDOW_TTL_S)
        self._count(key_id, "tokens", tokens, now)

    def usage(self, key_id: str, day: date | str | None = None) -> Usage:
        """Requests, tokens and refusals of ``key_id`` on a UTC day (default: today)."""
        if day is None:
            day = self.today()
        when = (parse_day(day) if isinstance(day, str) else day).isoformat()
        prefix = f"guard:usage:{key_id}:{when}"
        return Usage(
            key_id=key_id,
            day=when,
            requests=self._read(f"{prefix}:requests"),
            tokens=self._read(f"{prefix}:tokens"),
            refused=self._read(f"{prefix}:refused"),
        )
