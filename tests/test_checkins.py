"""Check-ins (打卡): which group message is one, which day it counts for, how it is
acknowledged, and that nothing a member can type takes the bot down.

Rules: ../shared/playbook-format.md ("Check-ins", "Acknowledgements", "Templates"). The
EXAMPLE playbook has lesson keywords 打卡/完成 and reading keywords 晨读打卡/晨读 (reading
until 12:00), both counting on days 2..5. Counted check-ins are named in roll calls (the
first of a morning 3 s after it); what counted is read from the database; a check-in that
does not count is told privately, never in the group.
"""

from __future__ import annotations

import logging

import pytest

from bot.transports.base import Member
from storage import repo
from tests.harness import EXAMPLE, Harness, members

PEOPLE = ("u01:小明", "u02:小红", "u03:小刚")
# The lesson track acknowledges each check-in on its own, with its `ack` template.
EACH = EXAMPLE.replace(
    "    days: [2, 3, 4, 5]\n    ack:", "    days: [2, 3, 4, 5]\n    acknowledge: each\n    ack:"
)
assert EACH != EXAMPLE


def room_lines(h: Harness) -> list[str]:
    """Every line the bot posted in the group (folded acknowledgements are one line each)."""
    return [line for s in h.room() for line in s.text.splitlines()]


def rollcalls(h: Harness) -> list[tuple[str, str]]:
    """(local time, text) of every roll call in the group."""
    return [(h.local(s), s.text) for s in h.room() if "rollcall" in s.kinds]


def counted(h: Harness, track: str, day: int) -> set[str]:
    """Who has a counted check-in on that track and day."""
    with h.bot.db.connect() as conn:
        return repo.checked_in_ids(conn, h.run.id, track, day)


def private(h: Harness, member_id: str) -> list[tuple[str, tuple[str, ...]]]:
    """(text, kinds) of the private messages the member got."""
    return [(s.text, s.kinds) for s in h.dms(member_id)]


def mentioned(h: Harness, member_id: str) -> list[str]:
    """Texts of group messages that @-mention the member."""
    return [s.text for s in h.room() if member_id in s.mentions]


async def progress(h: Harness, member_id: str) -> str:
    """Ask the bot, privately, for the member's progress (DMs have no cooldown)."""
    await h.dm(member_id, "进度")
    await h.settle()
    return h.dms(member_id)[-1].text


async def test_checkin_counts_for_the_day_it_was_sent():
    h = await Harness.start(people=members(*PEOPLE))
    await h.until("day 2 08:00")
    await h.say("u01", "打卡")
    await h.settle()
    await h.until("day 3 10:00")
    await h.say("u02", "打卡")
    await h.until("day 3 10:01")
    await h.settle()

    assert counted(h, "lesson", 2) == {"u01"}
    assert counted(h, "lesson", 3) == {"u02"}
    assert rollcalls(h) == [
        ("02 08:00:03", "✅ 第2天打卡播报\n正课 +1（今日 1/3）：小明"),
        ("03 10:00:03", "✅ 第3天打卡播报\n正课 +1（今日 1/3）：小红"),
    ]
    # Day 2's lesson: only 小明 counted, so the day-3 nudge about day 2 skips him.
    assert h.dms("u01") == []
    assert [s.text for s in h.dms("u02")] == ["小红，第2天的课还没完成，今天补上吧～"]
    assert "正课：1/4 天（第2天）" in await progress(h, "u01")
    assert "正课：1/4 天（第3天）" in await progress(h, "u02")
    await h.stop()


async def test_acknowledgement_mentions_the_sender_and_waits_the_ack_window():
    h = await Harness.start(EACH, people=members(*PEOPLE))
    await h.until("day 2 08:00")
    await h.say("u02", "完成啦")
    await h.settle()
    acks = [s for s in h.room() if "打卡成功" in s.text]
    assert len(acks) == 1
    assert acks[0].kinds == ("ack",)
    assert acks[0].mentions == ("u02",)
    assert acks[0].text == "✅ 小红 第2天正课打卡成功（今日 1/3）"
    assert h.local(acks[0]) == "02 08:00:03"
    assert rollcalls(h) == []  # acknowledged on its own, not named again
    await h.stop()


async def test_a_roll_call_names_the_sender_without_a_mention_after_the_ack_window():
    h = await Harness.start(people=members(*PEOPLE))
    await h.until("day 2 08:00")
    await h.say("u02", "完成啦")
    await h.until("day 2 08:01")
    await h.settle()
    assert [(h.local(s), s.kinds, s.text, s.mentions) for s in h.room() if s.kinds != ("post",)] == [
        ("02 08:00:03", ("rollcall",), "✅ 第2天打卡播报\n正课 +1（今日 1/3）：小红", ())
    ]
    await h.stop()


