"""How much the bot says, measured: what decides whether members mute the group.

Per day: the bot's messages in the group, members' own messages, the bot's share of all
group messages, private messages, counted check-ins and the bot's group messages per 100 of
them; over the cohort, the longest wait from a counted check-in to the roll call that names
it. `simulate`, `demo` and `bench/noise.py` print these.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta

from sqlalchemy import Engine as Database
from sqlalchemy import func, select

from bot.plan import Calendar
from bot.transports.simulated import Sent
from storage import repo

WAKING = (time(8, 0), time(22, 0))  # check-ins made between these are expected named promptly


@dataclass
class Noise:
    group: Counter[int] = field(default_factory=Counter)  # day -> bot messages in the group
    members: Counter[int] = field(default_factory=Counter)  # day -> members' group messages
    private: Counter[int] = field(default_factory=Counter)  # day -> bot private messages
    checkins: Counter[int] = field(default_factory=Counter)  # day -> counted check-ins
    longest_wait: timedelta = timedelta(0)  # counted check-in -> the roll call naming it
    longest_waking_wait: timedelta = timedelta(0)  # the same, for check-ins made 08:00-22:00
    waking_named: int = 0  # counted check-ins made 08:00-22:00 ...
    waking_in_25: int = 0  # ... and of those, named within 25 minutes

    @property
    def days(self) -> list[int]:
        return sorted(set(self.group) | set(self.members) | set(self.private) | set(self.checkins))

    def share(self, day: int) -> float:
        said = self.group[day] + self.members[day]
        return self.group[day] / said if said else 0.0

    def per_100(self, day: int | None = None) -> float:
        group = self.group[day] if day is not None else sum(self.group.values())
        counted = self.checkins[day] if day is not None else sum(self.checkins.values())
        return 100 * group / counted if counted else 0.0

    @property
    def busiest_day(self) -> int:
        return max(self.group.values(), default=0)


def measure(
    db: Database, cohort_id: str, cal: Calendar, sent: Iterable[Sent], member_said: Iterable[datetime]
) -> Noise:
    """``sent``: what the bot sent; ``member_said``: when members spoke in the group."""
    n = Noise()
    for s in sent:
        (n.group if s.chat.startswith("room") else n.private)[cal.date_day(s.at)] += 1
    for at in member_said:
        n.members[cal.date_day(at)] += 1
    out, ci = repo.out_t, repo.checkin_t
    with db.connect() as conn:
        for day, count in conn.execute(
            select(ci.c.day, func.count()).where(ci.c.cohort_id == cohort_id).group_by(ci.c.day)
        ):
            n.checkins[day] = count
        # When each roll call went out (its first message), by the moment it was composed.
        went = {
            repo.utc(created): repo.utc(sent_at)
            for created, sent_at in conn.execute(
                select(out.c.created_at, func.min(out.c.sent_at))
                .where(out.c.cohort_id == cohort_id, out.c.kind == "rollcall", out.c.status == "sent")
                .group_by(out.c.created_at)
            )
        }
        for at, named in conn.execute(select(ci.c.at, ci.c.named_at).where(ci.c.cohort_id == cohort_id)):
            at, named = repo.utc(at), repo.utc(named)
            waking = WAKING[0] <= cal.local(at).time() < WAKING[1]
            n.waking_named += waking
            if named is None:
                continue  # never named: counts against the 25 minutes
            # Named by a roll call, or acknowledged on its own (`acknowledge: each`).
            wait = went.get(named, named) - at
            n.longest_wait = max(n.longest_wait, wait)
            if waking:
                n.longest_waking_wait = max(n.longest_waking_wait, wait)
                n.waking_in_25 += wait <= timedelta(minutes=25)
    return n
