"""RedisKV on a real redis-server: the KV conformance suite, then what only Redis has.

One server runs for the session (tests/redisserver.py); every test gets its own key prefix, so each
store starts empty. Tests that stop or restart a server start their own. Nothing here skips: a
missing redis-server fails with the command that installs it.
"""

from __future__ import annotations

import inspect
import itertools
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis

from acllm import registry
from acllm.config import load_settings
from acllm.errors import ConfigError, MissingExtraError, ServiceError, UserError
from acllm.kv.base import KV
from acllm.kv.redis import RedisKV, RedisOptions, redact_url
from acllm.runtime import Runtime
from conformance.kv_suite import KVConformance
from redisserver import RedisServer, redis_server_fixture, started  # noqa: F401  (a fixture)

_prefixes = itertools.count()


@pytest.fixture
def prefix() -> str:
    return f"test{next(_prefixes)}-{os.getpid()}:"


@pytest.fixture
def open_kv(redis_server: RedisServer, prefix: str) -> Iterator[Callable[..., RedisKV]]:
    """Opens RedisKV instances (this test's prefix unless told); closes them all at the end."""
    opened: list[RedisKV] = []

    def open_store(url: str | None = None, **options: object) -> RedisKV:
        options.setdefault("prefix", prefix)
        kv = RedisKV(url or redis_server.url, **options)  # type: ignore[arg-type]
        opened.append(kv)
        return kv

    yield open_store
    for kv in opened:
        kv.close()


@pytest.fixture
def raw(redis_server: RedisServer) -> Iterator[redis.Redis]:
    """A plain redis-py client, to look at what RedisKV stored."""
    client = redis.Redis.from_url(redis_server.url)
    yield client
    client.close()


class TestRedisKV(KVConformance):
    @pytest.fixture
    def kv(self, open_kv: Callable[..., RedisKV]) -> Iterator[KV]:
        yield open_kv()


# -- keys, prefixes and stored values ------------------------------------------------------------


def test_keys_live_under_the_prefix(
    open_kv: Callable[..., RedisKV], raw: redis.Redis, prefix: str
) -> None:
    kv = open_kv()
    kv.set("k", b"v")
    kv.incr("n", 5)
    assert sorted(raw.keys(f"{prefix}*")) == [f"{prefix}k".encode(), f"{prefix}n".encode()]
    assert raw.get(f"{prefix}n") == b"5"
    assert raw.get("k") is None


def test_default_prefix_is_acllm(redis_server: RedisServer, raw: redis.Redis) -> None:
    with RedisKV(redis_server.url) as kv:
        assert kv.prefix == "acllm:"
        kv.set("default-prefix-check", b"v")
        assert raw.get("acllm:default-prefix-check") == b"v"
        assert kv.delete("default-prefix-check") is True


def test_prefixes_isolate_apps(open_kv: Callable[..., RedisKV], prefix: str) -> None:
    one, two = open_kv(prefix=f"{prefix}one:"), open_kv(prefix=f"{prefix}two:")
    one.set("k", b"from one")
    assert two.get("k") is None
    assert two.set_if_absent("k", b"from two") is True
    assert one.incr("n", 3) == 3
    assert two.incr("n") == 1
    assert one.delete("k") is True
    assert (one.get("k"), two.get("k")) == (None, b"from two")
    with pytest.raises(KeyError):
        one.ttl("k")


def test_two_instances_share_one_prefix(open_kv: Callable[..., RedisKV]) -> None:
    """Workers and replicas are separate RedisKV instances on one prefix: they see one store."""
    a, b = open_kv(), open_kv()
    a.incr("budget", 10, ttl=60)
    assert b.incr("budget", 5, ttl=1) == 15
    assert b.get("budget") == b"15"


def test_unicode_keys(open_kv: Callable[..., RedisKV], raw: redis.Redis, prefix: str) -> None:
    kv = open_kv()
    kv.set("clé:ñandú", b"v")
    assert kv.get("clé:ñandú") == b"v"
    assert raw.get(f"{prefix}clé:ñandú".encode()) == b"v"
    with pytest.raises(UserError, match="valid Unicode"):
        kv.set("bad\udcff", b"v")


# -- incr: windows, exactness, limits -------------------------------------------------------------


