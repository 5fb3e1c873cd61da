"""Keyword replies and the operators' question digest, through the whole bot on virtual time:
whole-message and contained keywords, answers in private and in the group (folded, with a
per-member cooldown, held over quiet hours), questions settled by an operator, the digest
(one per operator, with who and when, restarts included), and what `validate` says about
a reply keyword that a command or a check-in takes first."""

from __future__ import annotations

import pytest

from bot import playbook, replies
from bot.transports.base import Incoming
from bot.yamlfile import InputError, Problem, parse_yaml
from storage import repo
from tests.harness import members

PEOPLE = members("op1:王助教", "op2:李助教", "u01:小明", "u02:小红", "u03:小刚", "u04:小美", "u05:小强")
OPS = ("op1", "op2")

PLAYBOOK = """\
name: Python 入门体验营
days: 8
timezone: Asia/Shanghai
tracks:
  lesson:
    name: 正课
    keywords: ["打卡", "完成"]
    days: [2, 3, 4, 5]
replies:
  - keywords: ["作业在哪", "怎么交作业"]
    match: contains
    answer: "📮 {name}，作业在群里发「打卡」就算交了"
  - keywords: ["回放"]
    answer: "📺 回放在 https://example.com/replay"
  - keywords: ["优惠还有吗", "还有优惠吗"]
    where: group
    answer: "🎁 优惠到第 8 天 24:00：{name} 请看 https://example.com/enroll"
question_digest_minutes: 30
"""
ENROLL = "https://example.com/enroll"


async def start(harness, text: str = PLAYBOOK, **kw):
    kw.setdefault("people", PEOPLE)
    kw.setdefault("operators", OPS)
    return await harness(text, **kw)


def digests(h, op: str = "op1"):
    return [s for s in h.dms(op) if s.kinds == ("digest",)]


async def say_at(h, member_id: str, text: str, *mentioned: str) -> None:
    """A group message with real @-mentions (the simulated group's `say` gives none)."""
    said = Incoming("room", h.group.member(member_id), text, h.clock.now(), mentions=mentioned)
    await h.bot.engine.on_event(said)


# ---------------------------------------------------------------- matching


def test_keys_ignore_ending_punctuation_emoji_and_width():
    assert replies.key(" 回放？？ ") == replies.key("回放!") == replies.key("回放🙏") == "回放"
    assert replies.key("ＡＢＣ 在哪") == replies.key("abc  在哪") == "abc 在哪"
    assert replies.key("C++") == "c++"  # a symbol that is part of the words stays


@pytest.mark.parametrize(
    "text",
    [
        "作业在哪里交？",
        "作业在哪里交?",
        "有回放吗",
        "请问明天几点上课",
        "怎么安装 Python",
        "打扰了，想问下链接打不开",
        "How do I install it",
        "为什么报错了😭",
    ],
)
def test_questions(text):
    assert replies.is_question(text)


@pytest.mark.parametrize(
    "text", ["？", "??", "收到", "谢谢助教", "今天的内容好实用！", "👍👍", "however, it works"]
)
def test_not_questions(text):
    assert not replies.is_question(text)


# ---------------------------------------------------------------- answers


async def test_a_whole_message_reply_answers_privately(harness):
    h = await start(harness, now="day 2 10:00")
    await h.say("u01", "回放？")
    await h.say("u02", "昨天的回放太棒了")  # not the whole message, and no question: silent
    await h.say("u03", "回放！")
    await h.settle()
    assert [(s.chat, s.text) for s in h.sent] == [
        ("dm:u01", "📺 回放在 https://example.com/replay"),
        ("dm:u03", "📺 回放在 https://example.com/replay"),
    ]
    assert h.room() == []


async def test_a_contains_reply_fills_the_name_and_is_no_question(harness):
    h = await start(harness, now="day 2 20:00")
    await h.say("u01", "请问作业在哪里交？")
    await h.say("u02", "@CohortBot 老师，怎么交作业呀")
    await h.until("day 2 22:00")
    await h.settle()
    assert [(s.chat, s.text) for s in h.sent] == [
        ("dm:u01", "📮 小明，作业在群里发「打卡」就算交了"),
        ("dm:u02", "📮 小红，作业在群里发「打卡」就算交了"),
    ]
    assert digests(h) == []  # answered by the reply: nothing waits for an operator


async def test_a_reply_asked_privately_is_answered_privately(harness):
    h = await start(harness, now="day 2 10:00")
    await h.dm("u04", "回放")
    await h.dm("u04", "优惠还有吗？")  # `where: group`, but asked privately: answered there
    await h.settle()
    assert [(s.chat, s.text[:1]) for s in h.sent] == [("dm:u04", "📺"), ("dm:u04", "🎁")]


