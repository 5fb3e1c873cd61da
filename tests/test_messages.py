"""The bot's fixed words to members, in the playbook's own words (`messages:`): each override
is used where the default was, checked at load like any template, and unset ones keep the
defaults."""

from __future__ import annotations

from datetime import date

import pytest

from bot.playbook import MESSAGE_FIELDS, parse
from bot.transports.base import Member
from bot.yamlfile import InputError, parse_yaml
from tests.harness import EXAMPLE, members

MESSAGES = """messages:
  too_late: "{name}，{track}在 {until} 就截止了"
  not_today: "{name}，今天没有{track}，{days}见"
  roll_call_title: "📣 Day {day}"
  roll_call_reward: "🏅 {reward}：{names}"
  operator_checkin: "助教辛苦啦"
  early_welcome: "欢迎 {name}，{start} 开营"
schedule:"""


def with_messages(text: str = MESSAGES) -> str:
    return EXAMPLE.replace("schedule:", text, 1).replace("tracks:", 'welcome: "欢迎 {name}"\ntracks:', 1)


async def test_overrides_are_used_where_the_defaults_were(harness):
    people = members("op1:王助教", "u01:小明", "u02:小红")
    h = await harness(with_messages(), people=people, operators=("op1",), now="day 2 07:45")
    for day in (2, 3, 4, 5):
        await h.until(f"day {day} 08:00")
        await h.say("u01", "晨读")
    await h.until("day 5 08:01")
    await h.say("op1", "打卡")
    await h.until("day 5 13:00")
    await h.say("u02", "晨读")
    await h.until("day 5 13:01")
    await h.settle()
    calls = [s.text for s in h.room() if "rollcall" in s.kinds]
    assert calls[0].startswith("📣 Day 2\n")
    assert "🏅 资料大礼包：小明" in calls[-1]
    assert [s.text for s in h.dms("op1")] == ["助教辛苦啦"]
    assert [s.text for s in h.dms("u02") if s.kinds == ("notice",)] == ["小红，晨读在 12:00 就截止了"]


async def test_an_early_welcome_and_a_not_today_notice_in_the_playbooks_words(harness):
    h = await harness(with_messages(), people=members("u01:小明"), now="day 0 20:00", start=date(2026, 12, 1))
    await h.group.join(Member("u09", "新同学"))  # the evening before day 1
    await h.until("day 1 08:00")
    await h.say("u01", "打卡")  # day 1: no lesson yet
    await h.until("day 1 08:01")
    await h.settle()
    assert [s.text for s in h.room()] == ["欢迎 新同学，12月1日 开营"]
    assert [s.text for s in h.dms("u01")] == ["小明，今天没有正课，第2天、第3天、第4天、第5天见"]


def test_unset_messages_keep_the_defaults():
    pb = parse(parse_yaml(EXAMPLE, "pb.yaml"))
    assert all(getattr(pb.messages, key) is None for key in MESSAGE_FIELDS)


@pytest.mark.parametrize(("key", "bad"), [("too_late", "{reward}"), ("roll_call_title", "{name}")])
def test_a_placeholder_an_override_cannot_fill_is_an_error_with_its_line(key, bad):
    text = with_messages(f'messages:\n  {key}: "x {bad}"\nschedule:')
    line = next(i + 1 for i, t in enumerate(text.splitlines()) if t.strip().startswith(f"{key}:"))
    with pytest.raises(InputError) as err:
        parse(parse_yaml(text, "pb.yaml"))
    [problem] = err.value.problems
    assert (problem.line, problem.where) == (line, f"messages.{key}")
    assert bad in problem.message


def test_an_unknown_message_key_is_refused_with_a_suggestion():
    text = with_messages('messages:\n  too_lates: "x"\nschedule:')
    with pytest.raises(InputError) as err:
        parse(parse_yaml(text, "pb.yaml"))
    assert "too_late" in str(err.value)
