"""Member commands (progress, leaderboard, today, help): the whole message, trimmed, equals
one of the command words. Asked in the group, the answer comes privately when the member can
be reached privately, otherwise in the group with an @; asked privately it comes back
privately. The same question asked again within 30 s is answered once, and no member gets
more than 3 answers a minute.
"""

from __future__ import annotations

import pytest

from storage import repo
from tests.harness import Harness, members

PEOPLE = ("u01:小明", "u02:小红", "u03:小刚")
COMMAND_WORDS = {
    "progress": "📋 小明 的学习进度",
    "leaderboard": "🏆 打卡总排行榜",
    "today": "📅 第2天安排",
    "help": "🤖 我是Python 入门体验营的助教机器人",
}


def replies(h: Harness, member_id: str):
    """Answers to the member's commands: privately, or in the group mentioning only them."""
    return [
        s
        for s in h.sent
        if s.kinds == ("reply",) and (s.chat == f"dm:{member_id}" or s.mentions == (member_id,))
    ]


def unreachable(h: Harness, member_id: str) -> None:
    """The member is known not to be the account's friend (WeChat refused a private message)."""
    with h.bot.db.begin() as conn:
        repo.set_reachable(conn, member_id, False)


@pytest.mark.parametrize(
    ("word", "start"),
    [
        ("进度", COMMAND_WORDS["progress"]),
        ("我的进度", COMMAND_WORDS["progress"]),
        ("排行榜", COMMAND_WORDS["leaderboard"]),
        ("今日安排", COMMAND_WORDS["today"]),
        ("课表", COMMAND_WORDS["today"]),
        ("帮助", COMMAND_WORDS["help"]),
        ("菜单", COMMAND_WORDS["help"]),
    ],
)
async def test_command_in_the_group_is_answered_privately(word, start):
    h = await Harness.start(people=members(*PEOPLE))
    await h.until("day 2 10:00")
    room_before = len(h.room())
    await h.say("u01", word)
    await h.settle()
    answer = replies(h, "u01")
    assert [(s.chat, s.kinds) for s in answer] == [("dm:u01", ("reply",))]
    assert answer[0].text.startswith(start)
    assert h.local(answer[0]).startswith("02 10:00")
    assert len(h.room()) == room_before  # the group stays quiet
    await h.stop()


@pytest.mark.parametrize(
    ("word", "start"),
    [
        ("进度", COMMAND_WORDS["progress"]),
        ("排行榜", COMMAND_WORDS["leaderboard"]),
        ("课表", COMMAND_WORDS["today"]),
        ("帮助", COMMAND_WORDS["help"]),
    ],
)
async def test_command_in_the_group_from_a_non_friend_is_answered_in_the_group_mentioning_the_sender(
    word, start
):
    h = await Harness.start(people=members(*PEOPLE))
    unreachable(h, "u01")
    await h.until("day 2 10:00")
    await h.say("u01", word)
    await h.settle()
    answer = replies(h, "u01")
    assert [(s.chat, s.kinds, s.mentions) for s in answer] == [("room", ("reply",), ("u01",))]
    assert answer[0].text.startswith(start)
    assert h.local(answer[0]).startswith("02 10:00")
    assert h.dms() == []
    await h.stop()


@pytest.mark.parametrize(
    ("word", "start"),
    [
        ("进度", COMMAND_WORDS["progress"]),
        ("排行榜", COMMAND_WORDS["leaderboard"]),
        ("课表", COMMAND_WORDS["today"]),
        ("帮助", COMMAND_WORDS["help"]),
    ],
)
async def test_command_in_private_is_answered_in_private(word, start):
    h = await Harness.start(people=members(*PEOPLE))
    await h.until("day 2 10:00")
    room_before = len(h.room())
    await h.dm("u01", f" {word} ")
    await h.settle()
    answer = h.dms("u01")
    assert len(answer) == 1
    assert answer[0].text.startswith(start)
    assert len(h.room()) == room_before
    await h.stop()


@pytest.mark.parametrize("text", ["@CohortBot 进度", "@CohortBot\u2005进度", "  进度 ", "进度\n"])
async def test_command_with_bot_mention_or_spaces(text):
    h = await Harness.start(people=members(*PEOPLE))
    await h.until("day 2 10:00")
    await h.say("u01", text)
    await h.settle()
    assert [s.text.splitlines()[0] for s in replies(h, "u01")] == ["📋 小明 的学习进度（Python 入门体验营）"]
    assert [s.chat for s in replies(h, "u01")] == ["dm:u01"]
    await h.stop()


@pytest.mark.parametrize("text", ["进度呢", "我的进度怎么样", "查看排行榜", "帮助一下"])
async def test_a_command_word_inside_a_longer_message_is_not_a_command(text):
    h = await Harness.start(people=members(*PEOPLE))
    await h.until("day 2 10:00")
    await h.say("u01", text)
    await h.dm("u02", text)
    await h.settle()
    assert replies(h, "u01") == []
    assert h.dms() == []
    await h.stop()


