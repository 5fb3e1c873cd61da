"""Summary tables after a simulated cohort: what the operator would want at a glance."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta

from rich.table import Table

from bot.scenario import Scenario
from bot.simulate import COHORT_ID, Result
from storage import repo


def summary_tables(result: Result, sc: Scenario) -> list[Table]:
    pb = result.bot.engine.runs[next(iter(result.bot.engine.runs))].playbook
    cal = result.cal
    excluded = set(sc.operators)
    with result.bot.db.connect() as conn:
        by_day = repo.checkins_by_day(conn, COHORT_ID)
        grants = repo.grants(conn, COHORT_ID)
        log = repo.sent_log(conn, COHORT_ID)
        everyone = {m.member_id: m for m in repo.members(conn, COHORT_ID, present_only=False)}
        present = len([m for m in everyone.values() if m.present and m.member_id not in excluded])

    checkins = Table(title="Check-ins per day and track (members who checked in)")
    checkins.add_column("day", justify="right")
    for t in pb.tracks.values():
        checkins.add_column(t.name, justify="right")
    for day in range(1, pb.days + 1):
        if any(day in t.days for t in pb.tracks.values()):
            checkins.add_row(
                str(day),
                *(str(by_day.get((tid, day), 0)) if day in t.days else "·" for tid, t in pb.tracks.items()),
            )
    checkins.caption = f"{present} members in the group at the end (operators not counted)"

    rewards = Table(title="Rewards granted")
    for col in ("reward", "members", "first to earn it"):
        rewards.add_column(col)
    counts = Counter(r for _, r, _ in grants)
    for r in pb.rewards:
        first = next(((m, a) for m, r2, a in grants if r2 == r.id), None)
        who = f"{everyone[first[0]].name} ({cal.local(first[1]):%m-%d %H:%M})" if first else "-"
        rewards.add_row(r.name, str(counts[r.id]), who)

    noise = result.noise()
    mentioned: Counter[int] = Counter()
    for kind, at, mentions, _ in log:
        if kind == "remind":
            mentioned[cal.date_day(at)] += mentions
    said = Table(title="How much the bot said, per day")
    for col in ("day", "bot in group", "members", "bot share", "per 100 ✓", "private", "@ in reminders"):
        said.add_column(col, justify="right")
    for day in noise.days:
        said.add_row(
            str(day),
            str(noise.group[day]),
            str(noise.members[day]),
            f"{noise.share(day):.0%}",
            f"{noise.per_100(day):.0f}" if noise.checkins[day] else "·",
            str(noise.private[day]),
            str(mentioned[day]),
        )
    in_25 = noise.waking_in_25 / noise.waking_named if noise.waking_named else 1.0
    said.caption = (
        f"per 100 counted check-ins: {noise.per_100():.1f} group messages; busiest day: "
        f"{noise.busiest_day}; check-ins 08:00-22:00 named within 25 min: {in_25:.0%}; "
        f"longest wait for a roll call: {_minutes(noise.longest_wait)}"
    )
    return [checkins, rewards, said]


def _minutes(d: timedelta) -> str:
    m = int(d.total_seconds() // 60)
    return f"{m // 60} h {m % 60} min" if m >= 60 else f"{m} min"
