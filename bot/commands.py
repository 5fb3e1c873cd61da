"""The commands members (and operators) send the bot, in one registry: each declares the
playbook's name for it (its keywords are in the playbook's `commands:`), who may use it, and
the function that answers. Where an operator command is handled: here, like every other.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Connection

from bot import checkins, figures, streaks
from bot.checkins import LIST_SEPARATOR
from bot.cohort import CohortRun
from bot.i18n import N_
from storage import repo
from storage.models import LEARNER, OPERATOR

MEMBER = frozenset({LEARNER, OPERATOR})
OPERATORS = frozenset({OPERATOR})


@dataclass
class Desk:
    """What an operator's command reaches beyond its cohort: every cohort the bot runs, the
    operators' language, and what only the running bot can do (set by the engine)."""

    runs: dict[str, CohortRun] = field(default_factory=dict)  # by room id, the engine's own
    language: str = "zh"
    max_mentions: int = 20
    connection: Callable[[], str] = lambda: ""  # the transport's state, said for operators
    reload: Callable[[], bool] | None = None  # `cohortbot run` only: True if a reload was asked
    queue_counts: Callable[[Connection], tuple[int, int]] | None = None  # (waiting, failed)
    # `报告`: draw the report's picture and send it to this operator, after the text (the
    # drawing takes a second or two: done in a thread, never in the message's transaction).
    picture: Callable[[CohortRun, str, Any], None] | None = None


@dataclass(frozen=True)
class Asked:
    """One command as asked: by whom, in which cohort, when, with what after its word."""

    conn: Connection
    run: CohortRun
    member_id: str
    name: str
    now: datetime
    args: tuple[str, ...] = ()
    desk: Desk | None = None


@dataclass(frozen=True)
class Command:
    name: str  # its key in the playbook's `commands:`, or an operator command's own name
    who: frozenset[str]  # the roles that may use it
    answer: Callable[[Asked], str]
    describe: str  # for the help text; {word} is its first keyword
    # An operator command's words (Chinese, then English); member commands' are the playbook's.
    words: tuple[str, ...] = ()


REGISTRY: dict[str, Command] = {}


def command(
    name: str, who: frozenset[str], describe: str, words: tuple[str, ...] = ()
) -> Callable[[Callable[[Asked], str]], Callable[[Asked], str]]:
    def register(answer: Callable[[Asked], str]) -> Callable[[Asked], str]:
        REGISTRY[name] = Command(name, who, answer, describe, words)
        return answer

    return register


def allowed(name: str, role: str) -> bool:
    found = REGISTRY.get(name)
    return found is not None and role in found.who


def operator_command(text: str) -> tuple[str, tuple[str, ...]] | None:
    """An operator command's name and arguments, from a normalized message ("未打卡 lesson"),
    or None. Only ever asked for messages from an operator's contact id."""
    head, *args = text.split()
    for cmd in REGISTRY.values():
        if cmd.words and LEARNER not in cmd.who and head.lower() in cmd.words:
            return cmd.name, tuple(args)
    return None


def answer(name: str, asked: Asked) -> str:
    return REGISTRY[name].answer(asked)


MEDALS = ["🥇", "🥈", "🥉"]

