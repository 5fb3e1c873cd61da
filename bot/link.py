"""The bot's link to WeChat as operators see it (the console's overview, `状态`): whether the
gateway answers, whether the account is logged in, since when, and the last event heard.
Kept from the transport's own news (bot/transports/base.py), so it is what the bot knows,
not a probe of its own."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from bot import incidents
from bot.transports.base import Disconnected, Event, LoggedOut, LoginNeeded, Reconnected

# What `state` says, worst first.
NOT_STARTED, GATEWAY_DOWN, LOGGED_OUT, ONLINE = "not-started", "gateway-down", "logged-out", "online"


@dataclass
class Link:
    state: str = NOT_STARTED
    since: datetime | None = None  # when the state last changed
    last_event: datetime | None = None  # anything from the transport, messages included
    reason: str = ""  # the transport's words for the last trouble (for the operators)
    qr_url: str = ""  # a QR code to scan while the account waits for a login

    def started(self, now: datetime) -> None:
        """The transport's start returned: connected, the account logged in."""
        self._become(ONLINE, now)

    def heard(self, event: Event, now: datetime) -> None:
        self.last_event = now
        if isinstance(event, Disconnected):
            self._become(GATEWAY_DOWN, now, event.reason)
        elif isinstance(event, LoggedOut):
            self._become(LOGGED_OUT, now, event.reason)
        elif isinstance(event, LoginNeeded):
            self._become(LOGGED_OUT, now, event.status)
            self.qr_url = incidents.qr_url(event.qrcode)
        elif isinstance(event, Reconnected):
            self._become(ONLINE, now)

    def _become(self, state: str, now: datetime, reason: str = "") -> None:
        if state != self.state:
            self.since = now
        self.state = state
        self.reason = reason
        if state != LOGGED_OUT:
            self.qr_url = ""
