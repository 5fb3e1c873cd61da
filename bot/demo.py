"""The demo: any playbook (the sample by default) played by generated members whose habits
follow the playbook itself: its tracks' keywords and days, their cut-offs (`until`,
`day_starts`) and reminders, its commands (mute and unmute where it has them), two members
who join, one who leaves. Played on the virtual clock, then summary tables (bot/summary.py).

Every generated message falls while its sender is in the group and inside the cohort, so a
scenario built here always passes `timeline` (bot/scenario.py), for any playbook, any member
count in 1..500 and any seed.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date, time, timedelta
from pathlib import Path
from typing import Any

from bot import i18n
from bot.i18n import N_
from bot.playbook import Playbook
from bot.report import Report, compute
from bot.scenario import Scenario
from bot.simulate import COHORT_ID, Result

SAMPLE_PLAYBOOK = Path(__file__).resolve().parent.parent / "playbooks" / "python-8day.yaml"
MIN_MEMBERS, MAX_MEMBERS = 1, 500
BOT_NAME = "CohortBot"
OPERATOR = "op1"

SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘"
GIVEN = [
    *("伟", "芳", "娜", "敏", "静", "磊", "洋", "艳", "勇", "杰", "娟", "涛", "明", "超"),
    *("秀英", "霞", "平", "刚", "桂英", "晨", "子涵", "浩然", "雨萱", "梓轩", "欣怡", "一诺"),
    *("思远", "佳琪"),
]
CHATTER = [
    "老师好",
    "收到",
    "👍👍",
    "今天的内容好实用",
    "请问作业在哪里交？",
    "😂",
    "打扰了，想问下链接打不开",
    "谢谢助教",
    "🌹🌹🌹",
]
# What members add after a check-in keyword: nothing, punctuation, a few words.
AFTER_KEYWORD = ["", "", "！", " ✅", "～", " 今天有收获", " 第一次完整做完"]

DAY = 24 * 60  # minutes


@dataclass(frozen=True)
class Habit:
    name: str
    checkin: float  # chance to check in on one of a track's days
    late: bool  # leaves things to the last minute, sometimes past the cut-off
    chatty: float  # chance of a chat message a day


HABITS = [
    (Habit("diligent", 0.95, False, 0.3), 0.40),
    (Habit("late", 0.75, True, 0.2), 0.20),
    (Habit("casual", 0.5, False, 0.2), 0.15),
    (Habit("lurker", 0.08, False, 0.02), 0.25),
]
# The member who mutes the bot checks in early every day: muted, but never behind.
MUTER = Habit("muter", 1.0, False, 0.1)


def _minutes(t: time | None) -> int:
    return 0 if t is None else t.hour * 60 + t.minute


def _at(t: int) -> str:
    """Minutes from day 1 00:00 -> "day N HH:MM"."""
    return f"day {t // DAY + 1} {t % DAY // 60:02d}:{t % 60:02d}"


@dataclass(frozen=True)
class Window:
    """When a track's check-ins for one day are made, in minutes from day 1 00:00."""

    open: int  # members start checking in
    mark: int  # the reminder (or a sensible evening hour): the diligent are done by then
    close: int  # the last minute that counts: `until`, or the next `day_starts`
    cutoff: bool  # `until` is set: some late members miss it


def window(pb: Playbook, track_id: str, day: int) -> Window:
    track = pb.tracks[track_id]
    starts = _minutes(pb.day_starts)
    day0 = (day - 1) * DAY
    if track.until is not None:
        until = _minutes(track.until)
        close = day0 + until + (DAY if until < starts else 0)  # as Calendar.deadline
    else:
        close = day0 + DAY + starts
    lo = day0 + starts
    opens = max(lo, min(day0 + 7 * 60 + 30, close - 120))
    reminders = [
        day0 + _minutes(it.at)
        for it in pb.schedule
        if it.remind is not None and it.remind.track == track_id and it.day == day
    ]
    mark = min((r for r in reminders if opens < r <= close), default=min(close, day0 + 22 * 60))
    return Window(opens, max(mark, opens + 1), max(close, opens + 1), track.until is not None)


