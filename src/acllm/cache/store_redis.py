"""The shared cache store: Redis, so every worker and replica serves the same cached answers.

Layout under ``prefix`` (default ``acllm:cache:``), per scope S:

- ``S:e:ID``  hash: question, payload, created, key (expires with the entry's TTL)
- ``S:x:KEY`` the id stored under an exact key (same TTL)
- ``S:v``     hash id -> float32 vector, read client-side (bounded by max_entries)
- ``S:ids``   sorted set of ids by id (vectors added after id N: one range read)
- ``S:lru``   sorted set of ids by last use (eviction order)
- ``S:removed`` counter of removals; ``seq`` (one key) hands out ids that only grow.

``put`` is one Lua script (replace, insert, evict in one step, alone on the server). An entry that
expired leaves its vector behind until a reader meets it (``drop``) or eviction pops it, so the
vector hash never outgrows max_entries. The scope's bookkeeping keys expire ``ttl`` after the last
``put`` (at least a day), so scopes no one uses any more (old conversations) do not pile up.
redis-py is imported here only (the ``acllm[redis]`` extra); it connects lazily, so a Redis that is
down fails each call (the cache serves a miss) and a Redis that comes back is used again.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from acllm.cache.store import RawEntry, VectorRows
from acllm.errors import MissingExtraError
from acllm.kv.redis import redact_url

KEEP_SCOPE_S = 86400.0  # bookkeeping of a scope lives at least this long after its last put

# ARGV: base, key, question, payload, vector ('' for none), now, ttl_ms ('' for none),
# max_entries, keep_ms. KEYS[1]: the global id counter. Returns the new id.
_PUT = """
local base = ARGV[1]
local removed = 0
local function remove(id)
  local k = redis.call('HGET', base .. ':e:' .. id, 'key')
  if k and redis.call('GET', base .. ':x:' .. k) == tostring(id) then
    redis.call('DEL', base .. ':x:' .. k)
  end
  redis.call('DEL', base .. ':e:' .. id)
  redis.call('HDEL', base .. ':v', id)
  redis.call('ZREM', base .. ':ids', id)
  redis.call('ZREM', base .. ':lru', id)
  removed = removed + 1
end
local old = redis.call('GET', base .. ':x:' .. ARGV[2])
if old then remove(old) end
local id = redis.call('INCR', KEYS[1])
local entry = base .. ':e:' .. id
redis.call('HSET', entry, 'question', ARGV[3], 'payload', ARGV[4], 'created', ARGV[6],
           'key', ARGV[2])
if ARGV[5] ~= '' then redis.call('HSET', base .. ':v', id, ARGV[5]) end
redis.call('ZADD', base .. ':ids', id, id)
redis.call('ZADD', base .. ':lru', ARGV[6], id)
if ARGV[7] ~= '' then
  redis.call('PEXPIRE', entry, ARGV[7])
  redis.call('SET', base .. ':x:' .. ARGV[2], id, 'PX', ARGV[7])
else
  redis.call('SET', base .. ':x:' .. ARGV[2], id)
end
local over = redis.call('ZCARD', base .. ':lru') - tonumber(ARGV[8])
if over > 0 then
  local victims = redis.call('ZRANGE', base .. ':lru', 0, over - 1)
  for _, victim in ipairs(victims) do remove(victim) end
end
if removed > 0 then redis.call('INCRBY', base .. ':removed', removed) end
for _, suffix in ipairs({':v', ':ids', ':lru', ':removed'}) do
  if redis.call('EXISTS', base .. suffix) == 1 then
    redis.call('PEXPIRE', base .. suffix, ARGV[9])
  end
end
return id
"""

# ARGV: base, ids... Removes entries and counts them. Returns how many existed.
_DROP = """
local base = ARGV[1]
local n = 0
for i = 2, #ARGV do
  local id = ARGV[i]
  local k = redis.call('HGET', base .. ':e:' .. id, 'key')
  if k and redis.call('GET', base .. ':x:' .. k) == id then redis.call('DEL', base .. ':x:' .. k) end
  redis.call('DEL', base .. ':e:' .. id)
  n = n + redis.call('ZREM', base .. ':ids', id)
  redis.call('HDEL', base .. ':v', id)
  redis.call('ZREM', base .. ':lru', id)
