"""The outbox: messages queued, sent, retried or held, and what the senders and pages ask of it."""

from __future__ import annotations

import json
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, bindparam, func, select, update

from storage.repo._common import _aware, _in
from storage.repo.tables import out_t


@dataclass(frozen=True)
class OutRow:
    id: int
    cohort_id: str
    room_id: str | None
    member_id: str | None
    text: str
    mentions: tuple[str, ...]
    kind: str
    priority: int
    not_before: datetime
    created_at: datetime

    @property
    def chat(self) -> str:
        return f"room:{self.room_id}" if self.room_id is not None else f"dm:{self.member_id}"


def enqueue(
    conn: Connection,
    cohort_id: str,
    *,
    text: str,
    kind: str,
    now: datetime,
    room_id: str | None = None,
    member_id: str | None = None,
    mentions: Sequence[str] = (),
    priority: int = 0,
    not_before: datetime | None = None,
    image: bytes | None = None,
) -> int:
    """Queue a message (or, with ``image``, a picture named ``text``); returns its row id."""
    if (room_id is None) == (member_id is None):
        raise ValueError("a message goes to a room or to a member")
    res = conn.execute(
        _ENQUEUE,
        dict(
            cohort_id=cohort_id,
            room_id=room_id,
            member_id=member_id,
            text=text,
            mentions=json.dumps(list(mentions), ensure_ascii=False) if mentions else "",
            kind=kind,
            priority=priority,
            created_at=now,
            not_before=not_before or now,
            status="pending",
            image=image,
        ),
    )
    key = res.inserted_primary_key
    assert key is not None
    return int(key[0])


_ENQUEUE = out_t.insert()


def image_of(conn: Connection, row_id: int) -> bytes | None:
    """The picture of a queued image row (kept out of OutRow: the queue is read often)."""
    return conn.execute(select(out_t.c.image).where(out_t.c.id == row_id)).scalar_one_or_none()


def still_pending(conn: Connection, ids: Sequence[int]) -> int:
    """How many of these rows are still waiting to be sent."""
    q = select(func.count()).where(out_t.c.id.in_(list(ids)), out_t.c.status == "pending")
    return int(conn.execute(q).scalar_one())


_OUT_COLS = (
    out_t.c.id,
    out_t.c.cohort_id,
    out_t.c.room_id,
    out_t.c.member_id,
    out_t.c.text,
    out_t.c.mentions,
    out_t.c.kind,
    out_t.c.priority,
    out_t.c.not_before,
    out_t.c.created_at,
)


def _out_row(r: Any) -> OutRow:
    return OutRow(
        r[0], r[1], r[2], r[3], r[4], tuple(json.loads(r[5])) if r[5] else (), r[6], r[7], r[8], r[9]
    )


_NEXT_READY = (
    select(*_OUT_COLS)
    .where(out_t.c.status == "pending", out_t.c.not_before <= bindparam("now"))
    .order_by(out_t.c.priority, out_t.c.id)
    .limit(1)
)
_NEXT_WAKEUP = select(func.min(out_t.c.not_before)).where(out_t.c.status == "pending")
_FOLDABLE = (
    select(*_OUT_COLS)
    .where(
        out_t.c.status == "pending",
        out_t.c.room_id == bindparam("room"),
        out_t.c.kind.in_(bindparam("kinds", expanding=True)),
    )
    .order_by(out_t.c.id)
    .limit(bindparam("limit"))
)
# The same, for one process among several on the database: its own cohorts' rows only.
_MINE = out_t.c.cohort_id.in_(bindparam("cohorts", expanding=True))
_SCOPED = {q: q.where(_MINE) for q in (_NEXT_READY, _NEXT_WAKEUP, _FOLDABLE)}


def _run_scoped(conn: Connection, q: Any, params: dict[str, Any], cohorts: Collection[str] | None) -> Any:
    """Run a prepared outbox query, limited to ``cohorts`` unless None."""
    if cohorts is None:
        return conn.execute(q, params)
    return conn.execute(_SCOPED[q], {**params, "cohorts": list(cohorts)})


