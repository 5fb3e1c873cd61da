"""Incidents the operators hear about outside WeChat (bot/notify.py sends them): the gateway
unreachable for N minutes, the account logged out or waiting for a QR scan, sends that keep
failing, a live edit that is not valid, the bot stopped unexpectedly.

One alert when an incident opens and one when it is resolved, never a storm: a problem must
last (the gateway ``gateway_down`` minutes, ``failing_sends`` failures) before it opens; once
it is over, the resolved alert waits a while (``settle``), and if the problem comes back
meanwhile the incident simply goes on, silently, with a settle twice as long. An incident
that opens again within an hour of the last one of its kind starts with the longer settle,
so a gateway that flaps all afternoon is a handful of alerts, not dozens.

Whether the previous run stopped cleanly is kept in a small file next to the pid file
(:class:`RunMarker`): a run killed outright is reported at the next start.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal
from urllib.parse import quote
from zoneinfo import ZoneInfo

from sqlalchemy import Engine as Database

from bot import i18n
from bot.clock import Clock
from bot.i18n import N_
from bot.notify import Alert, Channel, Delivery, Notifier
from bot.transports.base import Disconnected, Event, LoggedOut, LoginNeeded, Reconnected
from storage import repo
from storage.repo import OutRow

log = logging.getLogger(__name__)

Kind = Literal["gateway_down", "logged_out", "sends_failing", "invalid_edit", "stopped"]
# How long a problem must have been over before it is called resolved (doubled while it flaps).
SETTLE: dict[str, timedelta] = {
    "gateway_down": timedelta(minutes=2),
    "logged_out": timedelta(minutes=1),
    "sends_failing": timedelta(minutes=5),
    "invalid_edit": timedelta(minutes=1),
}
LONGEST_SETTLE = timedelta(hours=1)
REPEAT_WITHIN = timedelta(hours=1)  # an incident this soon after the last of its kind is a flap
CHECK_SENDS = 30.0  # seconds between looks at whether sends go out again
QR_PAGE = "https://wechaty.js.org/qrcode/"  # shows a QR code's content as a picture to scan

# For the operators, in the config's language.
GATEWAY_DOWN = N_(
    "⚠️ {label} The WeChat gateway {endpoint} has not answered for {minutes} minutes ({reason}). "
    "Nothing reaches the groups meanwhile; messages wait in the queue. Check that the gateway runs."
)
GATEWAY_BACK = N_(
    "✅ {label} The WeChat gateway answers again (unreachable from {since}, {minutes} minutes). "
    "Queued messages are going out."
)
LOGGED_OUT = N_(
    "⚠️ {label} The bot's WeChat account is logged out ({reason}). Nothing can be sent to the "
    "groups until it logs in again: scan the QR code the gateway shows with the bot's WeChat."
)
NEEDS_SCAN = N_(
    "⚠️ {label} The bot's WeChat account must log in again: scan this QR code with the bot's "
    "WeChat: {url} (the code changes every few minutes; the gateway's log shows the current "
    "one). Nothing reaches the groups until then."
)
LOGGED_IN = N_(
    "✅ {label} The bot's WeChat account is logged in again (after {minutes} minutes). Queued "
    "messages are going out."
)
SENDS_FAILING = N_(
    "⚠️ {label} {n} messages failed to send since {since} ({error}). Check the gateway and the "
    "bot's account; the operators' private alerts in WeChat list them."
)
SENDS_BACK = N_("✅ {label} Messages are going out again.")
EDIT_INVALID = N_(
    "⚠️ {label} An edit was not applied; the bot runs on with the last good version. Fix the file "
    "and save it again:\n{problems}"
)
EDIT_FIXED = N_("✅ {label} The edit is valid now and has been applied.")
STOPPED = N_(
    "🛑 {label} The bot stopped unexpectedly: {error}. Nothing is sent until it runs again; see "
    "its log, then start it again."
)
NOT_STARTED = N_(
    "🛑 {label} The bot could not start: {error}. Nothing is sent until it runs; fix this and start it again."
)
RUNNING_AGAIN = N_("✅ {label} The bot is running again (it had stopped at {at}).")
UNCLEAN = N_(
    "⚠️ {label} The bot did not stop cleanly last time (last sign of life {at}: killed, out of "
    "memory, or the machine restarted?). It is running again since {now}; items due meanwhile "
    "went out late within the grace window or were skipped (see the log)."
)


@dataclass(frozen=True)
class AlertSettings:
    """What `alerts:` in the config says, ready to use (bot/config.py builds it)."""

    channels: tuple[Channel, ...] = ()
    delivery: Delivery = field(default_factory=Delivery)
    gateway_down: timedelta = timedelta(minutes=5)
    # A logout waits this long before it is told: the QR code the gateway shows next goes in
    # the alert, and a puppet that logs out and straight back in (some do) is no incident.
    logged_out: timedelta = timedelta(seconds=30)
    failing_sends: int = 3
    language: str = "zh"
    label: str = "[cohortbot]"  # names the bot in every alert (its cohorts)
    cohorts: str = ""  # the webhook's "cohort": the ids of the bot's cohorts, comma-separated
    timezone: str = "Asia/Shanghai"  # times in the texts
    settle: dict[str, timedelta] = field(default_factory=lambda: dict(SETTLE))


def qr_url(qrcode: str) -> str:
    """A page that shows the gateway's QR code as a picture to scan ("" without a code)."""
    return QR_PAGE + quote(qrcode, safe="") if qrcode else ""


