"""What goes wrong in production: restarts at awkward moments, two bots on one database, a
flaky member list, hostile YAML. Each case once broke or could have broken a real cohort."""

import asyncio
import subprocess
import sys
import time

import pytest
from typer.testing import CliRunner

from bot.cli import app
from bot.outbox import Outbox, Pacing
from bot.transports.base import Member
from bot.yamlfile import InputError, parse_yaml
from storage import repo
from storage.db import AlreadyRunning, claim_cohorts, open_db
from tests.harness import EXAMPLE, Harness, load_playbook, members

# Seven lines that a naive loader expands into 9**7 values ("billion laughs").
LAUGHS = "a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n" + "".join(
    f"{c}: &{c} [{', '.join([f'*{p}'] * 9)}]\n" for p, c in zip("abcdef", "bcdefg", strict=True)
)
PEOPLE = members("op1:王助教", "u01:小明", "u02:小红")


def db_url(tmp_path):
    return f"sqlite:///{tmp_path / 'bot.db'}"


async def test_an_earned_reward_is_delivered_after_a_long_outage(tmp_path):
    h = await Harness.start(people=PEOPLE, operators=("op1",), db_url=db_url(tmp_path), now="day 2 07:00")
    for day in (2, 3, 4, 5):
        await h.until(f"day {day} 08:00")
        await h.say("u01", "晨读")
        if day < 5:
            await h.settle()
    h.crash()  # the 4th check-in is counted and the reward granted, but nothing sent yet
    h2 = await Harness.start(people=PEOPLE, operators=("op1",), db_url=db_url(tmp_path), now="day 5 10:00")
    await h2.settle()
    assert [s.text for s in h2.dms("u01")] == [
        "恭喜完成 4 天晨读！资料大礼包：https://example.com/pack 提取码 8888"
    ]
    # The acknowledgement of that morning is stale by now and is not posted two hours late.
    assert not any("打卡成功" in s.text for s in h2.room())
    await h2.stop()


async def test_pacing_holds_across_a_restart(tmp_path):
    # 30 group posts go out 1.5 s apart (the per-minute cap is what stops the 31st); the bot
    # restarts right after and must remember them, or it would send 30 more at once.
    h = await Harness.start(people=PEOPLE, db_url=db_url(tmp_path), now="day 2 09:00")
    with h.bot.db.begin() as conn:
        for i in range(30):
            repo.enqueue(conn, "c1", room_id="room", text=f"消息 {i}", kind="post", now=h.clock.now())
    h.bot.outbox.wake()
    await h.settle()
    first = list(h.sent)
    await h.stop()
    h2 = await Harness.start(people=PEOPLE, db_url=db_url(tmp_path), now="day 2 09:00:45")
    with h2.bot.db.begin() as conn:
        for i in range(30):
            repo.enqueue(conn, "c1", room_id="room", text=f"再来 {i}", kind="post", now=h2.clock.now())
    h2.bot.outbox.wake()
    await h2.settle()
    times = [s.at for s in first + h2.sent]
    assert len(times) == 60
    for i, t in enumerate(times):
        within = [u for u in times[i:] if (u - t).total_seconds() < 60]
        assert len(within) <= 30, f"{len(within)} sends in the minute from {t}"
    await h2.stop()


class RecordingTransport:
    def __init__(self) -> None:
        self.sent: list[str] = []

    async def send_room(self, room_id, text, mentions=()):
        await asyncio.sleep(0.5)  # a real send takes a while; the other sender runs meanwhile
        self.sent.append(text)

    async def send_direct(self, member_id, text):
        await self.send_room("dm", text)


async def test_two_senders_on_one_database_never_send_a_row_twice(tmp_path):
    # Both senders looked at the queue before either claimed the row (two processes during a
    # rolling update): only the one whose claim lands sends it.
    from datetime import UTC, date, datetime

    from bot.clock import SystemClock

    db = open_db(db_url(tmp_path))
    now = datetime.now(UTC)
    with db.begin() as conn:
        repo.ensure_cohort(conn, "c1", "pb", "room", date(2026, 12, 1), "Asia/Shanghai", now)
        repo.enqueue(conn, "c1", room_id="room", text="只发一次", kind="post", now=now)
        row = repo.next_ready(conn, now)
    a, b = RecordingTransport(), RecordingTransport()
    first, second = (Outbox(db, t, SystemClock(), Pacing()) for t in (a, b))
    await first._send([row])
    await second._send([row])
    assert (a.sent, b.sent) == (["只发一次"], [])
    with db.begin() as conn:
        assert repo.claim_sends(conn, [row.id]) == []
    db.dispose()


def test_a_second_bot_on_the_same_database_is_refused(tmp_path):
    db = open_db(db_url(tmp_path))
    with claim_cohorts(db, ["c1"]):
        other = open_db(db_url(tmp_path))
        with pytest.raises(AlreadyRunning, match="another cohortbot"), claim_cohorts(other, ["c2"]):
            pass
    with claim_cohorts(open_db(db_url(tmp_path)), ["c1"]):
        pass  # released when the first one stopped


async def test_a_flaky_member_list_does_not_lose_the_reminder():
    h = await Harness.start(people=PEOPLE, operators=("op1",))
    real = h.group.members
    calls = 0

    async def flaky(room_id):
        nonlocal calls
        calls += 1
        if calls == 1:
            raise ConnectionError("gateway hiccup")
        return await real(room_id)

    h.group.members = flaky
    await h.until("day 2 21:31")
    await h.settle()
    reminders = [s for s in h.room() if s.text.startswith("今天的课还没完成")]
    assert [s.mentions for s in reminders] == [("u01", "u02")]
    await h.stop()


