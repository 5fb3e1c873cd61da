"""End to end over gRPC: the whole bot (engine, APScheduler, outbox, storage) against a real
Wechaty puppet-service gateway serving the mock puppet (tests/gateway/gateway.mjs), on the
real clock. The schedule is moved to the next few seconds so a cohort's day plays in a test.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import textwrap
import time
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import text

from bot.app import Bot
from bot.clock import SystemClock
from bot.cohort import CohortRun
from bot.engine import Settings
from bot.outbox import Pacing
from bot.plan import PlannedItem, calendar
from bot.transports.base import Delivered, Event, Incoming, Reconnected, SendError
from bot.transports.wechaty import WechatyTransport
from storage.db import open_db
from tests.gateway.driver import Gateway
from tests.harness import load_playbook

pytestmark = pytest.mark.gateway

ROOM = "cohort-test@chatroom"
WORLD = {
    "bot": {"id": "bot", "name": "CohortBot"},
    "contacts": [
        {"id": "op1", "name": "王助教"},
        {"id": "u1", "name": "小明"},
        {"id": "u2", "name": "小红", "alias": "红红（2组）"},
        {"id": "u3", "name": "小刚"},
        {"id": "dave", "name": "新同学"},
    ],
    "rooms": [{"id": ROOM, "topic": "网关测试营 1班", "members": ["op1", "u1", "u2", "u3"]}],
}
PLAYBOOK = textwrap.dedent("""\
    name: 网关测试营
    days: 8
    timezone: Asia/Shanghai
    tracks:
      lesson: {name: 正课, keywords: ["打卡"], days: [1, 2, 3, 4, 5, 6, 7, 8]}
    schedule:
      - {id: post, day: 2, at: "08:00", post: "【开课】第{day}天开始啦"}
      - {id: remind, day: 2, at: "21:30", remind: {track: lesson, text: "还没打卡的同学抓紧哦"}}
      - {id: nudge, day: 2, at: "21:40", nudge: {track: lesson, dm: "{name}，今天的课还没完成哦"}}
""")
# Roll calls paced for a test: the first after a quiet spell 0.3 s after its check-in, then at
# most one every 3 s, and no name waits longer than 3 s for enough others.
EVERY = 3.0
FAST = Pacing(
    same_chat_seconds=0.2,
    any_chat_seconds=0.3,
    per_minute=600,
    ack_window_seconds=0.3,
    ack_every_minutes=EVERY / 60,
    ack_max_wait_minutes=EVERY / 60,
)
ROLL_TITLE = "✅ 第2天打卡播报"
ROLL_LINE = re.compile(
    r"^(?P<track>\S+) \+(?P<count>\d+)（今日 (?P<done>\d+)/(?P<total>\d+)）：(?P<names>.+)$"
)


@pytest.fixture
def gateway():
    gw = Gateway(WORLD)
    gw.start()
    yield gw
    gw.close()


def cohort(due_in: dict[str, float], playbook: str = PLAYBOOK) -> CohortRun:
    """The playbook as a cohort whose day 2 is today (in China), with each item moved to
    `due_in[id]` seconds from now."""
    pb = load_playbook(playbook)
    today = datetime.now(ZoneInfo("Asia/Shanghai")).date()
    run = CohortRun.create("gw", pb, calendar(pb, today - timedelta(days=1)), "网关测试营 1班")
    now = SystemClock().now()
    run.plan = [
        PlannedItem(p.item_id, now + timedelta(seconds=due_in[p.item_id]), p.item)
        for p in run.plan
        if p.item_id in due_in
    ]
    return run


async def start_bot(gw: Gateway, db_url: str, run: CohortRun, **options: float) -> Bot:
    options = {"connect_timeout": 30, "room_wait": 10, "ping_every": 1, "ping_timeout": 2, **options}
    transport = WechatyTransport(gw.endpoint, gw.token, SystemClock(), **options)
    bot = Bot(
        open_db(db_url),
        transport,
        SystemClock(),
        # No quiet hours: the tests run at any hour and wait for roll calls.
        Settings(operators=frozenset({"op1"}), pacing=FAST, quiet_hours=None),
        [run],
        reconcile_minutes=0,
    )
    await bot.start()
    return bot


async def counted(bot: Bot, member_id: str, limit: float = 15) -> None:
    """Wait until the member's check-in is in the database."""
    for _ in range(int(limit * 10)):
        with bot.db.connect() as conn:
            if conn.execute(text("SELECT 1 FROM checkin WHERE member_id = :m"), {"m": member_id}).first():
                return
        await asyncio.sleep(0.1)
    raise AssertionError(f"the check-in of {member_id} was not counted")


def room_sends(gw: Gateway, text: str) -> list[dict]:
    return [s for s in gw.sent() if s["kind"] == "room" and text in s["text"]]


def roll_lines(send: dict) -> list[tuple[str, list[str]]]:
    """(track, names) of each roll-call line in a group message (a roll call, or a reminder
    carrying one)."""
    if send["kind"] != "room" or "打卡播报" not in send["text"]:
        return []
    found = []
    for line in send["text"].split("\n"):
        m = ROLL_LINE.match(line)
        if m:
            found.append((m["track"], m["names"].split("、")))
    return found


def names_in(send: dict, track: str = "正课") -> list[str]:
    return [n for t, names in roll_lines(send) if t == track for n in names]


async def named(gw: Gateway, name: str, track: str = "正课", timeout: float = 30, **where) -> dict:
    """Wait for the roll call that names ``name`` on the track (``where``: other fields the
    send must have, e.g. conversationId)."""
    [send] = await gw.await_sent(
        lambda s: name in names_in(s, track) and all(s[k] == v for k, v in where.items()), timeout=timeout
    )
    return send


