"""The kinds of schedule item, each in one place: what it checks when the playbook loads, what
it sends when it falls due (queued in the transaction that claims it), and how `preview` and
the `today` command describe it. A new kind is one more class here and its field in
`ScheduleItem` (bot/playbook.py).

post         a group post
remind       @-mentions, in the group, the members not checked in that day
nudge        a private message to each member not checked in on a day
leaderboard  the ranking of a track, by days or by current streak
summary      the day's figures in one post: completion per track, the longest streaks,
             who earned a reward

The figures texts may quote ({completion}, {checked_in}, {rewarded}, {streak}) are worked out
in bot/figures.py; each kind says here which it fills and checks where it cannot.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar, Protocol

from sqlalchemy import Connection

from bot import commands, figures, rollcall, streaks, templates
from bot.cohort import CohortRun
from bot.i18n import N_, _
from bot.plan import PlannedItem
from bot.playbook import Playbook, ScheduleItem
from storage import repo

# For members, in the playbook's language (Playbook.tr).
DEFAULT_LEADERBOARD_TITLE = N_("🏆 {track} leaderboard (as of day {day})")
DEFAULT_STREAK_TITLE = N_("🔥 {track} streak leaderboard (as of day {day})")
REMIND_DESCRIBED = N_("{track} check-in reminder")
LEADERBOARD_DESCRIBED = N_("{track} leaderboard")
STREAK_DESCRIBED = N_("{track} streak leaderboard")
DEFAULT_SUMMARY_TITLE = N_("🌙 Day {day} summary")
SUMMARY_TRACK = N_("{track}: {checked_in}/{total} checked in today ({completion})")
SUMMARY_STREAKS = N_("🔥 {track} streaks: {names}")
SUMMARY_REWARD = N_("🎁 {reward} earned today: {names}")
SUMMARY_DESCRIBED = N_("Today's summary")
SUMMARY_PREVIEW = N_("Today's summary ({tracks})")
REMIND_PREVIEW = N_(" (@ those who have not checked in on day {day})")
NUDGE_PREVIEW = N_("private reminder to those who have not done {track} on day {day}")

Loc = tuple[str | int, ...]
RideAlong = Callable[[Connection, CohortRun, datetime], str | None]


class NeedTemplate(Protocol):
    """A text may use ``allowed``, less the figures ``why`` says it cannot fill."""

    def __call__(
        self, loc: Loc, text: str | None, allowed: tuple[str, ...], why: Mapping[str, str] | None = None
    ) -> None: ...


@dataclass
class Checks:
    """What a kind may ask of the playbook's validation (bot/playbook.py)."""

    pb: Playbook
    problem: Callable[[Loc, str], None]
    need_template: NeedTemplate
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
        """What its templates may use ({day} is the day it looks at; an item with a track has
        that day's figures on it, bot/figures.py)."""
        total = repo.present_count(self.conn, self.run.id)
        values: dict[str, object] = {
            "playbook": self.run.playbook.name,
            "day": self.item.checked_day,
            "total": total,
            "rewarded": figures.rewarded(self.conn, self.run),
        }
        if self.item.track is not None:
            values["track"] = self.run.playbook.tracks[self.item.track].name
            done = repo.day_counts(self.conn, self.run.id, self.item.track, self.item.checked_day)[0]
            values["done"] = done
            values |= figures.on_day(done, total)
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
    # Figures of the cohort so far, every track together.
    FIELDS: ClassVar[tuple[str, ...]] = ("playbook", "day", "total", *figures.GROUP)

    @classmethod
    def check(cls, it: ScheduleItem, loc: Loc, c: Checks) -> None:
        why = figures.unfillable(c.pb, it, cls.FIELDS, so_far_tracks=list(c.pb.tracks))
        c.need_template((*loc, "post"), it.post, cls.FIELDS, why)

    @staticmethod
    def queue(d: Due) -> int:
        assert d.item.post is not None
        so_far = figures.so_far(d.conn, d.run, list(d.run.playbook.tracks), d.now)
        d.to_group("post", templates.render(d.item.post, d.values() | so_far))
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
    FIELDS: ClassVar[tuple[str, ...]] = ("playbook", "day", "track", "done", "total", *figures.GROUP)

    @classmethod
    def check(cls, it: ScheduleItem, loc: Loc, c: Checks) -> None:
        assert it.remind is not None
        cls.check_day(it, loc, it.remind, c)
        c.need_template(
            (*loc, "remind", "text"), it.remind.text, cls.FIELDS, figures.unfillable(c.pb, it, cls.FIELDS)
        )

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
    FIELDS: ClassVar[tuple[str, ...]] = (
        "name",
        "day",
        "track",
        "playbook",
        "done",
        "total",
        *figures.GROUP,
        "streak",
    )

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
        c.need_template(
            (*loc, "nudge", "dm"), it.nudge.dm, cls.FIELDS, figures.unfillable(c.pb, it, cls.FIELDS)
        )

    @staticmethod
    def queue(d: Due) -> int:
        it, run = d.item, d.run
        assert it.nudge is not None and it.track is not None
        # Members WeChat will not let the account message (not friends) are left to the
        # group's reminder.
        missing = [m for m in not_checked_in(d.conn, run, it.track, it.checked_day) if m.reachable]
        values = d.values()
        # {streak}: the run they had going into the day the nudge is about.
        days, track_days = repo.track_days(d.conn, run.id, it.track), run.playbook.tracks[it.track].days
        for m in missing:
            streak = streaks.current(days.get(m.member_id, set()), track_days, it.checked_day)
            text = templates.render(it.nudge.dm, {**values, "name": m.shown, "streak": streak})
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
    # Figures of its track so far.
    FIELDS: ClassVar[tuple[str, ...]] = ("playbook", "day", "track", *figures.GROUP)

    @classmethod
    def check(cls, it: ScheduleItem, loc: Loc, c: Checks) -> None:
        assert it.leaderboard is not None
        c.need_track((*loc, "leaderboard", "track"), it.leaderboard.track)
        why = figures.unfillable(c.pb, it, cls.FIELDS, so_far_tracks=[it.leaderboard.track])
        c.need_template((*loc, "leaderboard", "title"), it.leaderboard.title, cls.FIELDS, why)

    @staticmethod
    def queue(d: Due) -> int:
        board, track = d.item.leaderboard, d.item.track
        assert board is not None and track is not None
        streak = board.by == "streak"
        default = DEFAULT_STREAK_TITLE if streak else DEFAULT_LEADERBOARD_TITLE
        values = d.values() | figures.so_far(d.conn, d.run, [track], d.now)
        title = templates.render(board.title or d.run.playbook.tr(default), values)
        if streak:
            rows = figures.streak_ranking(d.conn, d.run, track, board.top, d.now)
        else:
            rows = commands.ranking(d.conn, d.run, track, board.top)
        words = d.run.playbook.words
        text = commands.format_ranking(d.run, title, rows, lambda n: words.ngettext(" day", " days", n))
        d.to_group("leaderboard", text)
        return 1

    @staticmethod
    def describe(run: CohortRun, it: ScheduleItem, total: int | str = "") -> str:
        assert it.leaderboard is not None
        described = STREAK_DESCRIBED if it.leaderboard.by == "streak" else LEADERBOARD_DESCRIBED
        return templates.render(
            run.playbook.tr(described), {"track": run.playbook.tracks[it.leaderboard.track].name}
        )

    @classmethod
    def preview(cls, run: CohortRun, it: ScheduleItem) -> str:
        return cls.describe(run, it)


