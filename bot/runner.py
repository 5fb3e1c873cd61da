"""`cohortbot run`: the bot on the real clock, with the transport the config names."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys

from rich.console import Console
from sqlalchemy import Engine as Database

from bot.app import Bot
from bot.clock import SystemClock
from bot.cohort import CohortRun
from bot.config import Loaded
from bot.plan import calendar
from storage.db import AlreadyRunning, open_db, single_instance

log = logging.getLogger(__name__)


def build_runs(loaded: Loaded) -> list[CohortRun]:
    tz = loaded.config.timezone
    return [
        CohortRun.create(c.id, loaded.playbooks[c.id], calendar(loaded.playbooks[c.id], c.start, tz), c.room)
        for c in loaded.config.cohorts
    ]


def run_forever(loaded: Loaded, console: Console) -> int:
    kind = loaded.config.transport.kind
    if kind == "wechaty":
        Console(stderr=True).print(
            "[bold red]error[/] transport.kind: wechaty is not available yet in this version; "
            "use `kind: simulated` to try the bot in a terminal group"
        )
        return 2
    db = open_db(loaded.database_url)
    try:
        with single_instance(db):
            return asyncio.run(_run_terminal(loaded, db, console))
    except AlreadyRunning as exc:
        Console(stderr=True).print(f"[bold red]error[/] {exc}; stop it first (one bot per database)")
        return 2


async def _run_terminal(loaded: Loaded, db: Database, console: Console) -> int:
    from bot.terminal import TerminalGroup

    clock = SystemClock()
    runs = build_runs(loaded)
    group = TerminalGroup(clock, console, {c.room: c.room for c in loaded.config.cohorts})
    bot = Bot(db, group, clock, loaded.settings(), runs, reconcile_minutes=loaded.config.reconcile_minutes)
    await bot.start()
    log.info("running %d cohort(s) on a terminal group; database %s", len(runs), loaded.database_url)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    with contextlib.suppress(NotImplementedError):
        loop.add_signal_handler(signal.SIGTERM, stop.set)
    reader = asyncio.create_task(group.read_stdin(sys.stdin, stop))
    try:
        await stop.wait()
    finally:
        reader.cancel()
        await bot.stop(drain_seconds=10)
    return 0
