"""`cohortbot run`: the bot on the real clock, with the transport the config names."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import signal
import sys
from pathlib import Path

from rich.console import Console
from rich.markup import escape
from sqlalchemy import Engine as Database
from sqlalchemy.exc import SQLAlchemyError

from bot.app import Bot
from bot.clock import SystemClock
from bot.cohort import CohortRun
from bot.config import Loaded
from bot.i18n import _
from bot.incidents import Incidents, PreviousRun, RunMarker
from bot.plan import calendar
from bot.reload import Reloader, pid_file
from bot.transports.base import Transport
from bot.transports.wechaty import GatewayError, WechatyTransport
from bot.web.serve import BindError, Served
from storage.db import AlreadyRunning, LeaseLost, Leases, claim_cohorts, explain_failure, open_db

log = logging.getLogger(__name__)

# How often the cohort leases are checked (a query on their own connection): after the
# database restarted, the bot sends nothing for this long at most before it claims its
# cohorts again, or stops if another process took one meanwhile.
LEASE_CHECK_SECONDS = 3.0


def build_runs(loaded: Loaded) -> list[CohortRun]:
    tz = loaded.config.timezone
    return [
        CohortRun.create(c.id, loaded.playbooks[c.id], calendar(loaded.playbooks[c.id], c.start, tz), c.room)
        for c in loaded.config.cohorts
    ]


def run_forever(loaded: Loaded, console: Console) -> int:
    errors = Console(stderr=True, highlight=False)

    def error(message: str) -> int:
        errors.print(_("[bold red]error[/] {text}").format(text=escape(message)), soft_wrap=True)
        return 2

    def database_error(exc: BaseException) -> int:
        # One line, with the config's `database:` line: never a traceback, never the password.
        where = f"{loaded.path}:{loaded.database_line}: database"
        return error(f"{where}: {explain_failure(loaded.database_url, exc)}")

    try:
        db = open_db(loaded.database_url)
    except Exception as exc:  # the driver's, SQLAlchemy's, Alembic's or the OS's
        log.debug("opening the database failed", exc_info=True)
        return database_error(exc)
    with contextlib.ExitStack() as held:
        try:
            # Each cohort is this process's alone: others (other WeChat accounts) may share
            # the database with their own cohorts.
            leases = held.enter_context(claim_cohorts(db, [c.id for c in loaded.config.cohorts]))
        except AlreadyRunning as exc:
            return error(str(exc))
        except (OSError, SQLAlchemyError) as exc:
            return database_error(exc)
        pid = pid_file(loaded)
        try:
            pid.write_text(f"{os.getpid()}\n")  # for `cohortbot reload`
            held.callback(_remove_pid, pid)
        except OSError as exc:
            log.warning("could not write %s (%s); `cohortbot reload` will not find this bot", pid, exc)
        try:
            return asyncio.run(_run(loaded, db, console, leases))
        except (GatewayError, LookupError, LeaseLost) as exc:
            return error(str(exc))
        except BindError as exc:
            return error(f"{loaded.path}:{loaded.web_line}: web: {exc}")
    return 2  # not reached: mypy cannot see that ExitStack does not swallow exceptions


def _remove_pid(path: Path) -> None:
    with contextlib.suppress(OSError, ValueError):
        if int(path.read_text().strip()) == os.getpid():
            path.unlink()


async def _keep_leases(leases: Leases, bot: Bot, stop: asyncio.Event) -> LeaseLost | None:
    """Check the leases every LEASE_CHECK_SECONDS while the bot runs; a lost one stops it."""
    while True:
        await asyncio.sleep(LEASE_CHECK_SECONDS)
        had = set(leases.held)
        try:
            # In a thread: a database that does not answer must not stall the gateway's pings
            # (``held`` is only cleared and filled there, each one step under the GIL).
            await asyncio.to_thread(leases.check)
        except LeaseLost as exc:
            stop.set()
            return exc
        except Exception:
            log.exception("could not check the cohort leases; trying again")
        if leases.held and leases.held != had:
            bot.outbox.wake()  # claimed again: what waited goes out


async def _run(loaded: Loaded, db: Database, console: Console, leases: Leases) -> int:
    """The bot, and the alerts outside WeChat about its own life: a crash or a failed start
    is told before exiting, a run that was killed is told at the next start."""
    clock = SystemClock()
    incidents = Incidents(db, clock, loaded.alert_settings())
    marker = RunMarker(pid_file(loaded).with_suffix(".state"), clock)
    previous = marker.begin()
    try:
        code = await _serve(loaded, db, console, clock, incidents, previous, marker, leases)
    except Exception as exc:
        starting = isinstance(exc, GatewayError | LookupError)
        error = str(exc) if starting else f"{type(exc).__name__}: {exc}"
        told = await incidents.stopped(error, starting=starting, told_before=previous.stopped_at is not None)
        marker.stopped(error, told or previous.stopped_at)
        raise
    marker.ended()
    return code


async def _serve(
    loaded: Loaded,
    db: Database,
    console: Console,
    clock: SystemClock,
    incidents: Incidents,
    previous: PreviousRun,
    marker: RunMarker,
    leases: Leases,
) -> int:
    runs = build_runs(loaded)
    cfg = loaded.config.transport
    stop = asyncio.Event()
    reader: asyncio.Task[None] | None = None
    if cfg.kind == "wechaty":
        assert cfg.endpoint is not None and cfg.token is not None  # checked when the config loaded
        transport: Transport = WechatyTransport(
            cfg.endpoint,
            cfg.token,
            clock,
            connect_timeout=cfg.connect_timeout_seconds,
            room_wait=cfg.room_wait_seconds,
            ping_every=cfg.ping_seconds,
        )
    else:
        from bot.terminal import TerminalGroup

        group = TerminalGroup(
            clock,
            console,
            {c.room: c.room for c in loaded.config.cohorts},
            tuple(loaded.config.operators),
        )
        transport = group
    bot = Bot(
        db,
        transport,
        clock,
        loaded.settings(),
        runs,
        reconcile_minutes=loaded.config.reconcile_minutes,
        incidents=incidents,
    )
    # Only the rows of the cohorts this process holds: never another process's sends.
    bot.outbox.cohorts = leases.held
    bot.engine.alerts.cohorts = leases.held
    log.info("starting %d cohort(s) over %s; database %s", len(runs), cfg.kind, loaded.safe_database_url)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    starting = asyncio.create_task(bot.start())
    stopping = asyncio.create_task(stop.wait())
    try:
        # Ctrl-C must work while it still waits for the gateway or the room.
        await asyncio.wait({starting, stopping}, return_when=asyncio.FIRST_COMPLETED)
        if not starting.done():
            starting.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await starting
            await bot.stop()
            log.info("stopped before it had started")
            return 0
        starting.result()  # re-raises a failed start
    except BaseException:
        await bot.stop()
        raise
    finally:
        stopping.cancel()
    for run in runs:
        log.info("%s: room %r, day 1 = %s, %d items", run.id, run.room, run.cal.start, len(run.plan))
    incidents.restarted(previous)  # if the last run ended badly
    marker.resolved()
    beat = asyncio.create_task(marker.beat(), name="marker")
    if cfg.kind != "wechaty":
        reader = asyncio.create_task(group.read_stdin(sys.stdin, stop))
    # Live edits: a saved config or playbook, SIGHUP, `cohortbot reload`.
    reloader = Reloader(bot, loaded)

    def reload_asked() -> bool:  # an operator's `重载`
        reloader.request()
        return True

    bot.engine.router.desk.reload = reload_asked
    with contextlib.suppress(NotImplementedError, AttributeError):
        loop.add_signal_handler(signal.SIGHUP, reloader.request)
    watcher = asyncio.create_task(reloader.watch(), name="watch")
    keeper = asyncio.create_task(_keep_leases(leases, bot, stop), name="leases")
    log.info("watching %s for edits", ", ".join(sorted(str(f) for f in reloader.files())))
    lost: LeaseLost | None = None
    console_: Served | None = None
    try:
        console_ = await _console(loaded, db, bot, clock, reloader)
        await stop.wait()
        lost = keeper.result() if keeper.done() else None
        if lost is None:
            log.info("stopping: letting queued messages go out (10 s at most)")
    finally:
        if console_ is not None:
            await console_.stop()  # before the bot: no action reaches a stopping bot
        keeper.cancel()
        watcher.cancel()
        beat.cancel()
        with contextlib.suppress(NotImplementedError, AttributeError):
            loop.remove_signal_handler(signal.SIGHUP)
        if reader is not None:
            reader.cancel()
        # Leases lost: nothing of those cohorts is this process's to send any more.
        await bot.stop(drain_seconds=0 if lost is not None else 10)
    log.info("stopped")
    if lost is not None:
        raise lost
    return 0


async def _console(
    loaded: Loaded, db: Database, bot: Bot, clock: SystemClock, reloader: Reloader
) -> Served | None:
    """The web console (config `web:`), once the bot runs; None without `web:`."""
    web = loaded.config.web
    if web is None:
        return None
    from bot.web.app import WebSettings, create_app, hooks_of

    language = web.language or loaded.config.language or "zh"
    hooks = dataclasses.replace(
        hooks_of(bot.engine, bot.alerting), reload=reloader.reload
    )  # the editor's saves
    app = create_app(db, hooks, WebSettings(language=language), clock)
    served = Served(app, web.bind)
    await served.start()
    log.info("web console on http://%s/ (operators: `cohortbot operator add NAME`)", web.bind)
    return served
