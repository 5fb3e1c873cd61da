"""Drive the whole bot (engine, scheduler, outbox, storage) through the simulated group on
the virtual clock, step by step, and look at what it sent."""

from __future__ import annotations

import asyncio
import os
import textwrap
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from pathlib import Path

from bot import playbook as playbooks
from bot.app import Bot
from bot.clock import VirtualClock, VirtualTimeLoop
from bot.cohort import CohortRun
from bot.engine import Settings
from bot.outbox import Pacing
from bot.plan import calendar
from bot.playbook import Playbook
from bot.rollcall import QuietHours
from bot.scenario import BOT_ID, _when
from bot.transports.base import Member
from bot.transports.simulated import Sent, SimulatedGroup
from bot.yamlfile import parse_yaml
from storage.db import open_db
from storage.repo import OutRow

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "playbooks" / "python-8day.yaml"

# The example of ../shared/playbook-format.md, verbatim.
EXAMPLE = """\
name: Python 入门体验营
days: 8
timezone: Asia/Shanghai
tracks:
  lesson:
    name: 正课
    keywords: ["打卡", "完成"]
    days: [2, 3, 4, 5]
    ack: "✅ {name} 第{day}天{track}打卡成功（今日 {done}/{total}）"
  reading:
    name: 晨读
    keywords: ["晨读打卡", "晨读"]
    days: [2, 3, 4, 5]
    until: "12:00"
rewards:
  - id: reading-pack
    name: 资料大礼包
    track: reading
    count: 4
    dm: "恭喜完成 4 天晨读！{reward}：https://example.com/pack 提取码 8888"
    announce: "🎁 {name} 完成 4 天晨读，获得{reward}！"
commands:
  progress: ["进度", "我的进度"]
  leaderboard: ["排行榜"]
  today: ["今日安排", "课表"]
  help: ["帮助", "菜单"]
schedule:
  - day: 1
    at: "19:30"
    post: |
      【开营仪式】欢迎来到{playbook}！
  - day: 2
    at: "07:30"
    post: "☀️ 晨读开始啦，读完在群里发「晨读打卡」"
  - day: 2
    at: "21:30"
    remind:
      track: lesson
      text: "今天的课还没完成的同学抓紧哦 👇"
  - day: 3
    at: "09:00"
    nudge:
      track: lesson
      day: 2
      dm: "{name}，第{day}天的课还没完成，今天补上吧～"
  - day: 5
    at: "22:00"
    leaderboard:
      track: reading
      top: 10
"""


def load_playbook(text: str, path: str = "test.yaml") -> Playbook:
    return playbooks.parse(parse_yaml(textwrap.dedent(text), path))


def members(*specs: str) -> list[Member]:
    """members("u01:小明", "u02:小红") -> Member list."""
    out = []
    for s in specs:
        mid, _, name = s.partition(":")
        out.append(Member(mid, name or mid))
    return out