async def test_checkin_before_day_1_is_answered_and_welcome_names_the_start():
    pb = load_playbook(EXAMPLE + 'welcome: "欢迎 {name}，今天是第{day}天"\n')
    h = await Harness.start(pb, people=PEOPLE, operators=("op1",), now="day 1 00:00")
    await h.group.join(Member("u09", "新同学"))
    await h.say("u01", "打卡")
    await h.settle()
    assert [(s.text, s.kinds) for s in h.dms("u01")] == [
        ("小明 今天不是正课打卡日哦，第2天、第3天、第4天、第5天再来打卡吧", ("notice",))
    ]
    assert [(h.local(s), s.text, s.kinds, s.mentions) for s in h.room()] == [
        ("01 07:30:00", "欢迎 新同学，今天是第1天", ("welcome",), ("u09",))  # after quiet hours
    ]
    await h.group.leave("u09")
    await h.stop()


async def test_welcome_before_the_cohort_starts_says_when_it_starts():
    from datetime import date

    pb = load_playbook(EXAMPLE + 'welcome: "欢迎 {name}，今天是第{day}天"\n')
    h = await Harness.start(pb, people=PEOPLE, start=date(2026, 12, 5), now="2026-12-03T10:00:00+08:00")
    await h.group.join(Member("u09", "新同学"))
    await h.settle()
    [welcome] = [s for s in h.room() if "u09" in s.mentions]
    assert "12月5日" in welcome.text and "第-" not in welcome.text
    await h.stop()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("name: &a [*a]\n", "refers to the value it is inside"),
        (LAUGHS, "too many values"),
    ],
)
def test_hostile_yaml_is_refused_quickly(text, message):
    started = time.perf_counter()
    with pytest.raises(InputError) as err:
        parse_yaml(text, "evil.yaml")
    assert message in str(err.value)
    assert time.perf_counter() - started < 5


def test_a_reminder_on_a_day_the_track_does_not_count_is_rejected():
    bad = EXAMPLE.replace(
        '  - day: 2\n    at: "21:30"\n    remind:', '  - day: 6\n    at: "21:30"\n    remind:'
    )
    with pytest.raises(InputError) as err:
        load_playbook(bad)
    assert "counts only on days 2, 3, 4, 5" in str(err.value)


def test_preview_refuses_a_bad_timezone_and_an_absurd_start():
    runner = CliRunner()
    from tests.harness import SAMPLE

    tz = runner.invoke(app, ["preview", str(SAMPLE), "--start", "2026-12-01", "--timezone", "Asia/Shangai"])
    assert tz.exit_code == 2 and "did you mean Asia/Shanghai" in tz.output
    far = runner.invoke(app, ["preview", str(SAMPLE), "--start", "9999-12-30"])
    assert far.exit_code == 2 and "YYYY-MM-DD" in far.output


def test_second_run_on_one_database_exits_cleanly(tmp_path):
    from tests.test_run_terminal import CONFIG, SAMPLE

    cfg = tmp_path / "config.yaml"
    cfg.write_text(CONFIG.format(playbook=SAMPLE, start="2026-12-01"), encoding="utf-8")
    cmd = [sys.executable, "-m", "bot.cli", "run", "--config", str(cfg)]
    first = subprocess.Popen(
        cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        for _ in range(100):  # until the first one holds the database
            if (tmp_path / "bot.db.lock").exists():
                break
            time.sleep(0.1)
        time.sleep(1)
        second = subprocess.run(cmd, input="quit\n", capture_output=True, text=True, timeout=60)
        assert second.returncode == 2
        assert "another cohortbot is running" in second.stderr
        assert "Traceback" not in second.stderr
    finally:
        first.communicate("quit\n", timeout=60)


async def test_a_send_that_fails_once_is_retried_and_sent_once():
    from bot.transports.base import SendError

    h = await Harness.start(people=PEOPLE, operators=("op1",))
    h.group.fail_next.append(SendError("gateway busy", retry=True))
    await h.until("day 1 19:40")
    await h.settle()
    opening = [s for s in h.room() if s.text.startswith("【开营仪式】")]
    assert len(opening) == 1
    assert (opening[0].at - h.when("day 1 19:30")).total_seconds() >= 5  # after the back-off
    assert h.dms("op1") == []
    await h.stop()


async def test_a_send_that_keeps_failing_is_reported_to_the_operators_not_repeated():
    from bot.transports.base import SendError

    h = await Harness.start(people=PEOPLE, operators=("op1",))
    h.group.fail_next.extend(SendError("room sending is restricted", retry=True) for _ in range(3))
    await h.until("day 1 19:45")
    await h.settle()
    assert not any(s.text.startswith("【开营仪式】") for s in h.room())
    [alert] = h.dms("op1")
    assert "发送失败" in alert.text and "room sending is restricted" in alert.text
    assert "【开营仪式】" in alert.text
    with h.bot.db.connect() as conn:
        statuses = {r.text: r.status for r in conn.execute(repo.out_t.select())}
    assert statuses["【开营仪式】欢迎来到Python 入门体验营！"] == "failed"
    await h.stop()
