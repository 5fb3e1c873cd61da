"""Summary tables after a simulated cohort: what the operator would want at a glance."""

from __future__ import annotations

from collections import Counter, defaultdict

from rich.table import Table

from bot.outbox import FOLDABLE
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

    # Rows are what the bot had to say; a batch is one message (notices fold together).
    per_day: dict[int, Counter[str]] = defaultdict(Counter)
    batches: set[int] = set()
    for kind, at, mentions, batch in log:
        day = cal.day_of(at)
        per_day[day][kind] += 1
        if kind == "remind":
            per_day[day]["mentioned"] += mentions
        if kind in FOLDABLE and batch not in batches:
            per_day[day]["notices"] += 1
        batches.add(batch)
    sends = Table(title="What the bot sent, per day")
    cols = [
        ("post", "posts"),
        ("remind", "reminders"),
        ("mentioned", "@-mentioned"),
        ("nudge", "nudges (DM)"),
        ("ack", "check-in replies"),
        ("welcome", "welcomes"),
        ("announce", "reward posts"),
        ("notices", "messages they took"),
        ("reward", "reward DMs"),
        ("reply", "command replies"),
        ("leaderboard", "leaderboards"),
    ]
    sends.add_column("day", justify="right")
    for _, title in cols:
        sends.add_column(title, justify="right")
    for day in sorted(per_day):
        sends.add_row(str(day), *(str(per_day[day][k]) for k, _ in cols))
    sends.caption = (
        f"{len(result.sent)} sends in all for {len(log)} messages: check-in replies, welcomes and "
        "reward posts that arrive together share one message"
    )
    return [checkins, rewards, sends]
