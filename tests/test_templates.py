"""bot.templates: placeholders are parsed once and checked; rendering only substitutes."""

from __future__ import annotations

import re

import pytest

from bot import templates


def test_render_substitutes_every_placeholder():
    out = templates.render(
        "✅ {name} 第{day}天{track}打卡成功（今日 {done}/{total}）",
        {"name": "小明", "day": 2, "track": "正课", "done": 3, "total": 10},
    )
    assert out == "✅ 小明 第2天正课打卡成功（今日 3/10）"


def test_render_repeats_a_placeholder_and_keeps_plain_text():
    assert templates.render("{name}，{name}！", {"name": "小红"}) == "小红，小红！"
    assert templates.render("没有占位符", {"name": "x"}) == "没有占位符"


def test_render_unescapes_doubled_braces_in_the_template():
    assert templates.render("{{字面}} {name}", {"name": "小明"}) == "{字面} 小明"


@pytest.mark.parametrize("value", ["{x}", "{{", "}}", "{", "}", "{name}", "{day}", "{0}", "{name.__class__}"])
def test_values_containing_braces_are_not_reparsed(value):
    out = templates.render("[{name}] 第{day}天", {"name": value, "day": 3})
    assert out == f"[{value}] 第3天"


def test_a_value_naming_another_placeholder_is_not_filled_in():
    out = templates.render("{name} / {reward}", {"name": "{reward}", "reward": "大礼包"})
    assert out == "{reward} / 大礼包"


def test_placeholders_lists_names_in_order():
    assert templates.placeholders("{name} 第{day}天 {name} {{not}}") == ["name", "day", "name"]
    assert templates.placeholders("plain") == []


@pytest.mark.parametrize("template", ["{name} {day}", "", "no placeholders", "{{literal}}", "{day}{day}"])
def test_check_accepts_allowed_placeholders(template):
    templates.check(template, ("name", "day"))  # no exception


def test_check_rejects_an_unknown_placeholder_and_lists_the_allowed_ones():
    with pytest.raises(ValueError) as info:
        templates.check("{name} 获得 {reward}", ("name", "day", "track"))
    msg = str(info.value)
    assert "`{reward}` cannot be filled here" in msg
    assert "{name}, {day}, {track}" in msg


def test_check_accepts_a_generator_of_allowed_names():
    templates.check("{a} {b}", (n for n in ("a", "b")))
    with pytest.raises(ValueError, match=re.escape("may use {a}, {b}")):
        templates.check("{c}", (n for n in ("a", "b")))


@pytest.mark.parametrize(
    ("template", "says"),
    [
        ("a { b", "lone '{' or '}'"),
        ("a } b", "lone '{' or '}'"),
        ("{name", "write '{{' or '}}' for a literal brace"),
        ("{name.attr}", "`{name.attr}` is not a placeholder"),
        ("{name.__class__}", "is not a placeholder"),
        ("{name[0]}", "is not a placeholder"),
        ("{0}", "`{0}` is not a placeholder"),
        ("{}", "`{}` is not a placeholder"),
        ("{name!r}", "may not carry a format"),
        ("{name:>10}", "may not carry a format"),
    ],
)
def test_check_rejects_malformed_templates(template, says):
    with pytest.raises(ValueError) as info:
        templates.check(template, ("name",))
    assert says in str(info.value)


def test_a_track_name_ending_in_the_word_is_not_doubled():
    from bot.templates import render

    values = {"track": "早起打卡", "name": "小明"}
    assert render("{name} 今天的{track}打卡已在 8:00 截止", values) == "小明 今天的早起打卡已在 8:00 截止"
    assert render("{track}打卡提醒", {"track": "晨读"}) == "晨读打卡提醒"
    assert render("{track}打卡{track}打卡", values) == "早起打卡早起打卡"
    assert render("打卡{track}", values) == "打卡早起打卡"  # only the word right after the value


async def test_no_message_says_daka_twice_for_a_track_named_with_it(harness):
    from tests.harness import EXAMPLE, members

    pb = EXAMPLE.replace("    name: 晨读\n", "    name: 早起打卡\n").replace(
        "    days: [2, 3, 4, 5]\n    ack:", "    days: [2, 3, 4, 5]\n    acknowledge: each\n    ack:"
    )
    h = await harness(pb, people=members("u01:小明", "u02:小红"), now="day 2 07:45")
    await h.until("day 2 08:00")
    await h.say("u01", "打卡")  # lesson, acknowledged with the format's ack
    await h.until("day 2 13:00")
    await h.say("u02", "晨读")  # too late on 早起打卡
    await h.dm("u01", "帮助")
    await h.until("day 2 13:01")
    await h.settle()
    texts = [s.text for s in h.sent]
    assert any("早起打卡已在 12:00 截止" in t for t in texts)
    assert any("早起打卡：在群里发「晨读打卡」" in t for t in texts)
    assert not any("打卡打卡" in t.replace("「晨读打卡」", "") for t in texts), texts
