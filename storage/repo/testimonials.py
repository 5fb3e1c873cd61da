"""Testimonials (心得) and conversions (报名)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, select, update

from storage.repo._common import _insert_new, _shown, _with_member
from storage.repo.tables import conversion_t, testimonial_t


@dataclass(frozen=True)
class TestimonialRow:
    __test__ = False  # not a test class, whatever pytest thinks of the name

    id: int
    member_id: str
    name: str  # as shown: group alias, name, else the id
    track: str
    day: int
    at: datetime
    text: str
    featured_at: datetime | None
    featured_by: str | None


def add_testimonial(
    conn: Connection, cohort_id: str, member_id: str, track: str, day: int, at: datetime, text: str
) -> bool:
    """Keep a testimonial's text; False if this member's same text is kept already."""
    digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()
    values = dict(cohort_id=cohort_id, member_id=member_id, track=track, day=day, at=at, text=text)
    return _insert_new(conn, testimonial_t, {**values, "digest": digest})


def testimonials(
    conn: Connection,
    cohort_id: str,
    member_id: str | None = None,
    featured_only: bool = False,
    newest_first: bool = False,
    limit: int | None = None,
) -> list[TestimonialRow]:
    t = testimonial_t
    q = select(
        t.c.id,
        t.c.member_id,
        _shown(t),
        t.c.track,
        t.c.day,
        t.c.at,
        t.c.text,
        t.c.featured_at,
        t.c.featured_by,
    ).select_from(_with_member(t))
    q = q.where(t.c.cohort_id == cohort_id)
    if member_id is not None:
        q = q.where(t.c.member_id == member_id)
    if featured_only:
        q = q.where(t.c.featured_at.is_not(None))
    q = q.order_by(t.c.at.desc(), t.c.id.desc()) if newest_first else q.order_by(t.c.at, t.c.id)
    if limit is not None:
        q = q.limit(limit)
    return [TestimonialRow(*r) for r in conn.execute(q)]


def set_featured(conn: Connection, testimonial_id: int, at: datetime | None, by: str | None) -> None:
    """Feature a testimonial (精选), or take the mark away (``at`` None)."""
    conn.execute(
        update(testimonial_t)
        .where(testimonial_t.c.id == testimonial_id)
        .values(featured_at=at, featured_by=by)
    )


@dataclass(frozen=True)
class ConversionRow:
    member_id: str
    name: str  # as shown
    at: datetime
    source: str  # an operator's id, or "import:<file>"


def add_conversion(conn: Connection, cohort_id: str, member_id: str, at: datetime, source: str) -> bool:
    """Mark a member converted (bought the full course); False if marked before."""
    return _insert_new(
        conn, conversion_t, dict(cohort_id=cohort_id, member_id=member_id, at=at, source=source)
    )


def remove_conversion(conn: Connection, cohort_id: str, member_id: str) -> bool:
    res = conn.execute(
        conversion_t.delete().where(
            conversion_t.c.cohort_id == cohort_id, conversion_t.c.member_id == member_id
        )
    )
    return res.rowcount == 1


def conversions(conn: Connection, cohort_id: str, member_id: str | None = None) -> list[ConversionRow]:
    c = conversion_t
    q = select(c.c.member_id, _shown(c), c.c.at, c.c.source).select_from(_with_member(c))
    q = q.where(c.c.cohort_id == cohort_id).order_by(c.c.at, c.c.member_id)
    if member_id is not None:
        q = q.where(c.c.member_id == member_id)
    return [ConversionRow(*r) for r in conn.execute(q)]
