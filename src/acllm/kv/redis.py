"""Redis KV: budgets, limits and caches shared by every worker process and every server replica.

Atomicity. ``incr`` is the primitive rate limits stand on, so it is one Lua script: Redis runs a
script alone, start to end, so read, check and write cannot interleave with any other client and
nothing needs retrying (a WATCH/MULTI/EXEC loop would re-run under contention, which is exactly
when limits are hot). The script checks the stored value with the same rule as the other backends
(``-?[0-9]+``, ASCII decimal), then uses INCRBY, so counters are exact 64-bit integers; it returns
the stored decimal string, not a Lua number, because Lua numbers are doubles. ``set_if_absent`` is
``SET NX PX``, already atomic.

Expiry is Redis's own (millisecond ``PX``, enforced by the server's clock, never by the clients'):
an expired key is missing to every command. ``set`` without a ttl clears any old expiry, and
``incr`` gives the ttl only to a key it creates; INCRBY keeps an existing key's expiry, so a fixed
window keeps its end. Counters are bounded by Redis's signed 64-bit integers (a UserError beyond).

Every key is stored under ``prefix`` (default ``acllm:``) so several apps or deployments can share
one Redis (``SELECT``-ed databases do not exist on Redis Cluster or many hosted services).

Connections come from a bounded, thread-safe pool (``max_connections`` per process; a forked child
gets a fresh pool). redis-py's automatic retries are turned off: re-sending a command whose reply
was lost could count an ``incr`` twice. A pooled connection the server has closed is still detected
and reopened before a command is sent, so a Redis restart costs no errors. Any failure to reach or
use Redis is a ServiceError naming the URL (never its password) and saying what to do.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import TracebackType
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic_core import PydanticCustomError

from acllm.config import env_secret
from acllm.errors import MissingExtraError, ServiceError, UserError
from acllm.kv.base import as_integer, check_key
from acllm.registry import Backend

if TYPE_CHECKING:
    from acllm.runtime import Runtime

DEFAULT_URL = "redis://127.0.0.1:6379/0"
SCHEMES = ("redis", "rediss", "unix")
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
MAX_PX = 2**62  # ms; Redis adds the clock to a PX and must stay within 64 bits

# KEYS[1] the key; ARGV[1] the amount (decimal), ARGV[2] the ttl in ms or "" for none.
# Returns the new value as a decimal string, or {value} when the stored value is not an integer.
_INCR = """
local raw = redis.call('GET', KEYS[1])
if not raw then
  if ARGV[2] == '' then
    redis.call('SET', KEYS[1], ARGV[1])
  else
    redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  end
  return ARGV[1]
end
local sign, digits = string.match(raw, '^(%-?)(%d+)$')
if not sign then
  return {raw}
end
-- INCRBY reads only canonical decimals; the other backends also take "007" and "-0".
digits = string.gsub(digits, '^0+', '')
local canonical = sign .. digits
if digits == '' then
  canonical = '0'
end
if canonical ~= raw then
  redis.call('SET', KEYS[1], canonical, 'KEEPTTL')
end
redis.call('INCRBY', KEYS[1], ARGV[1])
return redis.call('GET', KEYS[1])
"""

_UNREACHABLE_HINT = "start redis-server (or check that it is reachable) and check kv.url"


def redact_url(url: str) -> str:
    """The URL with any password replaced by ``***`` (in the authority or the query)."""
    try:
        parts = urlsplit(url)
        query = parse_qs(parts.query, keep_blank_values=True)
        netloc = parts.netloc
        if parts.password is not None:
            netloc = f"{parts.username or ''}:***@{netloc.rpartition('@')[2]}"
    except ValueError:  # a malformed port or host: nothing reliable to redact around
        return "(malformed Redis URL)"
    if "password" not in query and netloc == parts.netloc:
        return url
    if "password" in query:
        query["password"] = ["***"]
    pairs = "&".join(f"{k}={v}" for k, values in query.items() for v in values)
    # Built by hand: urlunsplit would drop the "//" of unix:///path when there is no host.
    return f"{parts.scheme}://{netloc}{parts.path}" + (f"?{pairs}" if pairs else "")


def url_problem(url: str) -> str | None:
    """Why ``url`` cannot be a config's Redis URL, or None when it can."""
    try:
        parts = urlsplit(url)
        has_password = parts.password is not None or "password" in parse_qs(parts.query)
        parts.port  # noqa: B018  (reading it checks it: "port out of range", not a number)
    except ValueError as exc:
        return f"is not a valid URL ({exc})"
    if parts.scheme not in SCHEMES:
        return (
            "is not a Redis URL: use redis://HOST:PORT/DB, rediss://HOST:PORT/DB (TLS) or "
            "unix:///path/to/redis.sock"
        )
    if has_password:
        return (
            "holds a password, and secrets are not written in the config: drop it from the URL "
            'and set password_env = "VARIABLE" (a user name may stay: redis://USER@HOST:6379/0)'
        )
    return None


