"""The playbook's questionnaire (`survey:`, bot/survey.py) through the whole bot on virtual time:
questions privately one at a time after a join or from a day and time, answers by number or by
text, one polite second asking, one reminder, quiet hours, the link for members the account
cannot message (one group post), a crash that asks nothing twice, commands told apart from
answers, members who left; then `cohortbot survey` in the terminal, xlsx and CSV, and
`validate` on the section's mistakes in both languages."""

from __future__ import annotations

import csv
from datetime import date
from pathlib import Path

import openpyxl
import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from bot import i18n
from bot import playbook as playbooks
from bot.cli import app
from bot.cohort import CohortRun
from bot.plan import calendar
from bot.survey import choice_of, survey_figures, taken_as_command
from bot.yamlfile import InputError
from storage import repo
from tests.harness import EXAMPLE, SAMPLE, Harness, load_playbook, members, scratch_postgres

SURVEY = """\
survey:
  id: intake
  link: https://wj.qq.com/s/123
  remind_after_hours: 6
  questions:
    - text: 你现在的 Python 水平？
      choices: [零基础, 学过一点, 能写小程序]
    - text: 你最想用 Python 做什么？
"""
PB = EXAMPLE + SURVEY
PEOPLE = members("op1:王助教", "u01:小明", "u02:小红")
Q1 = "（1/2）你现在的 Python 水平？\n1. 零基础\n2. 学过一点\n3. 能写小程序\n回复数字 1–3 即可。"
Q2 = "（2/2）你最想用 Python 做什么？"
INTRO_U01 = "👋 小明，想花一分钟了解一下你（共 2 个问题），直接在这里回复就好～"
TEN_KB = "我想用 Python 把每天的报表自动做出来，" * 205  # 10,250 bytes in UTF-8
EMOJI = "🐍🎉🚀"


def invoke(*args: str | Path):
    return CliRunner().invoke(app, [str(a) for a in args], env={"COLUMNS": "200"})


async def start(harness, now: str = "day 1 08:00", playbook: str = PB, **kw) -> Harness:
    kw.setdefault("people", PEOPLE)
    return await harness(playbook, operators=("op1",), now=now, **kw)


def survey_dms(h: Harness, member_id: str) -> list[str]:
    return [s.text for s in h.dms(member_id) if s.kinds == ("survey",)]


def answers(h: Harness) -> list[tuple[str, int, str, int | None]]:
    with h.bot.db.connect() as conn:
        rows = conn.execute(
            select(
                repo.answer_t.c.member_id,
                repo.answer_t.c.question,
                repo.answer_t.c.text,
                repo.answer_t.c.choice,
            ).order_by(repo.answer_t.c.member_id, repo.answer_t.c.question)
        )
        return [tuple(r) for r in rows]  # type: ignore[misc]


# --- asking, answering --------------------------------------------------------------------------


async def test_questions_go_privately_one_at_a_time_to_members_not_operators(harness):
    h = await start(harness)
    await h.settle()
    # Everyone in the group when the bot starts is asked the first question; the operator is not.
    assert survey_dms(h, "u01") == [f"{INTRO_U01}\n\n{Q1}"]
    assert survey_dms(h, "u02")[0].startswith("👋 小红，")
    assert survey_dms(h, "op1") == [] and h.room() == []
    # A member who joins later is asked at once.
    await h.until("day 1 10:00")
    await h.group.join(members("u03:阿杰")[0])
    await h.settle()
    assert survey_dms(h, "u03")[0].startswith("👋 阿杰，")
    # The second question comes only after the first is answered, and nothing after the last.
    await h.dm("u01", "2")
    await h.settle()
    assert survey_dms(h, "u01")[1:] == [Q2]
    await h.dm("u01", "用 Python 做数据分析")
    await h.settle()
    assert survey_dms(h, "u01")[2:] == ["🙏 谢谢小明，问卷填完啦！"]
    await h.dm("u01", "还有别的吗？")  # after the last question: not an answer, no reply
    await h.settle()
    assert len(survey_dms(h, "u01")) == 3
    assert answers(h) == [("u01", 0, "2", 2), ("u01", 1, "用 Python 做数据分析", None)]
    assert survey_dms(h, "u02") and len(survey_dms(h, "u02")) == 1  # still waiting for u02's answer


