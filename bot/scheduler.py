"""APScheduler glue: each cohort's plan becomes date jobs that call Engine.fire.

The jobs are derived from the plan at every start and never trusted as the record of what
was sent: the item_run table is. Items already claimed are not scheduled again; items
missed while the bot was down are sent late within the grace window, else skipped and
logged.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import apscheduler.schedulers.base as _aps_base
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.date import DateTrigger
from apscheduler.triggers.interval import IntervalTrigger

from bot.clock import Clock, loop_now
from bot.cohort import CohortRun
from bot.engine import Engine
from bot.plan import PlannedItem
from storage import repo

log = logging.getLogger(__name__)


class _LoopAwareDatetime(datetime):
    """APScheduler 3 reads ``datetime.now()`` directly. On a virtual-time loop (simulate,
    demo, tests) it must read the loop's clock instead, or every job would be due at once
    or never; on a real loop this is plain ``datetime.now``."""

    @classmethod
    def now(cls, tz=None):  # type: ignore[no-untyped-def, override]
        virtual = loop_now()
        if virtual is None:
            return datetime.now(tz)
        return virtual.astimezone(tz) if tz is not None else virtual.replace(tzinfo=None)


_aps_base.datetime = _LoopAwareDatetime  # type: ignore[misc]


class CohortScheduler:
    def __init__(self, engine: Engine, clock: Clock, reconcile_minutes: float = 5) -> None:
        self.engine = engine
        self.clock = clock
        self.reconcile_minutes = reconcile_minutes
        self.aps = AsyncIOScheduler(timezone=UTC)

    async def start(self, runs: list[CohortRun]) -> None:
        now = self.clock.now()
        late: list[tuple[CohortRun, PlannedItem]] = []
        for run in runs:
            late += [(run, p) for p in self._schedule(run, now)]
            if self.reconcile_minutes:
                self.aps.add_job(
                    self.engine.reconcile_now,
                    IntervalTrigger(minutes=self.reconcile_minutes, start_date=now, timezone=UTC),
                    args=(run,),
                    id=f"{run.id}:reconcile",
                    misfire_grace_time=None,
                    coalesce=True,
                    max_instances=1,
                )
        self.aps.start()
        for run, p in sorted(late, key=lambda rp: rp[1].due):
            log.info(
                "%s: %s was due at %s while the bot was down; sending it now",
                run.id,
                p.item_id,
                run.cal.local(p.due).strftime("%H:%M"),
            )
            await self.engine.fire(run, p)

    def reschedule(self, run: CohortRun) -> list[PlannedItem]:
        """A live edit changed ``run.plan``: its item jobs are replaced by the new plan's, by
        the same rules as at start (claimed items are not scheduled again; unclaimed items
        already past are skipped beyond the grace window). Returns the items due within the
        grace window, for the caller to fire (late) once the edit is in place."""
        for job in self.aps.get_jobs():
            if job.id.startswith(f"{run.id}:") and job.id != f"{run.id}:reconcile":
                job.remove()
        return self._schedule(run, self.clock.now())

    def _schedule(self, run: CohortRun, now: datetime) -> list[PlannedItem]:
        grace = self.engine.settings.grace
        with self.engine.db.connect() as conn:
            claimed = repo.claimed_items(conn, run.id)
        todo = [p for p in run.plan if p.item_id not in claimed]
        missed = [p for p in todo if p.due < now - grace]
        if missed:
            self.engine.skip_missed(run, missed)
        for index, p in enumerate(run.plan):
            if p.item_id in claimed or p.due <= now:
                continue
            # Job ids sort like the plan, so items due the same minute keep their order.
            self.aps.add_job(
                self.engine.fire,
                DateTrigger(p.due),
                args=(run, p),
                id=f"{run.id}:{index:05d}:{p.item_id}",
                misfire_grace_time=None,
                coalesce=False,
                max_instances=1,
            )
        return [p for p in todo if now - grace <= p.due <= now]

    def stop(self) -> None:
        if self.aps.running:
            self.aps.shutdown(wait=False)
