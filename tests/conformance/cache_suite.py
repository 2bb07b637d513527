"""The CacheStore protocol every cache backend keeps (see acllm.cache.store), and ResponseCache on it.

Subclass ``CacheStoreConformance`` in a ``Test*`` class and override ``store`` to yield a fresh,
empty store (closed afterwards) and ``corrupt`` to overwrite one entry's payload and vector with
garbage the way a broken writer would. Only the protocol and the cache on top are tested here.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator

import numpy as np
import pytest

from acllm.cache import CacheScope, CacheSettings, ResponseCache
from acllm.cache.store import CacheStore, RawEntry

SHORT = 0.2  # seconds: a TTL that expires within a test
PAST = SHORT + 0.15
DIM = 16


def unit(seed: int, dim: int = DIM) -> np.ndarray:
    v = np.random.default_rng(seed).standard_normal(dim).astype(np.float32)
    return v / np.linalg.norm(v)


def near(v: np.ndarray, seed: int, eps: float = 0.02) -> np.ndarray:
    w = v + eps * np.random.default_rng(seed).standard_normal(v.shape[0]).astype(np.float32)
    return w / np.linalg.norm(w)


def entry(question: str, payload: dict[str, object] | None = None) -> RawEntry:
    return RawEntry(0, question, json.dumps(payload or {"a": question}).encode(), time.time())


SCOPE = CacheScope("support", "idx-v1", "sys", "model")


class CacheStoreConformance:
    @pytest.fixture
    def store(self) -> Iterator[CacheStore]:
        raise NotImplementedError("subclasses yield a fresh, empty store")

    def corrupt(self, store: CacheStore, scope: str, entry_id: int, what: str) -> None:
        """Overwrite entry ``entry_id``: what = "payload" (bad JSON) or "vector" (wrong length)."""
        raise NotImplementedError

    @pytest.fixture
    def cache(self, store: CacheStore) -> ResponseCache:
        return ResponseCache(store, settings=CacheSettings(enabled=True, threshold=0.9))

    # -- the protocol --------------------------------------------------------------------------

    def test_is_a_cache_store(self, store: CacheStore) -> None:
        assert isinstance(store, CacheStore)

    def test_put_get_roundtrip(self, store: CacheStore) -> None:
        e = entry("¿Qué es?", {"answer": "algo ñ"})
        new_id = store.put("s1", "k1", e, b"\x00" * 8, ttl_s=None, max_entries=10)
        got = store.get("s1", "k1", time.time())
        assert got is not None
        assert (got.id, got.question, got.payload) == (new_id, "¿Qué es?", e.payload)
        assert got.created == pytest.approx(e.created)
        assert store.get("s1", "other", time.time()) is None
        assert store.get("s2", "k1", time.time()) is None  # scopes are apart

    def test_ids_only_grow_and_replace_counts_as_removal(self, store: CacheStore) -> None:
        first = store.put("s", "k", entry("q"), b"1234", ttl_s=None, max_entries=10)
        second = store.put("s", "k2", entry("q2"), b"5678", ttl_s=None, max_entries=10)
        third = store.put("s", "k", entry("q again"), b"9abc", ttl_s=None, max_entries=10)
        assert first < second < third
        rows = store.vectors("s", 0)
        assert [i for i, _ in rows.rows] == [second, third]
        assert rows.removed == 1
        assert [i for i, _ in store.vectors("s", second).rows] == [third]
        got = store.get("s", "k", time.time())
        assert got is not None and got.question == "q again"

    def test_ttl_expiry(self, store: CacheStore) -> None:
        store.put("s", "short", entry("a"), b"abcd", ttl_s=SHORT, max_entries=10)
        keep = store.put("s", "long", entry("b"), b"abcd", ttl_s=60, max_entries=10)
        time.sleep(PAST)
        now = time.time()
        assert store.get("s", "short", now) is None
        assert store.get("s", "long", now) is not None
        assert [
            e.id for e in store.fetch("s", [i for i, _ in store.vectors("s", 0).rows], now)
        ] == [keep]

    def test_size_bound_evicts_least_recently_used(self, store: CacheStore) -> None:
        ids = [store.put("s", f"k{i}", entry(f"q{i}"), b"abcd", ttl_s=None, max_entries=3)
               for i in range(3)]  # fmt: skip
        store.touch("s", ids[0], time.time() + 1)  # k0 used last: k1 is now the oldest
        store.put("s", "k3", entry("q3"), b"abcd", ttl_s=None, max_entries=3)
        now = time.time()
        assert store.get("s", "k1", now) is None
        assert all(store.get("s", k, now) is not None for k in ("k0", "k2", "k3"))
        assert store.vectors("s", 0).removed == 1
        store.put("other", "k", entry("q"), b"abcd", ttl_s=None, max_entries=1)
        assert store.get("s", "k0", now) is not None  # the bound is per scope

    def test_fetch_drop_clear(self, store: CacheStore) -> None:
        a = store.put("s", "a", entry("a"), b"abcd", ttl_s=None, max_entries=10)
        b = store.put("s", "b", entry("b"), None, ttl_s=None, max_entries=10)
        store.put("t", "c", entry("c"), b"abcd", ttl_s=None, max_entries=10)
        now = time.time()
        assert sorted(e.id for e in store.fetch("s", [a, b, 999_999], now)) == [a, b]
        assert [i for i, _ in store.vectors("s", 0).rows] == [a]  # no vector, not listed
        store.drop("s", [a])
        assert store.get("s", "a", now) is None
        assert store.vectors("s", 0).removed >= 1
        assert store.clear("s") == 1
        assert store.get("s", "b", now) is None
        assert store.get("t", "c", now) is not None
        assert store.clear() == 1
        assert store.get("t", "c", now) is None

    # -- ResponseCache on this store -----------------------------------------------------------

    def test_exact_hit_normalises_text(self, cache: ResponseCache) -> None:
        cache.store(SCOPE, "¿Cómo restablezco mi contraseña?", {"answer": "Pulse «Olvidé»"})
        hit = cache.lookup(SCOPE, "  cómo RESTABLEZCO mi contra\u200bseña ")
        assert hit is not None
        assert (hit.kind, hit.similarity, hit.payload) == (
            "exact",
            1.0,
            {"answer": "Pulse «Olvidé»"},
        )
        assert hit.question == "¿Cómo restablezco mi contraseña?"
        assert 0 <= hit.age_s < 5
        assert cache.lookup(SCOPE, "¿Cómo restablezco mi contrasena?") is None  # accents kept

    def test_every_scope_field_separates(self, cache: ResponseCache) -> None:
        cache.store(SCOPE, "What is the refund policy?", {"answer": 1}, unit(1))
        others = [
            CacheScope("sales", "idx-v1", "sys", "model"),
            CacheScope("support", "idx-v2", "sys", "model"),  # re-ingested
            CacheScope("support", "idx-v1", "sys2", "model"),
            CacheScope("support", "idx-v1", "sys", "model2"),
            CacheScope("support", "idx-v1", "sys", "model", tenant="key-2"),
            CacheScope("support", "idx-v1", "sys", "model", conversation="abc"),
        ]
        for other in others:
            assert cache.lookup(other, "What is the refund policy?", unit(1)) is None
        assert cache.lookup(SCOPE, "What is the refund policy?", unit(1)) is not None

    def test_semantic_hit_and_verifier_refusals(self, cache: ResponseCache) -> None:
        v = unit(7)
        cache.store(SCOPE, "How do I reset my password?", {"answer": "reset"}, v)
        hit = cache.lookup(SCOPE, "How can I reset my password?", near(v, 1))
        assert hit is not None and hit.kind == "semantic"
        assert 0.9 <= hit.similarity < 1.0 and hit.question == "How do I reset my password?"
        cache.store(SCOPE, "Can I return an item within 30 days?", {"answer": "yes"}, unit(8))
        assert cache.lookup(SCOPE, "Can I return an item within 60 days?", near(unit(8), 2)) is None
        assert cache.lookup(SCOPE, "How can I reset my password?", unit(99)) is None  # far
        assert cache.lookup(SCOPE, "How can I reset my password?") is None  # no vector

    def test_nearest_failing_candidate_falls_through_to_next(self, cache: ResponseCache) -> None:
        v = unit(3)
        cache.store(SCOPE, "What is the fee for 2 checked bags?", {"n": 2}, v)
        cache.store(SCOPE, "What is the fee for 3 checked bags?", {"n": 3}, near(v, 5, 0.05))
        hit = cache.lookup(SCOPE, "What's the fee for 3 checked bags?", near(v, 6, 0.01))
        assert hit is not None and hit.payload == {"n": 3}

    def test_disabled_and_not_semantic(self, store: CacheStore) -> None:
        off = ResponseCache(store, settings=CacheSettings(enabled=False))
        off.store(SCOPE, "q", {"a": 1}, unit(1))
        assert off.lookup(SCOPE, "q", unit(1)) is None
        exact_only = ResponseCache(store, settings=CacheSettings(enabled=True, semantic=False))
        exact_only.store(SCOPE, "How do I reset my password?", {"a": 1}, unit(1))
        assert exact_only.lookup(SCOPE, "How can I reset my password?", unit(1)) is None
        assert exact_only.lookup(SCOPE, "How do I reset my password?", unit(1)) is not None

    def test_new_entries_from_another_writer_are_seen(self, store: CacheStore) -> None:
        reader = ResponseCache(store, settings=CacheSettings(enabled=True))
        writer = ResponseCache(store, settings=CacheSettings(enabled=True))
        assert reader.lookup(SCOPE, "Where is my order?", unit(4)) is None  # builds its copy
        writer.store(SCOPE, "Where's my order?", {"a": 1}, unit(4))
        hit = reader.lookup(SCOPE, "Where is my order?", near(unit(4), 9))
        assert hit is not None and hit.kind == "semantic"
        writer.forget(SCOPE)
        assert reader.lookup(SCOPE, "Where is my order?", near(unit(4), 9)) is None

    def test_size_bound_through_the_cache(self, store: CacheStore) -> None:
        cache = ResponseCache(store, settings=CacheSettings(enabled=True, max_entries=5))
        for i in range(12):
            cache.store(SCOPE, f"question {i}", {"i": i}, unit(100 + i))
        assert len(store.vectors(SCOPE.key(), 0).rows) == 5
        assert cache.lookup(SCOPE, "question 0") is None
        assert cache.lookup(SCOPE, "question 11") is not None

    def test_ttl_through_the_cache(self, store: CacheStore) -> None:
        cache = ResponseCache(store, settings=CacheSettings(enabled=True, ttl_s=SHORT))
        cache.store(SCOPE, "How do I reset my password?", {"a": 1}, unit(5))
        assert cache.lookup(SCOPE, "How do I reset my password?") is not None
        time.sleep(PAST)
        assert cache.lookup(SCOPE, "How do I reset my password?") is None
        assert cache.lookup(SCOPE, "How can I reset my password?", unit(5)) is None

    @pytest.mark.parametrize("what", ["payload", "vector"])
    def test_corrupt_entries_are_ignored_and_evicted(
        self, store: CacheStore, cache: ResponseCache, what: str
    ) -> None:
        cache.store(SCOPE, "How do I reset my password?", {"a": 1}, unit(5))
        cache.store(SCOPE, "Where is my order?", {"a": 2}, unit(6))
        bad = store.get(SCOPE.key(), _key("How do I reset my password?"), time.time())
        assert bad is not None
        self.corrupt(store, SCOPE.key(), bad.id, what)
        fresh = ResponseCache(store, settings=CacheSettings(enabled=True))  # no old copy
        question = (
            "How do I reset my password?" if what == "payload" else "How can I reset my password?"
        )
        assert fresh.lookup(SCOPE, question, unit(5)) is None
        assert fresh.lookup(SCOPE, "How can I reset my password?", unit(5)) is None
        assert bad.id not in [i for i, _ in store.vectors(SCOPE.key(), 0).rows]  # evicted
        assert fresh.lookup(SCOPE, "Where's my order?", near(unit(6), 3)) is not None


def _key(question: str) -> str:
    from acllm.cache.scope import question_key

    return question_key(question)


class CacheConcurrency:
    """Mixed into CacheStoreConformance: threads sharing one cache, and bounded process memory."""

    def test_threads_share_one_cache(self, cache: ResponseCache) -> None:
        errors: list[BaseException] = []

        def work(t: int) -> None:
            try:
                for i in range(25):
                    question = f"Where is order {t}-{i}?"
                    cache.store(SCOPE, question, {"t": t, "i": i}, unit(1000 * t + i))
                    hit = cache.lookup(SCOPE, question.upper(), unit(1000 * t + i))
                    assert hit is not None and hit.payload == {"t": t, "i": i}
                    near_hit = cache.lookup(SCOPE, f"Where's order {t}-{i}?", unit(1000 * t + i))
                    assert near_hit is not None and near_hit.payload == {"t": t, "i": i}
            except BaseException as exc:  # reported in the main thread
                errors.append(exc)

        threads = [threading.Thread(target=work, args=(t,)) for t in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert errors == []

    def test_vector_copies_are_bounded_and_stay_correct(
        self, cache: ResponseCache, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        from acllm.cache import cache as cache_module

        monkeypatch.setattr(cache_module, "MIRRORED_ROWS", 3)
        scopes = [CacheScope("a", "v", "p", "m", tenant=str(t)) for t in range(4)]
        for t, scope in enumerate(scopes):
            for i in range(2):
                cache.store(scope, f"What does plan {t}{i} include?", {"t": t}, unit(10 * t + i))
        for _ in range(2):
            for t, scope in enumerate(scopes):
                hit = cache.lookup(scope, f"What does the plan {t}1 include?", unit(10 * t + 1))
                assert hit is not None and hit.kind == "semantic" and hit.payload == {"t": t}
        assert len(cache._mirrors) <= 2
