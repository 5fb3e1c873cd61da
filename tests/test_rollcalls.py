"""Roll calls (打卡播报), quiet hours, reminders and nudges that make sense, opt-outs and the
fallbacks for members the account cannot message privately: exact contents and times,
through the whole bot on virtual time.

The EXAMPLE playbook (tests/harness.py): lesson 打卡/完成 and reading 晨读打卡/晨读 (until
12:00) on days 2..5, a reminder about the lesson at day 2 21:30, a nudge at day 3 09:00 about
day 2, a reading reward for 4 days. With 5 learners a roll call is worth sending for 4 names,
and a name waits at most 2 hours for company.
"""

from __future__ import annotations

from sqlalchemy import select

from bot.rollcall import longest_wait, worth
from bot.transports.base import Member
from storage import repo
from tests.harness import EXAMPLE, Harness, members

PEOPLE = members("op1:王助教", "u01:小明", "u02:小红", "u03:小刚", "u04:小美", "u05:小强")
OPS = ("op1",)


def rollcalls(h: Harness) -> list[tuple[str, str]]:
    """(local time, text) of every roll call in the group."""
    return [(h.local(s), s.text) for s in h.room() if "rollcall" in s.kinds]


def with_commands(extra: str) -> str:
    return EXAMPLE.replace('  help: ["帮助", "菜单"]\n', '  help: ["帮助", "菜单"]\n' + extra)


