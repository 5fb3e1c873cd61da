"""The tables. Uniqueness constraints here are what make sends and grants happen once:
claim the row first, act second."""

from __future__ import annotations

from datetime import UTC, date, datetime, time

from sqlalchemy import Column, DateTime, Index, TypeDecorator, UniqueConstraint, false, true
from sqlmodel import Field, SQLModel


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC in and out, whatever the database keeps (SQLite keeps naive text)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect) -> datetime | None:  # type: ignore[no-untyped-def]
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the database; use UTC-aware times")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect) -> datetime | None:  # type: ignore[no-untyped-def]
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _utc(nullable: bool = False) -> Column:  # type: ignore[type-arg]
    return Column(UTCDateTime(), nullable=nullable)


LEARNER = "member"
OPERATOR = "operator"  # in the group, but not counted, reminded or ranked


class Cohort(SQLModel, table=True):
    id: str = Field(primary_key=True)
    playbook: str
    room: str  # as configured: a topic or a room id
    room_id: str | None = None  # as resolved on the transport
    start: date
    timezone: str
    created_at: datetime = Field(sa_column=_utc())
    # When the last roll call was composed: at most one every `ack_every_minutes`, restarts
    # included.
    last_rollcall_at: datetime | None = Field(default=None, sa_column=_utc(nullable=True))
    # Paused by an operator (`暂停`): nothing scheduled is sent; items that fall due are held.
    paused_at: datetime | None = Field(default=None, sa_column=_utc(nullable=True))
    paused_by: str | None = None
    # The playbook's calendar, for readers without the playbook (`cohortbot report --db`):
    # how many days, and when a cohort day begins (`day_starts`). Null: written by an older bot.
    days: int | None = None
    day_starts: time | None = None


class Member(SQLModel, table=True):
    cohort_id: str = Field(primary_key=True, foreign_key="cohort.id")
    member_id: str = Field(primary_key=True)
    name: str
    alias: str | None = None  # the group nickname, when the network has one
    present: bool = True
    role: str = LEARNER  # member | operator
    joined_at: datetime = Field(sa_column=_utc())
    left_at: datetime | None = Field(default=None, sa_column=_utc(nullable=True))
    # False once WeChat refused a private message (not the account's friend); true again
    # when one gets through.
    reachable: bool = Field(default=True, sa_column_kwargs={"server_default": true()})
    # Opted out of @-mentions and nudges (the `mute` command).
    muted: bool = Field(default=False, sa_column_kwargs={"server_default": false()})


class CheckIn(SQLModel, table=True):
    __table_args__ = (
        UniqueConstraint("cohort_id", "member_id", "track", "day"),
        Index("ix_checkin_day", "cohort_id", "track", "day"),
    )
    id: int | None = Field(default=None, primary_key=True)
    cohort_id: str = Field(foreign_key="cohort.id")
    member_id: str
    track: str
    day: int
    at: datetime = Field(sa_column=_utc())
    # When a roll call named it (or its own acknowledgement went out); null: waiting to be
    # named. The pending list lives here so that a restart loses none.
    named_at: datetime | None = Field(default=None, sa_column=_utc(nullable=True))
    # A make-up (补卡): who credited it, the member themself or an operator; null: an
    # ordinary check-in on the day.
    makeup_by: str | None = None


class Leave(SQLModel, table=True):
    """A member's leave (请假) for one day: no reminders or nudges about that day."""

    cohort_id: str = Field(primary_key=True, foreign_key="cohort.id")
    member_id: str = Field(primary_key=True)
    day: int = Field(primary_key=True)
    at: datetime = Field(sa_column=_utc())


class OperatorAction(SQLModel, table=True):
    """The audit log: what an operator did to a cohort (pause, make-up, remind, …)."""

    __tablename__ = "operator_action"
    id: int | None = Field(default=None, primary_key=True)
    cohort_id: str = Field(foreign_key="cohort.id")
    operator_id: str
    action: str
    detail: str = ""
    at: datetime = Field(sa_column=_utc())


class RewardGrant(SQLModel, table=True):
    __tablename__ = "reward_grant"
    cohort_id: str = Field(primary_key=True, foreign_key="cohort.id")
    member_id: str = Field(primary_key=True)
    reward_id: str = Field(primary_key=True)
    at: datetime = Field(sa_column=_utc())
    named_at: datetime | None = Field(default=None, sa_column=_utc(nullable=True))  # in a roll call


class Notice(SQLModel, table=True):
    """A check-in that did not count (too late, not a track day, track ended): the member is
    told once per day and track, privately or in a roll call's footer."""

    cohort_id: str = Field(primary_key=True, foreign_key="cohort.id")
    member_id: str = Field(primary_key=True)
    track: str = Field(primary_key=True)
    day: int = Field(primary_key=True)
    reason: str  # too_late | not_today | ended
    at: datetime = Field(sa_column=_utc())
    footer_at: datetime | None = Field(default=None, sa_column=_utc(nullable=True))  # null: waits
    private: bool = False  # told by private message instead of a footer


class ItemRun(SQLModel, table=True):
    """One row per schedule item per cohort: claimed before anything is sent."""

    __tablename__ = "item_run"
    cohort_id: str = Field(primary_key=True, foreign_key="cohort.id")
    item_id: str = Field(primary_key=True)
    due: datetime = Field(sa_column=_utc())
    at: datetime = Field(sa_column=_utc())
    status: str  # done | missed | held (fell due while paused) | skipped (held, then skipped)


class Outgoing(SQLModel, table=True):
    """The outbox: every message the bot will send, written in the same transaction as the
    claim that causes it, sent by the paced sender, marked as it goes."""

    __table_args__ = (Index("ix_outgoing_pending", "status", "priority", "id"),)
    id: int | None = Field(default=None, primary_key=True)
    cohort_id: str = Field(foreign_key="cohort.id")
    room_id: str | None = None  # set for group messages
    member_id: str | None = None  # set for direct messages
    text: str
    mentions: str = ""  # member ids, a JSON list, in order
    kind: str  # post, ack, welcome, announce, reply, remind, nudge, leaderboard, reward
    priority: int = 0  # lower goes first; bulk direct messages wait behind the group
    created_at: datetime = Field(sa_column=_utc())
    not_before: datetime = Field(sa_column=_utc())
    status: str = "pending"  # pending | sending | sent | failed | expired | unknown | cancelled
    sent_at: datetime | None = Field(default=None, sa_column=_utc(nullable=True))
    batch: int | None = None  # the first row's id when several rows went out as one message
    attempts: int = 0
    error: str | None = None


class MessageCount(SQLModel, table=True):
    """How many group messages a member sent on a cohort day, check-ins and commands
    included: the report's "spoke" (daily active members, lurkers). Counted up by the router,
    one row per member and day; the texts themselves are not kept."""

    __tablename__ = "message_count"
    cohort_id: str = Field(primary_key=True, foreign_key="cohort.id")
    member_id: str = Field(primary_key=True)
    day: int = Field(primary_key=True)
    messages: int = 0