class _Names:
    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.used: set[str] = set()

    def new(self) -> str:
        while True:
            name = self.rng.choice(SURNAMES) + self.rng.choice(GIVEN)
            if name not in self.used:
                self.used.add(name)
                return name


def _checkin_text(pb: Playbook, track_id: str, rng: random.Random) -> str:
    """A keyword of the track as members write it; the longest keyword it starts with is
    still one of this track's (else the bare keyword)."""
    keyword = rng.choice(pb.tracks[track_id].keywords)
    text = keyword + rng.choice(AFTER_KEYWORD)
    longest = max(
        ((kw, tid) for tid, t in pb.tracks.items() for kw in t.keywords if text.startswith(kw)),
        key=lambda kt: len(kt[0]),
    )
    return text if longest[1] == track_id else keyword


def demo_scenario(
    playbook: Playbook, members: int = 60, seed: int = 7, start: date = date(2026, 12, 1)
) -> tuple[Scenario, dict[str, str]]:
    """A scenario for ``playbook`` with ``members`` generated members (1..500), two who
    join and one who leaves; also returns member id -> habit."""
    if not MIN_MEMBERS <= members <= MAX_MEMBERS:
        raise ValueError(f"members: {members} is out of range; use {MIN_MEMBERS} to {MAX_MEMBERS}")
    pb = playbook
    rng = random.Random(seed)
    names = _Names(rng)
    width = max(2, len(str(members + 2)))
    people: list[dict[str, Any]] = [{"id": OPERATOR, "name": "王助教"}]
    habit_of: dict[str, str] = {OPERATOR: "operator"}
    habit: dict[str, Habit] = {}
    habits, weights = [h for h, _ in HABITS], [w for _, w in HABITS]
    regular = [f"u{i:0{width}d}" for i in range(1, members + 1)]
    for mid in regular:
        people.append({"id": mid, "name": names.new()})
        habit[mid] = rng.choices(habits, weights)[0]
    joiners = [{"id": f"u{members + i:0{width}d}", "name": names.new()} for i in (1, 2)]
    for j in joiners:
        habit[j["id"]] = HABITS[0][0]

    last = pb.days * DAY  # the cohort ends here
    join_day, leave_day = min(3, pb.days), min(4, pb.days)
    joined_at = {joiners[0]["id"]: (join_day - 1) * DAY + 8 * 60 + 10}
    joined_at[joiners[1]["id"]] = (join_day - 1) * DAY + 13 * 60 + 40
    leaver = regular[min(4, members - 1)]
    left_at = {leaver: (leave_day - 1) * DAY + 12 * 60}
    # The cast: members with a part to play (asking, muting, noise), the leaver last.
    cast = [m for m in regular if m != leaver] or [leaver]
    muter = cast[min(3, len(cast) - 1)] if pb.commands.mute else None
    if muter is not None:
        habit[muter] = MUTER

    events: list[dict[str, Any]] = [
        {"at": _at(joined_at[j["id"]]), "join": j} for j in joiners
    ]  # first in the file: at the same minute, the join comes before what they say
    events.append({"at": _at(left_at[leaver]), "leave": leaver})
    said: list[tuple[int, dict[str, Any]]] = []

    def say(t: int, who: str, text: str, dm: bool = False) -> None:
        said.append((t, {"at": _at(t), "from": who, "text": text, **({"dm": True} if dm else {})}))

    def cast_member(i: int) -> str:
        return cast[i % len(cast)]

    # Every command the playbook has, asked as members do: in the group or privately.
    c = pb.commands

    def on(day: int, hh: int, mm: int) -> int:
        return (min(day, pb.days) - 1) * DAY + hh * 60 + mm

    say(on(1, 9, 5), cast_member(0), c.help[0])
    say(on(2, 12, 30), cast_member(1), rng.choice(c.today))
    say(on(4, 21, 0), cast_member(2), rng.choice(c.progress), dm=True)
    say(on(5, 22, 5), cast_member(3 if muter is None else 4), rng.choice(c.leaderboard))
    if muter is not None and c.mute:
        say(on(1, 10, 0), muter, c.mute[0], dm=True)
        if c.unmute:
            say(on(pb.days, 10, 0), muter, c.unmute[0], dm=True)
    say(on(6, 9, 30), OPERATOR, "大家结营快乐，今晚 8 点不见不散！")
    # What a real group also sends: emoji, the bot's name alone, a very long message, nothing.
    say(on(2, 15, 30), cast_member(5), "🎉🎉🎉")
    say(on(2, 15, 31), cast_member(6), f"@{BOT_NAME}")
    say(on(2, 15, 32), cast_member(7), "长消息" * 2000)
    say(on(2, 15, 33), cast_member(8), "")

    # A check-in sent twice (the second is silent), the first with the bot's name before it.
    first_track = next(iter(pb.tracks))
    w = window(pb, first_track, pb.tracks[first_track].days[0])
    t = rng.randint(w.open, max(w.open, w.mark - 2))
    twice = cast_member(9)
    say(t, twice, f"@{BOT_NAME} " + _checkin_text(pb, first_track, rng))
    say(t + 1, twice, pb.tracks[first_track].keywords[0])

    for mid in regular + [j["id"] for j in joiners]:
        h = habit[mid]
        for tid, track in pb.tracks.items():
            for day in track.days:
                chance = h.checkin * (0.85 if track.until is not None and h.late else 1.0)
                if rng.random() >= chance:
                    continue
                w = window(pb, tid, day)
                if h is MUTER:  # in good time before any reminder
                    early = max(w.open, w.mark - 240)
                    t = rng.randint(early, max(early, w.mark - 30))
                elif h.late and w.cutoff and rng.random() < 0.25:
                    t = rng.randint(w.close + 1, w.close + 90)  # too late: the bot says so
                elif h.late:
                    t = rng.randint(w.mark, max(w.mark, min(w.close, (day - 1) * DAY + DAY + 90) - 1))
                elif h.name == "casual":
                    t = rng.randint(w.open, w.close - 1)
                else:
                    t = rng.randint(max(w.open, w.mark - 240), w.mark - 1)
                say(t, mid, _checkin_text(pb, tid, rng))
        for day in range(1, pb.days + 1):
            if rng.random() < h.chatty:
                say((day - 1) * DAY + rng.randint(9 * 60, 23 * 60), mid, rng.choice(CHATTER))

    def here(mid: str, t: int) -> bool:
        """In the group at minute t, strictly after joining and before leaving."""
        return 0 <= t < last and joined_at.get(mid, -1) < t and t < left_at.get(mid, last)

    events += [e for t, e in said if here(e["from"], t)]
    for mid, h in habit.items():
        habit_of[mid] = h.name
    habit_of[leaver] = f"leaver:{leave_day}"
    sc = Scenario.model_validate(
        {
            "start": start,
            "room": pb.name,
            "bot": BOT_NAME,
            "operators": [OPERATOR],
            "members": people,
            "events": events,
        }
    )
    return sc, habit_of


