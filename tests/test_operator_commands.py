"""Operator commands through the whole bot (simulated group, virtual time): 状态, 未打卡, 暂停 /
恢复 (held items sent or skipped), 提醒, 补卡, 重载, 帮助; members never get an operator's power,
whatever their name; wrong cohort, track, member or day get one line saying what exists."""

from __future__ import annotations

import asyncio

from bot import i18n
from bot.transports.base import Disconnected, Reconnected
from storage import repo
from tests.harness import members

PEOPLE = members("op1:王助教", "u01:小明", "u02:小红", "u03:小刚", "u04:王助教")


async def start(harness, now: str = "day 2 08:00", **kw):
    h = await harness(people=PEOPLE, operators=("op1",), now=now, **kw)
    h.bot.engine.router.desk.language = "zh"
    return h


async def ask(h, text: str, who: str = "op1") -> str:
    before = len(h.dms(who))
    await h.dm(who, text)
    await h.settle()
    told = h.dms(who)[before:]
    assert len(told) == 1, [s.text for s in told]
    return told[0].text


async def test_missing_lists_who_has_not_checked_in_today(harness):
    h = await start(harness)
    await h.say("u01", "晨读")
    await h.until("day 2 08:10")
    reply = await ask(h, "未打卡 晨读")
    assert reply.startswith("【c1】第 2 天，晨读：4 人里还有 3 人没打卡")
    assert reply.splitlines()[1] == "小红、小刚、王助教"  # u04, a member who shares a name
    both = await ask(h, "未打卡")  # every track of the day
    assert "正课：4 人里还有 4 人没打卡" in both and "晨读：4 人里还有 3 人没打卡" in both


async def test_status_says_day_items_checkins_and_sends(harness):
    h = await start(harness, now="day 2 07:00")
    await h.say("u01", "晨读")
    await h.until("day 2 09:00")
    reply = await ask(h, "状态")
    lines = reply.splitlines()
    assert lines[0] == "【c1】训练营 1 班 · 第 2 天（共 8 天）"
    assert "今天已发 1 项，还有 1 项（下一项：d2-2130-remind-lesson 21:30）" in reply
    assert "晨读：1/4 已打卡" in reply and "正课：0/4 已打卡" in reply
    assert "发送：排队 0 条，失败 0 条" in reply
    assert "连接：" in reply


async def test_status_tells_a_gateway_that_does_not_answer(harness):
    h = await start(harness, now="day 2 07:00")
    await h.bot.engine.on_event(Disconnected(h.clock.now(), "cannot reach it"))
    assert "连接：微信网关自 12-02 07:00 起没有响应" in await ask(h, "状态")
    await h.bot.engine.on_event(Reconnected(h.clock.now()))
    assert "连接：已连接" in await ask(h, "状态")


async def test_pause_holds_items_and_resume_sends_or_skips_them(harness):
    h = await start(harness)
    assert (await ask(h, "暂停")).startswith("⏸ 【c1】已暂停")
    await h.say("u01", "晨读")  # still counted
    await h.until("day 2 21:40")
    assert not [s for s in h.room() if "remind" in s.kinds]
    with h.bot.db.connect() as conn:
        assert repo.has_checkin(conn, "c1", "u01", "reading", 2)
        assert [i for i, _ in repo.held_items(conn, "c1")] == ["d2-2130-remind-lesson"]
    told = await ask(h, "恢复")
    assert "▶️ 【c1】已恢复" in told and "d2-2130-remind-lesson（21:30）" in told and "恢复 发送" in told
    assert not [s for s in h.room() if "remind" in s.kinds]  # waits for the choice
    sent = await ask(h, "恢复 发送")
    assert "现在发出：d2-2130-remind-lesson" in sent
    assert len([s for s in h.room() if "remind" in s.kinds]) == 1
    again = await ask(h, "恢复 发送")
    assert "没有暂停" in again or "没有攒着" in again
    assert len([s for s in h.room() if "remind" in s.kinds]) == 1  # never twice
    with h.bot.db.connect() as conn:
        assert [a for _, _, a, _ in repo.actions(conn, "c1")] == ["send-held", "resume", "pause"]


async def test_resume_skip_drops_the_held_items(harness):
    h = await start(harness)
    await ask(h, "暂停")
    await h.until("day 2 21:40")
    await ask(h, "恢复")
    assert "已跳过，不发：d2-2130-remind-lesson" in await ask(h, "恢复 跳过")
    await h.until("day 2 22:00")
    assert not [s for s in h.room() if "remind" in s.kinds]
    with h.bot.db.connect() as conn:
        assert repo.claimed_items(conn, "c1")["d2-2130-remind-lesson"] == "skipped"