end
if n > 0 then redis.call('INCRBY', base .. ':removed', n) end
return n
"""


# ARGV: base, key, now. Returns the entry's id and fields (flat), or nil: one round trip.
_GET = """
local base = ARGV[1]
local id = redis.call('GET', base .. ':x:' .. ARGV[2])
if not id then return nil end
local fields = redis.call('HGETALL', base .. ':e:' .. id)
if #fields == 0 then return nil end
redis.call('ZADD', base .. ':lru', 'XX', ARGV[3], id)
return {id, fields}
"""


class RedisCacheStore:
    def __init__(
        self,
        url: str,
        *,
        password: str | None = None,
        prefix: str = "acllm:cache:",
        socket_timeout: float = 0.5,
        connect_timeout: float = 0.5,
    ) -> None:
        try:
            import redis
        except ImportError as exc:
            raise MissingExtraError("redis", "redis") from exc
        self.url = redact_url(url)
        self.prefix = prefix
        # Short time-outs: a cache that answers slowly is worse than none. No retries.
        self._client: Any = redis.Redis.from_url(
            url,
            password=password,
            socket_timeout=socket_timeout,
            socket_connect_timeout=connect_timeout,
            retry_on_timeout=False,
            client_name="acllm-cache",
        )
        self._put = self._client.register_script(_PUT)
        self._drop = self._client.register_script(_DROP)
        self._get = self._client.register_script(_GET)

    def _base(self, scope: str) -> str:
        return f"{self.prefix}{scope}"

    def _entry(self, entry_id: int, fields: dict[bytes, bytes]) -> RawEntry:
        try:
            return RawEntry(
                entry_id,
                fields[b"question"].decode("utf-8"),
                bytes(fields[b"payload"]),
                float(fields[b"created"]),
            )
        except (KeyError, ValueError):  # a hash someone else wrote, half an entry: corrupt
            return RawEntry(entry_id, "", b"", math.nan)

    def get(self, scope: str, key: str, now: float) -> RawEntry | None:
        found = self._get(keys=[], args=[self._base(scope), key, repr(now)])
        if not found:
            return None
        raw_id, flat = found
        try:
            entry_id = int(raw_id)
        except ValueError:  # not an id acllm wrote: drop the exact key
            self._client.delete(f"{self._base(scope)}:x:{key}")
            return None
        return self._entry(entry_id, dict(zip(flat[::2], flat[1::2], strict=True)))

    def fetch(self, scope: str, ids: Sequence[int], now: float) -> list[RawEntry]:
        if not ids:
            return []
        base = self._base(scope)
        pipe = self._client.pipeline(transaction=False)
        for entry_id in ids:
            pipe.hgetall(f"{base}:e:{entry_id}")
        found = pipe.execute()
        out = []
        for entry_id, fields in zip(ids, found, strict=True):
            if fields:
                out.append(self._entry(entry_id, fields))
        return out

    def vectors(self, scope: str, after: int) -> VectorRows:
        base = self._base(scope)
        pipe = self._client.pipeline(transaction=False)
        pipe.get(f"{base}:removed")
        pipe.zrangebyscore(f"{base}:ids", f"({after}", "+inf")
        removed, ids = pipe.execute()
        rows: list[tuple[int, bytes]] = []
        if ids:
            blobs = self._client.hmget(f"{base}:v", ids)
            rows = [(int(i), bytes(b)) for i, b in zip(ids, blobs, strict=True) if b is not None]
        return VectorRows(int(removed or 0), rows)

    def put(
        self,
        scope: str,
        key: str,
        entry: RawEntry,
        vector: bytes | None,
        *,
        ttl_s: float | None,
        max_entries: int,
    ) -> int:
        ttl_ms = "" if ttl_s is None else str(max(1, math.ceil(ttl_s * 1000)))
        keep_ms = str(math.ceil(max(ttl_s or 0.0, KEEP_SCOPE_S) * 1000))
        args: list[str | bytes] = [
            self._base(scope),
            key,
            entry.question,
            entry.payload,
            vector or b"",
            repr(entry.created),
            ttl_ms,
            str(max_entries),
            keep_ms,
        ]
        return int(self._put(keys=[f"{self.prefix}seq"], args=args))

    def touch(self, scope: str, entry_id: int, now: float) -> None:
        self._client.zadd(f"{self._base(scope)}:lru", {str(entry_id): now}, xx=True)

    def drop(self, scope: str, ids: Sequence[int]) -> None:
        if ids:
            self._drop(keys=[], args=[self._base(scope), *map(str, ids)])

    def clear(self, scope: str | None = None) -> int:
        pattern = f"{self._base(scope)}:*" if scope else f"{self.prefix}*"
        entries: dict[str, int] = {}  # base -> entries removed there
        for raw in self._client.scan_iter(match=pattern, count=500):
            name = raw.decode("utf-8")
            if name == f"{self.prefix}seq" or name.endswith(":removed"):
                continue  # ids must keep growing; counters tell readers to rebuild
            scope_name, _, rest = name[len(self.prefix) :].partition(":")
            base = self._base(scope_name)
            entries[base] = entries.get(base, 0) + rest.startswith("e:")
            self._client.delete(name)
        for base, n in entries.items():
            self._client.incrby(f"{base}:removed", max(n, 1))
        return sum(entries.values())

    def close(self) -> None:
        self._client.close()