@pytest.mark.parametrize(
    ("said", "choice"),
    [("2", 2), ("２", 2), ("2.", 2), ("2、学过一点", 2), ("学过一点", 2), (" 能写小程序 ", 3), ("1", 1)],
)
def test_a_choice_is_named_by_number_or_text(said, choice):
    assert choice_of(said, ["零基础", "学过一点", "能写小程序"]) == choice


@pytest.mark.parametrize("said", ["5", "0", "-1", "2 零基础", "学过", "9" * 5000, EMOJI, "二"])
def test_anything_else_is_none_of_the_choices(said):
    assert choice_of(said, ["零基础", "学过一点", "能写小程序"]) is None


async def test_choices_answered_by_text_and_by_number_through_the_bot(harness):
    h = await start(harness)
    await h.settle()
    await h.dm("u01", "能写小程序")
    await h.dm("u02", "１")  # full width, from a Chinese keyboard
    await h.settle()
    assert [(m, q, c) for m, q, _t, c in answers(h)] == [("u01", 0, 3), ("u02", 0, 1)]


async def test_an_answer_out_of_range_is_asked_again_once_then_kept_as_written(harness):
    h = await start(harness)
    await h.settle()
    await h.dm("u01", "5")
    await h.settle()
    again = survey_dms(h, "u01")[1]
    assert again == f"不好意思，没看懂这个回答 🙏 请回复数字 1–3：\n{Q1}"
    assert answers(h) == []  # nothing kept yet: the question is still open
    await h.dm("u01", "5")  # the second time it is kept as written, and the next question comes
    await h.settle()
    assert survey_dms(h, "u01")[2:] == [Q2]
    assert answers(h) == [("u01", 0, "5", None)]


async def test_a_message_before_the_question_arrived_is_not_its_answer(harness):
    h = await start(harness)
    await h.until("day 1 08:00")  # u01's question goes out; u02's waits 3 s (pacing)
    assert [s.chat for s in h.dms()] == ["dm:u01"]
    await h.dm("u02", "你好")  # not an answer to a question u02 has not seen yet
    await h.settle()
    assert [s.chat for s in h.dms()] == ["dm:u01", "dm:u02"]
    assert answers(h) == []
    await h.dm("u02", "1")
    await h.settle()
    assert answers(h) == [("u02", 0, "1", 1)]


async def test_a_command_or_keyword_mid_survey_is_answered_as_such_not_taken_as_an_answer(harness):
    h = await start(harness)
    await h.settle()
    await h.dm("u01", "1")
    await h.settle()  # question 2 (free text) is open
    for minute, said in enumerate(("进度", "打卡", "打卡 今天学了循环"), 1):
        await h.until(f"day 1 09:0{minute}")  # (the same reply twice in 30 s is not sent again)
        await h.dm("u01", said)
        await h.settle()
    replies = [s for s in h.dms("u01") if s.kinds == ("reply",)]
    assert replies[0].text.startswith("📋 小明 的学习进度")
    assert all("在群里发" in r.text for r in replies[1:]) and len(replies) == 3
    assert answers(h) == [("u01", 0, "1", 1)]
    # A keyword run into other words is an answer: "完成" is a check-in keyword of this playbook.
    await h.dm("u01", "完成工作报表自动化")
    await h.settle()
    assert answers(h)[-1] == ("u01", 1, "完成工作报表自动化", None)


def test_what_is_read_as_a_command_and_what_is_an_answer():
    pb = load_playbook(PB.replace("  help: [", '  leave: ["请假"]\n  help: ['))
    run = CohortRun.create("c", pb, calendar(pb, date(2026, 12, 1)), "room")
    assert taken_as_command(run, "进度") == "进度"
    assert taken_as_command(run, "请假 3") == "请假"
    assert taken_as_command(run, "晨读打卡") == "晨读打卡"
    assert taken_as_command(run, "打卡：第一课") == "打卡"
    assert taken_as_command(run, "晨读 今天读完了") == "晨读"
    assert taken_as_command(run, "进度条太慢") is None
    assert taken_as_command(run, "完成工作报表") is None
    assert taken_as_command(run, "想学爬虫") is None