# The answers' words: English msgids, said in the playbook's language (Playbook.tr).
PROGRESS_TITLE = N_("📋 {name}'s progress ({playbook})")
PROGRESS_TRACK = N_("· {track}: {done}/{days} days")
PROGRESS_DAYS = N_(" ({days})")
PROGRESS_STREAK = N_(", {n}-day streak 🔥")
PROGRESS_TODAY_DONE = N_(", today: checked in ✅")
PROGRESS_TODAY_NOT_YET = N_(", today: not yet")
PROGRESS_REWARD = N_("· {reward}: {state}")
REWARD_EARNED = N_("earned 🎁")
REWARD_TO_GO = N_("{n} more days to go")
NO_ONE_YET = N_("No one has checked in yet; be the first!")
LEADERBOARD_TITLE = N_("🏆 Check-in leaderboard (top 10)")
MUTED = N_("OK, {name}: no more @-mentions or private reminders{back}. Your check-ins still count ✅")
MUTED_BACK = N_(', send "{word}" to get them back')
UNMUTED = N_("OK, {name}: check-in reminders are back on 🔔")
NOT_STARTED = N_("📅 {playbook} starts on {start}; see you there!")
OVER = N_("📅 {playbook} is over; thank you for taking part!")
TODAY_TITLE = N_("📅 Day {day} schedule")
TODAY_CHECKINS = N_("Check in today: ")
TODAY_SEPARATOR = N_("; ")
TODAY_TRACK = N_('{track}: send "{keyword}"')
TODAY_UNTIL = N_(" (before {until})")
NOTHING_TODAY = N_("Nothing scheduled today; have a good rest~")
HELP_TITLE = N_("🤖 I am the assistant bot of {playbook}; you can send:")
HELP_TRACK = N_('{track} check-in: send "{keyword}" in the group')
HELP_CHECKIN_TRACK = N_('{track}: send "{keyword}" in the group')


def progress(conn: Connection, run: CohortRun, member_id: str, name: str, now: datetime) -> str:
    tr = run.playbook.tr
    today = run.day(now)
    lines = [tr(PROGRESS_TITLE).format(name=name, playbook=run.playbook.name)]
    for tid, track in run.playbook.tracks.items():
        days = repo.member_days(conn, run.id, member_id, tid)
        line = tr(PROGRESS_TRACK).format(track=track.name, done=len(days), days=len(track.days))
        if days:
            line += tr(PROGRESS_DAYS).format(days=checkins.day_list(run, days))
        streak = streaks.current(days, track.days, figures.streak_day(run, track, now))
        if streak >= figures.NAMED_STREAK:
            line += tr(PROGRESS_STREAK).format(n=streak)
        if today in track.days:
            line += tr(PROGRESS_TODAY_DONE if today in days else PROGRESS_TODAY_NOT_YET)
        lines.append(line)
    granted = set(repo.rewards_of(conn, run.id, member_id))
    for r in run.playbook.rewards:
        have = len(repo.member_days(conn, run.id, member_id, r.track))
        state = tr(REWARD_EARNED) if r.id in granted else tr(REWARD_TO_GO).format(n=max(r.count - have, 0))
        lines.append(tr(PROGRESS_REWARD).format(reward=r.name, state=state))
    return "\n".join(lines)


def ranking(conn: Connection, run: CohortRun, track: str | None, top: int) -> list[tuple[str, int]]:
    names = {m.member_id: m.alias or m.name for m in repo.members(conn, run.id)}
    rows = [(names[mid], n) for mid, n, _ in repo.checkin_totals(conn, run.id, track) if mid in names]
    return rows[:top]


def format_ranking(
    run: CohortRun, title: str, rows: list[tuple[str, int]], unit: Callable[[int], str]
) -> str:
    if not rows:
        return f"{title}\n{run.playbook.tr(NO_ONE_YET)}"
    lines = [title]
    for i, (name, n) in enumerate(rows):
        mark = MEDALS[i] if i < len(MEDALS) else f"{i + 1}."
        lines.append(f"{mark} {name} {n}{unit(n)}")
    return "\n".join(lines)


def leaderboard(conn: Connection, run: CohortRun) -> str:
    tr = run.playbook.tr
    words = run.playbook.words
    rows = ranking(conn, run, None, 10)
    return format_ranking(run, tr(LEADERBOARD_TITLE), rows, lambda n: words.ngettext(" time", " times", n))


@command("progress", MEMBER, N_('"{word}": see your check-in progress'))
def _progress(a: Asked) -> str:
    return progress(a.conn, a.run, a.member_id, a.name, a.now)


@command("leaderboard", MEMBER, N_('"{word}": see the check-in leaderboard'))
def _leaderboard(a: Asked) -> str:
    return leaderboard(a.conn, a.run)