def label_for(cohort_ids: list[str]) -> str:
    shown = ", ".join(cohort_ids[:3]) + (f" +{len(cohort_ids) - 3}" if len(cohort_ids) > 3 else "")
    return f"[cohortbot {shown}]" if shown else "[cohortbot]"


@dataclass
class _Incident:
    kind: str
    state: Literal["idle", "pending", "open", "resolving"] = "idle"
    timer: asyncio.TimerHandle | None = None
    began: datetime | None = None
    detail: dict[str, str] = field(default_factory=dict)
    settle: timedelta = timedelta(0)
    resolved_at: datetime | None = None
    over_at: datetime | None = None  # when the problem last went away
    name: str = ""  # the incident's id, shared by its open and resolved alerts

    def cancel(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None


@dataclass(frozen=True)
class Showing:
    """An incident the operators were alerted to, not resolved yet (the console shows it)."""

    kind: str
    began: datetime
    detail: dict[str, str]
    resolving: bool  # the problem is over; "resolved" is told once it stays over


class Incidents:
    """Opens and resolves incidents from what the bot sees, and sends one alert for each."""

    def __init__(self, db: Database, clock: Clock, settings: AlertSettings | None = None) -> None:
        self.db = db
        self.clock = clock
        self.settings = settings or AlertSettings()
        self.notifier = Notifier(self.settings.channels, self.settings.delivery)
        self._incidents: dict[str, _Incident] = {}
        self._failed = 0  # messages failed for good since sends last went out
        self._failed_chats: set[str] = set()
        self._failed_since: datetime | None = None
        self._last_failure: datetime | None = None
        self._checker: asyncio.Task[None] | None = None
        self.sent: list[Alert] = []  # every alert composed (tests, and the log's record)

    def configure(self, settings: AlertSettings) -> None:
        """A live edit of `alerts:`: new channels and limits from now on."""
        self.settings = settings
        self.notifier.channels = list(settings.channels)
        self.notifier.delivery = settings.delivery

    # --- what the bot sees ----------------------------------------------------------

    def on_event(self, event: Event) -> None:
        """The transport's news about the connection and the account."""
        if isinstance(event, Disconnected):
            self.problem(
                "gateway_down", self.settings.gateway_down, endpoint=event.endpoint, reason=event.reason
            )
        elif isinstance(event, LoggedOut):
            self.cleared("gateway_down")  # the gateway answers: it told us
            self.problem("logged_out", self.settings.logged_out, reason=event.reason)
        elif isinstance(event, LoginNeeded):
            self.cleared("gateway_down")
            self.problem(
                "logged_out", self.settings.logged_out, url=qr_url(event.qrcode), reason=event.status
            )
        elif isinstance(event, Reconnected):
            self.connected()

    def connected(self) -> None:
        """The transport has started: connected, the account logged in."""
        self.cleared("gateway_down")
        self.cleared("logged_out")

    def sends_failed(self, rows: list[OutRow], error: str) -> None:
        """Messages that failed for good (bot/alerts.py hears of them from the outbox)."""
        if not rows:
            return
        now = self.clock.now()
        self._failed += len(rows)
        self._failed_chats.update(r.chat for r in rows)
        self._failed_since = self._failed_since or now
        self._last_failure = now
        if self._failed >= self.settings.failing_sends:
            self.problem(
                "sends_failing", n=str(self._failed), since=self._local(self._failed_since), error=error[:120]
            )
        if self._checker is None or self._checker.done():
            self._checker = asyncio.create_task(self._watch_sends(), name="alerts-sends")

    async def _watch_sends(self) -> None:
        """Until a message goes out again (to a chat that failed, or to any group)."""
        while self._last_failure is not None:
            await asyncio.sleep(CHECK_SENDS)
            since = self._last_failure
            try:
                with self.db.connect() as conn:
                    chats = {chat for chat, _ in repo.recent_sends(conn, since)}
            except Exception as exc:  # the database is the outbox's problem; look again later
                log.warning("alerts: could not read the recent sends (%s)", exc)
                continue
            if chats & self._failed_chats or any(c.startswith("room:") for c in chats):
                self._failed, self._failed_chats = 0, set()
                self._failed_since = self._last_failure = None
                self.cleared("sends_failing")

    def edit_invalid(self, problems: list[str]) -> None:
        self.problem("invalid_edit", problems="\n".join(f"· {p}" for p in problems[:5]))

    def edit_applied(self) -> None:
        self.cleared("invalid_edit")

    def showing(self) -> list[Showing]:
        return [
            Showing(inc.kind, inc.began or self.clock.now(), dict(inc.detail), inc.state == "resolving")
            for inc in self._incidents.values()
            if inc.state in ("open", "resolving") and inc.kind != "stopped"
        ]

    # --- the bot's own life ----------------------------------------------------------

    async def stopped(self, error: str, *, starting: bool, told_before: bool) -> datetime | None:
        """The bot is about to exit because of ``error`` (``starting``: it never got going).
        Sent at once and waited for (bounded). Not again while a stop told before is not
        resolved (a supervisor restarting a bot that cannot start must not make a storm).
        Returns when the incident began if a channel took the alert, else None."""
        if told_before:
            log.info("alerts: the bot stopped again (%s); the operators were told already", error)
            return None
        if not self.notifier.channels:
            return None
        now = self.clock.now()
        inc = self._incident("stopped")
        inc.name = f"stopped@{now.isoformat()}"
        alert = self._send(inc, "open", NOT_STARTED if starting else STOPPED, error=error[:300])
        d = self.settings.delivery
        await self.notifier.drain(d.timeout * d.attempts + d.pause * 3)
        return now if any(a is alert for _, a in self.notifier.delivered) else None

    def restarted(self, previous: PreviousRun) -> None:
        """The bot has started: say so if the last run ended badly."""
        inc = self._incident("stopped")
        began = previous.stopped_at or previous.last_seen
        inc.name = f"stopped@{began.isoformat() if began else ''}"
        if previous.stopped_at is not None:
            self._send(inc, "resolved", RUNNING_AGAIN, at=self._local(previous.stopped_at))
        elif previous.unclean:
            seen = self._local(previous.last_seen) if previous.last_seen else "?"
            self._send(inc, "resolved", UNCLEAN, at=seen, now=self._local(self.clock.now()))

    async def stop(self, drain_seconds: float = 5) -> None:
        self.kill()
        await self.notifier.drain(drain_seconds)

    def kill(self) -> None:
        for inc in self._incidents.values():
            inc.cancel()
        if self._checker is not None:
            self._checker.cancel()

    # --- the state of each incident ------------------------------------------------------

    def _incident(self, kind: str) -> _Incident:
        if kind not in self._incidents:
            self._incidents[kind] = _Incident(kind, settle=self._base_settle(kind))
        return self._incidents[kind]

    def _base_settle(self, kind: str) -> timedelta:
        return self.settings.settle.get(kind, SETTLE.get(kind, timedelta(minutes=1)))

    def problem(self, kind: str, after: timedelta = timedelta(0), **detail: str) -> None:
        """The problem of ``kind`` is there: open its incident (after ``after``, if it lasts)."""
        inc = self._incident(kind)
        if inc.state == "idle":
            inc.began = self.clock.now()
            inc.detail = dict(detail)
            if after > timedelta(0):
                inc.state = "pending"
                inc.timer = asyncio.get_running_loop().call_later(after.total_seconds(), self._open, inc)
            else:
                self._open(inc)
        elif inc.state == "pending":
            inc.detail.update({k: v for k, v in detail.items() if v})  # the latest QR code
        elif inc.state == "resolving":
            # Back before it was called resolved: the same incident goes on, quietly.
            inc.cancel()
            inc.state = "open"
            inc.settle = min(inc.settle * 2, LONGEST_SETTLE)
            log.info("alerts: %s is back; the incident goes on (resolved after %s quiet)", kind, inc.settle)

    def cleared(self, kind: str) -> None:
        """The problem of ``kind`` is over (for now)."""
        inc = self._incidents.get(kind)
        if inc is None:
            return
        if inc.state == "pending":
            inc.cancel()
            inc.state = "idle"  # over before it lasted long enough: nobody is told
        elif inc.state == "open":
            inc.state = "resolving"
            inc.over_at = self.clock.now()
            inc.timer = asyncio.get_running_loop().call_later(inc.settle.total_seconds(), self._resolve, inc)

    def _open(self, inc: _Incident) -> None:
        now = self.clock.now()
        inc.timer = None
        inc.state = "open"
        if inc.resolved_at is not None and now - inc.resolved_at < REPEAT_WITHIN:
            inc.settle = min(inc.settle * 2, LONGEST_SETTLE)  # it keeps coming back
        else:
            inc.settle = self._base_settle(inc.kind)
        began = inc.began or now
        inc.name = f"{inc.kind}@{began.isoformat()}"
        d = inc.detail
        if inc.kind == "gateway_down":
            self._send(inc, "open", GATEWAY_DOWN, minutes=_minutes(now - began), **d)
        elif inc.kind == "logged_out":
            if d.get("url"):
                self._send(inc, "open", NEEDS_SCAN, url=d["url"])
            else:
                self._send(inc, "open", LOGGED_OUT, reason=d.get("reason", ""))
        elif inc.kind == "sends_failing":
            self._send(inc, "open", SENDS_FAILING, **d)
        elif inc.kind == "invalid_edit":
            self._send(inc, "open", EDIT_INVALID, **d)

    def _resolve(self, inc: _Incident) -> None:
        now = self.clock.now()
        inc.timer = None
        inc.state = "idle"
        inc.resolved_at = now
        began = inc.began or now
        lasted = _minutes((inc.over_at or now) - began)
        if inc.kind == "gateway_down":
            self._send(inc, "resolved", GATEWAY_BACK, since=self._local(began), minutes=lasted)
        elif inc.kind == "logged_out":
            self._send(inc, "resolved", LOGGED_IN, minutes=lasted)
        elif inc.kind == "sends_failing":
            self._send(inc, "resolved", SENDS_BACK)
        elif inc.kind == "invalid_edit":
            self._send(inc, "resolved", EDIT_FIXED)

    def _send(
        self, inc: _Incident, state: Literal["open", "resolved"], template: str, **values: Any
    ) -> Alert:
        text = i18n.gettext_in(self.settings.language, template).format(label=self.settings.label, **values)
        alert = Alert(inc.kind, state, text, self.clock.now(), self._cohorts(), inc.name)
        self.sent.append(alert)
        # The QR code lets whoever scans it into the account: the log does not keep it.
        shown = text.replace(values["url"], "<QR code>") if values.get("url") else text
        (log.warning if state == "open" else log.info)("alert: %s", shown)
        self.notifier.send(alert)
        return alert

    def _cohorts(self) -> str | None:
        return self.settings.cohorts or None

    def _local(self, at: datetime) -> str:
        return f"{at.astimezone(ZoneInfo(self.settings.timezone)):%m-%d %H:%M}"


def _minutes(span: timedelta) -> int:
    return max(1, round(span.total_seconds() / 60))


# --- the previous run --------------------------------------------------------------------


@dataclass(frozen=True)
class PreviousRun:
    unclean: bool = False  # it was running and never said it stopped: killed
    last_seen: datetime | None = None
    stopped_at: datetime | None = None  # it stopped on an error and the operators were told
    reason: str = ""


class RunMarker:
    """A small JSON file, written at start, refreshed every minute, removed at a clean stop:
    found still "running" at the next start, the last run was killed (nothing else holds the
    database then: only one bot may run on it)."""

    def __init__(self, path: Path, clock: Clock) -> None:
        self.path = path
        self.clock = clock
        self._data: dict[str, Any] = {}
        self._warned = False

    def begin(self) -> PreviousRun:
        try:
            old = json.loads(self.path.read_text(encoding="utf-8"))
            if not isinstance(old, dict):
                old = {}
        except (OSError, ValueError):
            old = {}
        stopped = old.get("stopped") if isinstance(old.get("stopped"), dict) else None
        previous = PreviousRun(
            unclean=bool(old.get("running")),
            last_seen=_when(old.get("seen")),
            stopped_at=_when(stopped.get("at")) if stopped else None,
            reason=str(stopped.get("reason", "")) if stopped else "",
        )
        self._data = {"running": True, "pid": os.getpid(), "seen": self._now()}
        if stopped:
            self._data["stopped"] = stopped  # told, not yet resolved
        self._write()
        if previous.unclean:
            log.warning(
                "the last run did not stop cleanly (last sign of life %s)",
                previous.last_seen.isoformat() if previous.last_seen else "unknown",
            )
        return previous

    def resolved(self) -> None:
        """The operators have heard that the bot runs again."""
        if self._data.pop("stopped", None) is not None:
            self._write()

    def stopped(self, reason: str, told_at: datetime | None) -> None:
        """Exiting on an error; ``told_at``: when the operators were told (then no second
        alert at the next failed start, and "running again" at the next good one)."""
        self._data["running"] = False
        if told_at is not None and "stopped" not in self._data:
            self._data["stopped"] = {"at": told_at.astimezone(UTC).isoformat(), "reason": reason[:300]}
        self._write()

    def ended(self) -> None:
        """A clean stop."""
        if "stopped" in self._data:
            self._data["running"] = False
            self._write()
            return
        with contextlib.suppress(OSError):
            self.path.unlink()

    async def beat(self, every: float = 60) -> None:
        while True:
            await asyncio.sleep(every)
            self._data["seen"] = self._now()
            self._write()

    def _now(self) -> str:
        return self.clock.now().astimezone(UTC).isoformat()

    def _write(self) -> None:
        try:
            tmp = self.path.with_name(self.path.name + ".tmp")
            tmp.write_text(json.dumps(self._data), encoding="utf-8")
            tmp.replace(self.path)
        except OSError as exc:
            if not self._warned:
                self._warned = True
                log.warning("could not write %s (%s); an unclean stop will not be reported", self.path, exc)


def _when(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        at = datetime.fromisoformat(value)
    except ValueError:
        return None
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)