async def test_the_same_command_within_30_seconds_in_the_group_is_answered_once():
    h = await Harness.start(people=members(*PEOPLE))
    await h.until("day 2 10:00")
    await h.say("u01", "进度")
    await h.until("day 2 10:00:10")
    await h.say("u01", "进度")
    await h.until("day 2 10:00:20")
    await h.say("u01", "我的进度")  # another word for the same command
    await h.say("u02", "进度")  # someone else asking is answered
    await h.say("u01", "排行榜")  # another command is answered
    await h.settle()
    assert [s.text.splitlines()[0] for s in replies(h, "u01")] == [
        "📋 小明 的学习进度（Python 入门体验营）",
        "🏆 打卡总排行榜（前 10 名）",
    ]
    assert len(replies(h, "u02")) == 1
    # Once the 30 s are over the same question gets a fresh answer.
    await h.until("day 2 10:00:35")
    await h.say("u01", "进度")
    await h.settle()
    assert len([s for s in replies(h, "u01") if s.text.startswith("📋")]) == 2
    # A fourth answer within a minute is one too many; a minute after the first, fine again.
    await h.until("day 2 10:00:40")
    await h.say("u01", "今日安排")
    await h.settle()
    assert len(replies(h, "u01")) == 3
    await h.until("day 2 10:01:01")
    await h.say("u01", "课表")
    await h.settle()
    assert [s.text.splitlines()[0] for s in replies(h, "u01")][3:] == ["📅 第2天安排"]
    assert all(s.chat == "dm:u01" for s in replies(h, "u01"))
    assert h.room()[-1].text.startswith("☀️ 晨读开始啦")  # none of it in the group
    await h.stop()


async def test_the_same_command_within_30_seconds_from_a_non_friend_is_answered_once_in_the_group():
    h = await Harness.start(people=members(*PEOPLE))
    unreachable(h, "u01")
    await h.until("day 2 10:00")
    await h.say("u01", "进度")
    await h.until("day 2 10:00:10")
    await h.say("u01", "我的进度")
    await h.settle()
    assert [(s.chat, s.mentions) for s in replies(h, "u01")] == [("room", ("u01",))]
    await h.stop()


async def test_today_before_during_and_after_the_cohort():
    h = await Harness.start(people=members(*PEOPLE), now="day 0 10:00")
    await h.say("u01", "今日安排")
    await h.settle()
    assert replies(h, "u01")[-1].text == "📅 Python 入门体验营 将于 12月1日 开始，敬请期待！"

    await h.until("day 2 10:00")
    await h.say("u01", "今日安排")
    await h.settle()
    day2 = replies(h, "u01")[-1].text.splitlines()
    assert day2[0] == "📅 第2天安排"
    assert day2[1].startswith("07:30 ☀️ 晨读开始啦")
    assert day2[2].startswith("21:30 ") and "正课" in day2[2]
    assert "「打卡」" in day2[3] and "「晨读打卡」" in day2[3] and "12:00" in day2[3]
    assert len(day2) == 4

    await h.until("day 7 10:00")
    await h.dm("u01", "课表")
    await h.settle()
    day7 = h.dms("u01")[-1].text.splitlines()
    assert day7[0] == "📅 第7天安排"
    assert len(day7) == 2  # nothing scheduled, no check-in: one line saying so
    assert "打卡" not in day7[1]

    await h.until("day 9 10:00")
    await h.say("u02", "今日安排")
    await h.dm("u01", "今日安排")
    await h.settle()
    assert replies(h, "u02")[-1].text == "📅 Python 入门体验营 已经结束啦，感谢参与！"
    assert h.dms("u01")[-1].text == "📅 Python 入门体验营 已经结束啦，感谢参与！"
    await h.stop()


async def test_today_on_day_1_lists_the_opening_and_no_checkin():
    h = await Harness.start(people=members(*PEOPLE), now="day 1 08:00")
    await h.say("u01", "课表")
    await h.settle()
    assert replies(h, "u01")[-1].text == "📅 第1天安排\n19:30 【开营仪式】欢迎来到Python 入门体验营！"
    await h.stop()


async def test_progress_shows_counts_per_track_and_reward_status():
    h = await Harness.start(people=members(*PEOPLE))
    for day in (2, 3, 4):
        await h.until(f"day {day} 08:00")
        await h.say("u01", "晨读打卡")
    await h.say("u01", "打卡")  # day 4's lesson
    await h.settle()
    await h.dm("u01", "进度")
    await h.settle()
    assert h.dms("u01")[-1].text == "\n".join(
        [
            "📋 小明 的学习进度（Python 入门体验营）",
            "· 正课：1/4 天（第4天），今天已打卡 ✅",
            "· 晨读：3/4 天（第2天、第3天、第4天），连续 3 天 🔥，今天已打卡 ✅",
            "· 资料大礼包：还差 1 天",
        ]
    )
    await h.until("day 5 08:00")
    await h.say("u01", "晨读")
    await h.settle()
    await h.until("day 5 09:00")
    await h.say("u01", "进度")
    await h.settle()
    text = replies(h, "u01")[-1].text
    assert "· 正课：1/4 天（第4天），今天还没打卡" in text
    assert "· 晨读：4/4 天（第2天、第3天、第4天、第5天），连续 4 天 🔥，今天已打卡 ✅" in text
    assert "· 资料大礼包：已获得 🎁" in text
    # Someone who did nothing.
    await h.dm("u03", "进度")
    await h.settle()
    assert "· 资料大礼包：还差 4 天" in h.dms("u03")[-1].text
    await h.stop()


async def test_leaderboard_command_counts_all_checkins_and_leaves_out_operators():
    h = await Harness.start(people=members("u01:小明", "u02:小红", "op:助教"), operators=("op",))
    for day in (2, 3):
        await h.until(f"day {day} 08:00")
        await h.say("op", "晨读")
        await h.say("op", "打卡")
        await h.say("u02", "晨读")
        await h.say("u02", "打卡")
    await h.until("day 3 09:00")
    await h.say("u01", "打卡")
    await h.settle()
    await h.dm("u01", "排行榜")
    await h.settle()
    assert h.dms("u01")[-1].text == "🏆 打卡总排行榜（前 10 名）\n🥇 小红 4 次\n🥈 小明 1 次"
    await h.stop()