async def test_longest_keyword_wins():
    h = await Harness.start(people=members(*PEOPLE))
    await h.until("day 2 08:00")
    await h.say("u01", "晨读打卡")  # starts with both 晨读打卡 (reading) and 晨读 (reading)
    await h.say("u02", "打卡")  # lesson
    await h.say("u03", "晨读")  # reading, the shorter keyword
    await h.until("day 2 08:01")
    await h.settle()

    assert counted(h, "reading", 2) == {"u01", "u03"}
    assert counted(h, "lesson", 2) == {"u02"}
    assert rollcalls(h) == [
        ("02 08:00:03", "✅ 第2天打卡播报\n正课 +1（今日 1/3）：小红\n晨读 +2（今日 2/3）：小明、小刚")
    ]
    p1 = await progress(h, "u01")
    assert "正课：0/4 天" in p1
    assert "晨读：1/4 天（第2天）" in p1
    p2 = await progress(h, "u02")
    assert "正课：1/4 天（第2天）" in p2
    assert "晨读：0/4 天" in p2
    await h.stop()


@pytest.mark.parametrize(
    "text",
    ["@CohortBot 打卡", "@CohortBot\u2005打卡", "@CohortBot\u2005\u2005打卡 今天学完了", " @CohortBot 打卡"],
    ids=["space", "u2005", "u2005-twice-with-tail", "leading-space"],
)
async def test_leading_bot_mention_is_removed(text):
    h = await Harness.start(people=members(*PEOPLE))
    await h.until("day 2 08:00")
    await h.say("u01", text)
    await h.until("day 2 08:01")
    await h.settle()
    assert counted(h, "lesson", 2) == {"u01"}
    assert rollcalls(h) == [("02 08:00:03", "✅ 第2天打卡播报\n正课 +1（今日 1/3）：小明")]
    await h.stop()


@pytest.mark.parametrize("text", ["@小红 打卡", "@小红\u2005打卡", "我刚打卡了", "今天完成了"])
async def test_text_not_starting_with_a_keyword_is_not_a_checkin(text):
    h = await Harness.start(people=members(*PEOPLE))
    await h.until("day 2 08:00")
    await h.say("u01", text)
    await h.settle()
    assert h.room()[-1].text.startswith("☀️ 晨读开始啦")  # nothing after the morning post
    assert counted(h, "lesson", 2) == set()
    assert "正课：0/4 天" in await progress(h, "u01")
    await h.stop()


@pytest.mark.parametrize("text", ["  打卡  ", "\u3000打卡\n", "\t打卡\r\n", "打卡 "])
async def test_surrounding_spaces_are_trimmed(text):
    h = await Harness.start(people=members(*PEOPLE))
    await h.until("day 2 08:00")
    await h.say("u03", text)
    await h.until("day 2 08:01")
    await h.settle()
    assert counted(h, "lesson", 2) == {"u03"}
    assert rollcalls(h) == [("02 08:00:03", "✅ 第2天打卡播报\n正课 +1（今日 1/3）：小刚")]
    await h.stop()


async def test_checkin_on_day_1_is_not_counted_and_member_is_told():
    h = await Harness.start(people=members(*PEOPLE))
    await h.until("day 1 10:00")
    await h.say("u01", "打卡")
    await h.settle()
    assert private(h, "u01") == [
        ("小明 今天不是正课打卡日哦，第2天、第3天、第4天、第5天再来打卡吧", ("notice",))
    ]
    assert h.room() == []  # never a group message of its own
    assert counted(h, "lesson", 1) == set()
    assert "正课：0/4 天" in await progress(h, "u01")
    await h.stop()


async def test_checkin_on_day_6_is_not_counted():
    h = await Harness.start(people=members(*PEOPLE))
    await h.until("day 6 10:00")
    await h.say("u01", "打卡")
    await h.say("u02", "晨读打卡")
    await h.settle()
    assert not any("打卡成功" in t for t in mentioned(h, "u01") + mentioned(h, "u02"))
    assert counted(h, "lesson", 6) == counted(h, "reading", 6) == set()
    assert "正课：0/4 天" in await progress(h, "u01")
    assert "晨读：0/4 天" in await progress(h, "u02")
    await h.stop()


