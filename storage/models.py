"""The tables. Uniqueness constraints here are what make sends and grants happen once:
claim the row first, act second."""

from __future__ import annotations

from datetime import UTC, date, datetime, time

from sqlalchemy import Column, DateTime, Index, LargeBinary, TypeDecorator, UniqueConstraint, false, true
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
    # A picture (kind "image", e.g. the report's PNG); `text` is then its file name.
    image: bytes | None = Field(default=None, sa_column=Column(LargeBinary, nullable=True))


class Question(SQLModel, table=True):
    """A member's question (in the group, or privately to the bot) that no keyword reply
    answered: it waits for an operator. Settled when an operator speaks in the group after
    it (or @-mentions the member); still waiting after the playbook's
    `question_digest_minutes`, it goes into the operators' digest."""

    __table_args__ = (Index("ix_question_waiting", "cohort_id", "answered_at", "digest_at"),)
    id: int | None = Field(default=None, primary_key=True)
    cohort_id: str = Field(foreign_key="cohort.id")
    member_id: str
    text: str
    private: bool = False  # asked in a private message to the bot
    asked_at: datetime = Field(sa_column=_utc())
    answered_at: datetime | None = Field(default=None, sa_column=_utc(nullable=True))
    digest_at: datetime | None = Field(default=None, sa_column=_utc(nullable=True))  # told the operators


class SurveyProgress(SQLModel, table=True):
    """Where a member is in the playbook's questionnaire (`survey:`). The row is claimed, and
    `asked_at` set, in the transaction that queues the question: a restart asks nothing twice."""

    __tablename__ = "survey_progress"
    cohort_id: str = Field(primary_key=True, foreign_key="cohort.id")
    member_id: str = Field(primary_key=True)
    survey_id: str = Field(primary_key=True)
    question: int = 0  # the question asked, or to be asked next (0: the first)
    started_at: datetime = Field(sa_column=_utc())
    # When `question` was queued; null: it waits to be asked (quiet hours).
    asked_at: datetime | None = Field(default=None, sa_column=_utc(nullable=True))
    # Its outbox row: the question is open for answers once that row has gone out.
    asked_row: int | None = None
    # Asked again (once) after an answer that was none of the choices.
    again_at: datetime | None = Field(default=None, sa_column=_utc(nullable=True))
    reminded_at: datetime | None = Field(default=None, sa_column=_utc(nullable=True))  # the one reminder
    # Not reachable privately: given the survey's link in the group instead; asked no more.
    link_at: datetime | None = Field(default=None, sa_column=_utc(nullable=True))
    done_at: datetime | None = Field(default=None, sa_column=_utc(nullable=True))


class SurveyAnswer(SQLModel, table=True):
    """One member's answer to one question, as written (any length, emoji and all)."""

    __tablename__ = "survey_answer"
    cohort_id: str = Field(primary_key=True, foreign_key="cohort.id")
    member_id: str = Field(primary_key=True)
    survey_id: str = Field(primary_key=True)
    question: int = Field(primary_key=True)  # 0: the first
    text: str
    choice: int | None = None  # 1: the first choice; null: free text, or none of the choices
    at: datetime = Field(sa_column=_utc())


class Testimonial(SQLModel, table=True):
    """The whole text of a check-in on a `testimonial: true` track (心得), kept for later use;
    an operator may feature one (精选). A member's second 心得 the same day is kept too (it is
    usually the rest of the story); the same text twice (a message delivered again) once."""

    __table_args__ = (
        UniqueConstraint("cohort_id", "member_id", "digest"),
        Index("ix_testimonial_at", "cohort_id", "at"),
    )
    id: int | None = Field(default=None, primary_key=True)
    cohort_id: str = Field(foreign_key="cohort.id")
    member_id: str
    track: str
    day: int
    at: datetime = Field(sa_column=_utc())
    text: str
    digest: str  # sha256 of the text: a long text cannot be a unique key in PostgreSQL
    featured_at: datetime | None = Field(default=None, sa_column=_utc(nullable=True))  # 精选
    featured_by: str | None = None  # the operator's id


class Conversion(SQLModel, table=True):
    """A member who bought the full course (报名): the figure the cohort exists for. Marked by
    an operator, or imported from a shop's order export by another process while the bot runs
    (`cohortbot conversions import`): one row per member and cohort, so importing twice is
    harmless."""

    cohort_id: str = Field(primary_key=True, foreign_key="cohort.id")
    member_id: str = Field(primary_key=True)
    at: datetime = Field(sa_column=_utc())
    source: str  # the operator's id, or "import:<file name>"


class MessageCount(SQLModel, table=True):
    """How many group messages a member sent on a cohort day, check-ins and commands
    included: the report's "spoke" (daily active members, lurkers). Counted up by the router,
    one row per member and day; the texts themselves are not kept."""

    __tablename__ = "message_count"
    cohort_id: str = Field(primary_key=True, foreign_key="cohort.id")
    member_id: str = Field(primary_key=True)
    day: int = Field(primary_key=True)
    messages: int = 0


class WebLogin(SQLModel, table=True):
    """An operator of the web console (`cohortbot operator add`): an argon2 hash, never the
    password; ``cohorts`` limits what she sees (comma-separated ids; empty: every cohort)."""

    __tablename__ = "web_login"
    name: str = Field(primary_key=True)
    password_hash: str
    cohorts: str = ""
    created_at: datetime = Field(sa_column=_utc())


class WebSecret(SQLModel, table=True):
    """The key that signs the console's session cookies: made once, kept with the data, so
    sessions outlive a restart and every process serving this database agrees on it."""

    __tablename__ = "web_secret"
    id: int = Field(default=1, primary_key=True)
    secret: str