@dataclass
class Harness:
    bot: Bot
    group: SimulatedGroup
    clock: VirtualClock
    run: CohortRun
    sent: list[Sent] = field(default_factory=list)
    stopped: bool = False

    @classmethod
    async def start(
        cls,
        playbook: Playbook | str = EXAMPLE,
        *,
        people: list[Member] | None = None,
        operators: tuple[str, ...] = (),
        start: date = date(2026, 12, 1),
        now: str = "day 1 00:00",
        db_url: str = "sqlite://",
        pacing: Pacing | None = None,
        grace_minutes: float = 10,
        bot_name: str = "CohortBot",
        room: str = "训练营 1 班",
        group: SimulatedGroup | None = None,
        quiet_hours: QuietHours | str | None = "default",
    ) -> Harness:
        """Start the bot at ``now`` (cohort-relative) on this test's virtual loop."""
        from datetime import timedelta

        pb = load_playbook(playbook) if isinstance(playbook, str) else playbook
        cal = calendar(pb, start)
        loop = asyncio.get_running_loop()
        assert isinstance(loop, VirtualTimeLoop), "tests run on the virtual clock (see conftest)"
        loop.set_now(_when(now, cal))
        clock = VirtualClock(loop)
        if group is None:
            group = SimulatedGroup(
                clock, rooms={"room": room}, members=people or [], bot=Member(BOT_ID, bot_name)
            )
        else:
            group.clock = clock
        settings = Settings(
            operators=frozenset(operators),
            bot_name=bot_name,
            pacing=pacing or Pacing(),
            grace=timedelta(minutes=grace_minutes),
        )
        if not isinstance(quiet_hours, str):
            settings = replace(settings, quiet_hours=quiet_hours)
        run = CohortRun.create("c1", pb, cal, room)
        bot = Bot(open_db(db_url), group, clock, settings, [run], reconcile_minutes=0)
        h = cls(bot, group, clock, run)
        group.on_send = h.sent.append
        bot.outbox.on_sent = h._kinds
        await bot.start()
        return h

    def _kinds(self, rows: list[OutRow]) -> None:
        """The outbox says which rows the message it just sent carried: tests match kinds,
        not reply wording."""
        if self.sent:
            self.sent[-1] = replace(self.sent[-1], kinds=tuple(dict.fromkeys(r.kind for r in rows)))

    def when(self, at: str) -> datetime:
        return _when(at, self.run.cal)

    async def until(self, at: str) -> None:
        """Let the bot run until ``at`` ("day N HH:MM" or ISO), including everything due at
        that very instant (a job at 21:30 has run when ``until("day 2 21:30")`` returns)."""
        delay = (self.when(at) - self.clock.now()).total_seconds()
        assert delay >= 0, f"{at} is in the past"
        await asyncio.sleep(delay)
        await self._run_due()

    async def _run_due(self) -> None:
        loop = asyncio.get_running_loop()
        assert isinstance(loop, VirtualTimeLoop)
        for _ in range(10_000):  # jobs that start jobs settle in a few rounds
            if not loop.busy_now():
                return
            await asyncio.sleep(0)

    async def settle(self) -> None:
        """Let every queued message go out (pacing delays pass on the virtual clock),
        after whatever is due at this instant has run."""
        await self._run_due()
        await self.bot.drain()

    def crash(self) -> None:
        """The bot process dies here: nothing drained, nothing marked."""
        self.bot.kill()
        self.bot.db.dispose()
        self.stopped = True

    async def say(self, member_id: str, text: str) -> None:
        await self.group.say(member_id, text)

    async def dm(self, member_id: str, text: str) -> None:
        await self.group.dm(member_id, text)

    async def stop(self) -> None:
        if self.stopped:
            return
        self.stopped = True
        await self.bot.stop()
        self.bot.db.dispose()

    def kinds(self, chat: str | None = None) -> list[tuple[str, ...]]:
        """The kinds of what was sent, in order (to the room, to one member, or all)."""
        return [s.kinds for s in self.sent if chat is None or s.chat == chat]

    def room(self) -> list[Sent]:
        return [s for s in self.sent if s.chat == "room"]

    def dms(self, member_id: str | None = None) -> list[Sent]:
        return [
            s
            for s in self.sent
            if s.chat.startswith("dm:") and (member_id is None or s.chat == f"dm:{member_id}")
        ]

    def local(self, s: Sent) -> str:
        return self.run.cal.local(s.at).strftime("%d %H:%M:%S")


PG_URL = os.environ.get("COHORTBOT_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


def scratch_postgres() -> str:
    """The test PostgreSQL, emptied: every table of every schema version goes (a leftover
    table of a newer branch would otherwise look like drift). Skips the test when no server
    answers, except in CI, where a missing server is a failure."""
    import pytest
    from sqlalchemy import create_engine, text

    engine = create_engine(PG_URL)
    try:
        with engine.begin() as conn:
            conn.execute(text("DROP SCHEMA public CASCADE"))
            conn.execute(text("CREATE SCHEMA public"))
    except Exception as exc:
        if os.environ.get("CI"):
            pytest.fail(f"PostgreSQL at {PG_URL} is not reachable in CI: {exc}")
        pytest.skip(f"no PostgreSQL at {PG_URL}")
    finally:
        engine.dispose()
    return PG_URL
