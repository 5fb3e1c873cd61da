"""The rehearsal scenario (../shared/scenario-format.md): YAML file -> validated, timed events."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, time
from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from bot.i18n import N_, _
from bot.plan import Calendar, StartDate, not_a_number
from bot.transports.base import Member
from bot.yamlfile import EmptyList, InputError, Problem, Source, read_yaml, validate

BOT_ID = "cohortbot"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class MemberSpec(_Strict):
    id: str = Field(min_length=1, pattern=r"^\S+$", description="member id, no spaces")
    name: str = Field(min_length=1)
    alias: str | None = Field(None, description="optional group nickname")
    friend: bool = Field(
        True, description="(1.1) false: not the account's friend, so private messages to them are refused"
    )


class EventSpec(_Strict):
    at: Annotated[
        str | datetime,
        not_a_number(N_('{value!r} is not a time; write "day 2 07:45" or "2026-12-02T07:45:00+08:00"')),
    ] = Field(description='"day N HH:MM" in the playbook\'s time zone, or ISO-8601 with offset')
    sender: str | None = Field(None, alias="from", description="member id who sends `text`")
    text: str | None = None
    dm: bool = Field(False, description="a private message to the bot instead of a group message")
    join: MemberSpec | None = None
    leave: str | None = None


class Scenario(_Strict):
    start: StartDate
    room: str = "训练营"
    bot: str = Field("CohortBot", min_length=1)
    operators: EmptyList[str] = Field(default_factory=list)
    members: EmptyList[MemberSpec] = Field(default_factory=list)
    events: EmptyList[EventSpec] = Field(default_factory=list)


@dataclass(frozen=True)
class TimedEvent:
    at: datetime  # UTC
    kind: str  # say | dm | join | leave
    member: Member
    text: str = ""


_DAY = re.compile(r"^\s*day\s+(\d+)\s+(\d{1,2}):(\d{2})(?::(\d{2}))?\s*$", re.I)


def _when(value: str | datetime, cal: Calendar) -> datetime:
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError(_("a date-time needs its offset, e.g. 2026-12-02T07:45:00+08:00"))
        return value
    m = _DAY.match(value)
    if m:
        day, hour, minute, sec = int(m[1]), int(m[2]), int(m[3]), int(m[4] or 0)
        if hour > 23 or minute > 59 or sec > 59:
            raise ValueError(
                _('{value!r}: no such time of day; use "day N HH:MM", 24-hour').format(value=value)
            )
        if day > 10_000:  # before the date arithmetic overflows
            raise ValueError(
                _("day {day} is outside the cohort; use 1..{days}").format(day=day, days=cal.days)
            )
        return cal.at(day, time(hour, minute, sec))
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        raise ValueError(
            _('{value!r} is not a time; write "day 2 07:45" or "2026-12-02T07:45:00+08:00"').format(
                value=value
            )
        ) from None
    if parsed.tzinfo is None:
        raise ValueError(
            _("{value!r} needs its offset, e.g. {fixed}").format(value=value, fixed=value.strip() + "+08:00")
        )
    return parsed


def timeline(sc: Scenario, cal: Calendar, src: Source | None = None) -> list[TimedEvent]:
    """The events in time order (same time: file order), checked against the cohort."""
    problems: list[Problem] = []

    def bad(loc: tuple[str | int, ...], msg: str) -> None:
        problems.append(src.problem(loc, msg) if src else Problem("scenario", 1, "", msg))

    known: dict[str, Member] = {}
    for i, m in enumerate(sc.members):
        if m.id in known:
            bad(("members", i, "id"), _("member id {id!r} is listed twice").format(id=m.id))
        if m.id == BOT_ID:
            bad(("members", i, "id"), _("{id!r} is the bot's own id; pick another").format(id=BOT_ID))
        known[m.id] = Member(m.id, m.name, m.alias)
    for j in sc.events:
        if j.join is not None:
            known.setdefault(j.join.id, Member(j.join.id, j.join.name, j.join.alias))

    out: list[tuple[int, TimedEvent]] = []  # (index in the file, event)
    start, end = cal.start_utc(), cal.end_utc()
    for i, e in enumerate(sc.events):
        loc: tuple[str | int, ...] = ("events", i)
        shapes = [k for k, v in (("from", e.sender), ("join", e.join), ("leave", e.leave)) if v is not None]
        if len(shapes) != 1:
            bad(
                loc,
                _(
                    "an event needs exactly one of `from` (with `text`), `join` or `leave` (it has {what})"
                ).format(what=_(" and ").join(shapes))
                if shapes
                else _("an event needs exactly one of `from` (with `text`), `join` or `leave`"),
            )
            continue
        try:
            at = _when(e.at, cal)
        except ValueError as exc:
            bad((*loc, "at"), str(exc))
            continue
        if not start <= at < end:
            bad(
                (*loc, "at"),
                _("this is outside the cohort (day 1 00:00 to day {days} 23:59)").format(days=cal.days),
            )
            continue
        if e.join is not None:
            out.append((i, TimedEvent(at, "join", known[e.join.id])))
        elif e.leave is not None:
            if e.leave not in known:
                bad(
                    (*loc, "leave"),
                    _("no member {id!r}; list them under `members` or join them first").format(id=e.leave),
                )
                continue
            out.append((i, TimedEvent(at, "leave", known[e.leave])))
        else:
            assert e.sender is not None
            if e.sender not in known:
                bad(
                    (*loc, "from"),
                    _("no member {id!r}; list them under `members` or join them first").format(id=e.sender),
                )
                continue
            if e.text is None:
                bad(loc, _("a message event needs `text`"))
                continue
            out.append((i, TimedEvent(at, "dm" if e.dm else "say", known[e.sender], str(e.text))))
    ordered = sorted(out, key=lambda ie: ie[1].at)
    # Replay who is in the group, so a message from someone not (yet, or any more) in it is
    # caught here rather than silently counted.
    here = {m.id for m in sc.members}
    for i, ev in ordered:
        mid = ev.member.id
        when = _("day {day} {time}").format(day=cal.date_day(ev.at), time=f"{cal.local(ev.at):%H:%M}")
        if ev.kind == "join":
            here.add(mid)
        elif ev.kind == "leave":
            if mid not in here:
                bad(
                    ("events", i, "leave"),
                    _("{id!r} is not in the group at {when}; leave after joining").format(id=mid, when=when),
                )
            here.discard(mid)
        elif mid not in here:
            bad(
                ("events", i, "from"),
                _(
                    "{id!r} is not in the group at {when}; move the message after "
                    "their `join`, or before their `leave`"
                ).format(id=mid, when=when),
            )
    if problems:
        raise InputError(sorted(problems, key=lambda p: p.line))
    return [ev for _, ev in ordered]


def parse(src: Source) -> Scenario:
    return validate(src, Scenario)


def load(path: str | Path) -> tuple[Scenario, Source]:
    src = read_yaml(path)
    return parse(src), src