def dms_with(sends: list[dict], member_id: str, text: str) -> list[dict]:
    return [s for s in sends if s["kind"] == "dm" and s["conversationId"] == member_id and text in s["text"]]


async def test_a_cohort_day_over_grpc(gateway, tmp_path):
    run = cohort({"post": 3, "remind": 6, "nudge": 8})
    bot = await start_bot(gateway, f"sqlite:///{tmp_path / 'bot.db'}", run)
    try:
        assert run.room_id == ROOM  # found by its topic
        # A member checks in: counted, and named at once in a roll call (the first check-in
        # after a quiet spell), by name, not by an @.
        checked_in = time.time()
        await gateway.asay("u1", "打卡")
        first = await named(gateway, "小明")
        assert first["text"] == f"{ROLL_TITLE}\n正课 +1（今日 1/3）：小明"
        assert first["mentionIdList"] == []
        assert first["ts"] / 1000 - checked_in < 3
        # Checking in again says nothing in the group; a command asked in the group is
        # answered privately; an operator's check-in is not counted and told so privately.
        await gateway.asay("u1", "打卡")
        await gateway.asay("u2", "进度")
        await gateway.asay("op1", "打卡")
        [progress] = await gateway.await_sent(lambda s: s["kind"] == "dm" and s["conversationId"] == "u2")
        assert "正课：0/8 天" in progress["text"]
        [op_reply] = await gateway.await_sent(lambda s: s["kind"] == "dm" and s["conversationId"] == "op1")
        assert "不计入" in op_reply["text"]
        # Someone joins mid-cohort; they are in the group now, so they are reminded too.
        await gateway.ajoin("dave")
        # The scheduled post reaches the room.
        [post] = await gateway.await_sent(lambda s: s["kind"] == "room" and "【开课】" in s["text"])
        assert post["text"] == "【开课】第2天开始啦"
        # The reminder @-mentions exactly the unfinished members, by real mention ids, and
        # writes each @ as the group shows the member (group alias first).
        [remind] = await gateway.await_sent(lambda s: s["kind"] == "room" and "还没打卡" in s["text"])
        assert remind["mentionIdList"] == ["u2", "u3", "dave"]
        assert remind["text"] == "@红红（2组）\u2005@小刚\u2005@新同学\u2005还没打卡的同学抓紧哦"
        # The nudge arrives as direct messages, one per unfinished member.
        nudges: list[dict] = []
        for _ in range(100):
            nudges = [
                s for s in await gateway.asent() if s["kind"] == "dm" and "今天的课还没完成" in s["text"]
            ]
            if len(nudges) == 3:
                break
            await asyncio.sleep(0.1)
        assert sorted((s["conversationId"], s["text"]) for s in nudges) == [
            ("dave", "新同学，今天的课还没完成哦"),
            ("u2", "红红（2组），今天的课还没完成哦"),
            ("u3", "小刚，今天的课还没完成哦"),
        ]
        # A member asks privately; the answer comes back privately.
        await gateway.adm("u1", "进度")
        [reply] = await gateway.await_sent(lambda s: s["kind"] == "dm" and s["conversationId"] == "u1")
        assert "正课：1/8 天" in reply["text"]
        # Two more check-ins, too few to be worth a message of their own: both wait for the
        # longest wait (EVERY seconds) and are named together, with the day's tally.
        gathered = time.time()
        await gateway.asay("u3", "打卡")
        await counted(bot, "u3")
        await gateway.asay("u2", "打卡")
        second = await named(gateway, "红红（2组）")
        assert second["text"] == f"{ROLL_TITLE}\n正课 +2（今日 3/4）：小刚、红红（2组）"
        waited = second["ts"] / 1000 - gathered
        assert EVERY - 0.5 <= waited < EVERY + 4, f"named after {waited:.1f} s"
        await asyncio.sleep(0.5)
        # In the group: two roll calls, the post and the reminder; nothing else (no answer
        # to the repeat, to the operator's check-in or to the command).
        sends = await gateway.asent()
        assert [s["text"] for s in sends if s["kind"] == "room"] == [
            first["text"],
            post["text"],
            remind["text"],
            second["text"],
        ]
        assert [s["text"] for s in dms_to(sends, "u2")] == [
            progress["text"],
            "红红（2组），今天的课还没完成哦",
        ]
    finally:
        await bot.stop()


async def back_after(transport: WechatyTransport, limit: float = 30) -> float:
    """Seconds until the transport can send again."""
    loop = asyncio.get_running_loop()
    began = loop.time()
    while not transport._ready.is_set():
        assert loop.time() - began < limit, "the bot did not reconnect"
        await asyncio.sleep(0.05)
    return loop.time() - began


async def test_gateway_killed_and_back_the_bot_reconnects_and_delivers_once(gateway, tmp_path):
    """And it is back within a couple of seconds of the gateway, each time: seen, the
    back-off grown during a long outage was still used after the next drop (offline 11 s
    after the gateway came back)."""
    run = cohort({"post": 2.5})
    bot = await start_bot(gateway, f"sqlite:///{tmp_path / 'bot.db'}", run)
    transport = bot.transport
    assert isinstance(transport, WechatyTransport)
    try:
        first = transport.connects
        await gateway.akill()
        await asyncio.sleep(4)  # the post falls due while the gateway is gone
        assert SystemClock().now() > run.plan[0].due
        await gateway.arestart()
        assert await back_after(transport) < 2.5
        [post] = await gateway.await_sent(
            lambda s: s["kind"] == "room" and "【开课】" in s["text"], timeout=30
        )
        assert post["text"] == "【开课】第2天开始啦"
        assert transport.connects > first
        await asyncio.sleep(1)
        assert len(room_sends(gateway, "【开课】")) == 1
        # And it still hears the group after the reconnect: the check-in is named.
        await gateway.asay("u2", "打卡")
        await named(gateway, "红红（2组）")
        # Stalled now: noticed, and back within a couple of seconds of the gateway resuming.
        os.kill(gateway._proc.pid, signal.SIGSTOP)
        try:
            for _ in range(100):
                if not transport._ready.is_set():
                    break
                await asyncio.sleep(0.1)
            assert not transport._ready.is_set(), "the stall was not noticed"
        finally:
            os.kill(gateway._proc.pid, signal.SIGCONT)
        assert await back_after(transport) < 2.5
        await gateway.asay("u3", "打卡")
        await named(gateway, "小刚")
        assert len(room_sends(gateway, "【开课】")) == 1
    finally:
        await bot.stop()


