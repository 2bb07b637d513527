"""Builds an assistant's ResponseCache from its CacheSettings (the one call the pipeline makes)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from acllm.cache.cache import ResponseCache
from acllm.cache.settings import CacheSettings
from acllm.cache.store import CacheStore
from acllm.config import env_secret
from acllm.errors import ConfigError

if TYPE_CHECKING:
    from acllm.runtime import Runtime


def open_store(
    settings: CacheSettings,
    *,
    data_dir: Path,
    redis_url: str | None = None,
    redis_password: str | None = None,
) -> CacheStore:
    """The configured store. SQLite opens lazily and Redis connects lazily: neither fails here
    when the file or the server is unavailable (lookups miss until it is back).

    ``redis_url``/``redis_password`` are the fallback for backend = "redis" without cache.url or
    cache.url_env: the [kv] Redis (see ``open_cache``).
    """
    if settings.backend == "sqlite":
        from acllm.cache.store_sqlite import SqliteCacheStore

        path = Path(settings.path).expanduser() if settings.path else data_dir / "cache.sqlite"
        return SqliteCacheStore(path)
    from acllm.cache.store_redis import RedisCacheStore
    from acllm.kv.redis import url_problem

    if settings.url is not None:
        problem = url_problem(settings.url)
        if problem is not None:
            raise ConfigError("cache.url", f"the Redis URL {problem}")
        return RedisCacheStore(settings.url, prefix=settings.prefix)
    if settings.url_env is not None:
        url = env_secret(settings.url_env, "cache.url_env", example="redis://HOST:6379/0")
        assert url is not None  # a named variable is set, or env_secret raised
        return RedisCacheStore(url, prefix=settings.prefix)  # a secret may live in the variable
    if redis_url is None:
        raise ConfigError(
            "cache.backend",
            'backend = "redis" needs cache.url, cache.url_env or a [kv] section with backend = '
            '"redis"',
        )
    return RedisCacheStore(redis_url, password=redis_password, prefix=settings.prefix)


def open_cache(settings: CacheSettings, runtime: Runtime) -> ResponseCache:
    """The assistant's cache: its file in the runtime's data_dir, or the configured Redis (by
    default the one [kv] uses, with its password_env)."""
    redis_url: str | None = None
    password: str | None = None
    kv = runtime.settings.kv
    if settings.backend == "redis" and kv.backend == "redis":
        from acllm.kv.redis import RedisOptions

        options = RedisOptions.model_validate(kv.options())
        redis_url = options.url
        if options.password_env:
            password = os.environ.get(options.password_env) or None
    store = open_store(
        settings, data_dir=runtime.data_dir, redis_url=redis_url, redis_password=password
    )
    return ResponseCache(store, settings=settings)


def build_cache(
    settings: CacheSettings,
    *,
    data_dir: Path,
    redis_url: str | None = None,
    redis_password: str | None = None,
) -> ResponseCache:
    """A cache without a Runtime (tests, benchmarks, other embedders of acllm)."""
    store = open_store(
        settings, data_dir=data_dir, redis_url=redis_url, redis_password=redis_password
    )
    return ResponseCache(store, settings=settings)