async def test_checkin_on_day_6_member_is_told():
    h = await Harness.start(people=members(*PEOPLE))
    await h.until("day 6 10:00")
    h.sent.clear()  # the day-2 reminder mentioned u01 too
    await h.say("u01", "打卡")
    await h.say("u01", "完成")  # told once a day and track
    await h.settle()
    assert private(h, "u01") == [("小明 正课打卡已经结束啦，谢谢你的坚持 🌟", ("notice",))]
    assert h.room() == []
    await h.stop()


async def test_checkin_after_until_is_not_counted_and_member_is_told():
    h = await Harness.start(people=members(*PEOPLE))
    await h.until("day 2 11:59")
    await h.say("u01", "晨读打卡")
    await h.until("day 2 12:01")
    await h.say("u02", "晨读打卡")
    await h.settle()
    assert counted(h, "reading", 2) == {"u01"}
    assert rollcalls(h) == [("02 11:59:03", "✅ 第2天打卡播报\n晨读 +1（今日 1/3）：小明")]
    assert private(h, "u02") == [("小红 今天的晨读打卡已在 12:00 截止，明天早点来哦", ("notice",))]
    assert mentioned(h, "u02") == []
    assert "晨读：0/4 天" in await progress(h, "u02")
    # The lesson track has no `until`: late in the evening still counts (and is named after
    # quiet hours, which end at 07:30, one interval later).
    await h.until("day 2 23:50")
    await h.say("u02", "打卡")
    await h.until("day 3 08:00")
    await h.settle()
    assert counted(h, "lesson", 2) == {"u02"}
    assert rollcalls(h)[-1] == ("03 07:50:00", "✅ 第2天打卡播报\n正课 +1（今日 1/3）：小红")
    await h.stop()


async def test_second_checkin_same_day_is_silent_and_counted_once():
    h = await Harness.start(people=members(*PEOPLE))
    await h.until("day 2 08:00")
    await h.say("u01", "打卡")
    await h.settle()
    await h.until("day 2 09:00")
    await h.say("u01", "完成")  # another keyword of the same track
    await h.settle()
    await h.until("day 2 10:00")
    await h.say("u02", "打卡")
    await h.until("day 2 13:00")
    await h.settle()
    assert counted(h, "lesson", 2) == {"u01", "u02"}
    # The repeat is not answered; the duplicate did not raise the count: 小红 is the second,
    # not the third (named once she has waited the longest a name waits in a group of 3).
    assert rollcalls(h) == [
        ("02 08:00:03", "✅ 第2天打卡播报\n正课 +1（今日 1/3）：小明"),
        ("02 12:00:00", "✅ 第2天打卡播报\n正课 +1（今日 2/3）：小红"),
    ]
    assert h.dms("u01") == []
    assert mentioned(h, "u01") == []
    assert "正课：1/4 天（第2天）" in await progress(h, "u01")
    # The next day is a new day.
    await h.until("day 3 08:00")
    await h.say("u01", "打卡")
    await h.until("day 3 08:01")
    await h.settle()
    assert counted(h, "lesson", 3) == {"u01"}
    assert rollcalls(h)[-1] == ("03 08:00:03", "✅ 第3天打卡播报\n正课 +1（今日 1/3）：小明")
    await h.stop()


async def test_done_and_total_exclude_operators_and_the_bot():
    h = await Harness.start(
        people=members("u01:小明", "u02:小红", "op1:助教A", "op2:助教B"), operators=("op1", "op2")
    )
    await h.until("day 2 08:00")
    await h.say("op1", "打卡")
    await h.say("u01", "打卡")
    await h.say("op2", "打卡")
    await h.say("u02", "打卡")
    await h.until("day 2 08:01")
    await h.settle()
    assert counted(h, "lesson", 2) == {"u01", "u02"}
    # (Named a little after 08:00:03: the operators' private replies went first.)
    assert [text for _, text in rollcalls(h)] == ["✅ 第2天打卡播报\n正课 +2（今日 2/2）：小明、小红"]
    # Operators' check-ins are not counted, and answered privately.
    for op in ("op1", "op2"):
        assert private(h, op) == [("收到～助教的打卡不计入统计哦", ("reply",))]
        assert mentioned(h, op) == []
    await h.stop()


async def test_keyword_in_a_private_message_is_not_a_checkin_and_gets_a_hint():
    h = await Harness.start(people=members(*PEOPLE))
    await h.until("day 2 08:00")
    await h.dm("u01", "晨读打卡")
    await h.settle()
    assert [s for s in h.room() if "u01" in s.mentions] == []
    hint = h.dms("u01")
    assert len(hint) == 1
    assert "在群里" in hint[0].text
    assert "晨读打卡" in hint[0].text
    assert "晨读：0/4 天" in await progress(h, "u01")
    await h.stop()


