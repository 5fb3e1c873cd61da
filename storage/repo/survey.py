"""The questionnaire (bot/survey.py): each member's progress and answers."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, and_, func, select, update

from storage.models import LEARNER
from storage.repo._common import _aware, _insert_new
from storage.repo.members import _MEMBER_COLS, MemberRow
from storage.repo.tables import answer_t, member_t, out_t, progress_t


@dataclass(frozen=True)
class Progress:
    member: MemberRow
    question: int
    again: bool  # asked again after an answer that was none of the choices


def _progress_of(cohort_id: str, survey_id: str) -> Any:
    """Progress rows still under way, with their member, in the group now (a member who left
    is asked nothing more), learners only."""
    return (
        select(*_MEMBER_COLS, progress_t.c.question, progress_t.c.again_at.is_not(None))
        .join(
            member_t,
            and_(
                member_t.c.cohort_id == progress_t.c.cohort_id,
                member_t.c.member_id == progress_t.c.member_id,
            ),
        )
        .where(
            progress_t.c.cohort_id == cohort_id,
            progress_t.c.survey_id == survey_id,
            progress_t.c.done_at.is_(None),
            progress_t.c.link_at.is_(None),
            member_t.c.present.is_(True),
            member_t.c.role == LEARNER,
        )
        .order_by(progress_t.c.started_at, progress_t.c.member_id)
    )


def _progress(rows: Any) -> list[Progress]:
    return [Progress(MemberRow(*r[:6]), r[6], bool(r[7])) for r in rows]


def survey_claim_everyone(conn: Connection, cohort_id: str, survey_id: str, now: datetime) -> int:
    """Claim the questionnaire for every learner in the group who has not had it; returns how
    many were claimed (their first question waits to be asked)."""
    had = select(progress_t.c.member_id).where(
        progress_t.c.cohort_id == cohort_id, progress_t.c.survey_id == survey_id
    )
    q = select(member_t.c.member_id).where(
        member_t.c.cohort_id == cohort_id,
        member_t.c.present.is_(True),
        member_t.c.role == LEARNER,
        member_t.c.member_id.not_in(had),
    )
    claimed = 0
    for mid in list(conn.execute(q).scalars()):
        row = dict(cohort_id=cohort_id, member_id=mid, survey_id=survey_id, question=0, started_at=now)
        claimed += _insert_new(conn, progress_t, row)
    return claimed


def survey_to_ask(
    conn: Connection, cohort_id: str, survey_id: str, member_id: str | None = None
) -> list[Progress]:
    """Members whose next question waits to be asked (all, or one)."""
    q = _progress_of(cohort_id, survey_id).where(progress_t.c.asked_at.is_(None))
    if member_id is not None:
        q = q.where(progress_t.c.member_id == member_id)
    return _progress(conn.execute(q))


def survey_ask(
    conn: Connection, cohort_id: str, member_id: str, survey_id: str, question: int, at: datetime
) -> bool:
    """Claim the asking of ``question`` (before it is queued): False if it was asked already."""
    res = conn.execute(
        update(progress_t)
        .where(
            progress_t.c.cohort_id == cohort_id,
            progress_t.c.member_id == member_id,
            progress_t.c.survey_id == survey_id,
            progress_t.c.question == question,
            progress_t.c.asked_at.is_(None),
        )
        .values(asked_at=at)
    )
    return res.rowcount == 1


def survey_asked_in(conn: Connection, cohort_id: str, member_id: str, survey_id: str, row: int) -> None:
    """The outbox row that carries the question just claimed."""
    _progress_update(conn, cohort_id, member_id, survey_id, asked_row=row)


def survey_open(
    conn: Connection, cohort_id: str, member_id: str, survey_id: str, now: datetime
) -> Progress | None:
    """The member's question waiting for an answer: asked, and its message gone out (a
    message sent before the question reached them is not its answer)."""
    waiting = select(out_t.c.id).where(out_t.c.status.in_(("pending", "sending")))
    q = _progress_of(cohort_id, survey_id).where(
        progress_t.c.member_id == member_id,
        progress_t.c.asked_at <= now,
        progress_t.c.asked_row.is_(None) | progress_t.c.asked_row.not_in(waiting),
    )
    found = _progress(conn.execute(q))
    return found[0] if found else None


def _progress_update(conn: Connection, cohort_id: str, member_id: str, survey_id: str, **values: Any) -> None:
    conn.execute(
        update(progress_t)
        .where(
            progress_t.c.cohort_id == cohort_id,
            progress_t.c.member_id == member_id,
            progress_t.c.survey_id == survey_id,
        )
        .values(**values)
    )


def survey_again(conn: Connection, cohort_id: str, member_id: str, survey_id: str, at: datetime) -> None:
    _progress_update(conn, cohort_id, member_id, survey_id, again_at=at)


def survey_answered(
    conn: Connection,
    cohort_id: str,
    member_id: str,
    survey_id: str,
    question: int,
    text: str,
    choice: int | None,
    at: datetime,
    done: bool,
) -> bool:
    """Keep the answer and move on to the next question (or finish); False if that question
    was answered already."""
    row = dict(
        cohort_id=cohort_id,
        member_id=member_id,
        survey_id=survey_id,
        question=question,
        text=text,
        choice=choice,
        at=at,
    )
    if not _insert_new(conn, answer_t, row):
        return False
    _progress_update(
        conn,
        cohort_id,
        member_id,
        survey_id,
        question=question + 1,
        asked_at=None,
        asked_row=None,
        again_at=None,
        done_at=at if done else None,
    )
    return True


def survey_finished(conn: Connection, cohort_id: str, member_id: str, survey_id: str, at: datetime) -> None:
    """Nothing more to ask (the playbook's questions were cut short by an edit)."""
    _progress_update(conn, cohort_id, member_id, survey_id, done_at=at)


def survey_to_remind(
    conn: Connection, cohort_id: str, survey_id: str, asked_before: datetime
) -> list[Progress]:
    """Members reachable privately whose question has waited since before ``asked_before``
    and who have not had their one reminder."""
    q = _progress_of(cohort_id, survey_id).where(
        progress_t.c.asked_at <= asked_before,
        progress_t.c.reminded_at.is_(None),
        member_t.c.reachable.is_(True),
    )
    return _progress(conn.execute(q))


def survey_first_unreminded(conn: Connection, cohort_id: str, survey_id: str) -> datetime | None:
    """When the longest-waiting question that may still be reminded of was asked."""
    q = (
        _progress_of(cohort_id, survey_id)
        .where(
            progress_t.c.asked_at.is_not(None),
            progress_t.c.reminded_at.is_(None),
            member_t.c.reachable.is_(True),
        )
        .with_only_columns(func.min(progress_t.c.asked_at))
        .order_by(None)
    )
    return _aware(conn.execute(q).scalar())


def survey_reminded(conn: Connection, cohort_id: str, member_id: str, survey_id: str, at: datetime) -> None:
    _progress_update(conn, cohort_id, member_id, survey_id, reminded_at=at)


def survey_still_asking(conn: Connection, cohort_id: str, member_id: str, survey_id: str) -> bool:
    """The member has the questionnaire under way (not finished, not given the link)."""
    q = select(progress_t.c.member_id).where(
        progress_t.c.cohort_id == cohort_id,
        progress_t.c.member_id == member_id,
        progress_t.c.survey_id == survey_id,
        progress_t.c.done_at.is_(None),
        progress_t.c.link_at.is_(None),
    )
    return conn.execute(q).first() is not None


def survey_linked(conn: Connection, cohort_id: str, member_id: str, survey_id: str, at: datetime) -> None:
    _progress_update(conn, cohort_id, member_id, survey_id, link_at=at)


@dataclass(frozen=True)
class SurveyRow:
    member_id: str
    name: str  # as shown in the group (alias, else name, else the id)
    question: int
    text: str
    choice: int | None
    at: datetime


def survey_ids(conn: Connection, cohort_id: str) -> list[str]:
    """The questionnaires the cohort has records of, the most recently started first."""
    q = (
        select(progress_t.c.survey_id, func.max(progress_t.c.started_at).label("last"))
        .where(progress_t.c.cohort_id == cohort_id)
        .group_by(progress_t.c.survey_id)
        .order_by(func.max(progress_t.c.started_at).desc(), progress_t.c.survey_id)
    )
    return [r[0] for r in conn.execute(q)]


def survey_counts(conn: Connection, cohort_id: str, survey_id: str) -> dict[str, int]:
    """How many members had the questionnaire (`invited`), were asked privately (`asked`),
    were given the link instead (`linked`), answered at least once (`answered`), finished
    (`done`)."""
    p = progress_t.c
    q = select(
        func.count(),
        func.count(p.link_at),
        func.count(p.done_at),
    ).where(p.cohort_id == cohort_id, p.survey_id == survey_id)
    invited, linked, done = conn.execute(q).one()
    answered = conn.execute(
        select(func.count(func.distinct(answer_t.c.member_id))).where(
            answer_t.c.cohort_id == cohort_id, answer_t.c.survey_id == survey_id
        )
    ).scalar_one()
    return {
        "invited": invited,
        "asked": invited - linked,
        "linked": linked,
        "answered": answered,
        "done": done,
    }


def survey_answers(conn: Connection, cohort_id: str, survey_id: str) -> list[SurveyRow]:
    """Every answer, by question, then in the order they came."""
    q = (
        select(
            answer_t.c.member_id,
            member_t.c.alias,
            member_t.c.name,
            answer_t.c.question,
            answer_t.c.text,
            answer_t.c.choice,
            answer_t.c.at,
        )
        .select_from(answer_t)
        .outerjoin(
            member_t,
            and_(member_t.c.cohort_id == answer_t.c.cohort_id, member_t.c.member_id == answer_t.c.member_id),
        )
        .where(answer_t.c.cohort_id == cohort_id, answer_t.c.survey_id == survey_id)
        .order_by(answer_t.c.question, answer_t.c.at, answer_t.c.member_id)
    )
    return [
        SurveyRow(mid, alias or name or mid, question, text, choice, _aware(at))
        for mid, alias, name, question, text, choice, at in conn.execute(q)
    ]