# The habits' names, for the demo's first lines (the operator's language).
HABIT_WORDS = {
    "diligent": N_("diligent"),
    "late": N_("late"),
    "casual": N_("casual"),
    "lurker": N_("lurker"),
    "muter": N_("muter"),
}


def describe(sc: Scenario, habit_of: dict[str, str]) -> Iterator[str]:
    """The generated group in a few words: who, and their habits."""
    joins = [e for e in sc.events if e.join is not None]
    learners = len(sc.members) - len(sc.operators)
    who = i18n.ngettext("{n} member", "{n} members", learners).format(n=learners)
    if joins:
        # The demo writes its joins as "day N HH:MM".
        day = str(joins[0].at).rsplit(" ", 1)[0].removeprefix("day ")
        who += i18n._(" + {n} joining on day {day}").format(n=len(joins), day=day)
    yield who
    counts: dict[str, int] = {}
    for mid, h in habit_of.items():
        if mid not in sc.operators:
            counts[h] = counts.get(h, 0) + 1
    words = []
    for h, n in sorted(counts.items(), key=lambda hn: -hn[1]):
        if h.startswith("leaver:"):
            said = i18n._("leaver (day {day})").format(day=h.split(":", 1)[1])
        else:
            said = i18n._(HABIT_WORDS[h]) if h in HABIT_WORDS else h
        words.append(f"{n} {said}")
    yield i18n._(", ").join(words)