async def test_three_askers_get_one_group_answer_naming_them(harness):
    h = await start(harness, now="day 6 20:00")
    await h.say("u01", "优惠还有吗？")
    await h.until("day 6 20:00:04")
    await h.say("u02", "还有优惠吗")
    await h.until("day 6 20:00:09")
    await h.say("u03", "优惠还有吗～")
    await h.settle()
    assert len(h.sent) == 1
    s = h.sent[0]
    assert s.chat == "room" and s.kinds == ("reply",)
    assert s.mentions == ("u01", "u02", "u03")
    assert s.text == f"🎁 优惠到第 8 天 24:00：小明、小红、小刚 请看 {ENROLL}"
    assert h.local(s) == "06 20:00:15"  # FOLD after the first asker
    # The next asker waits for the next answer, SAME_ANSWER_GAP after this one.
    await h.until("day 6 20:02")
    await h.say("u04", "优惠还有吗")
    await h.settle()
    later = h.room()[1:]
    assert [(t.mentions, h.local(t)) for t in later] == [(("u04",), "06 20:05:15")]


async def test_one_member_asking_again_and_again_gets_one_answer(harness):
    h = await start(harness, now="day 3 09:00")
    for minute in range(5):
        await h.until(f"day 3 09:0{minute}")
        await h.say("u01", "回放")
        await h.say("u02", "优惠还有吗")
    await h.settle()
    assert len(h.dms("u01")) == 1
    assert [s.mentions for s in h.room()] == [("u02",)]
    # The cooldown over, the same question is answered again.
    await h.until("day 3 09:15")
    await h.say("u01", "回放")
    await h.settle()
    assert len(h.dms("u01")) == 2


async def test_a_member_who_cannot_be_messaged_privately_is_answered_in_the_group(harness):
    h = await start(harness, now="day 2 10:00")
    h.group.strangers.add("u05")
    await h.say("u05", "回放")
    await h.until("day 2 10:01")  # (settle would wait for the operators' 09:00 list to add)
    # WeChat refused the private answer: it goes to the group with an @.
    assert [(s.chat, s.mentions, s.text) for s in h.room()] == [
        ("room", ("u05",), "📺 回放在 https://example.com/replay")
    ]
    # Known now: the next answer goes to the group at once (after the fold window).
    await h.until("day 2 10:10")
    await h.say("u05", "作业在哪交")
    await h.until("day 2 10:11")
    last = h.room()[-1]
    assert (last.mentions, last.text, h.local(last)) == (
        ("u05",),
        "📮 小强，作业在群里发「打卡」就算交了",
        "02 10:10:15",
    )
    assert h.dms("u05") == []


async def test_group_answers_wait_for_the_end_of_quiet_hours_private_ones_do_not(harness):
    h = await start(harness, now="day 6 23:00")
    await h.say("u01", "优惠还有吗")
    await h.until("day 7 02:00")
    await h.say("u02", "还有优惠吗")
    await h.say("u03", "回放")
    await h.until("day 7 09:00")
    await h.settle()
    assert [(s.chat, h.local(s)) for s in h.sent] == [("dm:u03", "07 02:00:00"), ("room", "07 07:30:00")]
    assert h.room()[0].mentions == ("u01", "u02")  # the night's askers, in the morning's one answer


# ---------------------------------------------------------------- questions and the digest


async def test_a_question_an_operator_answered_is_not_digested(harness):
    h = await start(harness, now="day 2 20:00")
    await h.say("u01", "Python 装不上怎么办？")
    await h.until("day 2 20:10")
    await h.say("op1", "装 3.11 版本就可以了")
    await h.until("day 2 22:00")
    await h.settle()
    assert h.sent == []


async def test_an_operators_at_answers_only_the_members_it_names(harness):
    h = await start(harness, now="day 2 20:00")
    await h.say("u01", "Python 装不上怎么办？")
    await h.say("u02", "请问 pip 是什么")
    await h.until("day 2 20:10")
    await say_at(h, "op1", "@小明 装 3.11 就行", "u01")
    await h.until("day 2 22:00")
    await h.settle()
    (digest,) = digests(h)
    assert "小红" in digest.text and "小明" not in digest.text