def test_incr_ttl_applies_only_on_create(open_kv: Callable[..., RedisKV]) -> None:
    kv = open_kv()
    assert kv.incr("window", 1, ttl=60) == 1
    for _ in range(5):
        kv.incr("window", 1, ttl=3600)  # neither extends nor restarts the window
    assert kv.get("window") == b"6"
    left = kv.ttl("window")
    assert left is not None and 50 < left <= 60
    kv.set("forever", b"3")
    assert kv.incr("forever", 1, ttl=60) == 4  # an existing key without expiry keeps none
    assert kv.ttl("forever") is None


def test_fixed_window_ends_and_restarts(open_kv: Callable[..., RedisKV]) -> None:
    kv = open_kv()
    assert kv.incr("w", 1, ttl=0.2) == 1
    assert kv.incr("w", 1, ttl=0.2) == 2
    deadline = time.monotonic() + 10  # wait for the server to expire it, not a timing assertion
    while kv.get("w") is not None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert kv.incr("w", 1, ttl=60) == 1
    left = kv.ttl("w")
    assert left is not None and 50 < left <= 60


def test_incr_reads_non_canonical_integers(open_kv: Callable[..., RedisKV]) -> None:
    """Like the other backends, "007" and "-0" count: Redis's INCRBY alone would refuse them."""
    kv = open_kv()
    kv.set("a", b"007", ttl=60)
    assert kv.incr("a") == 8
    left = kv.ttl("a")
    assert left is not None and 50 < left <= 60  # rewriting the value kept the expiry
    kv.set("b", b"-0")
    assert kv.incr("b", -2) == -2
    kv.set("c", b"-0042")
    assert kv.incr("c", 2) == -40


def test_incr_is_exact_at_64_bits(open_kv: Callable[..., RedisKV]) -> None:
    kv = open_kv()
    big = 2**63 - 2  # beyond a double's 2**53: Lua numbers would round it
    assert kv.incr("n", big) == big
    assert kv.incr("n") == 2**63 - 1
    assert kv.get("n") == str(2**63 - 1).encode()


def test_incr_beyond_64_bits_is_user_error(open_kv: Callable[..., RedisKV]) -> None:
    kv = open_kv()
    kv.incr("n", 2**63 - 1)
    with pytest.raises(UserError, match="64-bit"):
        kv.incr("n")
    assert kv.get("n") == str(2**63 - 1).encode()
    with pytest.raises(UserError, match="64-bit"):
        kv.incr("m", 2**63)
    kv.set("huge", b"9" * 30)
    with pytest.raises(UserError, match="64-bit"):
        kv.incr("huge")
    with pytest.raises(UserError, match="must be an integer"):
        kv.incr("m", 1.5)  # type: ignore[arg-type]
    with pytest.raises(UserError, match="must be an integer"):
        kv.incr("m", True)


def test_infinite_ttl_is_user_error(open_kv: Callable[..., RedisKV]) -> None:
    kv = open_kv()
    with pytest.raises(UserError, match="too large"):
        kv.set("k", b"v", ttl=float("inf"))
    assert kv.get("k") is None


def test_tiny_ttl_still_expires(open_kv: Callable[..., RedisKV]) -> None:
    kv = open_kv()
    kv.set("k", b"v", ttl=0.0001)  # rounds up to Redis's 1 ms, never to 0 (an error there)
    deadline = time.monotonic() + 10
    while kv.get("k") is not None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert kv.get("k") is None


# Each child opens its own RedisKV, says "ready" and waits for "go", so that all the children overlap.
_CHILD = """
import sys
from acllm.kv.redis import RedisKV
kv = RedisKV(sys.argv[1], prefix=sys.argv[2])
print("ready", flush=True)
sys.stdin.readline()
for _ in range(int(sys.argv[3])):
    kv.incr("hits", 1, ttl=600)
kv.close()
"""


