"""The review queue: bad or corrected answers wait for a person; only approved corrections are served."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from acllm.errors import NotFoundError, UserError
from acllm.feedback import FeedbackStore
from acllm.review import ReviewQueue, question_key

CITATION = {"n": 1, "source": "horarios.md", "location": "Tienda", "text": "Abrimos a las 9."}


@pytest.fixture
def store(tmp_path: Path) -> Iterator[FeedbackStore]:
    s = FeedbackStore(tmp_path / "feedback.sqlite")
    yield s
    s.close()


def answered(
    store: FeedbackStore, question: str, assistant: str = "tienda", **extra: object
) -> str:
    answer = {
        "question": question,
        "answer": "Abrimos a las 10. [1]",
        "refused": False,
        "lang": "es",
        "citations": [CITATION],
        **extra,
    }
    return store.record_answer(assistant=assistant, answer=answer, config={"mode": "extractive"})


def test_question_key_ignores_case_accents_punctuation_and_invisible_characters() -> None:
    assert question_key("¿A qué hora ABRÍS?") == question_key("a que hora\u200b abris")
    assert question_key("¿A qué hora abrís el lunes?") != question_key("¿A qué hora abrís?")
    assert question_key("¿Cuesta 20 euros?") != question_key("¿Cuesta 30 euros?")


def test_only_bad_or_corrected_answers_wait_for_review(store: FeedbackStore) -> None:
    queue = ReviewQueue(store)
    good = store.add(answered(store, "¿Horario?"), rating=1)
    bad = store.add(answered(store, "¿A qué hora abrís?"), rating=-1)
    fixed = store.add(answered(store, "¿Abrís el domingo?"), correction="No, el domingo cerramos.")
    comment = store.add(answered(store, "¿Teléfono?"), comment="me gustaría saberlo")
    pending = {f.id for f in queue.pending()}
    assert pending == {bad.id, fixed.id}
    assert good.id not in pending and comment.id not in pending
    item = next(f for f in queue.pending() if f.id == bad.id)
    assert item.answer["citations"] == [CITATION]  # the reviewer sees the sources


def test_approved_correction_becomes_the_served_override(store: FeedbackStore) -> None:
    queue = ReviewQueue(store)
    fb = store.add(answered(store, "¿A qué hora abrís?"), rating=-1, correction="Abrimos a las 9.")
    assert queue.override_for("tienda", "¿A qué hora abrís?") is None  # not before review
    override = queue.approve(fb.id, reviewer="ana")
    assert override.answer == "Abrimos a las 9." and override.reviewer == "ana"
    found = queue.override_for("tienda", "a que hora abris")
    assert found is not None and found.id == override.id
    assert found.citations == [CITATION]
    assert queue.override_for("otra", "¿A qué hora abrís?") is None  # per assistant
    assert queue.override_for("tienda", "¿A qué hora cerráis?") is None
    assert fb.id not in {f.id for f in queue.pending()}


def test_reviewer_wording_wins_and_newer_approval_retires_the_older(store: FeedbackStore) -> None:
    queue = ReviewQueue(store)
    first = store.add(answered(store, "¿Precio del envío?"), correction="Gratis.")
    second = store.add(answered(store, "precio del envio"), correction="3 euros")
    old = queue.approve(first.id)
    new = queue.approve(second.id, answer="El envío cuesta 3 € (gratis desde 50 €).")
    served = queue.override_for("tienda", "¿Precio del envío?")
    assert served is not None and served.id == new.id
    assert served.answer.startswith("El envío cuesta 3")
    assert not queue.get(old.id).active
    retired = queue.retire(new.id)
    assert not retired.active
    assert queue.override_for("tienda", "¿Precio del envío?") is None
    assert [o.id for o in queue.overrides(include_retired=True)] == [new.id, old.id]


def test_rejected_items_leave_the_queue_and_serve_nothing(store: FeedbackStore) -> None:
    queue = ReviewQueue(store)
    fb = store.add(answered(store, "¿Horario?"), rating=-1, correction="Mal")
    queue.reject(fb.id, reviewer="ana", note="la respuesta era correcta")
    assert queue.pending() == []
    assert queue.override_for("tienda", "¿Horario?") is None


def test_bad_decisions_are_refused_and_change_nothing(store: FeedbackStore) -> None:
    queue = ReviewQueue(store)
    no_fix = store.add(answered(store, "¿Horario?"), rating=-1)
    with pytest.raises(UserError, match="no correction"):
        queue.approve(no_fix.id)
    assert [f.id for f in queue.pending()] == [no_fix.id]  # still waiting
    with pytest.raises(UserError, match="at most"):
        queue.approve(no_fix.id, answer="x" * 30_000)
    with pytest.raises(NotFoundError):
        queue.approve("fb_missing", answer="hola")
    with pytest.raises(NotFoundError):
        queue.retire("ovr_missing")
    queue.approve(no_fix.id, answer="Abrimos a las 9.")
    with pytest.raises(UserError, match="already reviewed"):
        queue.reject(no_fix.id)
    with pytest.raises(UserError, match="already reviewed"):
        queue.approve(no_fix.id, answer="otra")
    assert len(queue.overrides()) == 1


def test_refused_answers_give_overrides_without_stale_citations(store: FeedbackStore) -> None:
    queue = ReviewQueue(store)
    fb = store.add(answered(store, "¿Hacéis envíos a Canarias?", refused=True), correction="Sí.")
    assert queue.approve(fb.id).citations == []


def test_an_old_feedback_file_is_migrated_in_place(tmp_path: Path) -> None:
    import sqlite3

    from acllm.feedback import MIGRATIONS

    path = tmp_path / "feedback.sqlite"
    conn = sqlite3.connect(path)
    for statement in MIGRATIONS[0]:
        conn.execute(statement)
    conn.execute("PRAGMA user_version = 1")
    conn.commit()
    conn.close()
    store = FeedbackStore(path)
    try:
        fb = store.add(answered(store, "¿Horario?"), correction="De 9 a 14.")
        assert ReviewQueue(store).approve(fb.id).answer == "De 9 a 14."
    finally:
        store.close()