def _px(ttl: float | None) -> int | None:
    """A checked ttl in seconds as Redis milliseconds (at least 1: PX 0 is an error)."""
    if ttl is None:
        return None
    if ttl * 1000 >= MAX_PX:  # also infinity
        raise UserError(
            f"KV ttl {ttl!r} is too large for Redis, which keeps expiries in 64-bit milliseconds",
            hint="use ttl=None for a key that never expires",
        )
    return max(1, math.ceil(ttl * 1000))


class RedisKV:
    """A KV on Redis. ``url``: ``redis://[USER@]HOST:PORT/DB``, ``rediss://`` or ``unix://``."""

    def __init__(
        self,
        url: str = DEFAULT_URL,
        *,
        password: str | None = None,
        prefix: str = "acllm:",
        socket_timeout: float = 5.0,
        connect_timeout: float = 2.0,
        max_connections: int = 32,
    ) -> None:
        try:
            import redis
            from redis.backoff import NoBackoff
            from redis.retry import Retry
        except ImportError as exc:
            raise MissingExtraError("redis", "redis") from exc
        self.url = redact_url(url)
        self.prefix = prefix
        self._prefix = prefix.encode("utf-8")
        self._errors = redis.exceptions
        self._lock = threading.Lock()
        self._closed = False
        try:
            self._pool: Any = redis.BlockingConnectionPool.from_url(
                url,
                password=password,
                socket_timeout=socket_timeout,
                socket_connect_timeout=connect_timeout,
                max_connections=max_connections,
                timeout=socket_timeout,  # the longest wait for a free pooled connection
                retry=Retry(NoBackoff(), 0),  # a resent incr could count twice: see above
                client_name="acllm",
            )
        except ValueError as exc:
            raise UserError(
                f"invalid Redis URL {self.url}: {exc}",
                hint="use redis://HOST:PORT/DB, rediss://HOST:PORT/DB or unix:///path.sock",
            ) from exc
        self._client: Any = redis.Redis(connection_pool=self._pool)
        self._incr = self._client.register_script(_INCR)
        try:
            with self._redis():
                self._client.ping()  # fail at start-up, not on the first request
        except BaseException:
            self.close()
            raise

    @contextmanager
    def _redis(self) -> Iterator[None]:
        """Runs Redis calls; their failures become ServiceError naming the URL and a remedy."""
        if self._closed:
            raise ServiceError(f"the KV store at {self.url} is closed")
        errors = self._errors
        try:
            yield
        except errors.AuthenticationError as exc:
            raise ServiceError(
                f"Redis at {self.url} refused the credentials: {exc}",
                hint="set kv.password_env to the variable holding the password (and the user "
                "in kv.url if it has one)",
            ) from exc
        except (errors.ConnectionError, errors.TimeoutError) as exc:
            if str(exc) == "No connection available.":
                raise ServiceError(
                    f"every pooled connection to Redis at {self.url} stayed busy: {exc}",
                    hint="raise kv.max_connections or check why Redis answers slowly",
                ) from exc
            raise ServiceError(
                f"cannot reach Redis at {self.url}: {exc}", hint=_UNREACHABLE_HINT
            ) from exc
        except errors.RedisError as exc:
            raise ServiceError(f"Redis at {self.url} failed: {exc}") from exc

    def _key(self, key: str) -> bytes:
        try:
            return self._prefix + key.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise UserError(f"KV keys must be valid Unicode text, got {key!r}") from exc

    def get(self, key: str) -> bytes | None:
        check_key(key)
        k = self._key(key)
        with self._redis():
            value = self._client.get(k)
        return None if value is None else bytes(value)

    def set(self, key: str, value: bytes, ttl: float | None = None) -> None:
        check_key(key, ttl)
        k, px, data = self._key(key), _px(ttl), bytes(value)
        with self._redis():
            self._client.set(k, data, px=px)  # a plain SET also clears an old expiry

    def set_if_absent(self, key: str, value: bytes, ttl: float | None = None) -> bool:
        check_key(key, ttl)
        k, px, data = self._key(key), _px(ttl), bytes(value)
        with self._redis():
            return bool(self._client.set(k, data, px=px, nx=True))

    def incr(self, key: str, amount: int = 1, ttl: float | None = None) -> int:
        check_key(key, ttl)
        if not isinstance(amount, int) or isinstance(amount, bool):
            raise UserError(f"KV incr amount must be an integer, got {amount!r}")
        if not INT64_MIN <= amount <= INT64_MAX:
            raise UserError(f"KV incr amount {amount} is outside Redis's 64-bit integer range")
        k, px = self._key(key), _px(ttl)
        with self._redis():
            try:
                reply = self._incr(keys=[k], args=[str(amount), "" if px is None else str(px)])
            except self._errors.ResponseError as exc:
                # After the script's own integer check, INCRBY fails only on 64-bit overflow.
                if "overflow" in str(exc) or "out of range" in str(exc):
                    raise UserError(
                        f"KV incr of key {key!r} by {amount} leaves Redis's 64-bit integer range"
                    ) from None
                raise
        if isinstance(reply, list):  # the stored value is not an integer
            as_integer(key, bytes(reply[0]))  # raises the same UserError as every backend
            raise ServiceError(f"Redis at {self.url}: incr script rejected {reply[0]!r}")
        return int(reply)

    def delete(self, key: str) -> bool:
        check_key(key)
        k = self._key(key)
        with self._redis():
            return int(self._client.delete(k)) > 0

    def ttl(self, key: str) -> float | None:
        check_key(key)
        k = self._key(key)
        with self._redis():
            ms = int(self._client.pttl(k))
        if ms == -2:
            raise KeyError(key)
        return None if ms == -1 else max(0.0, ms / 1000)

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self._client.close()
        self._pool.disconnect()  # the client does not own a pool it was given

    def __enter__(self) -> RedisKV:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