async def test_the_bot_restarted_sends_nothing_twice(gateway, tmp_path):
    db_url = f"sqlite:///{tmp_path / 'bot.db'}"
    bot = await start_bot(gateway, db_url, cohort({"post": 2, "remind": 3}))
    try:
        await gateway.await_sent(lambda s: "还没打卡" in s["text"])
    finally:
        await bot.stop()
    before = await gateway.asent()
    # Same plan, same database: both items are already claimed.
    again = await start_bot(gateway, db_url, cohort({"post": -1, "remind": 0.5}))
    try:
        await asyncio.sleep(3)
        assert await gateway.asent() == before
    finally:
        await again.stop()


async def test_a_flood_from_the_group_does_not_hold_up_a_scheduled_post(gateway, tmp_path):
    run = cohort({"post": 3})
    bot = await start_bot(gateway, f"sqlite:///{tmp_path / 'bot.db'}", run)
    try:
        due = run.plan[0].due
        await asyncio.gather(*(gateway.aflood(m, 100, "刷屏 {i}") for m in ("u1", "u2", "u3")))
        [post] = await gateway.await_sent(lambda s: "【开课】" in s["text"])
        late = post["ts"] / 1000 - due.timestamp()
        assert late < 2, f"the post went out {late:.1f} s late"
    finally:
        await bot.stop()


@pytest.mark.parametrize(("lang", "says"), [("en", "refused the token"), ("zh", "拒绝了这个 token")])
async def test_a_wrong_token_is_a_clear_error(gateway, lang: str, says: str):
    from bot import i18n
    from bot.transports.wechaty import GatewayError

    i18n.use(lang)  # the operator's language, as `run` sets it (conftest sets it back)
    transport = WechatyTransport(gateway.endpoint, "insecure_wrong", SystemClock(), connect_timeout=15)

    async def ignore(event):
        return None

    with pytest.raises(GatewayError, match=says):
        await transport.start(ignore)


async def test_a_gateway_that_is_down_is_a_clear_error_after_the_timeout():
    from bot.transports.wechaty import GatewayError
    from tests.gateway.driver import free_port

    transport = WechatyTransport(f"127.0.0.1:{free_port()}", "t", SystemClock(), connect_timeout=3)

    async def ignore(event):
        return None

    with pytest.raises(GatewayError, match="no logged-in account at the gateway"):
        await transport.start(ignore)


async def test_a_missing_room_is_named(gateway, tmp_path):
    pb = load_playbook(PLAYBOOK)
    run = CohortRun.create(
        "gw", pb, calendar(pb, datetime.now(ZoneInfo("Asia/Shanghai")).date()), "不存在的群"
    )
    transport = WechatyTransport(gateway.endpoint, gateway.token, SystemClock(), room_wait=2)
    bot = Bot(
        open_db(f"sqlite:///{tmp_path / 'bot.db'}"),
        transport,
        SystemClock(),
        Settings(),
        [run],
        reconcile_minutes=0,
    )
    try:
        with pytest.raises(LookupError, match=r"不存在的群.*网关测试营 1班"):
            await bot.start()
    finally:
        await bot.stop()


async def test_a_contact_without_a_name_and_a_silent_join(tmp_path):
    world = {**WORLD, "contacts": [*WORLD["contacts"], {"id": "ghost", "name": ""}]}
    gw = Gateway(world)
    gw.start()
    run = cohort({"remind": 4})
    bot = await start_bot(gw, f"sqlite:///{tmp_path / 'bot.db'}", run)
    try:
        # Joins by QR code fire no event: the member list is read from the room before the
        # reminder, so the silent joiner, known only by id, is reminded too.
        await gw.asilent_join("ghost")
        [remind] = await gw.await_sent(lambda s: "还没打卡" in s["text"])
        assert remind["mentionIdList"] == ["u1", "u2", "u3", "ghost"]
        assert "@ghost\u2005" in remind["text"]
    finally:
        await bot.stop()
        gw.close()