class Summary:
    """The day in one post: each track's completion, its longest current streaks (two days
    and more), and who earned a reward of those tracks that day; split, numbered, only when
    too long for one message (as roll calls are). A roll call waiting then rides along."""

    name = "summary"
    FIELDS: ClassVar[tuple[str, ...]] = ("playbook", "day", "total", "rewarded")

    @staticmethod
    def tracks(pb: Playbook, it: ScheduleItem) -> list[str]:
        """The tracks it tells about: those listed, else every track with a check-in day then."""
        assert it.summary is not None
        if it.summary.tracks is not None:
            return [t for t in dict.fromkeys(it.summary.tracks) if t in pb.tracks]
        return [tid for tid, t in pb.tracks.items() if it.day in t.days]

    @classmethod
    def check(cls, it: ScheduleItem, loc: Loc, c: Checks) -> None:
        assert it.summary is not None
        for i, tid in enumerate(it.summary.tracks or ()):
            c.need_track((*loc, "summary", "tracks", i), tid)
            track = c.pb.tracks.get(tid)
            if track is not None and it.day not in track.days:
                c.problem(
                    (*loc, "summary", "tracks", i),
                    _(
                        "track `{track}` counts only on days {days}; a summary of day {day} would have "
                        "nothing to tell about it. Leave it out, or move the summary to one of those days"
                    ).format(track=tid, days=", ".join(map(str, track.days)), day=it.day),
                )
        if it.summary.tracks is None and not cls.tracks(c.pb, it):
            c.problem(
                (*loc, "day"),
                _(
                    "no track counts check-ins on day {day}, so its summary would have nothing to "
                    "tell; move it to a day of a track"
                ).format(day=it.day),
            )
        why = figures.unfillable(c.pb, it, cls.FIELDS)
        c.need_template((*loc, "summary", "title"), it.summary.title, cls.FIELDS, why)

    @classmethod
    def queue(cls, d: Due) -> int:
        pb, body = d.run.playbook, d.item.summary
        assert body is not None
        lines: list[tuple[str, list[str]]] = [(text, []) for text in cls.lines(d)]
        messages = [text for text, _ids in rollcall._pack(lines, False, d.max_mentions, pb.tr(rollcall.PART))]
        # Who has checked in since the last roll call travels in the summary's last message.
        if d.ride_along is not None and (named := d.ride_along(d.conn, d.run, d.now)):
            messages[-1] += f"\n\n{named}"
        for text in messages:
            d.to_group("summary", text)
        return len(messages)

    @classmethod
    def lines(cls, d: Due) -> list[str]:
        run, pb, body, day = d.run, d.run.playbook, d.item.summary, d.item.day
        assert body is not None
        values = d.values()
        lines = [templates.render(body.title or pb.tr(DEFAULT_SUMMARY_TITLE), values)]
        tids = cls.tracks(pb, d.item)
        for tid in tids:
            done, total = repo.day_counts(d.conn, run.id, tid, day)
            counts = figures.on_day(done, total)
            lines.append(pb.tr(SUMMARY_TRACK).format(track=pb.tracks[tid].name, total=total, **counts))
        sep, words = pb.tr(rollcall.NAMES_SEPARATOR), pb.words
        for tid in tids if body.top_streaks else ():
            top = figures.streak_ranking(d.conn, run, tid, body.top_streaks, d.now, figures.NAMED_STREAK)
            if top:
                names = sep.join(f"{name} {n}{words.ngettext(' day', ' days', n)}" for name, n in top)
                lines.append(pb.tr(SUMMARY_STREAKS).format(track=pb.tracks[tid].name, names=names))
        shown = {m.member_id: m.shown for m in repo.learners(d.conn, run.id)}
        grants = [(mid, rid, at) for mid, rid, at in repo.grants(d.conn, run.id) if mid in shown]
        for r in pb.rewards:
            if r.track not in tids:
                continue
            named = [repo.Unnamed(mid, shown[mid], rid, day, at) for mid, rid, at in grants if rid == r.id]
            named = [u for u in named if run.day(u.at) == day]
            lines += [
                line
                for line, _ids in rollcall._name_lines(pb.tr(SUMMARY_REWARD), {"reward": r.name}, named, sep)
            ]
        return lines

    @staticmethod
    def describe(run: CohortRun, it: ScheduleItem, total: int | str = "") -> str:
        return run.playbook.tr(SUMMARY_DESCRIBED)

    @classmethod
    def preview(cls, run: CohortRun, it: ScheduleItem) -> str:
        tr = run.playbook.tr
        names = tr(rollcall.NAMES_SEPARATOR).join(
            run.playbook.tracks[t].name for t in cls.tracks(run.playbook, it)
        )
        return tr(SUMMARY_PREVIEW).format(tracks=names)


KINDS = {k.name: k for k in (Post, Remind, Nudge, Leaderboard, Summary)}


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
