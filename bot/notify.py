"""Alerts outside WeChat: a WeCom group robot, a generic JSON webhook, e-mail (config
``alerts:``). When the bot account is logged out it can message no one in WeChat, so these
are how the operators hear about it.

Each alert goes to every channel in its own task: time-limited (``timeout`` seconds an
attempt), tried ``attempts`` times with a growing pause, and logged, so a webhook that hangs
or answers 500 never holds up the bot. A channel that keeps failing is logged once per
incident, not once per attempt.

The network calls (``urllib``, ``smtplib``, both stdlib) run in daemon threads: no new
dependency, HTTPS and SMTP with STARTTLS or SSL as Python ships them, and a hung server
holds only its own thread (bounded by the socket timeout), never the event loop or the
bot's exit (a daemon thread does not keep the process alive).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import smtplib
import ssl
import threading
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from typing import Any, Literal, Protocol, TypeVar
from urllib.parse import urlsplit

log = logging.getLogger(__name__)

State = Literal["open", "resolved"]
MAX_ANSWER = 64 * 1024  # bytes of a webhook's answer read, at most
WECOM_MAX = 2000  # bytes of a WeCom robot text (its limit is 2048)
IN_FLIGHT_MAX = 50  # deliveries under way at once; past that an alert is dropped (logged)

T = TypeVar("T")


@dataclass(frozen=True)
class Alert:
    """One message about an incident: ``state`` "open" when it begins, "resolved" when it
    is over. ``incident`` names the incident (its kind and when it began), so the open and
    resolved alerts of one incident share it."""

    event: str  # gateway_down | logged_out | sends_failing | invalid_edit | stopped
    state: State
    text: str
    at: datetime
    cohort: str | None = None
    incident: str = ""

    def payload(self) -> dict[str, Any]:
        """The generic webhook's JSON body."""
        return {
            "event": self.event,
            "state": self.state,
            "cohort": self.cohort,
            "text": self.text,
            "at": self.at.isoformat(),
        }


class DeliveryError(Exception):
    """A channel did not take the alert (an HTTP error, WeCom's errcode, the SMTP server's
    refusal). Its message never holds a secret of the channel."""


class Channel(Protocol):
    name: str  # for the log: "WeCom robot", "webhook example.com", "e-mail smtp.example.com"

    async def deliver(self, alert: Alert, timeout: float) -> None:
        """Send the alert; raise DeliveryError (or OSError, TimeoutError) if it did not go."""


