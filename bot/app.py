"""The bot assembled: database, transport, clock, outbox, engine and scheduler, started
and stopped in the right order. `run`, `simulate`, `demo` and the tests all come here."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import Engine as Database

from bot.clock import Clock
from bot.cohort import CohortRun
from bot.engine import Engine, Settings
from bot.incidents import AlertSettings, Incidents
from bot.outbox import Outbox
from bot.scheduler import CohortScheduler
from bot.transports.base import Transport

log = logging.getLogger(__name__)


@dataclass
class Bot:
    db: Database
    transport: Transport
    clock: Clock
    settings: Settings
    runs: list[CohortRun]
    reconcile_minutes: float = 5
    # Alerts outside WeChat (config `alerts:`); without it, incidents are only logged.
    incidents: Incidents | None = None

    def __post_init__(self) -> None:
        self.outbox = Outbox(self.db, self.transport, self.clock, self.settings.pacing)
        self.engine = Engine(self.db, self.clock, self.transport, self.outbox, self.settings)
        self.outbox.on_failed = self.engine.alerts.failed
        if self.incidents is None:
            self.incidents = Incidents(self.db, self.clock, AlertSettings(language=self.settings.language))
        self.engine.watch = self.incidents.on_event
        self.engine.alerts.on_failed = self.incidents.sends_failed
        self.outbox.on_not_friend = self.engine.friends.refused
        if hasattr(self.transport, "on_not_friend"):
            # The Wechaty adapter hears WeChat's "not a friend" notice after an accepted send.
            self.transport.on_not_friend = self.engine.friends.notified
        self.scheduler = CohortScheduler(self.engine, self.clock, self.reconcile_minutes)
        self._sender: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self.outbox.recover(self.settings.grace)
        await self.transport.start(self.engine.on_event)
        self.alerting.connected()  # a QR code scanned while starting: the login resolves it
        self.engine.link.started(self.clock.now())
        for run in self.runs:
            await self.engine.add_cohort(run)
        self._sender = asyncio.create_task(self.outbox.run(), name="outbox")
        self.outbox.wake()
        await self.scheduler.start(self.runs)

    def kill(self) -> None:
        """Stop the way a killed process does: nothing drained, nothing marked, the
        transport left as it is. For crash tests and harnesses."""
        self.scheduler.stop()
        self.engine.rollcalls.cancel()
        self.engine.surveys.cancel()
        self.alerting.kill()
        self.engine.replies.cancel()
        if self._sender is not None:
            self._sender.cancel()
            self._sender = None

    async def drain(self) -> None:
        """Wait until every queued message is sent."""
        self.outbox.wake()
        await asyncio.sleep(0)
        await self.outbox.idle()

    async def stop(self, drain_seconds: float = 0) -> None:
        """Stop; with ``drain_seconds``, first give queued messages that long to go out
        (what is still queued after that goes out at the next start, within the grace)."""
        self.scheduler.stop()
        if drain_seconds > 0:
            self.engine.rollcalls.send_soon_ones(self.runs, timedelta(seconds=drain_seconds))
        await self.engine.stop()
        if drain_seconds > 0:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(drain_seconds):
                    await self.drain()
        if self._sender is not None:
            self._sender.cancel()
            done, _ = await asyncio.wait({self._sender}, timeout=10)
            if not done:
                log.error("the sender did not stop within 10 s; leaving it")
        await self.transport.stop()
        # Alerts under way get a moment (each is time-limited anyway).
        await self.alerting.stop(drain_seconds=max(drain_seconds, 1))

    @property
    def alerting(self) -> Incidents:
        assert self.incidents is not None  # set in __post_init__
        return self.incidents
