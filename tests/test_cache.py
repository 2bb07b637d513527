"""The response cache: both stores through the conformance suite, then failures for real.

Redis runs as a real redis-server (tests/redisserver.py); failure tests stop their own server
mid-test. SQLite failures write garbage over the file or its rows.
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from pydantic import ValidationError

from acllm.cache import (
    CacheScope,
    CacheSettings,
    ResponseCache,
    build_cache,
    open_store,
)
from acllm.cache.scope import question_key
from acllm.cache.store import CacheStore
from acllm.cache.store_redis import RedisCacheStore
from acllm.cache.store_sqlite import SqliteCacheStore
from acllm.cache.text import exact_form
from acllm.cache.verify import MIN_SCORE
from acllm.errors import ConfigError
from conformance.cache_suite import SCOPE, CacheConcurrency, CacheStoreConformance, near, unit
from redisserver import RedisServer, redis_server_fixture, started  # noqa: F401  (a fixture)

_prefixes = itertools.count()


class TestSqliteCacheStore(CacheStoreConformance, CacheConcurrency):
    @pytest.fixture
    def store(self, tmp_path: Path) -> Iterator[CacheStore]:
        store = SqliteCacheStore(tmp_path / "cache.sqlite")
        yield store
        store.close()

    def corrupt(self, store: CacheStore, scope: str, entry_id: int, what: str) -> None:
        assert isinstance(store, SqliteCacheStore)
        with sqlite3.connect(store.path) as conn:
            column, value = ("payload", b"{not json") if what == "payload" else ("vector", b"xyz")
            conn.execute(f"UPDATE entries SET {column} = ? WHERE id = ?", (value, entry_id))


class TestRedisCacheStore(CacheStoreConformance, CacheConcurrency):
    @pytest.fixture
    def store(self, redis_server: RedisServer) -> Iterator[CacheStore]:
        store = RedisCacheStore(redis_server.url, prefix=f"t{next(_prefixes)}-{os.getpid()}:cache:")
        yield store
        store.clear()
        store.close()

    def corrupt(self, store: CacheStore, scope: str, entry_id: int, what: str) -> None:
        assert isinstance(store, RedisCacheStore)
        client = redis.Redis.from_url(store.url)
        base = f"{store.prefix}{scope}"
        if what == "payload":
            client.hset(f"{base}:e:{entry_id}", "payload", b"\xff{not json")
        else:
            client.hset(f"{base}:v", str(entry_id), b"xyz")
        client.close()


# -- scope, text, settings -----------------------------------------------------------------------


def test_scope_key_covers_every_field() -> None:
    base = CacheScope.of(
        assistant="a", index_version="1", system_prompt="You help.", model="m", history=""
    )
    assert base.key() == CacheScope("a", "1", base.system_prompt, "m").key()
    assert len(base.key()) == 32 and base.conversation == ""
    variants = [
        CacheScope.of(assistant="b", index_version="1", system_prompt="You help.", model="m"),
        CacheScope.of(assistant="a", index_version="2", system_prompt="You help.", model="m"),
        CacheScope.of(assistant="a", index_version="1", system_prompt="You help!", model="m"),
        CacheScope.of(assistant="a", index_version="1", system_prompt="You help.", model="n"),
        CacheScope.of(
            assistant="a", index_version="1", system_prompt="You help.", model="m", tenant="k"
        ),
        CacheScope.of(
            assistant="a", index_version="1", system_prompt="You help.", model="m", history="hi"
        ),
    ]
    assert len({v.key() for v in [base, *variants]}) == 7
    # Fields are length-prefixed: moving a character between fields changes the key.
    assert CacheScope("ab", "c", "", "").key() != CacheScope("a", "bc", "", "").key()


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("¿Cómo estás?", "cómo estás"),
        ("What is  the\tfee?", "what is the fee"),
        ("ＡＢＣ １２３", "abc 123"),  # full-width forms (NFKC)
        ("pass\u200bword\u2060 reset\ufeff", "password reset"),
        ("Straße", "strasse"),  # casefold
    ],
)
def test_exact_form_equal(a: str, b: str) -> None:
    assert exact_form(a) == exact_form(b)
    assert question_key(a) == question_key(b)


@pytest.mark.parametrize(("a", "b"), [("¿Sí?", "¿Si?"), ("más", "mas"), ("2 kg", "2 lb")])
def test_exact_form_keeps_meaning(a: str, b: str) -> None:
    assert exact_form(a) != exact_form(b)


def test_settings_defaults_and_checks() -> None:
    s = CacheSettings()
    assert (s.enabled, s.semantic, s.verify, s.backend) == (False, True, True, "sqlite")
    assert s.min_score == MIN_SCORE  # the default is the threshold chosen in bench/cache.py
    with pytest.raises(ValidationError):
        CacheSettings(threshold=1.5)
    with pytest.raises(ValidationError):
        CacheSettings(unknown=1)  # type: ignore[call-arg]
    with pytest.raises(ValidationError):
        CacheSettings(url="redis://x", url_env="X", backend="redis")
    with pytest.raises(ValidationError):
        CacheSettings(url="redis://x")  # a URL needs backend = "redis"
    with pytest.raises(ValidationError):
        s.enabled = True  # type: ignore[misc]  # frozen


def test_build_cache(
    tmp_path: Path, redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = build_cache(CacheSettings(enabled=True), data_dir=tmp_path)
    cache.store(SCOPE, "q", {"a": 1})
    assert (tmp_path / "cache.sqlite").exists()
    cache.close()
    with pytest.raises(ConfigError, match="ACLLM_TEST_CACHE_URL"):
        open_store(
            CacheSettings(backend="redis", url_env="ACLLM_TEST_CACHE_URL"), data_dir=tmp_path
        )
    with pytest.raises(ConfigError):
        open_store(CacheSettings(backend="redis"), data_dir=tmp_path)
    monkeypatch.setenv("ACLLM_TEST_CACHE_URL", redis_server.url)
    settings = CacheSettings(
        enabled=True, backend="redis", url_env="ACLLM_TEST_CACHE_URL", prefix="build-test:"
    )
    shared = build_cache(settings, data_dir=tmp_path)
    shared.store(SCOPE, "q", {"a": 2})
    hit = build_cache(settings, data_dir=tmp_path).lookup(SCOPE, "q")
    assert hit is not None and hit.payload == {"a": 2}
    shared.forget()
    shared.close()


# -- a store that is down ------------------------------------------------------------------------


def _warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "acllm.cache"]


def test_redis_stopped_mid_test_degrades_to_miss_and_warns_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="acllm.cache")
    server = started(RedisServer())
    try:
        cache = ResponseCache(RedisCacheStore(server.url), settings=CacheSettings(enabled=True))
        cache.store(SCOPE, "How do I reset my password?", {"a": 1}, unit(1))
        assert cache.lookup(SCOPE, "How do I reset my password?") is not None
        port = server.port
        server.stop()
        for _ in range(3):
            assert cache.lookup(SCOPE, "How do I reset my password?", unit(1)) is None
            cache.store(SCOPE, "Where is my order?", {"a": 2}, unit(2))  # no exception
        assert cache.forget() == 0
        warned = _warnings(caplog)
        assert len(warned) == 1 and "unavailable" in warned[0]
        server = started(RedisServer(port=port))  # back, empty: the cache works again
        cache.store(SCOPE, "Where is my order?", {"a": 2}, unit(2))
        assert cache.lookup(SCOPE, "Where's my order?", near(unit(2), 1)) is not None
        assert "available again" in _warnings(caplog)[-1]
        cache.close()
    finally:
        server.stop()


def test_sqlite_file_unreadable_degrades_to_miss(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="acllm.cache")
    path = tmp_path / "cache.sqlite"
    path.write_bytes(b"this is not an SQLite database, just garbage " * 100)
    cache = ResponseCache(SqliteCacheStore(path), settings=CacheSettings(enabled=True))
    for _ in range(3):
        cache.store(SCOPE, "q", {"a": 1}, unit(1))
        assert cache.lookup(SCOPE, "q", unit(1)) is None
    assert len(_warnings(caplog)) == 1


def test_sqlite_file_overwritten_while_open_degrades_to_miss(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="acllm.cache")
    path = tmp_path / "cache.sqlite"
    store = SqliteCacheStore(path)
    cache = ResponseCache(store, settings=CacheSettings(enabled=True))
    cache.store(SCOPE, "q", {"a": 1}, unit(1))
    assert cache.lookup(SCOPE, "q") is not None
    store.close()  # the process keeps the cache object; the file is destroyed under it
    path.write_bytes(b"\x00garbage" * 4096)
    for suffix in ("-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    broken = ResponseCache(SqliteCacheStore(path), settings=CacheSettings(enabled=True))
    assert broken.lookup(SCOPE, "q", unit(1)) is None
    broken.store(SCOPE, "q", {"a": 2}, unit(1))
    assert cache.lookup(SCOPE, "q", unit(1)) is None  # closed store: a miss, not an error
    assert 1 <= len(_warnings(caplog)) <= 2  # once per cache object


def test_vector_of_another_length_is_a_miss_and_evicted(tmp_path: Path) -> None:
    store = SqliteCacheStore(tmp_path / "c.sqlite")
    cache = ResponseCache(store, settings=CacheSettings(enabled=True))
    cache.store(SCOPE, "How do I reset my password?", {"a": 1}, unit(1, dim=16))
    cache.store(SCOPE, "Where is my order?", {"a": 2}, unit(2, dim=32))
    assert cache.lookup(SCOPE, "How can I reset my password?", unit(1, dim=32)) is None
    assert [len(v) for _, v in store.vectors(SCOPE.key(), 0).rows] == [4 * 32]
    assert cache.lookup(SCOPE, "Where's my order?", near(unit(2, dim=32), 1)) is not None


def test_hit_metadata_is_json_ready(tmp_path: Path) -> None:
    cache = ResponseCache(
        SqliteCacheStore(tmp_path / "c.sqlite"), settings=CacheSettings(enabled=True)
    )
    cache.store(SCOPE, "How do I reset my password?", {"a": 1}, unit(1))
    time.sleep(0.05)
    hit = cache.lookup(SCOPE, "How can I reset my password?", near(unit(1), 2))
    assert hit is not None
    meta = hit.as_dict()
    assert meta["kind"] == "semantic" and meta["matched_question"] == "How do I reset my password?"
    assert 0.9 < meta["similarity"] < 1 and meta["age_s"] >= 0
    assert meta["verifier_score"] >= CacheSettings().min_score
    assert json.loads(json.dumps(meta)) == meta


def test_open_cache_from_a_runtime(home: Path, redis_server: RedisServer) -> None:
    from acllm.cache import open_cache
    from acllm.config import load_settings
    from acllm.runtime import Runtime

    runtime = Runtime()
    cache = open_cache(CacheSettings(enabled=True), runtime)
    cache.store(SCOPE, "q", {"a": 1})
    assert (runtime.data_dir / "cache.sqlite").exists()
    cache.close()
    with pytest.raises(ConfigError):  # Redis wanted, but no URL anywhere
        open_cache(CacheSettings(enabled=True, backend="redis"), runtime)
    (home / "acllm.toml").write_text(f'[kv]\nbackend = "redis"\nurl = "{redis_server.url}"\n')
    runtime = Runtime(load_settings())
    shared = open_cache(CacheSettings(enabled=True, backend="redis", prefix="rt:"), runtime)
    shared.store(SCOPE, "q", {"a": 2})
    hit = shared.lookup(SCOPE, "Q")
    assert hit is not None and hit.payload == {"a": 2}
    shared.forget()
    shared.close()