async def test_long_and_emoji_only_answers_are_stored_whole_and_exported(harness, tmp_path):
    db = tmp_path / "bot.db"
    h = await start(harness, db_url=f"sqlite:///{db}")
    await h.settle()
    await h.dm("u01", EMOJI)  # emoji only, to a choice question: asked again, then kept
    await h.dm("u01", EMOJI)
    await h.settle()
    await h.dm("u01", TEN_KB)
    await h.dm("u02", "3")
    await h.settle()
    await h.dm("u02", "a" * 10_240 + "\n" + EMOJI)  # 10 kB in one line, then emoji
    await h.settle()
    assert len(TEN_KB.encode()) >= 10_240
    got = answers(h)
    assert got == [
        ("u01", 0, EMOJI, None),
        ("u01", 1, TEN_KB, None),
        ("u02", 0, "3", 3),
        ("u02", 1, "a" * 10_240 + "\n" + EMOJI, None),
    ]
    await h.stop()

    book = tmp_path / "out" / "survey.xlsx"
    result = invoke("survey", "--db", db, "--xlsx", book, "--csv", tmp_path / "csv")
    assert result.exit_code == 0, result.output
    wb = openpyxl.load_workbook(book)
    assert wb.sheetnames == ["survey", "answers"]
    rows = list(wb["answers"].iter_rows(values_only=True))
    assert rows[0] == ("question", "member id", "name", "answered at (Asia/Shanghai)", "choice", "answer")
    assert [(r[0], r[1], r[4], r[5]) for r in rows[1:]] == [
        (1, "u01", None, EMOJI),
        (1, "u02", "3", "3"),
        (2, "u01", None, TEN_KB),
        (2, "u02", None, "a" * 10_240 + "\n" + EMOJI),
    ]
    with (tmp_path / "csv" / "c1-survey-intake-answers.csv").open(encoding="utf-8-sig", newline="") as f:
        texts = [r["answer"] for r in csv.DictReader(f)]
    assert texts == [EMOJI, "3", TEN_KB, "a" * 10_240 + "\n" + EMOJI]


# --- when: reminders, quiet hours, a day and time -------------------------------------------


async def test_one_reminder_for_the_unanswered_after_n_hours_and_only_one(harness):
    h = await start(harness)
    await h.settle()
    await h.until("day 1 13:59")
    await h.settle()
    assert len(survey_dms(h, "u01")) == 1
    await h.until("day 1 14:00")  # remind_after_hours: 6
    await h.settle()
    reminder = survey_dms(h, "u01")[1]
    assert reminder == f"⏰ 小明，问卷还差一点点，有空回复一下吧～\n\n{Q1}"
    assert h.local(h.dms("u01")[-1]).startswith("01 14:00")
    await h.until("day 2 08:00")
    await h.dm("u01", "1")  # answers question 1, then leaves question 2 waiting for days
    await h.until("day 5 12:00")
    await h.settle()
    assert survey_dms(h, "u01")[2:] == [Q2]  # one reminder per member: none for question 2
    assert len([t for t in survey_dms(h, "u02") if t.startswith("⏰")]) == 1


async def test_quiet_hours_hold_questions_until_morning(harness):
    h = await start(harness, now="day 1 23:00")
    await h.until("day 2 07:29")
    await h.settle()
    assert survey_dms(h, "u01") == []  # the bot started at night: nobody is asked until morning
    await h.until("day 2 07:30")
    await h.settle()
    assert {h.local(s)[:8] for s in h.dms() if s.kinds == ("survey",)} == {"02 07:30"}
    await h.until("day 2 22:40")
    await h.dm("u01", "2")  # answered at night: the next question waits for the morning
    await h.until("day 3 07:29")
    await h.settle()
    assert Q2 not in survey_dms(h, "u01")
    await h.until("day 3 07:31")
    await h.settle()
    second = [s for s in h.dms("u01") if s.text == Q2]
    assert [h.local(s)[:8] for s in second] == ["03 07:30"]


async def test_a_start_day_and_time_asks_everyone_then_and_later_joiners_at_once(harness):
    pb = PB.replace("  id: intake\n", '  id: intake\n  start: {day: 2, at: "20:00"}\n')
    h = await start(harness, playbook=pb)
    await h.until("day 2 19:59")
    await h.settle()
    assert [s for s in h.dms() if s.kinds == ("survey",)] == []
    await h.until("day 2 20:00")
    await h.settle()
    assert {s.chat for s in h.dms() if s.kinds == ("survey",)} == {"dm:u01", "dm:u02"}
    await h.until("day 3 10:00")
    await h.group.join(members("u03:阿杰")[0])
    await h.settle()
    assert survey_dms(h, "u03")[0].startswith("👋 阿杰，")