def test_how_many_names_and_how_long_scale_with_the_group():
    assert (worth(5), worth(60), worth(500)) == (4, 12, 34)
    assert [int(longest_wait(n).total_seconds() // 60) for n in (5, 60, 320, 500)] == [120, 120, 25, 25]


async def test_the_first_check_in_of_the_morning_is_named_at_once_then_names_gather(harness):
    h = await harness(people=PEOPLE, operators=OPS, now="day 2 07:45")
    await h.until("day 2 08:00")
    await h.say("u01", "打卡")
    await h.until("day 2 08:05")
    await h.say("u02", "晨读")
    await h.until("day 2 08:06")
    await h.say("u03", "打卡")
    await h.until("day 2 12:00")
    await h.settle()
    assert rollcalls(h) == [
        ("02 08:00:03", "✅ 第2天打卡播报\n正课 +1（今日 1/5）：小明"),
        # Two names are not worth a message in a group of five: they wait for company, two
        # hours at most.
        ("02 10:05:00", "✅ 第2天打卡播报\n正课 +1（今日 2/5）：小刚\n晨读 +1（今日 1/5）：小红"),
    ]
    assert h.dms() == []  # nobody was answered one by one


async def test_enough_names_go_together_but_not_sooner_than_the_interval(harness):
    h = await harness(people=PEOPLE, operators=OPS, now="day 2 07:45")
    await h.until("day 2 08:00")
    await h.say("u01", "打卡")
    for i, who in enumerate(("u02", "u03", "u04", "u05"), 1):
        await h.until(f"day 2 08:0{i}")
        await h.say(who, "打卡")
    await h.until("day 2 09:00")
    await h.settle()
    assert rollcalls(h) == [
        ("02 08:00:03", "✅ 第2天打卡播报\n正课 +1（今日 1/5）：小明"),
        ("02 08:20:03", "✅ 第2天打卡播报\n正课 +4（今日 5/5）：小红、小刚、小美、小强"),
    ]


async def test_a_repeat_is_silent_and_a_late_one_is_told_once_privately(harness):
    h = await harness(people=PEOPLE, operators=OPS, now="day 2 07:45")
    await h.until("day 2 08:00")
    await h.say("u01", "晨读")
    await h.say("u01", "晨读")  # a repeat: silent
    await h.until("day 2 13:00")
    await h.say("u02", "晨读")  # after 12:00
    await h.say("u02", "晨读打卡")  # again: told once is enough
    await h.until("day 2 14:00")
    await h.settle()
    assert [s.text for s in h.room()] == ["✅ 第2天打卡播报\n晨读 +1（今日 1/5）：小明"]
    assert [(s.text, s.kinds) for s in h.dms()] == [
        ("小红 今天的晨读打卡已在 12:00 截止，明天早点来哦", ("notice",))
    ]


async def test_the_reminder_carries_the_waiting_names(harness):
    h = await harness(people=PEOPLE, operators=OPS, now="day 2 18:00")
    await h.until("day 2 19:00")
    await h.say("u01", "打卡")
    await h.until("day 2 21:20")
    await h.say("u02", "打卡")
    await h.until("day 2 21:31")
    await h.settle()
    texts = [(h.local(s), s.kinds, s.text, s.mentions) for s in h.room()]
    assert texts == [
        ("02 19:00:03", ("rollcall",), "✅ 第2天打卡播报\n正课 +1（今日 1/5）：小明", ()),
        (
            "02 21:30:00",
            ("remind",),
            "今天的课还没完成的同学抓紧哦 👇\n\n✅ 第2天打卡播报\n正课 +1（今日 2/5）：小红",
            ("u03", "u04", "u05"),
        ),
    ]


async def test_no_roll_call_in_quiet_hours_the_night_goes_into_the_morning(harness):
    h = await harness(people=PEOPLE, operators=OPS, now="day 2 22:00")
    await h.until("day 2 23:10")
    await h.say("u01", "打卡")  # counts for day 2
    await h.until("day 3 07:40")
    await h.say("u02", "打卡")  # day 3
    await h.until("day 3 08:30")
    await h.settle()
    # The morning's first check-in is named at once, with the night's names.
    assert rollcalls(h) == [
        (
            "03 07:40:03",
            "✅ 第2天打卡播报\n正课 +1（今日 1/5）：小明\n✅ 第3天打卡播报\n正课 +1（今日 1/5）：小红",
        ),
    ]


async def test_the_nights_names_go_a_little_after_quiet_hours_end(harness):
    h = await harness(people=PEOPLE, operators=OPS, now="day 2 22:00")
    await h.until("day 2 23:10")
    await h.say("u01", "打卡")
    await h.until("day 3 08:30")
    await h.settle()
    # 07:30 is the end of quiet hours; the names wait one interval for the morning's first.
    assert rollcalls(h) == [("03 07:50:00", "✅ 第2天打卡播报\n正课 +1（今日 1/5）：小明")]


async def test_welcomes_wait_for_the_end_of_quiet_hours(harness):
    h = await harness(
        EXAMPLE.replace("schedule:", 'welcome: "👋 欢迎 {name}！"\nschedule:'),
        people=PEOPLE,
        operators=OPS,
        now="day 2 22:00",
    )
    await h.until("day 2 23:00")
    await h.group.join(Member("u09", "新同学"))
    await h.until("day 3 08:00")
    await h.settle()
    assert [(h.local(s), s.text, s.mentions) for s in h.room()] == [
        ("03 07:30:00", "👋 欢迎 新同学！", ("u09",))
    ]


async def test_quiet_hours_can_be_turned_off(harness):
    h = await harness(people=PEOPLE, operators=OPS, now="day 2 22:00", quiet_hours=None)
    await h.until("day 2 23:10")
    await h.say("u01", "打卡")
    await h.until("day 2 23:30")
    await h.settle()
    assert rollcalls(h) == [("02 23:10:03", "✅ 第2天打卡播报\n正课 +1（今日 1/5）：小明")]


async def test_acknowledge_each_keeps_one_reply_per_check_in(harness):
    pb = EXAMPLE.replace(
        "    days: [2, 3, 4, 5]\n    ack:", "    days: [2, 3, 4, 5]\n    acknowledge: each\n    ack:"
    )
    h = await harness(pb, people=PEOPLE, operators=OPS, now="day 2 07:45")
    await h.until("day 2 08:00")
    await h.say("u01", "打卡")  # lesson: acknowledged on its own
    await h.say("u02", "晨读")  # reading: a roll call
    await h.until("day 2 08:01")
    await h.settle()
    assert [(h.local(s), s.kinds, s.text, s.mentions) for s in h.room()] == [
        ("02 08:00:03", ("ack",), "✅ 小明 第2天正课打卡成功（今日 1/5）", ("u01",)),
        ("02 08:00:04", ("rollcall",), "✅ 第2天打卡播报\n晨读 +1（今日 1/5）：小红", ()),
    ]


async def test_names_are_never_mentions_unless_asked_and_hostile_names_stay_on_their_line(harness):
    odd = [Member(f"x{i}", n) for i, n in enumerate(["{name}", "}{", "😀" * 40, "A\nB", "长" * 60])]
    h = await harness(people=odd, now="day 2 07:45")
    await h.until("day 2 08:00")
    for m in odd:
        await h.say(m.id, "打卡")
    await h.until("day 2 09:00")
    await h.settle()
    [(_, call)] = rollcalls(h)
    assert call.splitlines() == [
        "✅ 第2天打卡播报",
        "正课 +5（今日 5/5）：{name}、}{、" + "😀" * 40 + "、A B、" + "长" * 39 + "…",
    ]
    assert all(s.mentions == () for s in h.room())


async def test_five_hundred_names_are_split_by_length_and_numbered(harness):
    crowd = [Member(f"m{i:03d}", f"同学{i:03d}") for i in range(500)]
    h = await harness(people=crowd, now="day 2 07:45")
    await h.until("day 2 08:00")
    for m in crowd:
        await h.say(m.id, "打卡")
    await h.until("day 2 09:00")
    await h.settle()
    calls = [s for s in h.room() if "rollcall" in s.kinds]
    named = [
        n
        for s in calls
        for line in s.text.splitlines()
        if "：" in line
        for n in line.split("：", 1)[1].split("、")
    ]
    named = [n.split("（")[0] for n in named]
    assert sorted(named) == sorted(m.name for m in crowd)
    assert all(len(s.text) <= 1000 for s in calls)
    parts = [s for s in calls if s.text.endswith("）") and "/" in s.text.rsplit("（", 1)[1]]
    assert len(parts) >= 2


async def test_mentions_when_the_playbook_asks_for_them(harness):
    h = await harness(
        EXAMPLE.replace("schedule:", "roll_call_mentions: true\nschedule:"), people=PEOPLE, now="day 2 07:45"
    )
    await h.until("day 2 08:00")
    await h.say("u01", "打卡")
    await h.until("day 2 08:01")
    await h.settle()
    [call] = [s for s in h.room() if "rollcall" in s.kinds]
    assert call.mentions == ("u01",)


async def test_names_waiting_at_a_crash_are_named_after_the_restart(harness, tmp_path):
    url = f"sqlite:///{tmp_path / 'bot.db'}"
    h = await harness(people=PEOPLE, operators=OPS, now="day 2 07:45", db_url=url)
    await h.until("day 2 08:00")
    await h.say("u01", "打卡")
    await h.settle()
    await h.until("day 2 08:10")
    await h.say("u02", "打卡")
    h.crash()  # counted, not yet named
    h2 = await harness(people=PEOPLE, operators=OPS, now="day 2 08:30", db_url=url)
    await h2.until("day 2 12:00")
    await h2.settle()
    assert [s.text for s in h2.room() if "rollcall" in s.kinds] == [
        "✅ 第2天打卡播报\n正课 +1（今日 2/5）：小红"
    ]


# --- reminders and nudges that make sense ------------------------------------------------


async def test_a_late_joiner_is_not_nudged_about_a_day_before_they_joined(harness):
    h = await harness(people=PEOPLE, operators=OPS, now="day 2 20:00")
    await h.until("day 3 08:10")
    await h.group.join(Member("u09", "新同学"))
    await h.until("day 3 09:30")
    await h.settle()
    assert sorted(s.chat for s in h.dms() if s.kinds == ("nudge",)) == [f"dm:u0{i}" for i in range(1, 6)]


async def test_day_starts_counts_evening_homework_for_the_day_before(harness):
    h = await harness(
        EXAMPLE.replace("schedule:", 'day_starts: "04:00"\nschedule:'),
        people=PEOPLE,
        operators=OPS,
        now="day 2 20:00",
    )
    await h.until("day 3 00:30")
    await h.say("u01", "打卡")  # evening homework, after midnight: day 2
    await h.until("day 3 04:30")
    await h.say("u02", "打卡")  # a new day
    await h.settle()
    with h.bot.db.connect() as conn:
        assert repo.checked_in_ids(conn, "c1", "lesson", 2) == {"u01"}
        assert repo.checked_in_ids(conn, "c1", "lesson", 3) == {"u02"}
    await h.until("day 3 09:30")
    await h.settle()
    # The day-3 nudge about day 2 leaves out the one who did it at 00:30.
    assert "dm:u01" not in [s.chat for s in h.dms() if s.kinds == ("nudge",)]


async def test_members_who_mute_are_neither_mentioned_nor_nudged_until_they_unmute(harness):
    h = await harness(
        with_commands('  mute: ["免打扰"]\n  unmute: ["恢复提醒"]\n'),
        people=PEOPLE,
        operators=OPS,
        now="day 2 20:00",
    )
    await h.dm("u01", "免打扰")
    await h.say("u02", "免打扰")
    await h.until("day 2 21:31")
    await h.settle()
    [remind] = [s for s in h.room() if s.kinds == ("remind",)]
    assert remind.mentions == ("u03", "u04", "u05")
    assert "之后不再@你" in h.dms("u01")[0].text
    await h.dm("u02", "恢复提醒")
    await h.until("day 3 09:30")
    await h.settle()
    nudged = sorted(s.chat for s in h.dms() if s.kinds == ("nudge",))
    assert nudged == ["dm:u02", "dm:u03", "dm:u04", "dm:u05"]


async def test_mute_is_no_feature_without_keywords(harness):
    h = await harness(people=PEOPLE, operators=OPS, now="day 2 20:00")
    await h.dm("u01", "免打扰")
    await h.until("day 2 21:31")
    await h.settle()
    [remind] = [s for s in h.room() if s.kinds == ("remind",)]
    assert "u01" in remind.mentions


# --- members the account cannot message privately ---------------------------------------


async def test_a_reward_for_a_non_friend_is_asked_for_in_the_group_and_sent_once_they_add_us(harness):
    h = await harness(people=PEOPLE, operators=OPS, now="day 2 07:45")
    h.group.strangers = {"u02"}
    for day in (2, 3, 4, 5):
        await h.until(f"day {day} 08:00")
        await h.say("u02", "晨读")
        await h.say("u01", "晨读")
    await h.until("day 5 08:30")
    await h.settle()
    pack = "恭喜完成 4 天晨读！资料大礼包：https://example.com/pack 提取码 8888"
    assert [s.text for s in h.dms("u01") if s.kinds == ("reward",)] == [pack]
    assert h.dms("u02") == []
    [ask] = [s for s in h.room() if "friend" in s.kinds]
    assert ask.mentions == ("u02",) and "加助教为好友" in ask.text
    assert "example.com" not in ask.text and "8888" not in ask.text  # never the reward in the group
    h.group.befriend("u02")
    await h.dm("u02", "好了")
    await h.settle()
    assert [s.text for s in h.dms("u02")] == [pack]


async def test_nudges_to_non_friends_are_dropped_and_operators_get_one_list_a_day(harness):
    h = await harness(people=PEOPLE, operators=OPS, now="day 2 20:00")
    h.group.strangers = {"u02", "u03"}
    await h.until("day 3 09:30")
    await h.settle()
    assert sorted(s.chat for s in h.dms() if s.kinds == ("nudge",)) == ["dm:u01", "dm:u04", "dm:u05"]
    await h.until("day 4 09:30")
    await h.settle()
    [listing] = [s for s in h.dms("op1") if s.kinds == ("alert",)]
    assert h.local(listing) == "04 09:00:00"
    assert "小红、小刚" in listing.text and "共 2 位" in listing.text
    with h.bot.db.connect() as conn:
        status = dict(
            conn.execute(
                select(repo.out_t.c.member_id, repo.out_t.c.status).where(repo.out_t.c.kind == "nudge")
            ).all()
        )
    assert status["u02"] == status["u03"] == "unreachable"


async def test_a_late_check_in_of_a_non_friend_is_told_in_the_roll_call_footer(harness):
    h = await harness(people=PEOPLE, operators=OPS, now="day 2 07:45")
    with h.bot.db.begin() as conn:
        repo.set_reachable(conn, "u02", False)
    await h.until("day 2 08:00")
    await h.say("u01", "晨读")
    await h.until("day 2 12:30")
    await h.say("u02", "晨读")
    await h.until("day 2 15:00")
    await h.settle()
    assert rollcalls(h)[-1][1] == "⏰ 晨读今天 12:00 已截止，这次没有计入：小红"
    assert h.dms("u02") == []


async def test_a_refusal_for_someone_who_left_is_ignored(harness):
    h = await harness(people=PEOPLE, operators=OPS, now="day 2 20:00")
    h.group.strangers = {"u02"}
    await h.until("day 3 08:59")
    await h.group.leave("u02")
    await h.until("day 3 09:30")
    await h.settle()
    assert [s for s in h.room() if "friend" in s.kinds] == []


async def test_a_non_friends_first_command_and_notice_reach_them_in_the_group(harness):
    h = await harness(people=PEOPLE, operators=OPS, now="day 2 07:45")
    h.group.strangers = {"u02"}
    await h.until("day 2 08:00")
    await h.say("u01", "晨读")
    await h.say("u02", "进度")  # answered privately: refused, so in the group with an @
    await h.until("day 2 12:30")
    await h.say("u02", "晨读")  # too late: private notice refused, so in the footer
    await h.until("day 2 15:00")
    await h.settle()
    [reply] = [s for s in h.room() if s.kinds == ("reply",)]
    assert reply.mentions == ("u02",) and "小红 的学习进度" in reply.text
    assert rollcalls(h)[-1][1].endswith("⏰ 晨读今天 12:00 已截止，这次没有计入：小红")
    assert h.dms("u02") == []


def test_a_scenario_rehearses_members_who_are_not_friends():
    from bot.scenario import parse as parse_scenario
    from bot.simulate import simulate
    from bot.yamlfile import parse_yaml
    from tests.harness import load_playbook

    scenario = parse_scenario(
        parse_yaml(
            "start: 2026-12-01\n"
            "operators: [op1]\n"
            "members:\n"
            "  - {id: op1, name: 王助教}\n"
            "  - {id: u01, name: 小明}\n"
            "  - {id: u02, name: 小红, friend: false}\n"
            "events:\n"
            "  - {at: 'day 3 08:00', join: {id: u03, name: 小刚, friend: false}}\n",
            "scenario.yaml",
        )
    )
    result = simulate(load_playbook(EXAMPLE), scenario)
    nudged = [s.chat for s in result.sent if s.chat.startswith("dm:u")]
    assert nudged == ["dm:u01"]  # the day-3 nudge about day 2: 小红 refused, 小刚 joined after
    [listing] = [s for s in result.sent if s.chat == "dm:op1"]
    assert "小红" in listing.text and "小刚" not in listing.text