async def test_three_unanswered_questions_make_one_digest_per_operator(harness):
    h = await start(harness, now="day 2 21:05")
    await h.say("u01", "作业交了没反应怎么办？")
    await h.until("day 2 21:06")
    await h.say("u02", "请问 pip 是什么")
    await h.until("day 2 21:12")
    await h.dm("u03", "为什么我的代码报错了")
    await h.say("u04", "收到")  # not a question
    await h.until("day 2 22:20")
    await h.settle()
    for op in OPS:
        (digest,) = digests(h, op)
        # When the first question has waited 30 minutes (the second operator's, paced, after).
        assert h.local(digest) == {"op1": "02 21:35:00", "op2": "02 21:35:03"}[op]
        lines = digest.text.splitlines()
        assert "有 3 个问题还没人回答" in lines[0] and "训练营 1 班" in lines[0]
        assert lines[1:4] == [
            "· 小明 21:05 「作业交了没反应怎么办？」",
            "· 小红 21:06 「请问 pip 是什么」",
            "· 小刚 21:12 「为什么我的代码报错了」（私信机器人）",
        ]
    assert [s.chat for s in h.sent] == ["dm:op1", "dm:op2"]  # nothing else, to nobody else


async def test_at_most_one_digest_per_interval(harness):
    h = await start(harness, now="day 2 09:00")
    await h.say("u01", "怎么安装 Python")
    await h.until("day 2 09:31")
    await h.say("u02", "请问 pip 是什么")
    await h.until("day 2 09:45")
    await h.say("u03", "请问 conda 是什么")
    await h.until("day 2 11:00")
    await h.settle()
    assert [(h.local(s), s.text.count("\n· ")) for s in digests(h)] == [
        ("02 09:30:00", 1),
        ("02 10:01:00", 2),  # u02's waited 30 minutes; u03's joins it
    ]


async def test_the_digest_waits_for_the_morning(harness):
    h = await start(harness, now="day 2 23:00")
    await h.say("u01", "作业明天还能补吗？")
    await h.until("day 3 06:00")
    await h.say("u02", "请问几点开始上课")
    await h.until("day 3 09:00")
    await h.settle()
    (digest,) = digests(h)
    assert h.local(digest) == "03 07:30:00"
    assert "· 小明 12月2日 23:00 「作业明天还能补吗？」" in digest.text  # asked on another day: dated
    assert "· 小红 06:00 「请问几点开始上课」" in digest.text


async def test_a_restart_loses_no_question(harness, tmp_path):
    db = f"sqlite:///{tmp_path / 'bot.db'}"
    h = await start(harness, now="day 2 20:00", db_url=db)
    await h.say("u01", "Python 装不上怎么办？")
    await h.until("day 2 20:10")
    h.crash()
    h2 = await start(harness, now="day 2 20:20", db_url=db)
    await h2.say("u02", "请问 pip 是什么")
    await h2.until("day 2 21:00")
    await h2.settle()
    (digest,) = digests(h2)
    assert h2.local(digest) == "02 20:30:00"
    assert "小明" in digest.text and "小红" in digest.text
    assert h.sent == []
    with h2.bot.db.connect() as conn:
        assert repo.waiting_questions(conn, "c1", h2.clock.now()) == []


async def test_the_digest_in_english(harness):
    h = await start(harness, now="day 2 20:00")
    h.bot.engine.replies.language = "en"  # the config's `language: en`
    await h.say("u01", "How do I install Python?")
    await h.dm("u02", "为什么报错")
    await h.until("day 2 21:00")
    await h.settle()
    (digest,) = digests(h)
    lines = digest.text.splitlines()
    assert lines[0] == "❓ [训练营 1 班] Questions nobody has answered yet: 2 (the first has waited 30 min)"
    assert lines[1:3] == [
        "· 小明 20:00 「How do I install Python?」",
        "· 小红 20:00 「为什么报错」 (private message to the bot)",
    ]
    assert lines[3].startswith("Answer in the group")


async def test_an_english_playbook_names_group_askers_with_commas(harness):
    text = PLAYBOOK + "language: en\n"
    h = await start(harness, text, now="day 6 20:00")
    await h.say("u01", "优惠还有吗")
    await h.say("u02", "优惠还有吗")
    await h.settle()
    assert h.room()[0].text == f"🎁 优惠到第 8 天 24:00：小明, 小红 请看 {ENROLL}"


async def test_no_operators_or_zero_minutes_keep_no_questions(harness):
    h = await start(harness, PLAYBOOK.replace("question_digest_minutes: 30", "question_digest_minutes: 0"))
    await h.say("u01", "怎么安装 Python")
    h2 = await start(harness, operators=())
    await h2.say("u01", "怎么安装 Python")
    for one in (h, h2):
        with one.bot.db.connect() as conn:
            assert repo.oldest_question(conn, "c1") is None
    assert h.bot.engine.replies.due(h.run) is None