async def test_a_member_who_left_is_not_asked_further(harness):
    h = await start(harness, now="day 1 21:00")
    await h.settle()
    await h.until("day 1 22:40")
    await h.dm("u01", "1")  # question 2 waits for the morning...
    await h.group.leave("u01")  # ...and u01 leaves before it
    await h.group.leave("u02")  # u02 leaves with question 1 unanswered: no reminder either
    await h.until("day 3 12:00")
    await h.settle()
    assert [h.local(s) for s in h.dms()] == ["01 21:00:00", "01 21:00:03"]  # the first questions only
    assert answers(h) == [("u01", 0, "1", 1)]


# --- members the account cannot message ----------------------------------------------------


async def test_members_not_reachable_privately_get_the_link_in_one_group_post(harness):
    people = members("op1:王助教", *(f"u0{i}:同学{i}" for i in range(1, 7)))
    h = await harness(PB, people=people, operators=("op1",), now="day 1 08:00")
    h.group.strangers = {"u02", "u04", "u05"}
    with h.bot.db.begin() as conn:  # u06 is already known to be unreachable: not even tried
        repo.set_reachable(conn, "u06", False)
    await h.settle()
    [post] = h.room()
    assert post.kinds == ("survey_link",)
    assert (
        post.text == "📝 Python 入门体验营 的小问卷：我暂时无法私信你，请点这里填写：https://wj.qq.com/s/123"
    )
    assert sorted(post.mentions) == ["u02", "u04", "u05", "u06"]
    assert {s.chat for s in h.dms() if s.kinds == ("survey",)} == {"dm:u01", "dm:u03"}
    assert "dm:u06" not in {s.chat for s in h.dms()}
    await h.until("day 3 12:00")
    await h.settle()
    assert [s.kinds for s in h.room()].count(("survey_link",)) == 1  # nor reminded, in the group or not
    with h.bot.db.connect() as conn:
        figures = survey_figures(conn, "c1", h.run.playbook)
    assert figures is not None
    assert (figures.invited, figures.asked, figures.linked, figures.answered) == (6, 2, 4, 0)


# --- restarts -------------------------------------------------------------------------------


async def test_a_crash_mid_survey_asks_nothing_twice_and_loses_no_answer(harness, tmp_path):
    url = f"sqlite:///{tmp_path / 'bot.db'}"
    h = await start(harness, db_url=url)
    await h.settle()
    await h.dm("u01", "2")  # kept; question 2 queued in the same transaction...
    h.crash()  # ...and the bot dies before sending it
    h2 = await start(harness, now="day 1 08:05", db_url=url)
    await h2.settle()
    await h2.until("day 1 09:00")
    await h2.settle()
    sent = [*h.dms(), *h2.dms()]
    assert [s.text for s in sent if s.chat == "dm:u01" and s.text == Q2] == [Q2]  # once
    assert sum(1 for s in sent if s.chat == "dm:u02" and Q1 in s.text) == 1  # not asked again
    assert sum(1 for s in sent if s.chat == "dm:u01" and Q1 in s.text) == 1
    await h2.dm("u01", "自动化办公")
    await h2.settle()
    assert answers(h2) == [("u01", 0, "2", 2), ("u01", 1, "自动化办公", None)]
    # A restart after the reminder went out: not reminded again.
    await h2.until("day 1 14:01")
    await h2.settle()
    await h2.stop()
    h3 = await start(harness, now="day 1 14:05", db_url=url)
    await h3.until("day 2 14:05")
    await h3.settle()
    reminders = [s for s in (*h2.dms("u02"), *h3.dms("u02")) if s.text.startswith("⏰")]
    assert len(reminders) == 1 and survey_dms(h3, "u01") == []


@pytest.mark.postgres
async def test_on_postgres_the_same(harness):
    h = await start(harness, db_url=scratch_postgres())
    await h.settle()
    await h.dm("u01", "5")
    await h.dm("u01", "学过一点")
    await h.settle()
    await h.dm("u01", TEN_KB)
    await h.settle()
    assert answers(h) == [("u01", 0, "学过一点", 2), ("u01", 1, TEN_KB, None)]


# --- languages ------------------------------------------------------------------------------


