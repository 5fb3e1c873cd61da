"""Who may see the console: argon2 password hashes, a limit on login attempts, CSRF tokens.

Sessions themselves are Starlette's signed cookies (HttpOnly, SameSite=Lax), keyed with the
secret kept in the database (repo.web_secret)."""

from __future__ import annotations

import hmac
import secrets
from collections import deque
from datetime import datetime, timedelta
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from bot.clock import Clock

_hasher = PasswordHasher()
# Verified against when the name is unknown, so a wrong name takes as long as a wrong password.
_DUMMY = _hasher.hash("not a password")

ATTEMPTS = 5  # login attempts a minute, per address and per name
WINDOW = timedelta(minutes=1)
MIN_PASSWORD = 8


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify(password_hash: str | None, password: str) -> bool:
    try:
        return _hasher.verify(password_hash or _DUMMY, password) and password_hash is not None
    except (VerificationError, InvalidHashError):
        return False


def new_token() -> str:
    return secrets.token_urlsafe(32)


def same_token(expected: str | None, given: str | None) -> bool:
    return bool(expected) and bool(given) and hmac.compare_digest(str(expected), str(given))


class Attempts:
    """Login attempts per key (an address, a name) in the last minute: at most ATTEMPTS."""

    def __init__(self, clock: Clock, limit: int = ATTEMPTS, window: timedelta = WINDOW) -> None:
        self.clock = clock
        self.limit = limit
        self.window = window
        self._seen: dict[str, deque[datetime]] = {}

    def allow(self, *keys: str) -> bool:
        """Count one attempt for each key; False (and not counted) if any key is over the limit."""
        now = self.clock.now()
        queues = [self._seen.setdefault(k, deque()) for k in keys]
        for q in queues:
            while q and now - q[0] >= self.window:
                q.popleft()
        if any(len(q) >= self.limit for q in queues):
            return False
        for q in queues:
            q.append(now)
        return True


class BadLogin(ValueError):
    """A name, password or cohort list `operator add` refuses, said for the operator."""


def add_operator(
    db: Any, name: str, password: str, cohorts: list[str], known: list[str] | None, now: datetime
) -> bool:
    """Store an operator's login (argon2 hash); True if she is new. ``known``: the config's
    cohort ids, to refuse a misspelt one (None: not checked, e.g. with --db)."""
    from bot.i18n import _
    from storage import repo

    if not name or len(name) > 64 or any(c.isspace() for c in name):
        raise BadLogin(_("{name!r}: write a name of 1 to 64 characters without spaces").format(name=name))
    if len(password) < MIN_PASSWORD:
        raise BadLogin(_("the password is too short: at least {n} characters").format(n=MIN_PASSWORD))
    unknown = [c for c in cohorts if known is not None and c not in known]
    if unknown:
        raise BadLogin(
            _("no cohort {ids} in the config; the cohorts: {known}").format(
                ids=", ".join(unknown), known=", ".join(known or [])
            )
        )
    with db.begin() as conn:
        return repo.set_web_login(conn, name, hash_password(password), cohorts, now)
