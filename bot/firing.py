"""Items firing: a schedule item that falls due is claimed in the database and its messages
queued in the same transaction, once, however often the scheduler or a restart asks.
What each kind of item sends is in bot/items.py."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta

from sqlalchemy import Connection
from sqlalchemy import Engine as Database

from bot import items
from bot.clock import Clock
from bot.cohort import CohortRun
from bot.plan import PlannedItem
from bot.roster import Roster
from storage import repo

log = logging.getLogger(__name__)


class Firing:
    def __init__(
        self,
        db: Database,
        clock: Clock,
        roster: Roster,
        grace: timedelta,
        max_mentions: int,
        wake: Callable[[], None],
        ride_along: Callable[[Connection, CohortRun, datetime], str | None] | None = None,
    ) -> None:
        self.db = db
        self.clock = clock
        self.roster = roster
        self.grace = grace
        self.max_mentions = max_mentions
        self.wake = wake
        self.ride_along = ride_along
        self._lock = asyncio.Lock()

    async def fire(self, run: CohortRun, planned: PlannedItem) -> None:
        """Send a due item, once: claimed in the database in the same transaction that
        queues its messages."""
        async with self._lock:
            try:
                await self._fire(run, planned)
            except Exception:
                log.exception("%s: item %s failed", run.id, planned.item_id)

    async def _fire(self, run: CohortRun, planned: PlannedItem) -> None:
        if self.clock.now() - planned.due > self.grace:
            self.skip_missed(run, [planned])
            return
        if planned.item.kind != "post" and not await self.roster.reconcile_now(run):
            # The stored list is a day's joins and leaves behind at worst; better than losing
            # the item or holding it back.
            log.warning("%s: using the stored member list for %s", run.id, planned.item_id)
        now = self.clock.now()
        if now - planned.due > self.grace:  # waited too long for the network
            self.skip_missed(run, [planned])
            return
        with self.db.begin() as conn:
            if repo.paused(conn, run.id) is not None:
                # Held, not sent: the operator chooses on resume whether it still goes.
                if repo.claim_item(conn, run.id, planned.item_id, planned.due, now, status="held"):
                    log.info("%s: %s fell due while the cohort is paused; held", run.id, planned.item_id)
                return
            if not repo.claim_item(conn, run.id, planned.item_id, planned.due, now):
                return
            n = items.queue_item(conn, run, planned, now, self.max_mentions, self.ride_along)
        late = now - planned.due
        log.info(
            "%s: %s (%s) queued %d message(s)%s",
            run.id,
            planned.item_id,
            planned.item.kind,
            n,
            f", {late} late" if late > timedelta(seconds=1) else "",
        )
        self.wake()

    async def send_held(self, run: CohortRun, item_ids: list[str]) -> list[str]:
        """Send items held while the cohort was paused, now; returns those sent (an item
        another operator already sent or skipped is left alone)."""
        sent = []
        async with self._lock:
            await self.roster.reconcile_now(run)
            now = self.clock.now()
            with self.db.begin() as conn:
                for p in run.plan:
                    if p.item_id in item_ids and repo.release_item(conn, run.id, p.item_id, "done", now):
                        items.queue_item(conn, run, p, now, self.max_mentions, self.ride_along)
                        sent.append(p.item_id)
        if sent:
            log.info("%s: held items sent on an operator's word: %s", run.id, ", ".join(sent))
            self.wake()
        return sent

    def skip_missed(self, run: CohortRun, missed: Iterable[PlannedItem]) -> None:
        now = self.clock.now()
        with self.db.begin() as conn:
            for p in missed:
                if repo.claim_item(conn, run.id, p.item_id, p.due, now, status="missed"):
                    log.warning(
                        "%s: item %s was due at %s and is past the %s grace window; "
                        "skipped (send it by hand if it still matters)",
                        run.id,
                        p.item_id,
                        run.cal.local(p.due).strftime("%m-%d %H:%M"),
                        self.grace,
                    )
