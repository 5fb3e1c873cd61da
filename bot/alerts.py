"""Telling the operators, privately, about messages that did not go out or may be missing.

One message per operator per incident, not one per failure: failures that follow within
``GATHER`` of the first join the alert while it waits, so 40 nudges failing at once are one
line saying 40. A send whose outcome is unknown (the connection broke during it, or the
bot stopped) is never called "not sent": the operators are asked to look before resending,
and if the network later shows it did arrive, the waiting alert is withdrawn (or, if it
already went, followed by a short all-clear).
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import Connection
from sqlalchemy import Engine as Database

from bot import i18n
from bot.clock import Clock
from bot.i18n import N_
from storage import repo
from storage.repo import OutRow

log = logging.getLogger(__name__)

GATHER = timedelta(seconds=60)  # an alert waits this long for more of the same incident
LONGEST = timedelta(minutes=10)  # but no longer than this after the incident began
REMEMBER_UNKNOWN = timedelta(minutes=30)  # a late echo older than this is not matched

# For the operators, in the config's language.
KIND_NAMES = {
    "post": N_("announcement"),
    "ack": N_("check-in reply"),
    "welcome": N_("welcome"),
    "announce": N_("reward announcement"),
    "reply": N_("command reply"),
    "remind": N_("group reminder"),
    "nudge": N_("private reminder"),
    "leaderboard": N_("leaderboard post"),
    "reward": N_("reward message"),
}
IN_GROUP = N_("in the group")
PRIVATE_TO = N_("private message to {member}")
GROUP_MESSAGES = N_("group messages")
PRIVATE_MESSAGES = N_("private messages")
QUOTED = N_('{where}: "{text}"')
ARRIVED = N_('✅ The message reported as possibly not sent did arrive; no need to resend: "{text}"')
FAILED = N_("⚠️ [{cohort}] {total} messages failed to send ({where}: {kinds}); no more retries.")
WHERE_COUNT = N_("{where} {n}")
REASON = N_("Reason: {error}")
FOR_EXAMPLE = N_("For example {example}")
CHECK = N_("Check the gateway and the bot's account; resend by hand if needed.")
CUT = N_(
    "❓ [{cohort}] {n} messages were cut off while being sent (the connection dropped or the bot "
    "restarted) and may have gone out. Look in the group (or the private chat) first, and resend "
    "by hand only what did not arrive, so nothing is sent twice:"
)
MORE = N_("· {n} more")
LIST_SEPARATOR = N_(", ")


@dataclass
class _Incident:
    cohort_id: str
    failed: Counter[str] = field(default_factory=Counter)  # kind -> rows failed for good
    failed_where: Counter[str] = field(default_factory=Counter)  # GROUP_MESSAGES / PRIVATE_MESSAGES
    error: str = ""
    example: str = ""
    unknown: dict[int, str] = field(default_factory=dict)  # row id -> where and text
    alert_ids: list[int] = field(default_factory=list)
    began: datetime | None = None


def _where(row: OutRow, tr: Callable[[str], str]) -> str:
    return tr(IN_GROUP) if row.room_id is not None else tr(PRIVATE_TO).format(member=row.member_id)


def _short(text: str, n: int = 40) -> str:
    one = " ".join(text.split())
    return one[:n] + ("…" if len(one) > n else "")


class OperatorAlerts:
    def __init__(
        self,
        db: Database,
        clock: Clock,
        operators: frozenset[str],
        wake: Callable[[], None],
        language: str = "zh",
    ) -> None:
        self.language = language  # the operators'
        self.db = db
        self.clock = clock
        self.operators = operators
        self.wake = wake
        # Whose cut sends a late echo may settle (None: every cohort's); a process sharing the
        # database with others (bot/runner.py) names its own cohorts.
        self.cohorts: Collection[str] | None = None
        self._open: dict[str, _Incident] = {}  # by cohort id, while its alert is not sent
        # Told about every message that failed for good (alerts included: they fail when
        # WeChat does): the alerts outside WeChat count them (bot/incidents.py).
        self.on_failed: Callable[[list[OutRow], str], None] | None = None

    def failed(self, rows: list[OutRow], error: str, maybe_sent: bool) -> None:
        if self.on_failed is not None and not maybe_sent:
            self.on_failed(rows, error)
        rows = [r for r in rows if r.kind != "alert"]  # an alert that fails is only logged: no loops
        if not rows or not self.operators:
            return
        by_cohort: dict[str, list[OutRow]] = {}
        for r in rows:
            by_cohort.setdefault(r.cohort_id, []).append(r)
        now = self.clock.now()
        with self.db.begin() as conn:
            for cohort_id, mine in by_cohort.items():
                inc = self._open.get(cohort_id)
                if inc is not None and repo.still_pending(conn, inc.alert_ids) != len(inc.alert_ids):
                    inc = None  # its alert has gone out: this is a new incident
                if inc is None:
                    inc = _Incident(cohort_id)
                    self._open[cohort_id] = inc
                if maybe_sent:
                    for r in mine:
                        inc.unknown[r.id] = self._tr(QUOTED).format(
                            where=_where(r, self._tr), text=_short(r.text)
                        )
                else:
                    for r in mine:
                        inc.failed[r.kind] += 1
                        inc.failed_where[GROUP_MESSAGES if r.room_id is not None else PRIVATE_MESSAGES] += 1
                    inc.error = inc.error or error
                    inc.example = inc.example or self._tr(QUOTED).format(
                        where=_where(mine[0], self._tr), text=_short(mine[0].text)
                    )
                self._write(conn, inc, now)
        self.wake()

    def delivered(self, room_id: str | None, member_id: str | None, text: str) -> bool:
        """The network showed that a message reported as cut did arrive: mark it sent and
        take it out of the alert. True if a message matched."""
        now = self.clock.now()
        want = text.strip()
        with self.db.begin() as conn:
            for cohort_id, ids, joined in repo.unknown_batches(
                conn, room_id, member_id, now - REMEMBER_UNKNOWN, self.cohorts
            ):
                if joined.strip() != want and not (want and want.endswith(joined.strip())):
                    continue
                repo.mark(conn, ids, "sent", at=now)
                log.info("a message reported as possibly missing did arrive: %.40s", joined)
                inc = next((i for i in self._open.values() if ids[0] in i.unknown), None)
                if inc is not None and repo.still_pending(conn, inc.alert_ids) == len(inc.alert_ids):
                    for i in ids:
                        inc.unknown.pop(i, None)
                    if not inc.unknown and not inc.failed:
                        repo.cancel_pending(conn, inc.alert_ids)
                        del self._open[inc.cohort_id]
                    else:
                        self._write(conn, inc, now)
                else:
                    # Its alert already went out: say it is settled, so nobody resends it.
                    for op in sorted(self.operators):
                        repo.enqueue(
                            conn,
                            cohort_id,
                            member_id=op,
                            kind="alert",
                            now=now,
                            text=self._tr(ARRIVED).format(text=_short(joined)),
                        )
                self.wake()
                return True
        return False

    def _write(self, conn: Connection, inc: _Incident, now: datetime) -> None:
        """Queue the incident's alert, or rewrite it while it waits. Each new failure holds it
        another GATHER (a wave of 40 nudges failing one by one over two minutes is one
        alert), up to LONGEST after the first."""
        text = self._compose(inc)
        if inc.alert_ids and inc.began is not None:
            hold = min(now + GATHER, inc.began + LONGEST)
            if repo.update_pending_text(conn, inc.alert_ids, text, hold) == len(inc.alert_ids):
                return
        inc.began = now
        inc.alert_ids = [
            repo.enqueue(
                conn, inc.cohort_id, member_id=op, kind="alert", now=now, text=text, not_before=now + GATHER
            )
            for op in sorted(self.operators)
        ]

    def _tr(self, message: str) -> str:
        return i18n.gettext_in(self.language, message)

    def _compose(self, inc: _Incident) -> str:
        tr = self._tr
        lines: list[str] = []
        if inc.failed:
            total = sum(inc.failed.values())
            where = tr(LIST_SEPARATOR).join(
                tr(WHERE_COUNT).format(where=tr(w), n=n) for w, n in inc.failed_where.items()
            )
            kinds = tr(LIST_SEPARATOR).join(
                f"{tr(KIND_NAMES[k]) if k in KIND_NAMES else k} ×{n}" for k, n in inc.failed.most_common()
            )
            lines += [
                tr(FAILED).format(cohort=inc.cohort_id, total=total, where=where, kinds=kinds),
                tr(REASON).format(error=_short(inc.error, 80)),
                tr(FOR_EXAMPLE).format(example=inc.example),
                tr(CHECK),
            ]
        if inc.unknown:
            if lines:
                lines.append("")
            lines.append(tr(CUT).format(cohort=inc.cohort_id, n=len(inc.unknown)))
            shown = list(inc.unknown.values())
            lines += [f"· {w}" for w in shown[:5]]
            if len(shown) > 5:
                lines.append(tr(MORE).format(n=len(shown) - 5))
        return "\n".join(lines)
