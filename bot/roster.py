"""The member roster: who is in each cohort's group, kept in step with the room itself.

Join events are unreliable (QR-code joins fire none), so the room's own member list is read
again from time to time and before every reminder; the database is the record, this keeps
a cache of who is present for the message path.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import datetime, timedelta

from sqlalchemy import Connection
from sqlalchemy import Engine as Database

from bot.clock import Clock, within
from bot.cohort import CohortRun
from bot.transports.base import Member, Transport
from storage import repo
from storage.models import LEARNER, OPERATOR

log = logging.getLogger(__name__)

REREAD_AFTER_DM = timedelta(minutes=10)  # per unknown sender
RECONCILE_TIMEOUT = timedelta(seconds=60)


class Roster:
    def __init__(
        self,
        db: Database,
        clock: Clock,
        transport: Transport,
        operators: frozenset[str],
        bot_name: str | None,
    ) -> None:
        self.db = db
        self.clock = clock
        self.transport = transport
        self.operators = operators
        self.bot_name = bot_name
        self._present: dict[str, set[str]] = {}  # cohort id -> member ids present
        self._reread: dict[str, datetime] = {}
        self._bot_names: list[str] = []

    def role(self, member_id: str) -> str:
        return OPERATOR if member_id in self.operators else LEARNER

    def bot_names(self) -> list[str]:
        """How members @ the bot: the configured name, then its names in the rooms."""
        return [n for n in (self.bot_name, *self._bot_names) if n]

    async def reconcile(self, run: CohortRun) -> None:
        """Make the stored member list match the room's (join events are unreliable)."""
        asked = self.clock.now()
        found = await self.transport.members(run.room_id)
        bot_id = self.transport.bot_id()
        for m in found:
            if m.id == bot_id:
                self._bot_names = list(dict.fromkeys(n for n in (*self._bot_names, m.name, m.alias) if n))
        people = [(m.id, m.name, m.alias) for m in found if m.id != bot_id]
        with self.db.begin() as conn:
            if not people and repo.present_ids(conn, run.id):
                # A gateway still syncing can answer with an empty room; that is not everyone
                # leaving (asked of the database: after a restart nothing is in memory yet).
                log.warning("%s: the room's member list came back empty; keeping the stored one", run.id)
                self._present[run.id] = repo.present_ids(conn, run.id)
                return
            joined, left = repo.sync_members(
                conn, run.id, people, self.clock.now(), self.operators, read_at=asked
            )
            self._present[run.id] = repo.present_ids(conn, run.id)
        if joined or left:
            log.info("%s: %d member(s) present, %d new, %d gone", run.id, len(people), len(joined), len(left))

    async def reconcile_now(self, run: CohortRun) -> bool:
        """A re-read that never raises: bounded, one log line when the network is not there."""
        try:
            await within(self.reconcile(run), RECONCILE_TIMEOUT.total_seconds())
        except Exception as exc:
            log.warning(
                "%s: could not re-read the member list (%s); trying again later", run.id, type(exc).__name__
            )
            return False
        return True

    def ensure(self, conn: Connection, run: CohortRun, member: Member, now: datetime) -> None:
        """A member seen speaking in the group is in it, event or not."""
        present = self._present.setdefault(run.id, set())
        if member.id not in present:
            repo.member_joined(conn, run.id, member.id, member.name, member.alias, now, self.role(member.id))
            present.add(member.id)

    def joined(self, conn: Connection, run: CohortRun, member: Member, at: datetime) -> bool:
        """Record a join; True if the member was not in the group before."""
        new = repo.member_joined(conn, run.id, member.id, member.name, member.alias, at, self.role(member.id))
        self._present.setdefault(run.id, set()).add(member.id)
        return new

    def left(self, conn: Connection, run: CohortRun, member_ids: Iterable[str], at: datetime) -> None:
        for mid in member_ids:
            repo.member_left(conn, run.id, mid, at)
            self._present.get(run.id, set()).discard(mid)

    def cohorts_of(self, member_id: str, runs: Iterable[CohortRun]) -> list[CohortRun]:
        """The cohorts this member is in, the latest start first."""
        found = [r for r in runs if member_id in self._present.get(r.id, ())]
        return sorted(found, key=lambda r: r.cal.start, reverse=True)

    def may_reread_for(self, member_id: str, now: datetime) -> bool:
        """A private message from someone in no known group: maybe a silent join. Re-read
        the rooms, but once in a while per sender: strangers must not hammer the gateway."""
        last = self._reread.get(member_id)
        if last is not None and now - last < REREAD_AFTER_DM:
            return False
        self._reread[member_id] = now
        return True

    def forget_rereads(self) -> None:
        self._reread.clear()