@command("today", MEMBER, N_('"{word}": see today\'s schedule'))
def _today(a: Asked) -> str:
    return today(a.run, a.now, repo.present_count(a.conn, a.run.id))


@command("help", MEMBER, N_('"{word}": see this help'))
def _help(a: Asked) -> str:
    return help_text(a.run)


@command("mute", MEMBER, N_('"{word}": no more @-mentions or private reminders'))
def _mute(a: Asked) -> str:
    repo.set_muted(a.conn, a.run.id, a.member_id, True)
    tr = a.run.playbook.tr
    unmute = a.run.playbook.commands.unmute
    back = tr(MUTED_BACK).format(word=unmute[0]) if unmute else ""
    return tr(MUTED).format(name=a.name, back=back)


@command("unmute", MEMBER, N_('"{word}": check-in reminders back on'))
def _unmute(a: Asked) -> str:
    repo.set_muted(a.conn, a.run.id, a.member_id, False)
    return a.run.playbook.tr(UNMUTED).format(name=a.name)


MAKEUP_NONE = N_("There are no make-ups in {playbook}.")
MAKEUP_WHICH = N_('Which check-in? Write e.g. "{word} {track} {day}". Make-ups: {tracks}')
MAKEUP_TODAY = N_('Day {day} is today: just send "{keyword}" in the group.')
MAKEUP_FUTURE = N_("Day {day} has not come yet.")
MAKEUP_TOO_OLD = N_("{track} can be made up for the last {n} days only (day {first} to {last}).")
MAKEUP_NOT_DAY = N_("{track} has no check-in on day {day}.")
MAKEUP_NOT_JOINED = N_("You joined after day {day}; nothing to make up.")
MAKEUP_QUOTA = N_("You have used all {times} make-ups of {playbook}.")
MAKEUP_ALREADY = N_("You are already checked in on {track} on day {day} ✅")
MAKEUP_DONE = N_("✅ Make-up counted: {track}, day {day} ({left} make-ups left)")
LEAVE_DONE = N_("OK, {name}: you are on leave on day {day}; no check-in reminders that day.")
LEAVE_AGAIN = N_("You are already on leave on day {day}.")
LEAVE_PAST = N_("Leave is for today or a later day of {playbook} (days {today} to {days}).")


def day_arg(arg: str) -> int | None:
    """A day as members and operators write it: 3, 第3天, day3, d3."""
    digits = arg.removeprefix("第").removesuffix("天").lower().removeprefix("day").removeprefix("d")
    # isdecimal, not isdigit: "²" and "①" are digits that int() refuses.
    return int(digits) if digits.isdecimal() else None


@command("makeup", MEMBER, N_('"{word} [day]": make up a missed check-in'))
def _makeup(a: Asked) -> str:
    from bot.checkins import count_makeup, normalize

    run, pb, tr = a.run, a.run.playbook, a.run.playbook.tr
    open_tracks = {tid: t for tid, t in pb.tracks.items() if t.makeup is not None}
    if not open_tracks:
        return tr(MAKEUP_NONE).format(playbook=pb.name)
    today = run.day(a.now)
    day = next((d for d in map(day_arg, a.args) if d is not None), today - 1)
    named = [
        tid
        for arg in a.args
        for tid, t in open_tracks.items()
        if normalize(arg) in (tid, normalize(t.name), *(normalize(k) for k in t.keywords))
    ]
    if not named and len(open_tracks) > 1:
        word = next(w for w, n in run.command_words.items() if n == "makeup")
        example = next(iter(open_tracks.values())).name
        listed = tr(LIST_SEPARATOR).join(t.name for t in open_tracks.values())
        return tr(MAKEUP_WHICH).format(word=word, track=example, day=max(day, 1), tracks=listed)
    tid = named[0] if named else next(iter(open_tracks))
    track, rule = pb.tracks[tid], open_tracks[tid].makeup
    assert rule is not None
    if day == today:
        return tr(MAKEUP_TODAY).format(day=day, keyword=track.keywords[0])
    if day > today:
        return tr(MAKEUP_FUTURE).format(day=day)
    if day < today - rule.days or day < 1:
        oldest, last = max(today - rule.days, 1), today - 1
        return tr(MAKEUP_TOO_OLD).format(track=track.name, n=rule.days, first=oldest, last=last)
    if day not in track.days:
        return tr(MAKEUP_NOT_DAY).format(track=track.name, day=day)
    if not repo.joined_before(a.conn, run.id, a.member_id, run.cal.at(day + 1, run.cal.day_starts)):
        return tr(MAKEUP_NOT_JOINED).format(day=day)
    used = repo.makeups_by_self(a.conn, run.id, a.member_id)
    if used >= rule.times:
        return tr(MAKEUP_QUOTA).format(times=rule.times, playbook=pb.name)
    from bot.transports.base import Member

    outcome = count_makeup(a.conn, run, Member(a.member_id, a.name), tid, day, a.now, by=a.member_id)
    if outcome.value == "repeat":
        return tr(MAKEUP_ALREADY).format(track=track.name, day=day)
    return tr(MAKEUP_DONE).format(track=track.name, day=day, left=rule.times - used - 1)