def next_ready(conn: Connection, now: datetime, cohorts: Collection[str] | None = None) -> OutRow | None:
    """The message to send next: the first pending one whose wait is over."""
    r = _run_scoped(conn, _NEXT_READY, {"now": now}, cohorts).first()
    return _out_row(r) if r else None


def next_wakeup(conn: Connection, cohorts: Collection[str] | None = None) -> datetime | None:
    """When the earliest pending message may go, or None if nothing is pending."""
    return _aware(_run_scoped(conn, _NEXT_WAKEUP, {}, cohorts).scalar())


def foldable(
    conn: Connection,
    room_id: str,
    kinds: Collection[str],
    limit: int,
    cohorts: Collection[str] | None = None,
) -> list[OutRow]:
    """Pending notices of these kinds to one room, oldest first."""
    params = {"room": room_id, "kinds": list(kinds), "limit": limit}
    return [_out_row(r) for r in _run_scoped(conn, _FOLDABLE, params, cohorts)]


def mark(
    conn: Connection, ids: Sequence[int], status: str, at: datetime | None = None, error: str | None = None
) -> None:
    values: dict[str, Any] = {"status": status}
    if status == "sent":
        values["sent_at"] = at
    if status in ("sent", "unknown", "failed") and len(ids) > 0:
        values["batch"] = ids[0]  # rows that went out (or were tried) together as one message
    if error is not None:
        values["error"] = error[:500]
    conn.execute(update(out_t).where(out_t.c.id.in_(list(ids))).values(**values))


def claim_sends(conn: Connection, ids: Sequence[int]) -> list[int]:
    """Move pending rows to `sending`; returns the ids this call claimed, so that a second
    sender on the same database can never send the same row."""
    res = conn.execute(
        update(out_t)
        .where(out_t.c.id.in_(list(ids)), out_t.c.status == "pending")
        .values(status="sending", attempts=out_t.c.attempts + 1)
        .returning(out_t.c.id)
    )
    return sorted(res.scalars())


def retry_later(conn: Connection, ids: Sequence[int], not_before: datetime, error: str) -> None:
    conn.execute(
        update(out_t)
        .where(out_t.c.id.in_(list(ids)))
        .values(status="pending", not_before=not_before, error=error[:500])
    )


def attempts(conn: Connection, ids: Sequence[int]) -> dict[int, int]:
    """How many times each row has been tried."""
    q = select(out_t.c.id, out_t.c.attempts).where(out_t.c.id.in_(list(ids)))
    return {i: n for i, n in conn.execute(q)}


def interrupted_sends(conn: Connection, cohorts: Collection[str] | None = None) -> list[OutRow]:
    """Rows a previous run started sending but never marked: whether WeChat got them is
    unknown, so they are not sent again. (Another process's `sending` rows are its sends in
    flight: ``cohorts`` keeps them out.)"""
    q = select(*_OUT_COLS).where(out_t.c.status == "sending")
    return [_out_row(r) for r in conn.execute(_in(q, out_t, cohorts))]


def stale_pending(conn: Connection, before: datetime, cohorts: Collection[str] | None = None) -> list[OutRow]:
    """Pending group messages that were due before ``before``: a notice hours late makes no
    sense. Private messages (replies, nudges, rewards, alerts) always go."""
    q = select(*_OUT_COLS).where(
        out_t.c.status == "pending", out_t.c.not_before < before, out_t.c.room_id.is_not(None)
    )
    return [_out_row(r) for r in conn.execute(_in(q, out_t, cohorts))]


def update_pending_text(
    conn: Connection, ids: Sequence[int], text: str, not_before: datetime | None = None
) -> int:
    """Rewrite messages not sent yet (and, given ``not_before``, hold them till then);
    returns how many were still pending."""
    values: dict[str, Any] = {"text": text}
    if not_before is not None:
        values["not_before"] = not_before
    res = conn.execute(
        update(out_t).where(out_t.c.id.in_(list(ids)), out_t.c.status == "pending").values(**values)
    )
    return res.rowcount