def test_cohortbot_run_over_the_gateway(gateway, tmp_path):
    """The command an operator runs: the sample playbook, a config naming the group by its
    topic, the gateway's token from the environment; Ctrl-C stops it cleanly."""
    import os
    import signal
    import subprocess
    import sys

    from tests.harness import SAMPLE

    start = datetime.now(ZoneInfo("Asia/Shanghai")).date() - timedelta(days=1)  # today is day 2
    cfg = tmp_path / "config.yaml"
    cfg.write_text(
        textwrap.dedent(f"""\
        timezone: Asia/Shanghai
        database: sqlite:///bot.db
        operators: [op1]
        transport:
          kind: wechaty
          endpoint: {gateway.endpoint}
          token: ${{WECHATY_PUPPET_SERVICE_TOKEN}}
        quiet_hours: "off"
        pacing: {{ack_every_minutes: 1, ack_max_wait_minutes: 1}}
        cohorts:
          - id: py-test
            playbook: {SAMPLE}
            room: 网关测试营 1班
            start: {start}
        """),
        encoding="utf-8",
    )
    env = {**os.environ, "WECHATY_PUPPET_SERVICE_TOKEN": gateway.token}
    proc = subprocess.Popen(
        [sys.executable, "-m", "bot.cli", "run", "--config", str(cfg)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        # Ask until the bot, still starting, is listening (a message before that is lost).
        # Asked in the group, answered privately.
        for _ in range(30):
            gateway.say("u1", "帮助")
            with contextlib.suppress(TimeoutError):
                [help_reply] = gateway.wait_sent(lambda s: "助教机器人" in s["text"], timeout=2)
                break
        else:
            pytest.fail("the bot never answered 帮助")
        assert (help_reply["kind"], help_reply["conversationId"]) == ("dm", "u1")
        # A check-in is named in the next roll call (the playbook's own line for the track).
        gateway.say("u2", "打卡")
        [roll] = gateway.wait_sent(
            lambda s: "红红（2组）" in s["text"] and "打卡播报" in s["text"], timeout=90
        )
        assert "✅ 第2天打卡播报\n📚 正课 +1（今日 1/3）：红红（2组）" in roll["text"], roll["text"]
        if roll["text"].startswith("✅"):  # a roll call of its own, not one a reminder carried
            assert roll["mentionIdList"] == []  # names, not @s
        assert not [s for s in gateway.sent() if s["kind"] == "room" and "助教机器人" in s["text"]]
    finally:
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err[-3000:]
    assert "logged in as bot" in err and "stopped" in err
    assert "Traceback" not in err


def test_ctrl_c_while_waiting_for_the_gateway_stops_at_once(tmp_path):
    import signal
    import subprocess
    import sys
    import time

    from tests.gateway.driver import free_port
    from tests.harness import SAMPLE

    cfg = tmp_path / "config.yaml"
    cfg.write_text(
        textwrap.dedent(f"""\
        transport: {{kind: wechaty, endpoint: "127.0.0.1:{free_port()}", token: t}}
        cohorts: [{{id: c, playbook: {SAMPLE}, room: 班级群, start: 2026-12-01}}]
        """),
        encoding="utf-8",
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "bot.cli", "run", "--config", str(cfg)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    time.sleep(4)  # still trying to reach the gateway, which is not there
    asked = time.monotonic()
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    assert time.monotonic() - asked < 5
    assert proc.returncode == 0, err[-2000:]
    assert "stopped before it had started" in err and "Traceback" not in err


async def test_a_hung_gateway_is_noticed_and_left_for_a_fresh_connection(gateway, tmp_path):
    import os
    import signal

    run = cohort({"post": 30})
    bot = await start_bot(gateway, f"sqlite:///{tmp_path / 'bot.db'}", run)
    transport = bot.transport
    try:
        first = transport.connects
        os.kill(gateway._proc.pid, signal.SIGSTOP)
        for _ in range(100):
            if transport.connects > first:
                break
            await asyncio.sleep(0.1)
        assert transport.connects > first, "the stall was not noticed"
        os.kill(gateway._proc.pid, signal.SIGCONT)
        for _ in range(200):
            if transport._ready.is_set():
                break
            await asyncio.sleep(0.1)
        await gateway.asay("u3", "打卡")
        roll = await named(gateway, "小刚")
        assert roll["text"] == f"{ROLL_TITLE}\n正课 +1（今日 1/3）：小刚"
    finally:
        await bot.stop()


def statuses(bot: Bot, kind: str) -> list[str]:
    with bot.db.connect() as conn:
        return [r[0] for r in conn.execute(text("SELECT status FROM outgoing WHERE kind = :k"), {"k": kind})]


async def test_a_send_cut_by_a_frozen_gateway_is_not_repeated_and_found_delivered(gateway, tmp_path):
    """The gateway freezes just as a post goes out and resumes: the post is never sent twice,
    is held as "may have arrived" meanwhile, and once the gateway completes it, is marked
    sent and the operators' alert is withdrawn (seen: told "发送失败…没有重发" for a post
    that had arrived)."""
    run = cohort({"post": 3})
    bot = await start_bot(
        gateway, f"sqlite:///{tmp_path / 'bot.db'}", run, ping_every=5, ping_timeout=3, send_timeout=2
    )
    try:
        await asyncio.sleep((run.plan[0].due - SystemClock().now()).total_seconds() - 1)
        os.kill(gateway._proc.pid, signal.SIGSTOP)  # a second before the post is due
        try:
            for _ in range(100):
                if statuses(bot, "post") == ["unknown"]:
                    break
                await asyncio.sleep(0.1)
            assert statuses(bot, "post") == ["unknown"]
        finally:
            os.kill(gateway._proc.pid, signal.SIGCONT)
        for _ in range(100):
            if statuses(bot, "post") == ["sent"]:
                break
            await asyncio.sleep(0.1)
        assert statuses(bot, "post") == ["sent"]
        assert len(room_sends(gateway, "【开课】")) == 1
        assert "pending" not in statuses(bot, "alert")  # nobody is told to check
    finally:
        await bot.stop()


async def test_two_groups_with_the_same_name_are_refused(tmp_path):
    world = {
        **WORLD,
        "rooms": [*WORLD["rooms"], {"id": "twin@chatroom", "topic": "网关测试营 1班", "members": ["u1"]}],
    }
    gw = Gateway(world)
    gw.start()
    try:
        transport = WechatyTransport(gw.endpoint, gw.token, SystemClock(), room_wait=2)
        bot = Bot(
            open_db(f"sqlite:///{tmp_path / 'bot.db'}"),
            transport,
            SystemClock(),
            Settings(),
            [cohort({})],
            reconcile_minutes=0,
        )
        with pytest.raises(LookupError, match=r"2 groups called '网关测试营 1班'.*twin@chatroom"):
            await bot.start()
        await bot.stop()
    finally:
        gw.close()


async def test_a_send_frozen_mid_flight_is_reported_as_maybe_sent_then_delivered(gateway):
    """Seen: the gateway froze during a send and resumed; the message was reported failed
    ("没有重发，请手动处理"), yet it had arrived. The adapter says "maybe sent" and, once
    the gateway resumes and completes it, that it was delivered."""
    events: list[Event] = []

    async def record(event: Event) -> None:
        events.append(event)

    transport = WechatyTransport(
        gateway.endpoint, gateway.token, SystemClock(), connect_timeout=30, ping_every=1, ping_timeout=2
    )
    await transport.start(record)
    try:
        await transport.members(ROOM)  # names known, as in a running bot
        os.kill(gateway._proc.pid, signal.SIGSTOP)
        try:
            cut = await asyncio.gather(
                transport.send_room(ROOM, "【奖励】第一阶段奖励已发放", ["u2"]),
                transport.send_direct("u1", "小明，这是你的奖励"),
                return_exceptions=True,
            )
        finally:
            os.kill(gateway._proc.pid, signal.SIGCONT)
        assert all(isinstance(e, SendError) and e.maybe_sent and not e.retry for e in cut), cut
        for _ in range(100):
            if sum(isinstance(e, Delivered) for e in events) == 2:
                break
            await asyncio.sleep(0.1)
        delivered = [(e.room_id, e.member_id, e.text) for e in events if isinstance(e, Delivered)]
        assert len(delivered) == 2
        assert set(delivered) == {
            (ROOM, None, "【奖励】第一阶段奖励已发放"),
            (None, "u1", "小明，这是你的奖励"),
        }
        sends = await gateway.asent()
        assert [s["text"] for s in sends] == [
            "@红红（2组）\u2005【奖励】第一阶段奖励已发放",
            "小明，这是你的奖励",
        ]
        await back_after(transport)
        assert any(isinstance(e, Reconnected) and not e.ids_changed for e in events)
        # A gateway slow to confirm: the message goes out and is echoed back while the send
        # still waits for its answer. Maybe sent, then delivered, once.
        events.clear()
        await gateway.aslow_sends(1.5)
        transport.send_timeout = 0.5
        with pytest.raises(SendError) as slow:
            await transport.send_direct("u3", "小刚，记得打卡")
        assert slow.value.maybe_sent
        await asyncio.sleep(2)  # the late answer comes too
        assert events == [Delivered(None, "u3", "小刚，记得打卡", events[0].at)]
    finally:
        await transport.stop()


async def test_a_gateway_back_with_new_ids_is_followed(gateway, tmp_path, caplog):
    """Seen: a gateway restarted and its account, room and members came back with new ids;
    the bot kept sending to the dead room id and ignored the group, and a private message
    from an unknown sender raised "could not handle Incoming"."""
    run = cohort({"post": 120})
    bot = await start_bot(gateway, f"sqlite:///{tmp_path / 'bot.db'}", run)

    async def followed(room_id: str, bot_id: str) -> None:
        for _ in range(150):
            if (run.room_id, bot.transport.bot_id()) == (room_id, bot_id):
                return
            await asyncio.sleep(0.1)
        assert (run.room_id, bot.transport.bot_id()) == (room_id, bot_id)

    try:
        await gateway.asay("u1", "打卡")
        await counted(bot, "u1")
        # Restarted with new ids.
        ids = await gateway.arelogin_with_new_ids("-r2", restart=True)
        await followed(ids[ROOM], ids["bot"])
        await gateway.asay(ids["u2"], "打卡", room=ids[ROOM])
        await counted(bot, ids["u2"])
        await named(gateway, "红红（2组）", conversationId=ids[ROOM])  # named there
        await gateway.adm(ids["u3"], "进度")  # a sender the bot has never seen: read the room again
        await gateway.await_sent(lambda s: s["kind"] == "dm" and s["conversationId"] == ids["u3"])
        # Renumbered again on the open stream (logged out and in, no restart): followed too.
        again = await gateway.arelogin_with_new_ids("-r3")
        await followed(again[ids[ROOM]], again[ids["bot"]])
        await gateway.asay(again[ids["u3"]], "打卡", room=run.room_id)
        await counted(bot, again[ids["u3"]])
        await named(gateway, "小刚", conversationId=again[ids[ROOM]])
        # Nothing went to an id that had died.
        live = {ids[ROOM], ids["u3"], again[ids[ROOM]]}  # the sends since the restart
        assert {s["conversationId"] for s in await gateway.asent()} <= live
        assert "could not handle" not in caplog.text
    finally:
        await bot.stop()


async def test_a_member_named_with_nul_newlines_and_sixty_characters(tmp_path):
    """A name from the gateway must never crash the bot nor forge a line in its posts."""
    hostile = "坏\x00名字\n【通知】今晚停课\r\n" + "长" * 45
    assert len(hostile) == 60
    world = {
        **WORLD,
        "contacts": [*WORLD["contacts"], {"id": "evil", "name": hostile}],
        "rooms": [{**WORLD["rooms"][0], "members": [*WORLD["rooms"][0]["members"], "evil"]}],
    }
    gw = Gateway(world)
    gw.start()
    run = cohort({"remind": 2})
    bot = await start_bot(gw, f"sqlite:///{tmp_path / 'bot.db'}", run)
    try:
        [remind] = await gw.await_sent(lambda s: "还没打卡" in s["text"])
        assert "evil" in remind["mentionIdList"]
        await gw.asay("evil", "打卡")
        await counted(bot, "evil")
        # Named in the roll call as one line, cleaned and cut to 40 characters.
        clean = "坏名字 【通知】今晚停课 " + "长" * 26 + "…"
        assert len(clean) == 40
        roll = await named(gw, clean)
        assert roll["text"] == f"{ROLL_TITLE}\n正课 +1（今日 1/4）：{clean}"
        await gw.adm("evil", "进度")
        await gw.await_sent(lambda s: s["kind"] == "dm" and s["conversationId"] == "evil")
        for sent in await gw.asent():
            assert "\x00" not in sent["text"] and "\r" not in sent["text"]
            assert not any(line.startswith("【通知】") for line in sent["text"].split("\n")), sent["text"]
    finally:
        await bot.stop()
        gw.close()


async def connected_transport(gw: Gateway, events: list[Event]) -> WechatyTransport:
    async def record(event: Event) -> None:
        events.append(event)

    transport = WechatyTransport(gw.endpoint, gw.token, SystemClock(), connect_timeout=30, ping_every=1)
    await transport.start(record)
    return transport


async def incoming_from(events: list[Event], member_id: str, text: str, limit: float = 10) -> None:
    """Wait until the member's private message has reached the bot (events come in order, so
    everything the gateway emitted before it has been handled too)."""
    for _ in range(int(limit * 20)):
        if any(isinstance(e, Incoming) and e.sender.id == member_id and e.text == text for e in events):
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"{member_id}'s {text!r} did not arrive; events: {events}")


def dms_to(sends: list[dict], member_id: str) -> list[dict]:
    return [s for s in sends if s["kind"] == "dm" and s["conversationId"] == member_id]


async def test_a_private_message_refused_to_a_non_friend_is_not_friend_until_befriended():
    """Seen: nudges and rewards to group members who had not added the account were lost
    without a word. The gateway refuses them with an error: SendError(not_friend)."""
    world = {
        **WORLD,
        "contacts": [{**c, "notFriend": "refuse"} if c["id"] == "u3" else c for c in WORLD["contacts"]],
    }
    gw = Gateway(world)
    gw.start()
    events: list[Event] = []
    transport = await connected_transport(gw, events)
    try:
        with pytest.raises(SendError) as refused:
            await transport.send_direct("u3", "小刚，今天的课还没完成哦")
        assert refused.value.not_friend and not refused.value.retry and not refused.value.maybe_sent
        # Another phrasing, as a Windows hook writes it.
        await gw.anot_friend("u3", "refuse", text="send text msg: u3, its not on your friend list!")
        with pytest.raises(SendError) as again:
            await transport.send_direct("u3", "小刚，这是你的奖励")
        assert again.value.not_friend
        assert [r["text"] for r in await gw.arefused()] == ["小刚，今天的课还没完成哦", "小刚，这是你的奖励"]
        # A friend still gets the message.
        await transport.send_direct("u1", "小明，今天的课还没完成哦")
        # The member adds the account: the next private message reaches them.
        await gw.abefriend("u3")
        await transport.send_direct("u3", "小刚，欢迎")
        sends = await gw.asent()
        assert [s["text"] for s in dms_to(sends, "u1")] == ["小明，今天的课还没完成哦"]
        assert [s["text"] for s in dms_to(sends, "u3")] == ["小刚，欢迎"]
    finally:
        await transport.stop()
        gw.close()


async def test_the_notice_after_a_private_message_to_a_non_friend_calls_on_not_friend():
    """The web and iPad protocols accept the message and WeChat then puts its notice into
    that chat ("开启了朋友验证…"): on_not_friend(member id), never an Incoming message."""
    world = {
        **WORLD,
        "contacts": [{**c, "notFriend": "notice"} if c["id"] == "u2" else c for c in WORLD["contacts"]],
    }
    gw = Gateway(world)
    gw.start()
    events: list[Event] = []
    told: list[str] = []
    transport = await connected_transport(gw, events)

    async def tell(member_id: str) -> None:
        told.append(member_id)

    transport.on_not_friend = tell
    try:
        await transport.send_direct("u2", "红红，今天的课还没完成哦")  # accepted
        await transport.send_direct("u1", "小明，今天的课还没完成哦")  # a friend
        for _ in range(100):
            if told:
                break
            await asyncio.sleep(0.05)
        assert told == ["u2"]
        # A notice in the chat of someone the bot did not message is ignored; so is the text.
        await gw.anotice("u3")
        await gw.anotice("u3", "你还不是他（她）朋友", notice_type="text")
        await gw.adm("u3", "进度")
        await incoming_from(events, "u3", "进度")
        assert told == ["u2"]
        assert not [e for e in events if isinstance(e, Incoming) and "朋友" in e.text], events
        # Delivered as a text by another puppet: the same.
        await gw.anot_friend("u3", "notice", notice_type="text", delay=0)
        await transport.send_direct("u3", "小刚，今天的课还没完成哦")
        await gw.adm("u3", "帮助")
        await incoming_from(events, "u3", "帮助")
        assert told == ["u2", "u3"]
        # u2 adds the account: the next private message arrives, with no notice after it.
        await gw.abefriend("u2")
        await transport.send_direct("u2", "红红，这是你的奖励")
        await asyncio.sleep(0.3)  # the mock posts a notice 0.1 s after a send
        await gw.adm("u2", "进度")
        await incoming_from(events, "u2", "进度")
        assert told == ["u2", "u3"]
        assert not [e for e in events if isinstance(e, Incoming) and "朋友" in e.text], events
        sends = await gw.asent()
        assert [(s["text"], s.get("delivered", True)) for s in dms_to(sends, "u2")] == [
            ("红红，今天的课还没完成哦", False),
            ("红红，这是你的奖励", True),
        ]
        assert [s.get("delivered", True) for s in dms_to(sends, "u1")] == [True]
    finally:
        await transport.stop()
        gw.close()


FRIENDS_PLAYBOOK = textwrap.dedent("""\
    name: 网关测试营
    days: 8
    timezone: Asia/Shanghai
    tracks:
      lesson: {name: 正课, keywords: ["打卡"], days: [1, 2, 3, 4, 5, 6, 7, 8]}
      reading: {name: 晨读, keywords: ["晨读"], days: [1, 2, 3, 4, 5, 6, 7, 8]}
    rewards:
      - {id: pack, name: 资料包, track: lesson, count: 1, dm: "🎁 {name}，这是你的{reward}：https://pan.example.com/s/pack"}
    schedule:
      - {id: nudge1, day: 2, at: "08:00", nudge: {track: reading, dm: "{name}，今天的晨读还没完成哦 [1]"}}
      - {id: nudge2, day: 2, at: "09:00", nudge: {track: reading, dm: "{name}，今天的晨读还没完成哦 [2]"}}
""")
LINK = "pan.example.com"


def reachable(bot: Bot, member_id: str) -> bool:
    with bot.db.connect() as conn:
        return bool(
            conn.execute(text("SELECT reachable FROM member WHERE member_id = :m"), {"m": member_id}).scalar()
        )


async def test_members_who_are_not_friends_get_their_reward_once_they_add_the_assistant(tmp_path):
    """The engine's handling of non-friends, end to end: u2's private messages are refused
    (an error), u3's are accepted and followed by WeChat's notice. Each is asked in the group
    (with an @, never the reward's link) to add the assistant; nudges to them are not
    attempted again; the operators' list names both; once they add the account and write
    to it, the held reward arrives, once."""
    world = {
        **WORLD,
        "contacts": [
            {**c, "notFriend": {"u2": "refuse", "u3": "notice"}[c["id"]]} if c["id"] in ("u2", "u3") else c
            for c in WORLD["contacts"]
        ],
    }
    gw = Gateway(world)
    gw.start()
    run = cohort({"nudge1": 3.5, "nudge2": 6.5}, FRIENDS_PLAYBOOK)
    bot = await start_bot(gw, f"sqlite:///{tmp_path / 'bot.db'}", run)
    try:
        # u2 checks in and earns the reward: its private message is refused, so the reward
        # is held and the group asks u2, with an @, to add the assistant.
        await gw.asay("u2", "打卡")
        [ask_u2] = await gw.await_sent(lambda s: s["kind"] == "room" and "u2" in s["mentionIdList"])
        assert "@红红（2组）\u2005" in ask_u2["text"] and "加助教为好友" in ask_u2["text"]
        assert [r["text"] for r in await gw.arefused()] == [
            "🎁 红红（2组），这是你的资料包：https://pan.example.com/s/pack"
        ]
        roll = await named(gw, "红红（2组）")
        assert "🎁 解锁资料包：红红（2组）" in roll["text"].split("\n")
        assert not reachable(bot, "u2")
        # The first nudge: u2 is not attempted; u3's is accepted, then WeChat's notice says
        # u3 is no friend either.
        [nudge_u1] = await gw.await_sent(lambda s: s["kind"] == "dm" and "[1]" in s["text"])
        assert nudge_u1["conversationId"] == "u1"
        [nudge_u3] = await gw.await_sent(lambda s: s["kind"] == "dm" and s["conversationId"] == "u3")
        assert nudge_u3["text"] == "小刚，今天的晨读还没完成哦 [1]" and nudge_u3["delivered"] is False
        for _ in range(100):
            if not reachable(bot, "u3"):
                break
            await asyncio.sleep(0.1)
        assert not reachable(bot, "u3"), "the notice did not mark u3 as not reachable"
        # u3 earns the reward now: held at once (not attempted), and asked for in the group.
        await gw.asay("u3", "打卡")
        [ask_u3] = await gw.await_sent(lambda s: s["kind"] == "room" and "u3" in s["mentionIdList"])
        assert "@小刚\u2005" in ask_u3["text"] and "加助教为好友" in ask_u3["text"]
        await named(gw, "小刚")
        # The second nudge reaches u1 only: neither non-friend is attempted again.
        await gw.await_sent(lambda s: s["kind"] == "dm" and "[2]" in s["text"])
        await asyncio.sleep(1)
        sends = await gw.asent()
        assert [s["conversationId"] for s in sends if s["kind"] == "dm" and "[2]" in s["text"]] == ["u1"]
        assert dms_to(sends, "u2") == [] and dms_to(sends, "u3") == [nudge_u3]
        assert len(await gw.arefused()) == 1
        # The operators' list of members to add: one message a day (09:00), naming both.
        with bot.db.connect() as conn:
            lists = conn.execute(
                text(
                    "SELECT member_id, text, status FROM outgoing WHERE kind = 'alert' AND text LIKE '%好友%'"
                )
            ).all()
        assert len(lists) == 1 and lists[0][0] == "op1" and lists[0][2] == "pending", lists
        assert "红红（2组）" in lists[0][1] and "小刚" in lists[0][1] and "共 2 位" in lists[0][1]
        # They add the assistant and say hello: the held reward arrives, with its link.
        await gw.abefriend("u2")
        await gw.abefriend("u3")
        await gw.adm("u2", "你好")
        await gw.adm("u3", "加好友了")
        for member, shown in (("u2", "红红（2组）"), ("u3", "小刚")):
            [reward] = await gw.await_sent(
                lambda s, m=member: s["kind"] == "dm" and s["conversationId"] == m and LINK in s["text"]
            )
            assert reward["text"] == f"🎁 {shown}，这是你的资料包：https://pan.example.com/s/pack"
            assert reward.get("delivered", True)
        await asyncio.sleep(1)
        sends = await gw.asent()
        for member in ("u2", "u3"):
            assert len(dms_with(sends, member, LINK)) == 1  # once
        # The link never went to the group.
        assert not [s for s in sends if s["kind"] == "room" and LINK in s["text"]]
        assert reachable(bot, "u2") and reachable(bot, "u3")
    finally:
        await bot.stop()
        gw.close()


def test_a_playbook_edited_while_cohortbot_runs_takes_effect_without_a_restart(gateway, tmp_path):
    """Live edits end to end: `cohortbot run` over the gateway, the playbook saved with an
    item moved from a coming minute to the minute under way; the post reaches the group at
    once (its time has passed, within the grace window), the operators are told by private
    message, and the process is never restarted. (That a moved item waits for its new minute
    is tests/test_live_edit.py's, on virtual time: here it would cost up to a minute.)"""
    import subprocess
    import sys
    import threading

    zone = ZoneInfo("Asia/Shanghai")
    new_at = datetime.now(zone).replace(second=0, microsecond=0)  # the minute under way
    old_at = new_at + timedelta(minutes=3)  # not reached while the test runs
    start = new_at.date() - timedelta(days=1)  # today is day 2

    def playbook(at: datetime) -> str:
        day = (at.date() - start).days + 1
        return PLAYBOOK.replace(
            "schedule:\n",
            f'schedule:\n  - {{id: live, day: {day}, at: "{at:%H:%M}", post: "【直播】马上开始"}}\n',
        )

    pb = tmp_path / "playbook.yaml"
    pb.write_text(playbook(old_at), encoding="utf-8")
    cfg = tmp_path / "config.yaml"
    cfg.write_text(
        textwrap.dedent(f"""\
        database: sqlite:///bot.db
        operators: [op1]
        transport: {{kind: wechaty, endpoint: {gateway.endpoint}, token: {gateway.token}}}
        quiet_hours: "off"
        cohorts:
          - {{id: live-test, playbook: playbook.yaml, room: 网关测试营 1班, start: {start}}}
        """),
        encoding="utf-8",
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "bot.cli", "run", "--config", str(cfg)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    log: list[str] = []
    reading = threading.Thread(target=lambda: log.extend(iter(proc.stderr.readline, "")), daemon=True)
    reading.start()
    try:
        deadline = time.monotonic() + 30
        while not any("for edits" in line for line in log):
            assert proc.poll() is None and time.monotonic() < deadline, "".join(log)[-3000:]
            time.sleep(0.1)
        time.sleep(0.3)  # the watcher's thread is up
        saved = time.time()
        pb.write_text(playbook(new_at), encoding="utf-8")  # the editor saves
        [post] = gateway.wait_sent(
            lambda s: s["kind"] == "room" and s["text"] == "【直播】马上开始", timeout=15
        )
        assert saved <= post["ts"] / 1000 < saved + 5, (post["ts"] / 1000 - saved, "".join(log)[-2000:])
        [told] = gateway.wait_sent(lambda s: s["kind"] == "dm" and "修改已生效" in s["text"], timeout=10)
        assert told["conversationId"] == "op1"
        assert f"live → 第 2 天 {new_at:%H:%M}" in told["text"]
        assert "· live 的时间已过，现在补发" in told["text"]
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=60)
        reading.join(timeout=5)
    err = "".join(log)
    assert proc.returncode == 0, err[-3000:]
    assert f"1 item moved (live to day 2 {new_at:%H:%M})" in err
    assert err.count("logged in as bot") == 1  # never restarted
    assert "Traceback" not in err


async def test_operator_commands_over_the_gateway(gateway, tmp_path):
    """未打卡, 暂停 (the post falling due is held, not sent), 状态 (asked with an @ in the group,
    answered privately), then 恢复 发送 (the held post goes, once)."""
    run = cohort({"post": 6})
    bot = await start_bot(gateway, f"sqlite:///{tmp_path / 'bot.db'}", run)

    async def ask(text: str, group: bool = False) -> str:
        before = len(dms_to(await gateway.asent(), "op1"))
        if group:
            await gateway.asay("op1", f"@CohortBot {text}", mentions=["bot"])
        else:
            await gateway.adm("op1", text)
        for _ in range(150):
            told = dms_to(await gateway.asent(), "op1")
            if len(told) > before:
                return told[before]["text"]
            await asyncio.sleep(0.1)
        raise AssertionError(f"no answer to {text}")

    try:
        await gateway.asay("u1", "打卡")
        await counted(bot, "u1")
        missing = await ask("未打卡")
        assert missing.startswith("【gw】第 2 天，正课：3 人里还有 2 人没打卡"), missing
        assert missing.splitlines()[1] == "红红（2组）、小刚"
        assert (await ask("暂停")).startswith("⏸ 【gw】已暂停")
        await asyncio.sleep(7)  # the post falls due while paused
        assert not room_sends(gateway, "【开课】")
        status = await ask("状态", group=True)
        assert "⏸ 王助教 在" in status and "攒着 1 项" in status, status
        assert not [s for s in await gateway.asent() if s["kind"] == "room" and "状态" in s["text"]]
        resumed = await ask("恢复")
        assert "post（" in resumed and "恢复 发送" in resumed
        assert "现在发出：post" in await ask("恢复 发送")
        [post] = await gateway.await_sent(lambda s: s["kind"] == "room" and "【开课】" in s["text"])
        assert post["text"] == "【开课】第2天开始啦"
        await asyncio.sleep(1)
        assert len(room_sends(gateway, "【开课】")) == 1
    finally:
        await bot.stop()


async def test_a_picture_goes_as_a_file_message(gateway, tmp_path):
    """The transport port's image sending: the report's PNG reaches a private chat whole."""
    run = cohort({})
    bot = await start_bot(gateway, f"sqlite:///{tmp_path / 'bot.db'}", run)
    png = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 40
    try:
        await bot.transport.send_image("op1", png, "report.png")
        [sent] = await gateway.await_sent(lambda s: s.get("file") is not None)
        assert sent["kind"] == "dm" and sent["conversationId"] == "op1"
        assert sent["file"] == {"name": "report.png", "size": len(png), "head": png[:8].hex()}
    finally:
        await bot.stop()