async def test_silently_joined_sender_who_checks_in_is_counted():
    h = await Harness.start(people=members(*PEOPLE))
    await h.until("day 2 08:00")
    await h.group.join(Member("u09", "小新"), announce=False)  # QR-code join: no event
    await h.say("u09", "打卡")
    await h.until("day 2 08:01")
    await h.settle()
    # Counted, and counted among the members in the group: 1 of 4.
    assert counted(h, "lesson", 2) == {"u09"}
    assert rollcalls(h) == [("02 08:00:03", "✅ 第2天打卡播报\n正课 +1（今日 1/4）：小新")]
    assert "正课：1/4 天（第2天）" in await progress(h, "u09")
    await h.until("day 2 21:31")
    await h.settle()
    reminder = [s for s in h.room() if s.text.startswith("今天的课还没完成")]
    assert len(reminder) == 1
    assert reminder[0].mentions == ("u01", "u02", "u03")
    await h.stop()


async def test_bad_messages_never_crash_the_bot(caplog):
    caplog.set_level(logging.WARNING)
    h = await Harness.start(people=members(*PEOPLE))
    await h.until("day 2 08:00")
    for text in [
        "",
        "   ",
        "\u2005",
        "\n\n",
        "x" * 10_240,
        "😀🎉🔥",
        "@CohortBot",
        "@CohortBot\u2005",
        "@",
        "@@@",
        "{",
        "}{",
        "{name}",
        "\x00",
        "@CohortBot {day}",
    ]:
        await h.say("u01", text)
        await h.dm("u01", text)
    await h.settle()
    assert h.room()[-1].text.startswith("☀️ 晨读开始啦")  # none of it got an answer
    assert h.dms() == []
    # A 10 kB message that starts with a keyword is a check-in; its roll call stays short.
    await h.say("u02", "打卡" + "学" * 10_240)
    await h.until("day 2 08:01")
    await h.settle()
    assert counted(h, "lesson", 2) == {"u02"}
    assert rollcalls(h) == [("02 08:00:03", "✅ 第2天打卡播报\n正课 +1（今日 1/3）：小红")]
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors == []
    await h.stop()


async def test_braces_in_member_names_render_literally():
    h = await Harness.start(people=members("u01:{name}", "u02:}{", "u03:{done}/{total}"))
    await h.until("day 1 10:00")
    await h.say("u01", "打卡")  # not a track day: the other template
    await h.until("day 2 08:00")
    await h.say("u01", "打卡")
    await h.say("u02", "打卡")
    await h.say("u03", "晨读打卡")
    await h.until("day 2 13:00")
    await h.say("u02", "晨读打卡")  # too late
    await h.say("u01", "打卡")  # already done: silent
    await h.settle()
    assert rollcalls(h) == [
        (
            "02 08:00:03",
            "✅ 第2天打卡播报\n正课 +2（今日 2/3）：{name}、}{\n晨读 +1（今日 1/3）：{done}/{total}",
        )
    ]
    assert private(h, "u01") == [
        ("{name} 今天不是正课打卡日哦，第2天、第3天、第4天、第5天再来打卡吧", ("notice",))
    ]
    assert private(h, "u02") == [("}{ 今天的晨读打卡已在 12:00 截止，明天早点来哦", ("notice",))]
    assert (await progress(h, "u02")).startswith("📋 }{ 的学习进度")
    # Private nudges about day 2's lesson: only {done}/{total} missed it.
    await h.until("day 3 09:10")
    await h.settle()
    assert [s.text for s in h.dms("u03")] == ["{done}/{total}，第2天的课还没完成，今天补上吧～"]
    await h.stop()


async def test_braces_in_member_names_render_literally_in_each_acks():
    h = await Harness.start(EACH, people=members("u01:{name}", "u02:}{", "u03:{done}/{total}"))
    await h.until("day 2 08:00")
    await h.say("u01", "打卡")
    await h.say("u03", "打卡")
    await h.settle()
    # Folded into one message within the ack window, each line @-mentioning its member.
    assert [(s.text, s.mentions) for s in h.room() if s.kinds == ("ack",)] == [
        (
            "✅ {name} 第2天正课打卡成功（今日 1/3）\n✅ {done}/{total} 第2天正课打卡成功（今日 2/3）",
            ("u01", "u03"),
        )
    ]
    await h.stop()