async def test_a_question_to_another_member_is_not_for_the_operators(harness):
    h = await start(harness, now="day 2 20:00")
    await say_at(h, "u01", "@小红 你作业做完了吗？", "u02")
    await say_at(h, "u01", "@王助教 这题怎么做？", "op1")
    await h.until("day 2 21:00")
    await h.settle()
    (digest,) = digests(h)
    assert "这题怎么做" in digest.text and "你作业做完了吗" not in digest.text


async def test_an_edited_interval_is_taken_at_the_next_look(harness):
    h = await start(harness, now="day 2 20:00")
    await h.say("u01", "怎么安装 Python")
    assert h.bot.engine.replies.due(h.run) == h.when("day 2 20:30")
    h.run.playbook = h.run.playbook.model_copy(update={"question_digest_minutes": 60})
    assert h.bot.engine.replies.due(h.run) == h.when("day 2 21:00")
    await h.until("day 2 21:30")
    await h.settle()
    assert [h.local(s) for s in digests(h)] == ["02 21:00:00"]


# ---------------------------------------------------------------- validate


def parse(text: str) -> playbook.Playbook:
    return playbook.parse(parse_yaml(text, "pb.yaml"))


def line_of(text: str, needle: str) -> int:
    return next(i + 1 for i, line in enumerate(text.splitlines()) if needle in line)


def reply_warnings(text: str) -> list[Problem]:
    return [w for w in parse(text).warnings if w.where.startswith("replies")]


def errors(text: str) -> list[Problem]:
    with pytest.raises(InputError) as info:
        parse(text)
    return info.value.problems


def test_the_test_playbook_and_the_sample_are_silent():
    assert parse(PLAYBOOK).warnings == ()
    from tests.harness import SAMPLE

    sample = playbook.load(SAMPLE)
    assert len(sample.replies) == 3 and sample.question_digest_minutes == 30
    assert [w for w in sample.warnings if w.where.startswith("replies")] == []


def test_a_reply_keyword_that_starts_with_a_check_in_keyword_is_reported_on_its_line():
    text = PLAYBOOK.replace('["回放"]', '["回放", "打卡在哪里"]')
    (w,) = reply_warnings(text)
    assert (w.line, w.where) == (line_of(text, "打卡在哪里"), "replies[1].keywords[1]")
    assert '"打卡"' in w.message and "`lesson`" in w.message and "never answers" in w.message


def test_a_reply_keyword_that_is_a_command_word_is_reported_on_its_line():
    text = PLAYBOOK.replace('["回放"]', '["回放", "进度"]')
    (w,) = reply_warnings(text)
    assert (w.line, w.where) == (line_of(text, '"进度"'), "replies[1].keywords[1]")
    assert "`progress`" in w.message


def test_a_one_character_contained_keyword_is_warned_about():
    text = PLAYBOOK.replace('["作业在哪", "怎么交作业"]', '["作业在哪", "课"]')
    (w,) = reply_warnings(text)
    assert w.line == line_of(text, '"课"') and "one character" in w.message


def test_a_keyword_of_two_replies_or_only_punctuation_is_an_error_with_its_line():
    text = PLAYBOOK.replace('["优惠还有吗", "还有优惠吗"]', '["？？", "回放！"]')
    found = {(p.line, p.where): p.message for p in errors(text)}
    assert '"？？" is only punctuation' in found[(line_of(text, "？？"), "replies[2].keywords[0]")]
    clash = found[(line_of(text, "？？"), "replies[2].keywords[1]")]  # "回放" once its ！ goes
    assert "already a keyword of replies[1]" in clash


def test_an_answer_placeholder_it_cannot_fill_is_an_error():
    text = PLAYBOOK.replace("📺 回放在", "📺 {track}回放在")
    (p,) = errors(text)
    assert (p.line, p.where) == (line_of(text, "{track}回放在"), "replies[1].answer")
    assert "{name}, {playbook}, {day}" in p.message


def test_empty_keywords_and_an_unknown_where_are_errors():
    text = PLAYBOOK.replace('["回放"]', "[]").replace("where: group", "where: everywhere")
    where = {p.where for p in errors(text)}
    assert {"replies[1].keywords", "replies[2].where"} <= where


def test_a_chinese_comma_in_a_reply_keyword_is_a_trap():
    text = PLAYBOOK.replace('["回放"]', '["回放，录播"]')
    (w,) = reply_warnings(text)
    assert "one keyword, not 2" in w.message
