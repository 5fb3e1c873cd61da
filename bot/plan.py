"""Playbook + cohort start date -> the dated schedule, and cohort-day arithmetic.

Pure and timezone-aware: the playbook's zone applies here, at the edge; everything that
leaves is UTC. Wall-clock times go through zoneinfo, so "07:30" stays 07:30 local across a
daylight-saving change.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated
from zoneinfo import ZoneInfo

from pydantic import BeforeValidator, Field

from bot.i18n import N_, _
from bot.playbook import Playbook, ScheduleItem


def not_a_number(said: str) -> BeforeValidator:
    """A date or time field that refuses numbers, saying ``said`` (an N_-marked text with
    {value}): pydantic reads a number as seconds since 1970, so `start: 1795996800` would be a
    day 1 nobody wrote, `start: 20261201` an error about "zero time", a scenario's `at: 5`
    "outside the cohort"."""

    def check(value: object) -> object:
        if isinstance(value, int | float):
            raise ValueError(_(said).format(value=value))
        return value

    return BeforeValidator(check)


# A cohort's start, as operators write it; bounded so date arithmetic cannot overflow.
StartDate = Annotated[
    date,
    not_a_number(N_("{value!r} is not a date; write YYYY-MM-DD, e.g. 2026-12-01")),
    Field(ge=date(2000, 1, 1), le=date(2999, 12, 31), description="day 1, e.g. 2026-12-01"),
]


@dataclass(frozen=True)
class PlannedItem:
    item_id: str
    due: datetime  # UTC
    item: ScheduleItem

    @property
    def day(self) -> int:
        return self.item.day


@dataclass(frozen=True)
class Calendar:
    """A cohort's days in its time zone."""

    start: date
    days: int
    zone: ZoneInfo
    # Check-ins before this local time count for the previous day (evening homework sent
    # after midnight); 00:00 is the version-1 meaning.
    day_starts: time = time(0, 0)

    def at(self, day: int, when: time) -> datetime:
        """UTC instant of local ``when`` on cohort ``day``."""
        local = datetime.combine(self.start + timedelta(days=day - 1), when, tzinfo=self.zone)
        # A wall time that does not exist (skipped by a DST jump) is normalised by the
        # round trip through UTC, i.e. moved forward by the gap.
        return local.astimezone(UTC)

    def day_of(self, instant: datetime) -> int:
        """The cohort day containing ``instant`` (may be < 1 or > days); a day runs from
        ``day_starts`` to ``day_starts`` the next morning."""
        local = instant.astimezone(self.zone)
        date_ = local.date() if local.time() >= self.day_starts else local.date() - timedelta(days=1)
        return (date_ - self.start).days + 1

    def date_day(self, instant: datetime) -> int:
        """The cohort day of the calendar date (for showing times as "day N HH:MM")."""
        return (instant.astimezone(self.zone).date() - self.start).days + 1

    def deadline(self, day: int, until: time) -> datetime:
        """The UTC instant of ``until`` on cohort ``day``: with a day that starts at 04:00,
        an `until` of 02:00 is the night after, not the morning before."""
        return self.at(day + 1, until) if until < self.day_starts else self.at(day, until)

    def local(self, instant: datetime) -> datetime:
        return instant.astimezone(self.zone)

    def start_utc(self) -> datetime:
        return self.at(1, time(0, 0))

    def end_utc(self) -> datetime:
        """Midnight after the last day."""
        return self.at(self.days + 1, time(0, 0))


def calendar(playbook: Playbook, start: date, default_zone: str = "Asia/Shanghai") -> Calendar:
    return Calendar(
        start, playbook.days, ZoneInfo(playbook.timezone or default_zone), playbook.day_starts or time(0, 0)
    )


def build_plan(playbook: Playbook, cal: Calendar) -> list[PlannedItem]:
    items = [
        PlannedItem(item_id, cal.at(it.day, it.at), it)
        for item_id, it in zip(playbook.item_ids, playbook.schedule, strict=True)
    ]
    # Same minute: keep the playbook's order (sorted() is stable).
    return sorted(items, key=lambda p: p.due)