async def test_a_pause_survives_a_restart(tmp_path):
    from tests.harness import Harness

    db = f"sqlite:///{tmp_path / 'bot.db'}"
    h = await Harness.start(people=PEOPLE, operators=("op1",), now="day 2 08:00", db_url=db)
    await h.dm("op1", "暂停")
    await h.settle()
    h.crash()
    h2 = await Harness.start(people=PEOPLE, operators=("op1",), now="day 2 21:00", db_url=db)
    await h2.until("day 2 21:40")
    assert not [s for s in h2.room() if "remind" in s.kinds]
    with h2.bot.db.connect() as conn:
        assert [i for i, _ in repo.held_items(conn, "c1")] == ["d2-2130-remind-lesson"]


async def test_remind_now_mentions_who_has_not_checked_in(harness):
    h = await start(harness)
    await h.say("u01", "打卡")
    await h.until("day 2 10:00")
    reply = await ask(h, "提醒 正课")
    assert reply == "【c1】正课的提醒已发出：3 人还没打卡。"
    [post] = [s for s in h.room() if "remind" in s.kinds]
    assert post.text.startswith("今天的课还没完成的同学抓紧哦")
    assert set(post.mentions) == {"u02", "u03", "u04"}
    assert "分钟前刚提醒过" in await ask(h, "提醒 正课")  # not twice in a row
    assert len([s for s in h.room() if "remind" in s.kinds]) == 1


async def test_mark_credits_a_make_up_counted_toward_rewards(harness):
    h = await start(harness, now="day 5 08:00")
    with h.bot.db.begin() as conn:
        for day in (2, 3, 4):
            repo.record_checkin(conn, "c1", "u02", "reading", day, h.clock.now())
    reply = await ask(h, "补卡 小红 晨读 5")
    assert reply == "✅ 【c1】已为 小红 补卡：晨读，第 5 天（由你补记）。"
    await h.settle()
    assert any("恭喜完成 4 天晨读" in s.text for s in h.dms("u02"))  # the reward
    await h.until("day 5 12:00")
    calls = "\n".join(s.text for s in h.room() if "rollcall" in s.kinds)
    assert "小红（补卡）" in calls
    with h.bot.db.connect() as conn:
        assert repo.actions(conn, "c1")[0][1:] == ("op1", "mark", "u02 reading 5")


async def test_mark_refusals_say_what_exists(harness):
    h = await start(harness, now="day 3 08:00")
    assert "第 4 天还没到" in await ask(h, "补卡 小红 晨读 4")
    assert "这里没有叫「小李」的成员" in await ask(h, "补卡 小李 晨读 2")
    assert "写法：「补卡 姓名 打卡项 第几天」" in await ask(h, "补卡 小红")
    assert "第 1 天不算" in await ask(h, "补卡 小红 晨读 1")
    assert "可能是：王助教（op1）、王助教（u04）" in await ask(h, "补卡 王助教 晨读 2")
    wrong = await ask(h, "未打卡 跑步")
    assert "「跑步」不是" in wrong and "lesson（正课）" in wrong and "reading（晨读）" in wrong


async def test_members_never_get_operator_powers(harness):
    """u04 is called 王助教 too, like the operator; the role comes from the contact id."""
    h = await start(harness)
    for word in ("暂停", "未打卡", "状态", "补卡 小红 晨读 2"):
        await h.dm("u04", word)
        await h.say("u04", f"@CohortBot {word}")
    await h.settle()
    with h.bot.db.connect() as conn:
        assert repo.paused(conn, "c1") is None
        assert not repo.has_checkin(conn, "c1", "u02", "reading", 2)
        assert repo.actions(conn, "c1") == []
    assert not any("【c1】" in s.text for s in h.dms("u04"))


async def test_an_operator_at_mentioning_the_bot_in_the_group_is_answered_privately(harness):
    h = await start(harness)
    await h.say("op1", "@CohortBot 未打卡")
    await h.settle()
    assert any(s.text.startswith("【c1】第 2 天") for s in h.dms("op1"))
    assert not [s for s in h.room() if "reply" in s.kinds]


