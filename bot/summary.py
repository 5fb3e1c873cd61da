"""Summary tables after a simulated cohort (`demo`, `simulate --transcript`): what the
operator would want at a glance, readable in an 80-column terminal."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta

from rich.console import RenderableType
from rich.table import Table
from rich.text import Text

from bot.noise import WAKING
from bot.scenario import Scenario
from bot.simulate import COHORT_ID, Result
from storage import repo


def _in_group(result: Result, sc: Scenario, days: int) -> dict[int, int]:
    """Day -> members in the group (operators not counted) when that day's check-ins close."""
    cal, operators = result.cal, set(sc.operators)
    here = {m.id for m in sc.members} - operators
    events = iter(e for e in result.events if e.kind in ("join", "leave"))
    pending = next(events, None)
    out: dict[int, int] = {}
    for day in range(1, days + 1):
        end = cal.at(day + 1, cal.day_starts)
        while pending is not None and pending.at < end:
            if pending.member.id not in operators:
                (here.add if pending.kind == "join" else here.discard)(pending.member.id)
            pending = next(events, None)
        out[day] = len(here)
    return out


def summary_tables(result: Result, sc: Scenario) -> list[RenderableType]:
    pb = result.bot.engine.runs[next(iter(result.bot.engine.runs))].playbook
    cal = result.cal
    with result.bot.db.connect() as conn:
        by_day = repo.checkins_by_day(conn, COHORT_ID)
        grants = repo.grants(conn, COHORT_ID)
        log = repo.sent_log(conn, COHORT_ID)
        everyone = {m.member_id: m for m in repo.members(conn, COHORT_ID, present_only=False)}
    in_group = _in_group(result, sc, pb.days)

    checkins = Table(title="Check-ins per day and track")
    checkins.add_column("day", justify="right")
    for t in pb.tracks.values():
        checkins.add_column(t.name, justify="right")
    checkins.add_column("in group", justify="right")
    for day in range(1, pb.days + 1):
        if any(day in t.days for t in pb.tracks.values()):
            checkins.add_row(
                str(day),
                *(str(by_day.get((tid, day), 0)) if day in t.days else "·" for tid, t in pb.tracks.items()),
                str(in_group[day]),
            )

    rewards = Table(title="Rewards granted")
    for col, justify in (("reward", "left"), ("members", "right"), ("first to earn it", "left")):
        rewards.add_column(col, justify=justify)  # type: ignore[arg-type]
    counts = Counter(r for _, r, _ in grants)
    for r in pb.rewards:
        first = next(((m, a) for m, r2, a in grants if r2 == r.id), None)
        who = "-"
        if first:
            m = everyone.get(first[0])
            when = cal.local(first[1])
            who = f"{m.alias or m.name if m else first[0]}, day {cal.date_day(first[1])} {when:%H:%M}"
        rewards.add_row(r.name, str(counts[r.id]), who)
    if not pb.rewards:
        rewards.caption = "this playbook has no rewards"

    noise = result.noise()
    mentioned: Counter[int] = Counter()
    for kind, at, mentions, _ in log:
        if kind == "remind":
            mentioned[cal.date_day(at)] += mentions
    said = Table(title="How much the bot said, per day")
    heads = ("day", "bot in\ngroup", "members\nin group", "bot\nshare", "per 100\ncheck-ins", "private")
    for col in (*heads, "@ in\nreminders"):
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
    busiest = max(noise.group, key=lambda d: noise.group[d], default=None)
    in_25 = noise.waking_in_25 / noise.waking_named if noise.waking_named else 1.0
    waking = f"{WAKING[0]:%H:%M}-{WAKING[1]:%H:%M}"
    lines = [f"Per 100 counted check-ins: {noise.per_100():.1f} bot messages in the group."]
    if busiest is not None:
        lines[0] += f" Busiest: day {busiest} ({noise.group[busiest]})."
    lines.append(f"Check-ins made {waking} named in a roll call within 25 min: {in_25:.0%}.")
    lines.append(f"Longest wait for a roll call: {_minutes(noise.longest_wait)}, quiet hours included.")
    return [checkins, rewards, said, Text("\n".join(lines))]


def _minutes(d: timedelta) -> str:
    m = int(d.total_seconds() // 60)
    return f"{m // 60} h {m % 60} min" if m >= 60 else f"{m} min"