def test_incr_is_exact_across_processes(open_kv: Callable[..., RedisKV], prefix: str) -> None:
    procs, each = 4, 500
    src = str(Path(inspect.getfile(RedisKV)).resolve().parents[2])  # children import this acllm
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([src, os.environ.get("PYTHONPATH", "")])}
    kv = open_kv()
    children = [
        subprocess.Popen(
            [sys.executable, "-c", _CHILD, kv.url, prefix, str(each)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for _ in range(procs)
    ]
    try:
        for child in children:
            assert child.stdout is not None
            assert child.stdout.readline().strip() == "ready", child.stderr
        for child in children:
            assert child.stdin is not None
            child.stdin.write("go\n")
            child.stdin.flush()
        for child in children:
            _, err = child.communicate(timeout=120)
            assert child.returncode == 0, err
    finally:
        for child in children:
            if child.poll() is None:
                child.kill()
            child.communicate()
    assert kv.get("hits") == str(procs * each).encode()
    left = kv.ttl("hits")
    assert left is not None and 500 < left <= 600  # the first incr set the window; none moved it


# -- failures ------------------------------------------------------------------------------------


def _nothing_listens() -> str:
    """A URL on 127.0.0.1 whose port has no server (a server just stopped frees its port)."""
    with RedisServer() as server:
        url = server.url
    return url


def test_unreachable_redis_is_a_service_error() -> None:
    url = _nothing_listens()
    with pytest.raises(ServiceError) as info:
        RedisKV(url, connect_timeout=1)
    err = info.value
    assert (err.exit_code, err.status) == (3, 502)
    assert f"cannot reach Redis at {url}" in err.message
    assert "redis-server" in err.hint and "kv.url" in err.hint


def test_redis_going_down_mid_use_is_a_service_error(prefix: str) -> None:
    server = started(RedisServer())
    try:
        kv = RedisKV(server.url, prefix=prefix, connect_timeout=1, socket_timeout=1)
        url = kv.url
        kv.set("k", b"v")
    finally:
        server.stop()
    try:
        for call in (lambda: kv.get("k"), lambda: kv.incr("n"), lambda: kv.set("k", b"w")):
            with pytest.raises(ServiceError, match="cannot reach Redis") as info:
                call()
            assert url in info.value.message
            assert "start redis-server" in info.value.hint
    finally:
        kv.close()


def test_a_redis_restart_costs_no_errors(prefix: str) -> None:
    """Pooled connections the old server closed are reopened before a command is sent."""
    server = started(RedisServer())
    port = server.port
    try:
        with RedisKV(server.url, prefix=prefix) as kv:
            kv.set("before", b"v")
            server.stop()  # persistence is off: the new server starts empty
            server = started(RedisServer(port=port))
            assert kv.get("before") is None
            assert kv.incr("after") == 1
    finally:
        server.stop()


def test_password_from_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    server = started(RedisServer(password="s3cret-pw"))
    try:
        toml = tmp_path / "acllm.toml"
        toml.write_text(
            f'[kv]\nbackend = "redis"\nurl = "{server.url}"\npassword_env = "ACLLM_TEST_REDIS_PW"\n'
        )
        settings = load_settings(toml, environ={})

        monkeypatch.delenv("ACLLM_TEST_REDIS_PW", raising=False)
        with pytest.raises(ConfigError, match="ACLLM_TEST_REDIS_PW is not set") as unset:
            Runtime(settings).kv()
        assert unset.value.key == "kv.password_env"

        monkeypatch.setenv("ACLLM_TEST_REDIS_PW", "wrong")
        with pytest.raises(ServiceError, match="refused the credentials") as wrong:
            Runtime(settings).kv()
        assert "password_env" in wrong.value.hint
        assert "wrong" not in str(wrong.value)

        monkeypatch.setenv("ACLLM_TEST_REDIS_PW", "s3cret-pw")
        kv = Runtime(settings).kv()
        try:
            assert kv.incr("n") == 1
        finally:
            kv.close()

        with pytest.raises(ServiceError, match="refused the credentials") as none:
            RedisKV(server.url)  # no password at all
        assert "s3cret" not in str(none.value)
    finally:
        server.stop()


def test_closed_store_raises_and_close_is_idempotent(open_kv: Callable[..., RedisKV]) -> None:
    kv = open_kv()
    kv.close()
    kv.close()
    with pytest.raises(ServiceError, match="closed"):
        kv.get("k")


def test_missing_extra_is_reported(
    monkeypatch: pytest.MonkeyPatch, redis_server: RedisServer
) -> None:
    monkeypatch.setitem(sys.modules, "redis", None)  # what `import redis` sees without the extra
    with pytest.raises(MissingExtraError, match="redis") as info:
        RedisKV(redis_server.url)
    assert "acllm[redis]" in info.value.hint


# -- configuration and wiring --------------------------------------------------------------------


def test_runtime_builds_it_from_acllm_toml(
    redis_server: RedisServer, prefix: str, tmp_path: Path, raw: redis.Redis
) -> None:
    toml = tmp_path / "acllm.toml"
    toml.write_text(
        f'data_dir = "{tmp_path / "data"}"\n'
        f'[kv]\nbackend = "redis"\nurl = "{redis_server.url}"\nprefix = "{prefix}"\n'
        "socket_timeout = 3\nconnect_timeout = 1\nmax_connections = 4\n"
    )
    runtime = Runtime(load_settings(toml, environ={}))
    kv = runtime.kv()
    try:
        assert isinstance(kv, RedisKV)
        assert runtime.kv() is kv  # built once
        assert kv.incr("budget", 7, ttl=60) == 7
        assert raw.get(f"{prefix}budget") == b"7"
        assert not (tmp_path / "data" / "state.db").exists()  # no SQLite on the side
    finally:
        kv.close()


def test_registry_knows_redis() -> None:
    backend = registry.get("kv", "redis")
    assert (backend.kind, backend.name, backend.options) == ("kv", "redis", RedisOptions)
    assert "redis" in registry.names("kv")


@pytest.mark.parametrize(
    "url",
    [
        "redis://:hunter2@127.0.0.1:6379/0",
        "redis://app:hunter2@127.0.0.1:6379/0",
        "rediss://app:hunter2@cache.internal:6380/1",
        "redis://127.0.0.1:6379/0?password=hunter2",
    ],
)
def test_url_with_password_is_refused(tmp_path: Path, url: str) -> None:
    toml = tmp_path / "acllm.toml"
    toml.write_text(f'[kv]\nbackend = "redis"\nurl = "{url}"\n')
    with pytest.raises(ConfigError) as info:
        load_settings(toml, environ={})
    err = info.value
    assert err.key == "kv.url"
    assert "holds a password" in err.message
    assert "password_env" in err.message
    assert "hunter2" not in str(err)


def test_password_in_env_override_is_refused(tmp_path: Path) -> None:
    environ = {"ACLLM_KV__BACKEND": "redis", "ACLLM_KV__URL": "redis://:hunter2@h:6379/0"}
    empty = tmp_path / "acllm.toml"
    empty.write_text("")
    with pytest.raises(ConfigError, match="password_env") as info:
        load_settings(empty, environ=environ)
    assert info.value.key == "kv.url"
    assert "ACLLM_KV__URL" in info.value.message  # says where the bad value came from
    assert "hunter2" not in str(info.value)


@pytest.mark.parametrize(
    ("options", "key", "words"),
    [
        ({"url": "http://127.0.0.1:6379"}, "kv.url", "not a Redis URL"),
        ({"url": "redis://127.0.0.1:99999/0"}, "kv.url", "out of range"),
        ({"socket_timeout": 0}, "kv.socket_timeout", "greater than 0"),
        ({"max_connections": 0}, "kv.max_connections", "greater than or equal to 1"),
        ({"pasword_env": "X"}, "kv.pasword_env", "unknown setting"),
    ],
)
def test_bad_options_are_config_errors(
    tmp_path: Path, options: dict[str, object], key: str, words: str
) -> None:
    lines = "".join(f"{k} = {v!r}\n".replace("'", '"') for k, v in options.items())
    toml = tmp_path / "acllm.toml"
    toml.write_text(f'[kv]\nbackend = "redis"\n{lines}')
    with pytest.raises(ConfigError, match=words) as info:
        load_settings(toml, environ={})
    assert info.value.key == key


def test_defaults_are_local_redis() -> None:
    options = RedisOptions()
    assert options.url == "redis://127.0.0.1:6379/0"
    assert options.prefix == "acllm:"
    assert options.password_env is None


def test_redact_url() -> None:
    assert redact_url("redis://127.0.0.1:6379/0") == "redis://127.0.0.1:6379/0"
    assert redact_url("redis://app:pw@h:1/2") == "redis://app:***@h:1/2"
    assert redact_url("redis://:pw@h:1/2") == "redis://:***@h:1/2"
    assert (
        redact_url("unix:///run/r.sock?password=pw&db=1") == "unix:///run/r.sock?password=***&db=1"
    )


def test_service_errors_never_show_a_password() -> None:
    url = _nothing_listens().replace("redis://", "redis://app:hunter2@")
    with pytest.raises(ServiceError) as info:
        RedisKV(url, connect_timeout=1)
    assert "hunter2" not in str(info.value)
    assert "app:***@127.0.0.1" in info.value.message


def test_importing_the_backend_does_not_import_redis() -> None:
    """acllm stays fast to import: redis-py loads only when a RedisKV is built (fresh interpreter)."""
    code = (
        "import sys\n"
        "import acllm, acllm.kv.redis\n"
        "from acllm import registry\n"
        "registry.get('kv', 'redis').options.model_json_schema()\n"
        "print('redis' in sys.modules)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"
