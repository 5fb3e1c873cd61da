"""The bot's own words to members follow the playbook's `language:` (default zh), whatever
the operator's language; `messages:` overrides still win."""

from __future__ import annotations

import re

import pytest

from bot import i18n
from bot.playbook import parse
from bot.yamlfile import InputError, parse_yaml
from tests.harness import EXAMPLE, members
from tests.test_messages import MESSAGES

EN = "language: en\n" + EXAMPLE
PEOPLE = ("op1:王助教", "u01:小明", "u02:小红")


def test_the_language_defaults_to_chinese_and_is_zh_or_en():
    assert parse(parse_yaml(EXAMPLE, "pb.yaml")).language == "zh"
    assert parse(parse_yaml(EN, "pb.yaml")).language == "en"
    with pytest.raises(InputError) as err:
        parse(parse_yaml("language: fr\n" + EXAMPLE, "pb.yaml"))
    [problem] = err.value.problems
    assert (problem.line, problem.where) == (1, "language")


async def test_notices_and_roll_calls_in_english(harness):
    i18n.use("zh")  # the operator's language is not the members'
    h = await harness(EN, people=members(*PEOPLE), now="day 1 08:00")
    await h.say("u01", "打卡")  # day 1: no lesson yet
    await h.until("day 2 08:00")
    await h.say("u01", "晨读")
    await h.say("u02", "晨读")
    await h.until("day 2 13:00")
    await h.say("u02", "打卡")
    await h.until("day 3 13:00")
    await h.say("u01", "晨读")  # after 12:00
    await h.until("day 3 13:30")
    await h.settle()
    notices = [s.text for s in h.dms("u01") if s.kinds == ("notice",)]
    assert notices == [
        "小明, today is not a 正课 day; come back to check in on day 2, day 3, day 4, day 5",
        "小明, today's 晨读 check-in closed at 12:00; come a little earlier tomorrow",
    ]
    calls = [s.text for s in h.room() if "rollcall" in s.kinds]
    assert calls[0].startswith("✅ Day 2 check-ins\n晨读 +2 (today 2/")
    assert any(line.startswith("正课 +1 (today 1/") for c in calls for line in c.splitlines())
    for c in calls:
        assert not re.search("打卡播报|今日|没有计入", c), c


async def test_help_progress_today_and_leaderboard_in_english(harness):
    h = await harness(EN, people=members(*PEOPLE), now="day 2 08:00")
    await h.say("u01", "晨读")
    await h.until("day 2 10:00")
    for minute, word in enumerate(("帮助", "进度", "课表", "排行榜")):
        await h.until(f"day 2 10:0{minute * 2}")  # at most 3 answers a minute
        await h.dm("u01", word)
    await h.settle()
    help_, progress, today, board = [s.text for s in h.dms("u01") if s.kinds == ("reply",)]
    assert help_.splitlines() == [
        "🤖 I am the assistant bot of Python 入门体验营; you can send:",
        '· "进度": see your check-in progress',
        '· "排行榜": see the check-in leaderboard',
        '· "今日安排": see today\'s schedule',
        '· "帮助": see this help',
        '正课 check-in: send "打卡" in the group',
        '晨读 check-in: send "晨读打卡" in the group',
    ]
    assert progress.splitlines()[:3] == [
        "📋 小明's progress (Python 入门体验营)",
        "· 正课: 0/4 days, today: not yet",
        "· 晨读: 1/4 days (day 2), today: checked in ✅",
    ]
    assert progress.splitlines()[3] == "· 资料大礼包: 3 more days to go"
    assert today.startswith("📅 Day 2 schedule\n")
    assert 'Check in today: 正课: send "打卡"; 晨读: send "晨读打卡" (before 12:00)' in today
    assert board.startswith("🏆 Check-in leaderboard (top 10)\n🥇 小明 1 time")


async def test_a_chinese_playbook_keeps_its_chinese_words_in_an_english_operators_bot(harness):
    i18n.use("en")
    h = await harness(EXAMPLE, people=members(*PEOPLE), now="day 2 08:00")
    await h.dm("u01", "帮助")
    await h.settle()
    [reply] = [s.text for s in h.dms("u01")]
    assert reply.startswith("🤖 我是Python 入门体验营的助教机器人，可以发送：\n· 「进度」查看你的打卡进度")


