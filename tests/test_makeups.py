"""Members' make-ups (补卡) and leave (请假), through the whole bot: the playbook opens them per
track; a make-up counts toward rewards and is named as one in the roll call; never for today,
a future day, a day before joining, beyond the window or the quota. Leave takes the member out
of that day's reminders and nudges."""

from __future__ import annotations

from storage import repo
from tests.harness import EXAMPLE, members

MAKEUPS = EXAMPLE.replace(
    '    until: "12:00"\n', '    until: "12:00"\n    makeup: {days: 2, times: 2}\n'
).replace('  help: ["帮助", "菜单"]\n', '  help: ["帮助", "菜单"]\n  leave: ["请假"]\n')
PEOPLE = members("op1:王助教", "u01:小明", "u02:小红", "u03:小刚")


async def reply(h, who: str, text: str) -> str:
    before = len(h.dms(who))
    await h.dm(who, text)
    await h.settle()
    told = [s for s in h.dms(who)[before:] if "reply" in s.kinds]
    assert len(told) == 1, [s.text for s in told]
    return told[0].text


def test_the_fixture_opens_make_ups_and_leave():
    assert MAKEUPS != EXAMPLE and "makeup:" in MAKEUPS


async def test_a_make_up_counts_toward_the_reward_and_is_named_as_one(harness):
    h = await harness(MAKEUPS, people=PEOPLE, operators=("op1",), now="day 2 08:00")
    for day in (2, 3):
        await h.until(f"day {day} 08:00")
        await h.say("u01", "晨读")
    await h.until("day 5 08:00")
    await h.say("u01", "晨读")  # day 5; day 4 missed
    await h.until("day 5 09:00")
    assert (await reply(h, "u01", "补卡")) == "✅ 补卡成功：晨读，第 4 天（还可以补 1 次）"
    await h.settle()
    assert any("恭喜完成 4 天晨读" in s.text for s in h.dms("u01"))
    with h.bot.db.connect() as conn:
        assert set(repo.member_days(conn, "c1", "u01", "reading")) == {2, 3, 4, 5}
    await h.until("day 5 11:00")
    calls = "\n".join(s.text for s in h.room() if "rollcall" in s.kinds)
    assert "小明（补卡）" in calls


async def test_make_up_refusals(harness):
    h = await harness(MAKEUPS, people=PEOPLE, operators=("op1",), now="day 1 08:00")
    await h.until("day 5 08:00")
    assert "第 5 天就是今天" in await reply(h, "u02", "补卡 5")
    await h.until("day 5 08:01")
    assert "第 6 天还没到" in await reply(h, "u02", "补卡 6")
    await h.until("day 5 08:02")
    assert "只能补最近 2 天" in await reply(h, "u02", "补卡 2")
    await h.until("day 5 08:03")
    assert "补卡成功" in await reply(h, "u02", "补卡 第3天")
    await h.until("day 5 08:04")
    assert "补卡成功" in await reply(h, "u02", "补卡 4")
    # "²" is a digit to str.isdigit, and int() refuses it: no day given (yesterday), not a crash.
    assert "补卡成功：晨读，第 4 天" in await reply(h, "u01", "补卡 ²")
    await h.until("day 5 08:05")
    await h.until("day 6 08:00")
    assert "2 次补卡机会都用完了" in await reply(h, "u02", "补卡 5")
    await h.group.join(members("u09:新同学")[0], "room")
    await h.until("day 6 08:05")
    assert "你是第 5 天之后才进群的" in await reply(h, "u09", "补卡 5")


async def test_leave_takes_the_member_out_of_that_days_reminder(harness):
    h = await harness(MAKEUPS, people=PEOPLE, operators=("op1",), now="day 2 08:00")
    assert "第 2 天请假" in await reply(h, "u02", "请假")
    await h.until("day 2 21:31")
    await h.settle()
    [remind] = [s for s in h.room() if "remind" in s.kinds]
    assert "u02" not in remind.mentions and "u01" in remind.mentions
    await h.until("day 2 21:40")
    assert "已经请过假" in await reply(h, "u02", "请假 2")
    await h.until("day 2 21:45")
    assert "今天或之后" in await reply(h, "u02", "请假 1")


async def test_no_make_ups_where_the_playbook_has_none(harness):
    h = await harness(
        EXAMPLE.replace('  help: ["帮助", "菜单"]\n', '  help: ["帮助", "菜单"]\n  makeup: ["补卡"]\n'),
        people=PEOPLE,
        now="day 3 08:00",
    )
    assert "没有补卡" in await reply(h, "u01", "补卡 2")