@command("leave", MEMBER, N_('"{word} [day]": take leave for today or a later day (no reminders)'))
def _leave(a: Asked) -> str:
    run, pb, tr = a.run, a.run.playbook, a.run.playbook.tr
    today = run.day(a.now)
    day = next((d for d in map(day_arg, a.args) if d is not None), today)
    if day < max(today, 1) or day > pb.days:
        return tr(LEAVE_PAST).format(playbook=pb.name, today=max(today, 1), days=pb.days)
    if not repo.add_leave(a.conn, run.id, a.member_id, day, a.now):
        return tr(LEAVE_AGAIN).format(day=day)
    return tr(LEAVE_DONE).format(name=a.name, day=day)


def today(run: CohortRun, now: datetime, total: int | str = "") -> str:
    from bot import items  # (items builds on this module's rankings)

    tr = run.playbook.tr
    day = run.day(now)
    start = run.cal.start
    if day < 1:
        when = tr(checkins.DATE).format(month=start.month, day=start.day)
        return tr(NOT_STARTED).format(playbook=run.playbook.name, start=when)
    if day > run.playbook.days:
        return tr(OVER).format(playbook=run.playbook.name)
    lines = [tr(TODAY_TITLE).format(day=day)]
    for it in run.playbook.schedule:
        if it.day == day and (text := items.describe(run, it, total)):
            lines.append(f"{it.at:%H:%M} {text}")
    todays = [t for t in run.playbook.tracks.values() if day in t.days]
    if todays:
        lines.append(
            tr(TODAY_CHECKINS)
            + tr(TODAY_SEPARATOR).join(
                tr(TODAY_TRACK).format(track=t.name, keyword=t.keywords[0])
                + (tr(TODAY_UNTIL).format(until=f"{t.until:%H:%M}") if t.until else "")
                for t in todays
            )
        )
    if len(lines) == 1:
        lines.append(tr(NOTHING_TODAY))
    return "\n".join(lines)


def help_text(run: CohortRun) -> str:
    tr = run.playbook.tr
    c = run.playbook.commands
    lines = [tr(HELP_TITLE).format(playbook=run.playbook.name)]
    for name, cmd in REGISTRY.items():
        words = getattr(c, name, None)
        if words and LEARNER in cmd.who:
            lines.append("· " + tr(cmd.describe).replace("{word}", words[0]))
    for t in run.playbook.tracks.values():
        # "早起打卡" is not said "打卡早起打卡"
        named = t.name.endswith("打卡") or t.name.lower().endswith("check-in")
        line = tr(HELP_CHECKIN_TRACK if named else HELP_TRACK)
        lines.append(line.format(track=t.name, keyword=t.keywords[0]))
    return "\n".join(lines)
