"""The review queue: answers users rated bad or corrected, shown with their sources, for a person
to decide on. An approved correction becomes an override that the assistant serves for the same
question from then on; a correction nobody reviewed is never served.

Decisions and overrides live in the feedback database (``acllm.feedback``), so the queue, the
answers and their sources stay in one file. An override matches a question after normalisation
(case, accents, punctuation, spacing, look-alike characters), per assistant; approving a newer
correction for the same question retires the older override, and an override can be retired by hand.
"""

from __future__ import annotations

import json
import re
import secrets
import time
from dataclasses import dataclass
from typing import Any, Literal

from acllm.errors import NotFoundError, UserError
from acllm.feedback import MAX_TEXT, Feedback, FeedbackStore
from acllm.guards.fold import plain

Decision = Literal["approved", "rejected"]
_NOT_WORD = re.compile(r"[^\w]+")


def question_key(text: str) -> str:
    """The form two questions must share to get the same override: '¿Qué horario tiene?' and
    'que horario tiene' match (look-alike letters and invisible characters folded as the guards
    fold them); a changed word or number does not."""
    return " ".join(_NOT_WORD.sub(" ", plain(text)).split())


@dataclass(frozen=True)
class Override:
    id: str
    created: float
    assistant: str
    question: str
    answer: str
    citations: list[dict[str, Any]]
    lang: str | None
    feedback_id: str
    reviewer: str | None
    active: bool

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "created": self.created,
            "assistant": self.assistant,
            "question": self.question,
            "answer": self.answer,
            "citations": self.citations,
            "lang": self.lang,
            "feedback_id": self.feedback_id,
            "reviewer": self.reviewer,
            "active": self.active,
        }


_OVERRIDE = (
    "id, created, assistant, question, answer, citations, lang, feedback_id, reviewer, active"
)


def _override(row: Any) -> Override:
    return Override(
        id=row[0],
        created=row[1],
        assistant=row[2],
        question=row[3],
        answer=row[4],
        citations=json.loads(row[5]),
        lang=row[6],
        feedback_id=row[7],
        reviewer=row[8],
        active=bool(row[9]),
    )


class ReviewQueue:
    def __init__(self, store: FeedbackStore) -> None:
        self.store = store
        self._db = store.db

    def pending(self, *, assistant: str | None = None, limit: int = 100) -> list[Feedback]:
        """Feedback that rated an answer bad or corrected it, not yet decided on; newest first."""
        sql = (
            "SELECT f.id FROM feedback f JOIN answers a ON a.id = f.answer_id"
            " WHERE (f.rating = -1 OR f.correction IS NOT NULL)"
            " AND f.id NOT IN (SELECT feedback_id FROM reviews)"
        )
        params: list[Any] = []
        if assistant is not None:
            sql += " AND a.assistant = ?"
            params.append(assistant)
        sql += " ORDER BY f.created DESC LIMIT ?"
        with self._db.read() as conn:
            ids = [r[0] for r in conn.execute(sql, (*params, max(0, limit)))]
        return [self.store.get(i) for i in ids]

    def approve(
        self,
        feedback_id: str,
        *,
        answer: str | None = None,
        reviewer: str | None = None,
        note: str | None = None,
        now: float | None = None,
    ) -> Override:
        """Accept a correction (or ``answer``, the reviewer's own wording) as the answer to serve."""
        feedback = self.store.get(feedback_id)
        text = (answer if answer is not None else feedback.correction or "").strip()
        if not text:
            raise UserError(
                f"feedback {feedback_id} carries no correction to serve",
                hint="give the reviewed answer (--answer TEXT, or 'answer' in the request body)",
            )
        if len(text) > MAX_TEXT:
            raise UserError(f"the answer has {len(text)} characters; at most {MAX_TEXT}")
        recorded = feedback.answer
        when = time.time() if now is None else now
        override_id = "ovr_" + secrets.token_hex(8)
        citations = [] if recorded["refused"] else recorded["citations"]
        with self._db.write() as conn:
            self._undecided(conn, feedback_id)
            conn.execute(
                "UPDATE overrides SET active = 0 WHERE assistant = ? AND question_key = ?",
                (recorded["assistant"], question_key(recorded["question"])),
            )
            conn.execute(
                "INSERT INTO reviews VALUES (?, ?, 'approved', ?, ?)",
                (feedback_id, when, reviewer, note),
            )
            conn.execute(
                f"INSERT INTO overrides ({_OVERRIDE}, question_key) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 1, ?)",
                (override_id, when, recorded["assistant"], recorded["question"], text,
                 json.dumps(citations, ensure_ascii=False), recorded["lang"], feedback_id,
                 reviewer, question_key(recorded["question"])),
            )  # fmt: skip
        return self.get(override_id)

    def reject(
        self,
        feedback_id: str,
        *,
        reviewer: str | None = None,
        note: str | None = None,
        now: float | None = None,
    ) -> None:
        """Close the item without serving anything (the answer was right, or the fix is elsewhere)."""
        self.store.get(feedback_id)  # NotFoundError names the id
        with self._db.write() as conn:
            self._undecided(conn, feedback_id)
            conn.execute(
                "INSERT INTO reviews VALUES (?, ?, 'rejected', ?, ?)",
                (feedback_id, time.time() if now is None else now, reviewer, note),
            )

    @staticmethod
    def _undecided(conn: Any, feedback_id: str) -> None:
        row = conn.execute(
            "SELECT decision FROM reviews WHERE feedback_id = ?", (feedback_id,)
        ).fetchone()
        if row is not None:
            raise UserError(
                f"feedback {feedback_id} was already reviewed ({row[0]})",
                hint="retire its override (acllm feedback retire ID) to undo an approval",
            )

    def override_for(self, assistant: str, question: str) -> Override | None:
        """The active reviewed answer for this question, if a reviewer approved one."""
        with self._db.read() as conn:
            row = conn.execute(
                f"SELECT {_OVERRIDE} FROM overrides WHERE assistant = ? AND question_key = ?"
                " AND active = 1 ORDER BY created DESC LIMIT 1",
                (assistant, question_key(question)),
            ).fetchone()
        return None if row is None else _override(row)

    def get(self, override_id: str) -> Override:
        with self._db.read() as conn:
            row = conn.execute(
                f"SELECT {_OVERRIDE} FROM overrides WHERE id = ?", (override_id,)
            ).fetchone()
        if row is None:
            raise NotFoundError(f"no override with id {override_id!r}")
        return _override(row)

    def overrides(
        self, *, assistant: str | None = None, include_retired: bool = False
    ) -> list[Override]:
        where, params = ["1"], []
        if assistant is not None:
            where.append("assistant = ?")
            params.append(assistant)
        if not include_retired:
            where.append("active = 1")
        sql = f"SELECT {_OVERRIDE} FROM overrides WHERE {' AND '.join(where)} ORDER BY created DESC"
        with self._db.read() as conn:
            return [_override(r) for r in conn.execute(sql, params)]

    def retire(self, override_id: str) -> Override:
        """Stop serving an override (kept, inactive, for the record)."""
        self.get(override_id)
        with self._db.write() as conn:
            conn.execute("UPDATE overrides SET active = 0 WHERE id = ?", (override_id,))
        return self.get(override_id)