async def test_an_english_playbook_asks_in_english(harness):
    pb = PB.replace("name: Python 入门体验营\n", "name: Python Starter\nlanguage: en\n").replace(
        "survey:\n", 'survey:\n  thanks: "Thanks {name}, see you in {playbook}!"\n'
    )
    h = await start(harness, playbook=pb)
    await h.settle()
    assert survey_dms(h, "u01") == [
        "👋 小明, a few quick questions (2 in all) so that we know you better; just reply here.\n\n"
        "(1/2) 你现在的 Python 水平？\n1. 零基础\n2. 学过一点\n3. 能写小程序\n"
        "Reply with a number from 1 to 3."
    ]
    await h.dm("u01", "7")
    await h.settle()
    sorry = "Sorry, I did not catch that 🙏 Please reply with a number from 1 to 3:\n(1/2) "
    assert survey_dms(h, "u01")[1].startswith(sorry)
    await h.dm("u01", "1")
    await h.settle()
    await h.dm("u01", "data")
    await h.settle()
    assert survey_dms(h, "u01")[-1] == "Thanks 小明, see you in Python Starter!"


# --- the playbook section ---------------------------------------------------------------------


BAD = (
    EXAMPLE
    + """\
survey:
  id: intake
  start: tomorrow
  questions:
    - text: 水平？
      choices: [零基础, 零基础]
    - text: 打卡方便吗？
      choices: [打卡, 还行]
    - text: 想做什么？
      choice: [a, b]
"""
)


def problems(text: str, language: str) -> list[str]:
    i18n.use(language)
    try:
        load_playbook(text)
    except InputError as exc:
        return [str(p) for p in exc.problems]
    finally:
        i18n.use("en")
    raise AssertionError("the playbook was accepted")


def test_mistakes_in_the_survey_section_are_told_on_their_line_in_english_and_chinese():
    base = EXAMPLE.count("\n")
    en = problems(BAD, "en")
    assert en == [
        f"test.yaml:{base + 3}: survey.start: 'tomorrow' is not a start; write on_join, or a day and "
        'time: {day: 1, at: "20:00"}',
        f"test.yaml:{base + 10}: survey.questions[2].choice: unknown key `choice`; did you mean "
        "`choices`?; allowed here: choices, text",
    ]
    zh = problems(BAD, "zh")
    assert zh[0].startswith(f"test.yaml:{base + 3}: survey.start: ") and "on_join" in zh[0] and "写" in zh[0]
    assert zh[1].startswith(f"test.yaml:{base + 10}: ") and "choices" in zh[1]
    # Once the shape is right, the rules: a day outside the cohort, a choice given twice.
    fixed = BAD.replace("start: tomorrow", 'start: {day: 9, at: "20:00"}').replace(
        "      choice: [a, b]\n", ""
    )
    en = problems(fixed, "en")
    assert en == [
        f"test.yaml:{base + 3}: survey.start.day: day 9 is outside the cohort; use 1..8",
        f"test.yaml:{base + 6}: survey.questions[0].choices[1]: '零基础' is already choice 1; list each "
        "choice once",
    ]
    zh = problems(fixed, "zh")
    assert zh[0].startswith(f"test.yaml:{base + 3}: survey.start.day: ") and "第 9 天" in zh[0]
    assert zh[1].startswith(f"test.yaml:{base + 6}: ") and "零基础" in zh[1]


def test_a_choice_members_cannot_answer_by_its_text_is_warned_about():
    pb = load_playbook(EXAMPLE + SURVEY.replace("[零基础, 学过一点, 能写小程序]", "[零基础, 打卡, 进度]"))
    warned = [str(w) for w in pb.warnings if "survey" in w.where]
    assert len(warned) == 2
    assert '"打卡" is read as "打卡"' in warned[0] and "its number (2)" in warned[0]
    assert '"进度" is read as "进度"' in warned[1]


def test_a_playbook_without_a_survey_is_as_before_and_the_sample_has_one():
    assert load_playbook(EXAMPLE).survey is None
    sample = playbooks.load(SAMPLE).survey
    assert sample is not None and sample.start is None and len(sample.questions) == 2


# --- cohortbot survey -------------------------------------------------------------------------