def cancel_pending(conn: Connection, ids: Sequence[int]) -> int:
    res = conn.execute(
        update(out_t).where(out_t.c.id.in_(list(ids)), out_t.c.status == "pending").values(status="cancelled")
    )
    return res.rowcount


def unknown_batches(
    conn: Connection,
    room_id: str | None,
    member_id: str | None,
    since: datetime,
    cohorts: Collection[str] | None = None,
) -> list[tuple[str, list[int], str]]:
    """Messages to one chat whose send was cut (status `unknown`) since ``since``: (cohort,
    row ids, the text as the sender joined it), one entry per message tried."""
    q = select(out_t.c.id, out_t.c.batch, out_t.c.text, out_t.c.cohort_id).where(
        out_t.c.status == "unknown", out_t.c.created_at >= since
    )
    q = _in(q, out_t, cohorts)
    if room_id is not None:
        q = q.where(out_t.c.room_id == room_id)
    else:
        q = q.where(out_t.c.member_id == member_id)
    batches: dict[int, tuple[str, list[int], list[str]]] = {}
    for rid, batch, text, cohort in conn.execute(q.order_by(out_t.c.id)):
        _, ids, texts = batches.setdefault(batch or rid, (cohort, [], []))
        ids.append(rid)
        texts.append(text)
    return [(c, ids, "\n".join(texts)) for c, ids, texts in batches.values()]


def repoint_room(conn: Connection, cohort_id: str, old: str, new: str) -> int:
    """Queued group messages follow the room to its new id (a gateway that renumbered)."""
    res = conn.execute(
        update(out_t)
        .where(out_t.c.cohort_id == cohort_id, out_t.c.room_id == old, out_t.c.status == "pending")
        .values(room_id=new)
    )
    return res.rowcount


def recent_sends(
    conn: Connection, since: datetime, cohorts: Collection[str] | None = None
) -> list[tuple[str, datetime]]:
    """(chat, sent at) of the messages sent since ``since``, oldest first: the pacing
    history a restart must not forget (one account's: its own cohorts')."""
    q = (
        select(out_t.c.room_id, out_t.c.member_id, out_t.c.sent_at)
        .where(out_t.c.status == "sent", out_t.c.sent_at >= since, out_t.c.batch == out_t.c.id)
        .order_by(out_t.c.sent_at)
    )
    rows = conn.execute(_in(q, out_t, cohorts))
    return [(f"room:{r}" if r is not None else f"dm:{m}", a) for r, m, a in rows]


def sent_log(conn: Connection, cohort_id: str) -> list[tuple[str, datetime, int, int]]:
    """(kind, sent at, number of @-mentions, batch) of every row sent, in order."""
    q = (
        select(out_t.c.kind, out_t.c.sent_at, out_t.c.mentions, out_t.c.batch)
        .where(out_t.c.cohort_id == cohort_id, out_t.c.status == "sent")
        .order_by(out_t.c.id)
    )
    return [(k, a, len(json.loads(m)) if m else 0, b) for k, a, m, b in conn.execute(q)]


def update_pending_message(conn: Connection, row_id: int, text: str, mentions: Sequence[str]) -> bool:
    """Rewrite a message not sent yet, text and @s (more askers joined a folded answer);
    False if it is already on its way."""
    res = conn.execute(
        update(out_t)
        .where(out_t.c.id == row_id, out_t.c.status == "pending")
        .values(text=text, mentions=json.dumps(list(mentions), ensure_ascii=False) if mentions else "")
    )
    return res.rowcount == 1


def pending_group_row(conn: Connection, cohort_id: str, kind: str) -> OutRow | None:
    """The newest message of this kind still waiting to go to the cohort's group."""
    q = (
        select(*_OUT_COLS)
        .where(
            out_t.c.cohort_id == cohort_id,
            out_t.c.kind == kind,
            out_t.c.status == "pending",
            out_t.c.room_id.is_not(None),
        )
        .order_by(out_t.c.id.desc())
        .limit(1)
    )
    r = conn.execute(q).first()
    return _out_row(r) if r else None


