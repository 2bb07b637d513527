"""The feedback store: answers recorded with their sources and config, feedback tied to them."""

from __future__ import annotations

import multiprocessing
import sqlite3
from pathlib import Path

import pytest

from acllm.errors import NotFoundError, ServiceError, UserError
from acllm.feedback import FeedbackStore

ANSWER = {
    "answer": "Tienes 30 días naturales para devolver una bicicleta. [1]",
    "refused": False,
    "question": "¿Cuántos días tengo para devolver una bici?",
    "lang": "es",
    "citations": [
        {"n": 1, "source": "politica_devoluciones.md", "location": "Plazo", "text": "Tienes 30…"}
    ],
}
CONFIG = {"assistant": "soporte", "index": "bicis", "threshold": 0.84, "model": "local"}


@pytest.fixture
def store(tmp_path: Path):  # type: ignore[no-untyped-def]
    s = FeedbackStore(tmp_path / "feedback.sqlite")
    yield s
    s.close()


def test_feedback_keeps_the_answer_its_sources_and_config(store: FeedbackStore) -> None:
    answer_id = store.record_answer(
        assistant="soporte", answer=ANSWER, config=CONFIG, key_id="key_1", conversation="c-7"
    )
    fb = store.add(answer_id, rating=-1, correction="Son 30 días desde la entrega.", key_id="key_1")
    got = store.get(fb.id)
    assert got.rating == -1
    assert got.correction == "Son 30 días desde la entrega."
    assert got.answer["question"] == ANSWER["question"]
    assert got.answer["citations"] == ANSWER["citations"]
    assert got.answer["config"] == CONFIG
    assert got.answer["conversation"] == "c-7"
    assert got.answer["refused"] is False
    assert got.as_dict()["answer"]["assistant"] == "soporte"


def test_review_queue_lists_bad_answers_newest_first(store: FeedbackStore) -> None:
    ids = [store.record_answer(assistant="a", answer=ANSWER, config={}) for _ in range(3)]
    store.add(ids[0], rating=-1, now=100.0)
    store.add(ids[1], rating=1, now=200.0)
    store.add(ids[2], rating=-1, comment="wrong shop", now=300.0)
    bad = store.list(rating=-1)
    assert [f.answer_id for f in bad] == [ids[2], ids[0]]
    assert [f.answer_id for f in store.list(since=150.0)] == [ids[2], ids[1]]
    assert len(store.list(limit=1)) == 1


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"rating": 5}, "rating must be 1"),
        ({"rating": True}, "rating must be 1"),
        ({}, "empty feedback"),
        ({"comment": "   "}, "empty feedback"),
        ({"correction": "x" * 20_001}, "at most 20000"),
    ],
)
def test_bad_feedback_is_refused_and_nothing_is_stored(
    store: FeedbackStore, kwargs: dict[str, object], message: str
) -> None:
    answer_id = store.record_answer(assistant="a", answer=ANSWER, config={})
    with pytest.raises(UserError, match=message):
        store.add(answer_id, **kwargs)  # type: ignore[arg-type]
    assert store.list() == []


def test_unknown_answer_is_a_404(store: FeedbackStore) -> None:
    with pytest.raises(NotFoundError) as err:
        store.add("ans_nope", rating=1)
    assert err.value.status == 404
    with pytest.raises(NotFoundError):
        store.get("fb_nope")


def test_purge_drops_old_answers_without_feedback_only(tmp_path: Path) -> None:
    store = FeedbackStore(tmp_path / "f.sqlite", keep_days=1)
    try:
        old_rated = store.record_answer(assistant="a", answer=ANSWER, config={}, now=0.0)
        old_plain = store.record_answer(assistant="a", answer=ANSWER, config={}, now=0.0)
        new_plain = store.record_answer(assistant="a", answer=ANSWER, config={}, now=90_000.0)
        store.add(old_rated, rating=1)
        assert store.purge(now=100_000.0) == 1
        store.answer(old_rated)
        store.answer(new_plain)
        with pytest.raises(NotFoundError):
            store.answer(old_plain)
    finally:
        store.close()


def test_not_a_database_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "feedback.sqlite"
    path.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(ServiceError, match="not a usable SQLite database"):
        FeedbackStore(path)


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "feedback.sqlite"
    FeedbackStore(path).close()
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA user_version = 99")
    conn.close()
    with pytest.raises(ServiceError, match="newer acllm"):
        FeedbackStore(path)


def test_closed_store_says_so(tmp_path: Path) -> None:
    store = FeedbackStore(tmp_path / "f.sqlite")
    store.close()
    with pytest.raises(ServiceError, match="closed"):
        store.list()


def _write_feedback(path: str, n: int) -> None:
    store = FeedbackStore(path)
    for _ in range(n):
        answer_id = store.record_answer(assistant="a", answer=ANSWER, config={})
        store.add(answer_id, rating=1)
    store.close()


def test_worker_processes_share_one_file(tmp_path: Path) -> None:
    path = str(tmp_path / "feedback.sqlite")
    FeedbackStore(path).close()  # migrate once, as the server does before forking workers
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_write_feedback, args=(path, 25)) for _ in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    store = FeedbackStore(path)
    try:
        assert len(store.list(limit=1000)) == 75
    finally:
        store.close()
