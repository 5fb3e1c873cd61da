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
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import Connection
from sqlalchemy import Engine as Database

from bot.clock import Clock
from storage import repo
from storage.repo import OutRow

log = logging.getLogger(__name__)

GATHER = timedelta(seconds=60)  # an alert waits this long for more of the same incident
LONGEST = timedelta(minutes=10)  # but no longer than this after the incident began
REMEMBER_UNKNOWN = timedelta(minutes=30)  # a late echo older than this is not matched

KIND_NAMES = {
    "post": "公告",
    "ack": "打卡回复",
    "welcome": "欢迎语",
    "announce": "奖励播报",
    "reply": "指令回复",
    "remind": "群提醒",
    "nudge": "私信提醒",
    "leaderboard": "排行榜",
    "reward": "奖励私信",
}


@dataclass
class _Incident:
    cohort_id: str
    failed: Counter[str] = field(default_factory=Counter)  # kind -> rows failed for good
    failed_where: Counter[str] = field(default_factory=Counter)  # 群消息 / 私信
    error: str = ""
    example: str = ""
    unknown: dict[int, str] = field(default_factory=dict)  # row id -> where and text
    alert_ids: list[int] = field(default_factory=list)
    began: datetime | None = None


def _where(row: OutRow) -> str:
    return "群里" if row.room_id is not None else f"给 {row.member_id} 的私信"


def _short(text: str, n: int = 40) -> str:
    one = " ".join(text.split())
    return one[:n] + ("…" if len(one) > n else "")


class OperatorAlerts:
    def __init__(
        self, db: Database, clock: Clock, operators: frozenset[str], wake: Callable[[], None]
    ) -> None:
        self.db = db
        self.clock = clock
        self.operators = operators
        self.wake = wake
        self._open: dict[str, _Incident] = {}  # by cohort id, while its alert is not sent

    def failed(self, rows: list[OutRow], error: str, maybe_sent: bool) -> None:
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
                        inc.unknown[r.id] = f"{_where(r)}：「{_short(r.text)}」"
                else:
                    for r in mine:
                        inc.failed[r.kind] += 1
                        inc.failed_where["群消息" if r.room_id is not None else "私信"] += 1
                    inc.error = inc.error or error
                    inc.example = inc.example or f"{_where(mine[0])}：「{_short(mine[0].text)}」"
                self._write(conn, inc, now)
        self.wake()

    def delivered(self, room_id: str | None, member_id: str | None, text: str) -> bool:
        """The network showed that a message reported as cut did arrive: mark it sent and
        take it out of the alert. True if a message matched."""
        now = self.clock.now()
        want = text.strip()
        with self.db.begin() as conn:
            for cohort_id, ids, joined in repo.unknown_batches(
                conn, room_id, member_id, now - REMEMBER_UNKNOWN
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
                            text=f"✅ 刚才提醒可能没发出的消息已确认送达，不用重发：「{_short(joined)}」",
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

    @staticmethod
    def _compose(inc: _Incident) -> str:
        lines: list[str] = []
        if inc.failed:
            total = sum(inc.failed.values())
            where = "，".join(f"{w} {n} 条" for w, n in inc.failed_where.items())
            kinds = "、".join(f"{KIND_NAMES.get(k, k)} ×{n}" for k, n in inc.failed.most_common())
            lines += [
                f"⚠️ 【{inc.cohort_id}】有 {total} 条消息发送失败（{where}：{kinds}），已停止重试。",
                f"原因：{_short(inc.error, 80)}",
                f"例如{inc.example}",
                "请检查网关和机器人账号，需要的话手动补发。",
            ]
        if inc.unknown:
            if lines:
                lines.append("")
            lines.append(
                f"❓ 【{inc.cohort_id}】有 {len(inc.unknown)} 条消息发送到一半被打断"
                "（连接中断或机器人重启），可能已经发出。"
                "请先到群里（或对方私信）看一下，没有收到再手动补发，以免重复："
            )
            shown = list(inc.unknown.values())
            lines += [f"· {w}" for w in shown[:5]]
            if len(shown) > 5:
                lines.append(f"· 还有 {len(shown) - 5} 条")
        return "\n".join(lines)
