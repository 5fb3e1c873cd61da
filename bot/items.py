"""The kinds of schedule item, each in one place: what it checks when the playbook loads, what
it sends when it falls due (queued in the transaction that claims it), and how `preview` and
the `today` command describe it. A new kind is one more class here and its field in
`ScheduleItem` (bot/playbook.py).

post         a group post
remind       @-mentions, in the group, the members not checked in that day
nudge        a private message to each member not checked in on a day
leaderboard  the ranking of a track
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar

from sqlalchemy import Connection

from bot import commands, rollcall, templates
from bot.cohort import CohortRun
from bot.i18n import N_, _
from bot.plan import PlannedItem
from bot.playbook import Playbook, ScheduleItem
from storage import repo

# For members, in the playbook's language (Playbook.tr).
DEFAULT_LEADERBOARD_TITLE = N_("🏆 {track} leaderboard (as of day {day})")
REMIND_DESCRIBED = N_("{track} check-in reminder")
LEADERBOARD_DESCRIBED = N_("{track} leaderboard")
REMIND_PREVIEW = N_(" (@ those who have not checked in on day {day})")
NUDGE_PREVIEW = N_("private reminder to those who have not done {track} on day {day}")

Loc = tuple[str | int, ...]
RideAlong = Callable[[Connection, CohortRun, datetime], str | None]


@dataclass
class Checks:
    """What a kind may ask of the playbook's validation (bot/playbook.py)."""

    pb: Playbook
    problem: Callable[[Loc, str], None]
    need_template: Callable[[Loc, str | None, tuple[str, ...]], None]
    need_track: Callable[[Loc, str], None]
    need_day: Callable[[Loc, int], None]


@dataclass
class Due:
    """An item falling due: where, when, and what the bot knows then."""

    conn: Connection
    run: CohortRun
    item: ScheduleItem
    now: datetime
    max_mentions: int
    ride_along: RideAlong | None

    def values(self) -> dict[str, object]:
        """What its templates may use ({day} is the day it looks at)."""
        values: dict[str, object] = {
            "playbook": self.run.playbook.name,
            "day": self.item.checked_day,
            "total": repo.present_count(self.conn, self.run.id),
        }
        if self.item.track is not None:
            values["track"] = self.run.playbook.tracks[self.item.track].name
            values["done"] = repo.day_counts(self.conn, self.run.id, self.item.track, self.item.checked_day)[
                0
            ]
        return values

    def to_group(self, kind: str, text: str, mentions: list[str] | None = None) -> None:
        repo.enqueue(
            self.conn,
            self.run.id,
            room_id=self.run.room_id,
            kind=kind,
            now=self.now,
            text=text,
            mentions=mentions or (),
        )


def not_checked_in(conn: Connection, run: CohortRun, track: str, day: int) -> list[repo.MemberRow]:
    """Whom a reminder or nudge is about: members in the group now, less the bot and
    operators, with no check-in that day; not those who joined after that day ended (a
    member who joins on day 3 is not nudged about day 2) nor those who opted out or are on
    leave that day."""
    done = repo.checked_in_ids(conn, run.id, track, day) | repo.on_leave_ids(conn, run.id, day)
    day_end = run.cal.at(day + 1, run.cal.day_starts)
    return [m for m in repo.learners_to_remind(conn, run.id, day_end) if m.member_id not in done]


def chunks(ids: list[str], size: int) -> list[list[str]]:
    return [ids[i : i + size] for i in range(0, len(ids), size)]


class Post:
    name = "post"
    FIELDS: ClassVar[tuple[str, ...]] = ("playbook", "day", "total")

    @classmethod
    def check(cls, it: ScheduleItem, loc: Loc, c: Checks) -> None:
        c.need_template((*loc, "post"), it.post, cls.FIELDS)

    @staticmethod
    def queue(d: Due) -> int:
        assert d.item.post is not None
        d.to_group("post", templates.render(d.item.post, d.values()))
        return 1

    @staticmethod
    def describe(run: CohortRun, it: ScheduleItem, total: int | str = "") -> str:
        """Its first line, shortened: for the timetable."""
        assert it.post is not None
        values = {"playbook": run.playbook.name, "day": it.day, "total": total}
        first = templates.render(it.post, values).strip().splitlines()[0]
        return first[:30] + ("…" if len(first) > 30 else "")

    @classmethod
    def preview(cls, run: CohortRun, it: ScheduleItem) -> str:
        return cls.describe(run, it)


class _AboutMembers:
    """Common to the kinds that look at who has not checked in on a track."""

    name = ""

    @classmethod
    def check_day(cls, it: ScheduleItem, loc: Loc, body: Any, c: Checks) -> None:
        c.need_track((*loc, cls.name, "track"), body.track)
        track = c.pb.tracks.get(body.track)
        checked = it.checked_day
        if track is not None and 1 <= checked <= c.pb.days and checked not in track.days:
            # Everyone would be "not checked in" on a day nobody can check in.
            where = (*loc, "nudge", "day") if cls.name == "nudge" and body.day is not None else (*loc, "day")
            c.problem(
                where,
                (
                    _(
                        "track `{track}` counts only on days {days}; a nudge about day {day} would reach "
                        "everyone. Pick one of those days"
                    )
                    if cls.name == "nudge"
                    else _(
                        "track `{track}` counts only on days {days}; a reminder about day {day} would "
                        "reach everyone. Pick one of those days"
                    )
                ).format(track=body.track, days=", ".join(map(str, track.days)), day=checked),
            )