def set_pending_mentions(conn: Connection, row_id: int, mentions: Sequence[str]) -> bool:
    """The members a message not sent yet @-mentions; False if it has gone meanwhile."""
    res = conn.execute(
        update(out_t)
        .where(out_t.c.id == row_id, out_t.c.status == "pending")
        .values(mentions=json.dumps(list(mentions), ensure_ascii=False))
    )
    return res.rowcount == 1


def queue_counts(conn: Connection, cohort_ids: Sequence[str]) -> tuple[int, int]:
    """(messages waiting to be sent, messages that failed) for these cohorts."""
    q = (
        select(out_t.c.status, func.count())
        .where(out_t.c.cohort_id.in_(cohort_ids), out_t.c.status.in_(("pending", "sending", "failed")))
        .group_by(out_t.c.status)
    )
    counts: dict[str, int] = {status: n for status, n in conn.execute(q).all()}
    return counts.get("pending", 0) + counts.get("sending", 0), counts.get("failed", 0)


def bulk_sent_since(conn: Connection, cohort_id: str, kind: str, since: datetime) -> int:
    """Bulk private messages (priority 2) of a kind queued since ``since``: the hour's budget."""
    return conn.execute(
        select(func.count())
        .select_from(out_t)
        .where(
            out_t.c.cohort_id == cohort_id,
            out_t.c.kind == kind,
            out_t.c.priority == 2,
            out_t.c.created_at >= since,
        )
    ).scalar_one()


def last_private_sent(
    conn: Connection, member_id: str, since: datetime, cohorts: Collection[str] | None = None
) -> OutRow | None:
    """The private message sent to this member most recently, if since ``since``."""
    q = (
        select(*_OUT_COLS)
        .where(out_t.c.member_id == member_id, out_t.c.status == "sent", out_t.c.sent_at >= since)
        .order_by(out_t.c.sent_at.desc(), out_t.c.id.desc())
        .limit(1)
    )
    r = conn.execute(_in(q, out_t, cohorts)).first()
    return _out_row(r) if r else None


def held_rewards(conn: Connection, member_id: str, cohorts: Collection[str] | None = None) -> list[int]:
    """Reward messages held for a member who could not be reached privately."""
    q = select(out_t.c.id).where(
        out_t.c.member_id == member_id, out_t.c.kind == "reward", out_t.c.status == "unreachable"
    )
    return list(conn.execute(_in(q, out_t, cohorts)).scalars())


def release(conn: Connection, ids: Sequence[int], now: datetime) -> None:
    conn.execute(
        update(out_t).where(out_t.c.id.in_(list(ids))).values(status="pending", not_before=now, attempts=0)
    )


def reminder_reach(conn: Connection, cohort_id: str) -> tuple[set[str], set[str]]:
    """(reached, meant): the members a reminder @-mentioned or a nudge was for, and of those
    the ones one reached: a reminder sent to the group with them in its @s, or a nudge sent
    to them privately."""
    q = select(out_t.c.kind, out_t.c.member_id, out_t.c.mentions, out_t.c.status).where(
        out_t.c.cohort_id == cohort_id, out_t.c.kind.in_(("remind", "nudge"))
    )
    reached: set[str] = set()
    meant: set[str] = set()
    for kind, member_id, mentions, status in conn.execute(q):
        ids = [member_id] if kind == "nudge" else (json.loads(mentions) if mentions else [])
        meant.update(ids)
        if status == "sent":
            reached.update(ids)
    return reached, meant


def send_queue(
    conn: Connection, cohort_id: str, limit: int = 50
) -> list[tuple[int, str, str, str, datetime]]:
    """Messages waiting, being sent or failed: (id, kind, status, text, not before), oldest first."""
    q = (
        select(out_t.c.id, out_t.c.kind, out_t.c.status, out_t.c.text, out_t.c.not_before)
        .where(out_t.c.cohort_id == cohort_id, out_t.c.status.in_(("pending", "sending", "failed")))
        .order_by(out_t.c.id)
        .limit(limit)
    )
    return [(i, k, s, t, _aware(nb)) for i, k, s, t, nb in conn.execute(q)]
