"""Members' questions waiting for an operator's answer, and their digests."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, and_, func, select, update

from storage.repo._common import _aware, _shown, _with_member
from storage.repo.tables import question_t

_question_waits = and_(question_t.c.answered_at.is_(None), question_t.c.digest_at.is_(None))


@dataclass(frozen=True)
class WaitingQuestion:
    id: int
    member_id: str
    name: str
    text: str
    private: bool
    asked_at: datetime


def add_question(
    conn: Connection, cohort_id: str, member_id: str, text: str, at: datetime, private: bool
) -> bool:
    """Record a question; False if the member's same question already waits."""
    same = select(question_t.c.id).where(
        question_t.c.cohort_id == cohort_id,
        question_t.c.member_id == member_id,
        question_t.c.text == text,
        _question_waits,
    )
    if conn.execute(same.limit(1)).first() is not None:
        return False
    conn.execute(
        question_t.insert().values(
            cohort_id=cohort_id, member_id=member_id, text=text, private=private, asked_at=at
        )
    )
    return True


def answer_questions(
    conn: Connection, cohort_id: str, at: datetime, member_ids: Collection[str] | None = None
) -> int:
    """An operator answered: the waiting questions asked before ``at`` of these members (group
    and private), or, without members, every waiting question asked in the group."""
    q = update(question_t).where(
        question_t.c.cohort_id == cohort_id, _question_waits, question_t.c.asked_at <= at
    )
    if member_ids is None:
        q = q.where(question_t.c.private.is_(False))
    else:
        q = q.where(question_t.c.member_id.in_(list(member_ids)))
    return conn.execute(q.values(answered_at=at)).rowcount


def oldest_question(conn: Connection, cohort_id: str) -> datetime | None:
    """When the oldest question still waiting for an answer was asked."""
    q = select(func.min(question_t.c.asked_at)).where(question_t.c.cohort_id == cohort_id, _question_waits)
    return _aware(conn.execute(q).scalar())


def last_digest(conn: Connection, cohort_id: str) -> datetime | None:
    q = select(func.max(question_t.c.digest_at)).where(question_t.c.cohort_id == cohort_id)
    return _aware(conn.execute(q).scalar())


def waiting_questions(conn: Connection, cohort_id: str, asked_by: datetime) -> list[WaitingQuestion]:
    """The questions asked by ``asked_by`` that still wait, oldest first, with who asked."""
    q = (
        select(
            question_t.c.id,
            question_t.c.member_id,
            _shown(question_t),
            question_t.c.text,
            question_t.c.private,
            question_t.c.asked_at,
        )
        .select_from(_with_member(question_t))
        .where(question_t.c.cohort_id == cohort_id, _question_waits, question_t.c.asked_at <= asked_by)
        .order_by(question_t.c.asked_at, question_t.c.id)
    )
    return [WaitingQuestion(i, m, n, t, bool(p), _aware(a)) for i, m, n, t, p, a in conn.execute(q)]


def mark_digested(conn: Connection, ids: Sequence[int], at: datetime) -> None:
    conn.execute(update(question_t).where(question_t.c.id.in_(list(ids))).values(digest_at=at))
