"""Benchmark: messages through the mock Wechaty gateway (tests/gateway), cohortbot against a
bare python-wechaty bot on the same gateway in the same run.

Members flood the group with check-ins. For each bot: messages handled per second, from the
first message to the last one handled. cohortbot "handles" a message when its check-in is
counted and stored, waiting for the roll call that names it (roll calls go out later, on
their own clock: one group message for many check-ins, no reply to each); the bare bot
handles one when its reply reaches the gateway. The ratio says what cohortbot's own logic
costs over the transport floor (target: at least 0.8). Also printed: the group messages
cohortbot sent for the flood (its roll calls), against the bare bot's one reply each.

Run: .venv/bin/python bench/gateway.py [--members 20] [--each 25] [--rounds 2]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import socket
import sys
import tempfile
import textwrap
import time
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bot.app import Bot
from bot.clock import SystemClock
from bot.cohort import CohortRun
from bot.engine import Settings
from bot.plan import calendar
from bot.playbook import parse
from bot.transports import wechaty_compat as wx
from bot.transports.wechaty import WechatyTransport
from bot.yamlfile import parse_yaml
from storage.db import open_db
from tests.gateway.driver import Gateway

ROOM = "bench@chatroom"
PLAYBOOK = textwrap.dedent("""\
    name: 压测营
    days: 8
    timezone: Asia/Shanghai
    tracks:
      lesson: {name: 正课, keywords: ["打卡"], days: [1, 2, 3, 4, 5, 6, 7, 8]}
""")


def world(members: int) -> dict:
    ids = [f"m{i:03d}" for i in range(members)]
    return {
        "bot": {"id": "bot", "name": "CohortBot"},
        "contacts": [{"id": m, "name": f"学员{m}"} for m in ids],
        "rooms": [{"id": ROOM, "topic": "压测营", "members": ids}],
    }


async def flood(gw: Gateway, members: int, each: int) -> float:
    started = time.perf_counter()
    await asyncio.gather(*(gw.aflood(f"m{i:03d}", each, "打卡 {i}") for i in range(members)))
    return started


async def cohortbot_rate(gw: Gateway, members: int, each: int) -> tuple[float, list[dict]]:
    """Messages handled per second, and the group messages cohortbot sent for the flood."""
    pb = parse(parse_yaml(PLAYBOOK, "bench.yaml"))
    today = datetime.now(ZoneInfo("Asia/Shanghai")).date()
    run = CohortRun.create("bench", pb, calendar(pb, today - timedelta(days=1)), "压测营")
    with tempfile.TemporaryDirectory() as tmp:
        clock = SystemClock()
        transport = WechatyTransport(gw.endpoint, gw.token, clock, connect_timeout=30)
        bot = Bot(
            open_db(f"sqlite:///{tmp}/bench.db"),
            transport,
            clock,
            Settings(quiet_hours=None),  # the same at any hour
            [run],
            reconcile_minutes=0,
        )
        handled = 0
        done = asyncio.Event()
        total = members * each
        on_event = bot.engine.on_event

        async def counting(event):  # type: ignore[no-untyped-def]
            nonlocal handled
            await on_event(event)
            handled += 1
            if handled == total:
                done.set()

        await bot.start()
        transport._events = counting
        try:
            started = await flood(gw, members, each)
            await asyncio.wait_for(done.wait(), 300)
            rate = total / (time.perf_counter() - started)
            # The first roll call goes a fold window (3 s) after the first check-in.
            await asyncio.sleep(5)
            return rate, [s for s in await gw.asent() if s["kind"] == "room"]
        finally:
            await bot.stop()


async def bare_rate(gw: Gateway, members: int, each: int) -> float:
    """A python-wechaty bot that only replies to each message (the transport floor)."""
    total = members * each
    replies = 0
    done = asyncio.Event()

    class Bare(wx.wechaty.Wechaty):  # type: ignore[misc, name-defined]
        async def on_message(self, msg):  # type: ignore[no-untyped-def]
            nonlocal replies
            if msg.is_self():
                return
            await msg.say("ok")
            replies += 1
            if replies == total:
                done.set()

    with socket.socket() as s:  # its plugin server wants a free port
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    options = wx.wechaty.WechatyOptions(
        puppet="wechaty-puppet-service",
        puppet_options=wx.PuppetOptions(end_point=gw.endpoint, token=gw.token),
        port=port,
    )
    bare = Bare(options)
    runner = asyncio.create_task(bare.start())
    await asyncio.sleep(2)  # logged in
    try:
        started = await flood(gw, members, each)
        await asyncio.wait_for(done.wait(), 300)
        return total / (time.perf_counter() - started)
    finally:
        runner.cancel()
        with contextlib.suppress(BaseException):
            await runner
        with contextlib.suppress(BaseException):
            await asyncio.wait_for(bare.puppet.stop(), 5)


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--members", type=int, default=20)
    ap.add_argument("--each", type=int, default=25, help="messages per member")
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()
    logging.disable(logging.WARNING)  # python-wechaty warns on every repeated payload
    total = args.members * args.each
    gw = Gateway(world(args.members))
    gw.start()
    try:
        bare, ours = [], []
        group: list[dict] = []
        for _ in range(args.rounds):
            bare.append(await bare_rate(gw, args.members, args.each))
            gw.restart()  # a clean gateway for the next bot
            rate, group = await cohortbot_rate(gw, args.members, args.each)
            ours.append(rate)
            gw.restart()
    finally:
        gw.close()
    b, o = max(bare), max(ours)
    print(f"{total} messages from {args.members} members through the mock gateway, best of {args.rounds}:")
    print(f"  bare python-wechaty bot (reply to each): {b:,.0f} messages/s")
    print(f"  cohortbot (count, store for the roll call): {o:,.0f} messages/s")
    print(f"  ratio cohortbot / bare: {o / b:.2f}   (target >= 0.8)")
    lines = [line for s in group for line in s["text"].split("\n") if " +" in line and "：" in line]
    named = sum(len(line.split("：", 1)[1].split("、")) for line in lines)
    print(
        f"  group messages: bare bot {total} (a reply each), cohortbot {len(group)} "
        f"(roll calls naming {named} members, the one counted check-in each; repeats are silent)"
    )


if __name__ == "__main__":
    asyncio.run(main())