class Remind(_AboutMembers):
    name = "remind"
    FIELDS: ClassVar[tuple[str, ...]] = ("playbook", "day", "track", "done", "total")

    @classmethod
    def check(cls, it: ScheduleItem, loc: Loc, c: Checks) -> None:
        assert it.remind is not None
        cls.check_day(it, loc, it.remind, c)
        c.need_template((*loc, "remind", "text"), it.remind.text, cls.FIELDS)

    @staticmethod
    def queue(d: Due) -> int:
        it, run = d.item, d.run
        assert it.remind is not None and it.track is not None
        missing = not_checked_in(d.conn, run, it.track, it.checked_day)
        # Who has checked in since the last roll call travels in the reminder's message.
        named = d.ride_along(d.conn, run, d.now) if d.ride_along is not None else None
        if not missing:
            if named:  # nobody to remind: the roll call goes on its own
                d.to_group("rollcall", named)
            return 1 if named else 0
        text = templates.render(it.remind.text, d.values())
        parts = chunks([m.member_id for m in missing], d.max_mentions)
        for i, ids in enumerate(parts, 1):
            tail = run.playbook.tr(rollcall.PART).format(i=i, n=len(parts)) if len(parts) > 1 else ""
            extra = f"\n\n{named}" if named and i == len(parts) else ""
            d.to_group("remind", text + tail + extra, ids)
        return len(parts)

    @staticmethod
    def describe(run: CohortRun, it: ScheduleItem, total: int | str = "") -> str:
        assert it.remind is not None
        return templates.render(
            run.playbook.tr(REMIND_DESCRIBED), {"track": run.playbook.tracks[it.remind.track].name}
        )

    @classmethod
    def preview(cls, run: CohortRun, it: ScheduleItem) -> str:
        return cls.describe(run, it) + run.playbook.tr(REMIND_PREVIEW).format(day=it.checked_day)


class Nudge(_AboutMembers):
    name = "nudge"
    FIELDS: ClassVar[tuple[str, ...]] = ("name", "day", "track", "playbook", "done", "total")

    @classmethod
    def check(cls, it: ScheduleItem, loc: Loc, c: Checks) -> None:
        assert it.nudge is not None
        cls.check_day(it, loc, it.nudge, c)
        if it.nudge.day is not None:
            c.need_day((*loc, "nudge", "day"), it.nudge.day)
            if it.nudge.day > it.day:
                c.problem(
                    (*loc, "nudge", "day"),
                    _(
                        "day {day} has not happened yet on day {today}; nudge about day {today} or earlier"
                    ).format(day=it.nudge.day, today=it.day),
                )
        c.need_template((*loc, "nudge", "dm"), it.nudge.dm, cls.FIELDS)

    @staticmethod
    def queue(d: Due) -> int:
        it, run = d.item, d.run
        assert it.nudge is not None and it.track is not None
        # Members WeChat will not let the account message (not friends) are left to the
        # group's reminder.
        missing = [m for m in not_checked_in(d.conn, run, it.track, it.checked_day) if m.reachable]
        values = d.values()
        for m in missing:
            text = templates.render(it.nudge.dm, {**values, "name": m.shown})
            # Bulk private messages wait behind the group and members' own questions.
            repo.enqueue(
                d.conn, run.id, member_id=m.member_id, kind="nudge", now=d.now, text=text, priority=2
            )
        return len(missing)

    @staticmethod
    def describe(run: CohortRun, it: ScheduleItem, total: int | str = "") -> str:
        return ""  # private: not on the group's timetable

    @staticmethod
    def preview(run: CohortRun, it: ScheduleItem) -> str:
        track = run.playbook.tracks[it.track or ""].name
        return run.playbook.tr(NUDGE_PREVIEW).format(day=it.checked_day, track=track)


class Leaderboard:
    name = "leaderboard"
    FIELDS: ClassVar[tuple[str, ...]] = ("playbook", "day", "track")

    @classmethod
    def check(cls, it: ScheduleItem, loc: Loc, c: Checks) -> None:
        assert it.leaderboard is not None
        c.need_track((*loc, "leaderboard", "track"), it.leaderboard.track)
        c.need_template((*loc, "leaderboard", "title"), it.leaderboard.title, cls.FIELDS)

    @staticmethod
    def queue(d: Due) -> int:
        board, track = d.item.leaderboard, d.item.track
        assert board is not None and track is not None
        title = templates.render(board.title or d.run.playbook.tr(DEFAULT_LEADERBOARD_TITLE), d.values())
        rows = commands.ranking(d.conn, d.run, track, board.top)
        words = d.run.playbook.words
        text = commands.format_ranking(d.run, title, rows, lambda n: words.ngettext(" day", " days", n))
        d.to_group("leaderboard", text)
        return 1

    @staticmethod
    def describe(run: CohortRun, it: ScheduleItem, total: int | str = "") -> str:
        assert it.leaderboard is not None
        return templates.render(
            run.playbook.tr(LEADERBOARD_DESCRIBED), {"track": run.playbook.tracks[it.leaderboard.track].name}
        )

    @classmethod
    def preview(cls, run: CohortRun, it: ScheduleItem) -> str:
        return cls.describe(run, it)


KINDS = {k.name: k for k in (Post, Remind, Nudge, Leaderboard)}


def queue_item(
    conn: Connection,
    run: CohortRun,
    planned: PlannedItem,
    now: datetime,
    max_mentions: int,
    ride_along: RideAlong | None = None,
) -> int:
    """Queue what the item sends; returns how many messages."""
    return KINDS[planned.item.kind].queue(Due(conn, run, planned.item, now, max_mentions, ride_along))


def describe(run: CohortRun, it: ScheduleItem, total: int | str = "") -> str:
    """The item on the group's timetable ("" for private ones)."""
    return KINDS[it.kind].describe(run, it, total)


def preview(run: CohortRun, it: ScheduleItem) -> str:
    """The item in `cohortbot preview`: what it does, private ones included."""
    return KINDS[it.kind].preview(run, it)
