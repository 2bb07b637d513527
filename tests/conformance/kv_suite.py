"""The KV protocol every backend must keep (see acllm.kv.base).

Subclass ``KVConformance`` in a ``Test*`` class and override the ``kv`` fixture to yield a fresh,
empty store (and close it afterwards). Only the protocol is tested here, never a backend's
internals, so a Redis backend runs the very same tests. Short TTLs (0.2 s) keep the suite fast.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from acllm.errors import UserError
from acllm.kv.base import KV

SHORT = 0.2  # seconds: a TTL that expires within a test
PAST = SHORT + 0.15  # sleep this long to be sure a SHORT TTL has passed


class KVConformance:
    @pytest.fixture
    def kv(self) -> Iterator[KV]:
        raise NotImplementedError("subclasses yield a fresh, empty store")

    def test_is_a_kv(self, kv: KV) -> None:
        assert isinstance(kv, KV)

    def test_get_missing_is_none(self, kv: KV) -> None:
        assert kv.get("nope") is None

    @pytest.mark.parametrize(
        "value", [b"hello", b"", b"\x00\xff\xfe\x80 not utf-8", bytes(range(256)) * 40]
    )
    def test_set_get_roundtrips_bytes(self, kv: KV, value: bytes) -> None:
        kv.set("k", value)
        got = kv.get("k")
        assert got == value
        assert isinstance(got, bytes)

    def test_keys_are_independent(self, kv: KV) -> None:
        kv.set("a", b"1")
        kv.set("b", b"2")
        assert (kv.get("a"), kv.get("b")) == (b"1", b"2")

    def test_overwrite_replaces_value_and_expiry(self, kv: KV) -> None:
        kv.set("k", b"old", ttl=SHORT)
        kv.set("k", b"new")
        assert kv.get("k") == b"new"
        assert kv.ttl("k") is None
        time.sleep(PAST)
        assert kv.get("k") == b"new"

    def test_ttl_expiry(self, kv: KV) -> None:
        kv.set("k", b"v", ttl=SHORT)
        kv.set("keep", b"v", ttl=60)
        assert kv.get("k") == b"v"
        time.sleep(PAST)
        assert kv.get("k") is None
        assert kv.get("keep") == b"v"
        with pytest.raises(KeyError):
            kv.ttl("k")

    def test_ttl_reports(self, kv: KV) -> None:
        kv.set("forever", b"v")
        kv.set("later", b"v", ttl=30)
        assert kv.ttl("forever") is None
        left = kv.ttl("later")
        assert isinstance(left, float)
        assert 29 < left <= 30
        with pytest.raises(KeyError):
            kv.ttl("missing")

    def test_incr_creates_at_amount(self, kv: KV) -> None:
        assert kv.incr("n") == 1
        assert kv.incr("n") == 2
        assert kv.incr("m", 5) == 5
        assert kv.get("n") == b"2"  # counters are stored as ASCII decimal
        assert kv.ttl("m") is None

    def test_incr_negative_and_existing_value(self, kv: KV) -> None:
        assert kv.incr("n", -3) == -3
        assert kv.incr("n", 10) == 7
        kv.set("s", b"40")
        assert kv.incr("s", 2) == 42
        assert kv.get("s") == b"42"

    def test_incr_keeps_original_expiry(self, kv: KV) -> None:
        assert kv.incr("w", 1, ttl=SHORT) == 1
        time.sleep(SHORT / 2)
        assert kv.incr("w", 1, ttl=60) == 2  # a later ttl must not extend the window
        left = kv.ttl("w")
        assert left is not None and left < SHORT
        time.sleep(PAST - SHORT / 2)
        assert kv.get("w") is None

    def test_incr_without_ttl_keeps_expiry(self, kv: KV) -> None:
        kv.incr("w", 1, ttl=30)
        kv.incr("w")
        left = kv.ttl("w")
        assert left is not None and 29 < left <= 30

    def test_incr_on_expired_restarts(self, kv: KV) -> None:
        kv.incr("w", 7, ttl=SHORT)
        time.sleep(PAST)
        assert kv.incr("w", 3, ttl=30) == 3
        left = kv.ttl("w")
        assert left is not None and 29 < left <= 30

    def test_set_if_absent(self, kv: KV) -> None:
        assert kv.set_if_absent("k", b"first") is True
        assert kv.set_if_absent("k", b"second") is False
        assert kv.get("k") == b"first"
        assert kv.ttl("k") is None

    def test_set_if_absent_after_expiry(self, kv: KV) -> None:
        assert kv.set_if_absent("k", b"first", ttl=SHORT) is True
        assert kv.set_if_absent("k", b"second", ttl=SHORT) is False
        time.sleep(PAST)
        assert kv.set_if_absent("k", b"third") is True
        assert kv.get("k") == b"third"
        assert kv.ttl("k") is None  # the new value does not inherit the old expiry

    def test_delete(self, kv: KV) -> None:
        kv.set("k", b"v")
        assert kv.delete("k") is True
        assert kv.get("k") is None
        assert kv.delete("k") is False
        assert kv.delete("never") is False

    def test_delete_expired_is_false(self, kv: KV) -> None:
        kv.set("k", b"v", ttl=SHORT)
        time.sleep(PAST)
        assert kv.delete("k") is False
        assert kv.set_if_absent("k", b"again") is True

    def test_concurrent_incr_loses_nothing(self, kv: KV) -> None:
        threads, each = 8, 200
        start = threading.Barrier(threads)
        errors: list[BaseException] = []

        def work() -> None:
            try:
                start.wait()
                for _ in range(each):
                    kv.incr("hits")
            except BaseException as exc:  # surfaced below: a thread's failure must fail the test
                errors.append(exc)

        pool = [threading.Thread(target=work) for _ in range(threads)]
        for t in pool:
            t.start()
        for t in pool:
            t.join()
        assert errors == []
        assert kv.get("hits") == str(threads * each).encode()

    def test_incr_on_non_integer_is_user_error(self, kv: KV) -> None:
        for i, value in enumerate([b"abc", b"", b"1.5", b" 3", b"\xff"]):
            kv.set(f"k{i}", value)
            with pytest.raises(UserError, match="not an integer"):
                kv.incr(f"k{i}")
            assert kv.get(f"k{i}") == value  # left untouched

    @pytest.mark.parametrize("key", ["", None, 3, b"bytes"])
    def test_bad_keys_are_user_errors(self, kv: KV, key: object) -> None:
        for call in (
            lambda: kv.get(key),  # type: ignore[arg-type]
            lambda: kv.set(key, b"v"),  # type: ignore[arg-type]
            lambda: kv.incr(key),  # type: ignore[arg-type]
            lambda: kv.set_if_absent(key, b"v"),  # type: ignore[arg-type]
            lambda: kv.delete(key),  # type: ignore[arg-type]
            lambda: kv.ttl(key),  # type: ignore[arg-type]
        ):
            with pytest.raises(UserError, match="non-empty strings"):
                call()

    @pytest.mark.parametrize("ttl", [0, -1, float("nan")])
    def test_bad_ttl_is_user_error(self, kv: KV, ttl: float) -> None:
        with pytest.raises(UserError, match="ttl"):
            kv.set("k", b"v", ttl=ttl)
        assert kv.get("k") is None