class RedisOptions(BaseModel):
    """``[kv] backend = "redis"`` options. The URL holds no password: use password_env."""

    model_config = ConfigDict(extra="forbid")
    url: str = DEFAULT_URL
    password_env: str | None = None  # name of the environment variable holding the password
    prefix: str = "acllm:"  # every key is stored under it, so apps can share one Redis
    socket_timeout: float = Field(default=5.0, gt=0)  # seconds for one command's reply
    connect_timeout: float = Field(default=2.0, gt=0)  # seconds to open a connection
    max_connections: int = Field(default=32, ge=1)  # per process

    @field_validator("url")
    @classmethod
    def _check_url(cls, url: str) -> str:
        problem = url_problem(url)
        if problem is not None:
            # A custom error keeps the message free of pydantic's "Value error," and of the URL.
            raise PydanticCustomError("redis_url", "the Redis URL {problem}", {"problem": problem})
        return url


def build(options: RedisOptions, runtime: Runtime) -> RedisKV:
    password = env_secret(options.password_env, "kv.password_env")
    return RedisKV(
        options.url,
        password=password,
        prefix=options.prefix,
        socket_timeout=options.socket_timeout,
        connect_timeout=options.connect_timeout,
        max_connections=options.max_connections,
    )


BACKEND = Backend(
    "kv",
    "redis",
    RedisOptions,
    build,
    "Redis (shared by every worker and replica); needs acllm[redis]",
)