async def test_operator_help_and_reload_outside_run(harness):
    h = await start(harness)
    help_text = await ask(h, "帮助")
    for word in ("状态", "未打卡", "暂停", "恢复", "提醒", "补卡", "重载"):
        assert f"「{word}" in help_text, word
    assert "学员能用的命令" in help_text
    assert "cohortbot run" in await ask(h, "重载")


async def test_in_english(harness):
    h = await start(harness)
    h.bot.engine.router.desk.language = "en"
    await h.say("u01", "晨读")
    await h.until("day 2 08:10")
    reply = await ask(h, "missing reading")
    assert reply.startswith("[c1] Day 2, 晨读: 3 of 4 not checked in yet")
    assert "Paused" in await ask(h, "pause")
    i18n.use("en")


async def test_with_two_cohorts_a_command_names_one_or_is_asked_which():
    import asyncio

    from bot.app import Bot
    from bot.clock import VirtualClock
    from bot.cohort import CohortRun
    from bot.engine import Settings
    from bot.plan import calendar
    from bot.transports.simulated import SimulatedGroup
    from storage.db import open_db
    from tests.harness import EXAMPLE, load_playbook

    pb = load_playbook(EXAMPLE)
    loop = asyncio.get_running_loop()
    from datetime import date

    from bot.scenario import _when

    cal = calendar(pb, date(2026, 12, 1))
    loop.set_now(_when("day 2 08:00", cal))  # type: ignore[attr-defined]
    clock = VirtualClock(loop)  # type: ignore[arg-type]
    group = SimulatedGroup(clock, rooms={"r1": "Python 1班", "r2": "Python 2班"}, members=PEOPLE[:3])
    runs = [CohortRun.create("py-a", pb, cal, "Python 1班"), CohortRun.create("py-b", pb, cal, "Python 2班")]
    bot = Bot(
        open_db("sqlite://"), group, clock, Settings(operators=frozenset({"op1"})), runs, reconcile_minutes=0
    )
    await bot.start()
    try:
        await group.say("u01", "晨读", "r2")
        await asyncio.sleep(5)

        async def ask(text: str) -> str:
            before = len([s for s in group.sent if s.chat == "dm:op1"])
            await group.dm("op1", text)
            await bot.drain()
            return [s.text for s in group.sent if s.chat == "dm:op1"][before]

        which = await ask("未打卡")
        assert "是哪一期？" in which and "py-a（Python 1班）" in which and "py-b（Python 2班）" in which
        by_id = await ask("未打卡 晨读 py-b")
        assert by_id.startswith("【py-b】第 2 天，晨读：2 人里还有 1 人没打卡")
        by_room = await ask("未打卡 晨读 Python 1班")  # a room name with a space: not split
        assert by_room.startswith("【py-a】第 2 天，晨读：2 人里还有 2 人没打卡")
        both = await ask("状态")  # every cohort at once
        assert "【py-a】" in both and "【py-b】" in both
        assert "【py-a】已暂停" in await ask("暂停 py-a")
        with bot.db.connect() as conn:
            from storage import repo as r

            assert r.paused(conn, "py-a") is not None and r.paused(conn, "py-b") is None
    finally:
        await bot.stop()


async def test_report_in_chat_text_then_its_picture(harness):
    h = await start(harness, now="day 2 08:00")
    await h.say("u01", "晨读")
    await h.say("u02", "打卡")
    await h.until("day 2 20:00")
    before = len(h.dms("op1"))
    await h.dm("op1", "报告")
    await h.settle()
    await asyncio.gather(*h.bot.engine._drawing)  # the picture is drawn in a thread
    await h.settle()
    told = h.dms("op1")[before:]
    assert told[0].text.splitlines()[0] == "📊 Python 入门体验营（c1）· 第 2 天（共 8 天）", told[0].text
    assert "第 2 天：" in told[0].text and "晨读 1/4" in told[0].text, told[0].text
    assert "图片随后" in told[0].text or "📊" in told[0].text
    [(chat, name, data)] = h.group.images
    assert chat == "op1" and name == "c1-report.png" and data.startswith(b"\x89PNG")
    assert told[-1].text == "[c1-report.png]" and "image" in told[-1].kinds


async def test_report_in_chat_says_the_conversion_once_someone_enrolled(harness):
    h = await start(harness, now="day 2 08:00")
    await ask(h, "报名 小明")
    text = await ask(h, "报告")
    assert "已报名正式课：4 人里 1 人（25" in text, text