def in_thread(fn: Callable[[], T], name: str) -> asyncio.Future[T]:
    """``fn()`` in a daemon thread, as a future of the running loop. Unlike
    ``asyncio.to_thread``, the process does not wait for the thread at exit, and a
    cancelled wait leaves the thread to end on its own socket timeout."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()

    def settle(ok: bool, value: Any) -> None:
        if future.done():
            return  # cancelled meanwhile: nobody waits for it
        if ok:
            future.set_result(value)
        else:
            future.set_exception(value)

    def run() -> None:
        try:
            result: Any = fn()
            ok = True
        except BaseException as exc:
            result, ok = exc, False
        with contextlib.suppress(RuntimeError):  # the loop has closed: nobody waits for it
            loop.call_soon_threadsafe(settle, ok, result)

    threading.Thread(target=run, name=name, daemon=True).start()
    return future


def _hide(text: str, secrets: Sequence[str]) -> str:
    for secret in secrets:
        if secret and len(secret) >= 3:
            text = text.replace(secret, "***")
    return text


def url_secrets(url: str) -> list[str]:
    """What in a webhook URL must not be printed: its password and its query values (the
    WeCom robot's ``key=`` is the robot's only secret)."""
    parts = urlsplit(url)
    found = [parts.password or ""]
    found += [pair.partition("=")[2] for pair in parts.query.split("&")]
    return [s for s in found if len(s) >= 3]


def _post_json(url: str, body: dict[str, Any], headers: dict[str, str], timeout: float) -> tuple[int, bytes]:
    data = json.dumps(body, ensure_ascii=False).encode()
    request = urllib.request.Request(
        url,
        data=data,
        method="POST",
        headers={"Content-Type": "application/json; charset=utf-8", "User-Agent": "cohortbot", **headers},
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return int(response.status), response.read(MAX_ANSWER)
    except urllib.error.HTTPError as exc:
        return exc.code, b""


async def _post(url: str, body: dict[str, Any], headers: dict[str, str], timeout: float) -> tuple[int, bytes]:
    """POST in a daemon thread; an error's text never holds the URL's key or password. The
    socket's own timeout is a little longer than the caller's, which is the one that counts."""
    try:
        return await in_thread(lambda: _post_json(url, body, headers, timeout + 1), "alert-post")
    except (OSError, ValueError) as exc:
        raise DeliveryError(_hide(str(exc) or type(exc).__name__, url_secrets(url))) from None


def _host(url: str) -> str:
    """The server of a URL, as the log names a channel (no password, no key)."""
    parts = urlsplit(url)
    return f"{parts.hostname or '?'}{f':{parts.port}' if parts.port else ''}"


@dataclass
class WeComRobot:
    """A WeCom (企业微信) group robot: POST {"msgtype": "text", "text": {"content": ...}} to
    its webhook; it answers {"errcode": 0, "errmsg": "ok"}, any other errcode is a refusal."""

    url: str = field(repr=False)
    name: str = "WeCom robot"

    async def deliver(self, alert: Alert, timeout: float) -> None:
        content = alert.text.encode()[:WECOM_MAX].decode(errors="ignore")
        body = {"msgtype": "text", "text": {"content": content}}
        status, answer = await _post(self.url, body, {}, timeout)
        if not 200 <= status < 300:
            raise DeliveryError(f"HTTP {status}")
        try:
            reply = json.loads(answer or b"{}")
        except ValueError:
            raise DeliveryError("the answer is not JSON") from None
        code = reply.get("errcode") if isinstance(reply, dict) else None
        if code != 0:
            message = str(reply.get("errmsg", "")) if isinstance(reply, dict) else ""
            raise DeliveryError(_hide(f"errcode {code}: {message[:200]}", url_secrets(self.url)))


@dataclass
class JsonWebhook:
    """Any HTTP endpoint: POST {"event", "state", "cohort", "text", "at"}; a 2xx answer is
    taken."""

    url: str = field(repr=False)
    headers: dict[str, str] = field(default_factory=dict, repr=False)
    name: str = ""

    def __post_init__(self) -> None:
        self.name = self.name or f"webhook {_host(self.url)}"

    async def deliver(self, alert: Alert, timeout: float) -> None:
        status, _ = await _post(self.url, alert.payload(), self.headers, timeout)
        if not 200 <= status < 300:
            raise DeliveryError(f"HTTP {status}")


Security = Literal["starttls", "ssl", "none"]


@dataclass
class Email:
    """E-mail through an SMTP server: the first line of the alert is the subject."""

    host: str
    port: int
    security: Security
    sender: str
    to: tuple[str, ...]
    user: str | None = None
    password: str | None = field(default=None, repr=False)
    name: str = ""

    def __post_init__(self) -> None:
        self.name = self.name or f"e-mail {self.host}"

    def message(self, alert: Alert) -> EmailMessage:
        msg = EmailMessage()
        first = alert.text.strip().splitlines()[0] if alert.text.strip() else alert.event
        msg["Subject"] = first[:120]
        msg["From"] = self.sender
        msg["To"] = ", ".join(self.to)
        msg["Date"] = format_datetime(alert.at)
        msg["Message-ID"] = make_msgid("cohortbot")
        msg["X-Cohortbot-Event"] = f"{alert.event} {alert.state}"
        msg.set_content(alert.text)
        return msg

    def _send(self, msg: EmailMessage, timeout: float) -> None:
        context = ssl.create_default_context()
        smtp: smtplib.SMTP
        if self.security == "ssl":
            smtp = smtplib.SMTP_SSL(self.host, self.port, timeout=timeout, context=context)
        else:
            smtp = smtplib.SMTP(self.host, self.port, timeout=timeout)
        with smtp:
            if self.security == "starttls":
                smtp.starttls(context=context)
            if self.user:
                smtp.login(self.user, self.password or "")
            smtp.send_message(msg)

    async def deliver(self, alert: Alert, timeout: float) -> None:
        msg = self.message(alert)
        try:
            await in_thread(lambda: self._send(msg, timeout + 1), "alert-email")
        except smtplib.SMTPException as exc:
            raise DeliveryError(_hide(f"{type(exc).__name__}: {exc}", [self.password or ""])[:300]) from None


@dataclass
class Delivery:
    """How hard an alert is pushed: each attempt at most ``timeout`` seconds, ``attempts``
    tries, pausing ``pause``, then twice that, between them."""

    timeout: float = 10
    attempts: int = 3
    pause: float = 5


class Notifier:
    """Sends alerts to the channels without ever making the caller wait."""

    def __init__(self, channels: Sequence[Channel] = (), delivery: Delivery | None = None) -> None:
        self.channels = list(channels)
        self.delivery = delivery or Delivery()
        self.delivered: list[tuple[str, Alert]] = []  # (channel, alert) taken, for tests and figures
        self._tasks: set[asyncio.Task[None]] = set()
        self._failing: set[tuple[str, str]] = set()  # (channel, incident) already logged as failing

    def send(self, alert: Alert) -> None:
        """Queue the alert for every channel and return at once."""
        for channel in self.channels:
            if len(self._tasks) >= IN_FLIGHT_MAX:
                log.error("alert not sent to %s: %d are still being sent", channel.name, len(self._tasks))
                continue
            task = asyncio.create_task(self._deliver(channel, alert), name=f"alert-{channel.name}")
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _deliver(self, channel: Channel, alert: Alert) -> None:
        d = self.delivery
        why = ""
        for attempt in range(1, d.attempts + 1):
            try:
                async with asyncio.timeout(d.timeout):
                    await channel.deliver(alert, d.timeout)
            except TimeoutError:
                why = f"no answer in {d.timeout:g} s"
            except (DeliveryError, OSError, ValueError) as exc:
                why = str(exc) or type(exc).__name__
            else:
                self.delivered.append((channel.name, alert))
                self._failing.discard((channel.name, alert.incident))
                log.info("alert %s %s sent to %s", alert.event, alert.state, channel.name)
                return
            log.debug("alert to %s, attempt %d of %d: %s", channel.name, attempt, d.attempts, why)
            if attempt < d.attempts:
                await asyncio.sleep(d.pause * 2 ** (attempt - 1))
        key = (channel.name, alert.incident)
        if key in self._failing:
            log.info("alert %s %s not sent to %s either (%s)", alert.event, alert.state, channel.name, why)
            return
        self._failing.add(key)
        log.error(
            "could not send the alert %s (%s) to %s after %d attempts: %s; check `alerts:` in the config",
            alert.event,
            alert.state,
            channel.name,
            d.attempts,
            why,
        )

    async def drain(self, seconds: float) -> None:
        """Give alerts under way ``seconds`` to go out (at stop), then give up on them."""
        tasks = set(self._tasks)
        if not tasks:
            return
        _, late = await asyncio.wait(tasks, timeout=seconds)
        for task in late:
            task.cancel()
        if late:
            log.warning("%d alert(s) still being sent at stop were given up", len(late))
            await asyncio.wait(late, timeout=1)