def rehearsal_report(result: Result, pb: Playbook) -> Report:
    """The report of a played demo, as of the close of its last day (`cohortbot report` on the
    file `demo --db` left gives the same)."""
    with result.bot.db.connect() as conn:
        return compute(conn, COHORT_ID, result.cal.at(pb.days + 1, result.cal.day_starts), pb)


# --- demo --web: the same cohort, played at a pace a person can watch, with the console --------

DEFAULT_BIND = "127.0.0.1:8080"
DEFAULT_SPEED = 24.0  # minutes of cohort time per real second: a cohort day a minute
DEMO_LOGIN = "demo"


@dataclass(frozen=True)
class LiveDemo:
    """What `demo --web` tells the person watching, once the console listens."""

    url: str
    name: str
    password: str


def play_live(
    pb: Playbook,
    sc: Scenario,
    bind: str,
    speed: float,
    db_url: str,
    ready: Callable[[LiveDemo], None],
    stop: Callable[[asyncio.Event], None],
) -> None:
    """Play ``sc`` on a PacedLoop (``speed`` cohort minutes per real second) with the console
    served over it from the same loop, a `demo` login with a fresh random password made in
    the demo's database; runs on after the last day until ``stop``'s event is set (the CLI
    sets it on Ctrl-C). Raises bot.web.serve.BindError if the address cannot be listened on."""
    import secrets

    from bot.app import Bot
    from bot.clock import PacedLoop, VirtualClock
    from bot.cohort import CohortRun
    from bot.config import split_bind
    from bot.engine import Settings
    from bot.plan import calendar
    from bot.scenario import BOT_ID, timeline
    from bot.simulate import COHORT_ID, play
    from bot.transports.base import Member
    from bot.transports.simulated import SimulatedGroup
    from bot.web import auth
    from bot.web.app import WebSettings, create_app, hooks_of
    from bot.web.serve import Served
    from storage.db import open_db

    cal = calendar(pb, sc.start)
    events = timeline(sc, cal)
    per_second = speed * 60  # loop seconds per real second
    # Half an hour before day 1's first item: the console shows the cohort about to begin.
    first = min((p.due for p in CohortRun.create(COHORT_ID, pb, cal, sc.room).plan), default=cal.start_utc())
    loop = PacedLoop(max(cal.start_utc(), first - timedelta(minutes=30)), speed=per_second)

    async def main() -> None:
        clock = VirtualClock(loop)
        group = SimulatedGroup(
            clock,
            rooms={"room": sc.room},
            members=[Member(m.id, m.name, m.alias) for m in sc.members],
            bot=Member(BOT_ID, sc.bot),
        )
        joiners = [e.join for e in sc.events if e.join is not None]
        group.strangers = {m.id for m in [*sc.members, *joiners] if not m.friend}
        settings = Settings(operators=frozenset(sc.operators), bot_name=sc.bot)
        run = CohortRun.create(COHORT_ID, pb, cal, sc.room)
        db = open_db(db_url)
        bot = Bot(db, group, clock, settings, [run], reconcile_minutes=0)
        await bot.start()
        try:
            password = secrets.token_urlsafe(9)
            auth.add_operator(db, DEMO_LOGIN, password, [], None, clock.now())
            # Live pages look for changes about once a real second, not a thousand times.
            web = WebSettings(language=i18n.current(), poll_seconds=per_second)
            served = Served(
                create_app(db, hooks_of(bot.engine, bot.alerting), web, clock), bind, speed=per_second
            )
            try:
                await served.start()
                host = split_bind(bind)[0]
                shown = f"[{host}]" if ":" in host else host
                ready(LiveDemo(f"http://{shown}:{served.port}/", DEMO_LOGIN, password))
                stopping = asyncio.Event()
                stop(stopping)
                players = asyncio.create_task(play(group, [e for e in events if e.at >= clock.now()], clock))
                await stopping.wait()
                players.cancel()
            finally:
                await served.stop()
        finally:
            await bot.stop()
            db.dispose()

    try:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(main())
    finally:
        asyncio.set_event_loop(None)
        loop.close()