async def test_the_survey_command_shows_tallies_and_written_answers(harness, tmp_path):
    db = tmp_path / "bot.db"
    people = members("op1:王助教", *(f"u0{i}:同学{i}" for i in range(1, 8)))
    h = await harness(PB, people=people, operators=("op1",), now="day 1 08:00", db_url=f"sqlite:///{db}")
    await h.settle()
    for mid, level in (("u01", "1"), ("u02", "2"), ("u03", "2"), ("u04", "学过一点"), ("u05", "3")):
        await h.dm(mid, level)
    await h.dm("u06", "🤔")
    await h.dm("u06", "🤔")  # none of the choices, twice: kept as written
    await h.settle()
    await h.dm("u01", "数据分析")
    await h.dm("u02", "自动化办公")
    await h.settle()
    await h.stop()

    result = invoke("survey", "--db", db)
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert (
        "intake · c1: 7 had it (7 asked privately, 0 given the link in the group); 6 answered, "
        "2 answered every question"
    ) in out
    lines = [" ".join(line.split()) for line in out.splitlines()]
    # Without the playbook (--db), choices are their numbers; the counts and shares are the database's.
    tally = lines[lines.index("question 1 (6 answers)") :][:9]
    assert "choice count %" in tally
    for row in ("1 1 17 ███", "2 3 50 ██████████", "3 1 17 ███", "(none of the choices) 1 17 ███"):
        assert row in tally
    assert "question 2 (2 answers)" in lines
    assert any(line.startswith("同学1 ") and line.endswith("数据分析") for line in lines)
    assert any(line.startswith("同学6 ") and line.endswith("🤔") for line in lines)

    i18n.use("zh")
    zh = invoke("--lang", "zh", "survey", "--db", db, "--csv", tmp_path / "csv")
    assert zh.exit_code == 0, zh.output
    with (tmp_path / "csv" / "c1-survey-intake.csv").open(encoding="utf-8-sig", newline="") as f:
        tallies = list(csv.reader(f))
    assert tallies[0] == ["问题", "问题内容", "选项", "人数", "占比（%）"]
    assert ["2", "", "（书面回答）", "2", "100"] in tallies


async def test_the_survey_command_with_the_config_names_questions_and_choices(harness, tmp_path):
    db = tmp_path / "bot.db"
    pb_file = tmp_path / "pb.yaml"
    pb_file.write_text(PB, encoding="utf-8")
    config = tmp_path / "config.yaml"
    config.write_text(
        f"database: sqlite:///{db}\ntransport: {{kind: simulated}}\ncohorts:\n"
        f"  - {{id: c1, playbook: {pb_file}, room: 训练营 1 班, start: 2026-12-01}}\n",
        encoding="utf-8",
    )
    h = await start(harness, db_url=f"sqlite:///{db}")
    await h.settle()
    await h.dm("u01", "2")
    await h.dm("u02", "学过一点")
    await h.settle()
    await h.stop()
    result = invoke("survey", "--config", config, "--xlsx", tmp_path / "s.xlsx")
    assert result.exit_code == 0, result.output
    tallies = list(openpyxl.load_workbook(tmp_path / "s.xlsx")["survey"].iter_rows(values_only=True))
    assert tallies[0] == ("question", "question text", "choice", "count", "share (%)")
    assert tallies[1:4] == [
        (1, "你现在的 Python 水平？", "1. 零基础", 0, 0),
        (1, "你现在的 Python 水平？", "2. 学过一点", 2, 100),
        (1, "你现在的 Python 水平？", "3. 能写小程序", 0, 0),
    ]
    assert tallies[4] == (2, "你最想用 Python 做什么？", "(written answers)", 0, 0)


def test_the_survey_command_says_what_is_wrong_in_one_line(tmp_path):
    missing = invoke("survey", "--db", tmp_path / "none.db")
    assert missing.exit_code == 2 and "there is no database file" in missing.output
    assert "Traceback" not in missing.output
    both = invoke("survey")
    assert both.exit_code == 2 and "--config FILE or --db URL" in both.output


async def test_the_survey_command_on_a_cohort_without_a_survey(harness, tmp_path):
    db = tmp_path / "bot.db"
    h = await harness(EXAMPLE, people=PEOPLE, now="day 1 08:00", db_url=f"sqlite:///{db}")
    await h.stop()
    result = invoke("survey", "--db", db, "--xlsx", tmp_path)
    assert result.exit_code == 2
    assert "cohort c1 has no questionnaire" in result.output


async def test_a_big_group_is_asked_at_most_sixty_an_hour(harness):
    """Hundreds of near-identical private messages in a row get accounts logged out: the first
    questions go 60 an hour, and everyone is asked in the end."""
    from bot.survey import BULK_PER_HOUR

    people = members("op1:王助教", *(f"u{i:03}:同学{i}" for i in range(150)))
    h = await start(harness, now="day 1 08:00", people=people)
    await h.until("day 1 08:59")
    await h.settle()
    first_hour = sum(1 for i in range(150) if survey_dms(h, f"u{i:03}"))
    assert first_hour == BULK_PER_HOUR
    await h.until("day 1 11:30")
    await h.settle()
    assert all(survey_dms(h, f"u{i:03}") for i in range(150))