async def test_messages_overrides_win_over_the_language(harness):
    text = EN.replace("schedule:", MESSAGES, 1)
    h = await harness(text, people=members(*PEOPLE), operators=("op1",), now="day 2 07:45")
    await h.until("day 2 08:00")
    await h.say("u01", "晨读")
    await h.say("op1", "打卡")
    await h.until("day 2 13:00")
    await h.say("u02", "晨读")
    await h.until("day 2 13:30")
    await h.settle()
    calls = [s.text for s in h.room() if "rollcall" in s.kinds]
    assert calls[0].startswith("📣 Day 2\n晨读 +1 (today 1/")
    assert [s.text for s in h.dms("op1")] == ["助教辛苦啦"]
    assert [s.text for s in h.dms("u02") if s.kinds == ("notice",)] == ["小红，晨读在 12:00 就截止了"]


# ---------------------------------------------------------------- the operators' alerts


def test_the_operators_alerts_follow_the_configs_language(tmp_path):
    from bot import config
    from tests.test_config import CONFIG, ENV, write

    (tmp_path / "playbooks").mkdir()
    (tmp_path / "playbooks" / "python-8day.yaml").write_text(EXAMPLE, encoding="utf-8")
    site = tmp_path

    assert config.load(write(site, CONFIG), env=ENV).settings().language == "zh"
    english = config.load(write(site, "language: en\n" + CONFIG), env=ENV).settings()
    assert english.language == "en"


def _incident():
    from collections import Counter

    from bot.alerts import GROUP_MESSAGES, _Incident

    return _Incident(
        "c1",
        failed=Counter({"nudge": 3}),
        failed_where=Counter({GROUP_MESSAGES: 3}),
        error="room sending is restricted",
        example="x",
        unknown={1: "y", 2: "z"},
    )


@pytest.mark.parametrize(
    ("language", "expected"),
    [
        (
            "zh",
            [
                "⚠️ 【c1】有 3 条消息发送失败（群消息 3 条：私信提醒 ×3），已停止重试。",
                "原因：room sending is restricted",
                "❓ 【c1】有 2 条消息发送到一半被打断",
            ],
        ),
        (
            "en",
            [
                "⚠️ [c1] 3 messages failed to send (group messages 3: private reminder ×3); no more retries.",
                "Reason: room sending is restricted",
                "❓ [c1] 2 messages were cut off while being sent",
            ],
        ),
    ],
)
def test_an_alert_in_each_language(language, expected):
    from bot.alerts import OperatorAlerts

    alerts = OperatorAlerts(None, None, frozenset({"op1"}), lambda: None, language)  # type: ignore[arg-type]
    text = alerts._compose(_incident())
    for part in expected:
        assert part in text, text


def test_the_friends_list_follows_the_configs_language():
    from bot import friends, i18n

    assert "请加好友" in i18n.gettext_in("zh", friends.TO_ADD)
    assert "add them as friends" in i18n.gettext_in("en", friends.TO_ADD)


async def test_split_reminders_and_roll_calls_are_numbered_and_listed_in_english(harness):
    from bot.outbox import Pacing

    people = members("op1:王助教", *(f"u{i:02}:Member{i}" for i in range(1, 13)))
    h = await harness(EN, people=people, now="day 2 08:00", pacing=Pacing(max_mentions=5))
    await h.say("u01", "晨读")
    await h.say("u02", "晨读")
    await h.until("day 2 21:31")
    await h.settle()
    reminders = [s.text for s in h.room() if "remind" in s.kinds]
    assert len(reminders) >= 2
    n = len(reminders)
    for i, text in enumerate(reminders, 1):
        assert text.splitlines()[0].endswith(f" ({i}/{n})") or f" ({i}/{n})" in text, text
        assert "（" not in text, text  # no Chinese brackets in an English playbook's tail
    calls = "\n".join(s.text for s in h.room() if "rollcall" in s.kinds)
    assert "Member1, Member2" in calls and "、" not in calls
