"""Answers as they were given, and what users said about them.

Every assistant answer the service gives is recorded with its question, its citations (source,
location, text) and the config that produced it (assistant options, model, index), under an
``answer_id`` returned to the client. Feedback then names that id, so a thumbs down always arrives
with the exact sources and settings behind the answer — nothing the client could forge or lose.
Evals turn the rated answers into regression cases; the patterns' review queue lists the bad ones.

One SQLite file (``<data_dir>/feedback.sqlite``). Answers without feedback are purged after
``keep_days``; answers with feedback are kept.
"""

from __future__ import annotations

import json
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from acllm.errors import NotFoundError, UserError
from acllm.sqlitedb import Database

MIGRATIONS: list[tuple[str, ...]] = [
    (
        """CREATE TABLE answers (
            id TEXT PRIMARY KEY, created REAL NOT NULL, key_id TEXT, assistant TEXT NOT NULL,
            conversation TEXT, question TEXT NOT NULL, answer TEXT NOT NULL, refused INTEGER,
            lang TEXT, citations TEXT NOT NULL, config TEXT NOT NULL)""",
        "CREATE INDEX answers_created ON answers (created)",
        """CREATE TABLE feedback (
            id TEXT PRIMARY KEY, answer_id TEXT NOT NULL REFERENCES answers (id),
            created REAL NOT NULL, key_id TEXT, rating INTEGER, correction TEXT, comment TEXT)""",
        "CREATE INDEX feedback_answer ON feedback (answer_id)",
        "CREATE INDEX feedback_rating ON feedback (rating, created)",
    ),
    (  # the review queue's decisions, and the corrections they turned into overrides
        """CREATE TABLE reviews (
            feedback_id TEXT PRIMARY KEY REFERENCES feedback (id), created REAL NOT NULL,
            decision TEXT NOT NULL, reviewer TEXT, note TEXT)""",
        """CREATE TABLE overrides (
            id TEXT PRIMARY KEY, created REAL NOT NULL, assistant TEXT NOT NULL,
            question_key TEXT NOT NULL, question TEXT NOT NULL, answer TEXT NOT NULL,
            citations TEXT NOT NULL, lang TEXT, feedback_id TEXT NOT NULL, reviewer TEXT,
            active INTEGER NOT NULL DEFAULT 1)""",
        "CREATE INDEX overrides_lookup ON overrides (assistant, question_key, active)",
    ),
]
MAX_TEXT = 20_000  # characters in a correction or comment


@dataclass(frozen=True)
class Feedback:
    id: str
    answer_id: str
    created: float
    rating: int | None  # +1 thumbs up, -1 thumbs down, None: only a correction or comment
    correction: str | None
    comment: str | None
    key_id: str | None
    answer: dict[str, Any]  # the recorded answer: question, answer, citations, config, ...

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "answer_id": self.answer_id,
            "created": self.created,
            "rating": self.rating,
            "correction": self.correction,
            "comment": self.comment,
            "key_id": self.key_id,
            "answer": self.answer,
        }


def _text(name: str, value: str | None) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise UserError(f"feedback {name} must be text, got {type(value).__name__}")
    value = value.strip()
    if len(value) > MAX_TEXT:
        raise UserError(
            f"feedback {name} has {len(value)} characters; at most {MAX_TEXT}",
            hint="shorten it",
        )
    return value or None


class FeedbackStore:
    def __init__(self, path: str | Path, *, keep_days: float = 30.0) -> None:
        self.keep_days = keep_days
        self._db = Database(
            path, MIGRATIONS, what="feedback database", hint="move the file aside to start afresh"
        )
        self.path = self._db.path

    @property
    def db(self) -> Database:
        """The database, for the review queue (acllm.review) that shares the file."""
        return self._db

    def record_answer(
        self,
        *,
        assistant: str,
        answer: dict[str, Any],
        config: dict[str, Any],
        key_id: str | None = None,
        conversation: str | None = None,
        now: float | None = None,
    ) -> str:
        """Store an answer (``Answer.as_dict()``) and return its id for later feedback."""
        answer_id = "ans_" + secrets.token_hex(8)
        row = (
            answer_id,
            time.time() if now is None else now,
            key_id,
            assistant,
            conversation,
            str(answer.get("question", "")),
            str(answer.get("answer", "")),
            int(bool(answer.get("refused"))),
            answer.get("lang"),
            json.dumps(answer.get("citations", []), ensure_ascii=False),
            json.dumps(config, ensure_ascii=False, default=str),
        )
        with self._db.write() as conn:
            conn.execute("INSERT INTO answers VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", row)
        return answer_id

    def add(
        self,
        answer_id: str,
        *,
        rating: int | None = None,
        correction: str | None = None,
        comment: str | None = None,
        key_id: str | None = None,
        now: float | None = None,
    ) -> Feedback:
        """Feedback on a recorded answer: a rating (+1/-1), a correction, a comment, or several."""
        if rating is not None and (isinstance(rating, bool) or rating not in (-1, 1)):
            raise UserError(f"rating must be 1 (good) or -1 (bad), got {rating!r}")
        correction, comment = _text("correction", correction), _text("comment", comment)
        if rating is None and correction is None and comment is None:
            raise UserError(
                "empty feedback", hint="give a rating (1 or -1), a correction or a comment"
            )
        feedback_id = "fb_" + secrets.token_hex(8)
        with self._db.write() as conn:
            if conn.execute("SELECT 1 FROM answers WHERE id = ?", (answer_id,)).fetchone() is None:
                raise NotFoundError(
                    f"no answer with id {answer_id!r}",
                    hint="send the answer_id the service returned with the answer",
                )
            conn.execute(
                "INSERT INTO feedback VALUES (?, ?, ?, ?, ?, ?, ?)",
                (feedback_id, answer_id, time.time() if now is None else now, key_id, rating,
                 correction, comment),
            )  # fmt: skip
        return self.get(feedback_id)

    def answer(self, answer_id: str) -> dict[str, Any]:
        with self._db.read() as conn:
            row = conn.execute(f"SELECT {_ANSWER} FROM answers a WHERE id = ?", (answer_id,))
            found = row.fetchone()
        if found is None:
            raise NotFoundError(f"no answer with id {answer_id!r}")
        return _answer(found)

    def get(self, feedback_id: str) -> Feedback:
        with self._db.read() as conn:
            row = conn.execute(f"{_JOINED} WHERE f.id = ?", (feedback_id,)).fetchone()
        if row is None:
            raise NotFoundError(f"no feedback with id {feedback_id!r}")
        return _feedback(row)

    def list(
        self, *, rating: int | None = None, since: float | None = None, limit: int = 100
    ) -> list[Feedback]:
        """Newest first; ``rating=-1`` is the review queue of answers rated bad."""
        where: list[str] = ["1"]
        params: list[float] = []
        if rating is not None:
            where.append("f.rating = ?")
            params.append(rating)
        if since is not None:
            where.append("f.created >= ?")
            params.append(since)
        sql = f"{_JOINED} WHERE {' AND '.join(where)} ORDER BY f.created DESC LIMIT ?"
        with self._db.read() as conn:
            rows = conn.execute(sql, (*params, max(0, limit))).fetchall()
        return [_feedback(r) for r in rows]

    def purge(self, now: float | None = None) -> int:
        """Delete answers older than ``keep_days`` that nobody gave feedback on."""
        cutoff = (time.time() if now is None else now) - self.keep_days * 86400
        with self._db.write() as conn:
            gone = conn.execute(
                "DELETE FROM answers WHERE created < ? AND id NOT IN "
                "(SELECT answer_id FROM feedback)",
                (cutoff,),
            )
            return gone.rowcount

    def close(self) -> None:
        self._db.close()


_ANSWER = (
    "a.id, a.created, a.key_id, a.assistant, a.conversation, a.question, a.answer, a.refused,"
    " a.lang, a.citations, a.config"
)
_JOINED = (
    "SELECT f.id, f.answer_id, f.created, f.rating, f.correction, f.comment, f.key_id, "
    f"{_ANSWER} FROM feedback f JOIN answers a ON a.id = f.answer_id"
)


def _answer(row: Any) -> dict[str, Any]:
    keys = ("id", "created", "key_id", "assistant", "conversation", "question", "answer")
    out = dict(zip(keys, row[:7], strict=True))
    out["refused"] = bool(row[7])
    out["lang"] = row[8]
    out["citations"] = json.loads(row[9])
    out["config"] = json.loads(row[10])
    return out


def _feedback(row: Any) -> Feedback:
    return Feedback(
        id=row[0],
        answer_id=row[1],
        created=row[2],
        rating=row[3],
        correction=row[4],
        comment=row[5],
        key_id=row[6],
        answer=_answer(row[7:]),
    )
