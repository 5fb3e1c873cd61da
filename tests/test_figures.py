"""Figures in texts ({completion} {checked_in} {rewarded} {streak}), the `summary:` item,
leaderboards `by: streak` and streaks in `progress`, through the whole bot on virtual time;
and `validate` refusing a figure where it cannot be filled, on its line, in both languages.

Learners below are the members in the group less the operator ``op1``; a member who never
checks in (Eve) keeps {checked_in} apart from {total}."""

from __future__ import annotations

import pytest

from bot import i18n
from bot.figures import percent
from bot.rollcall import MAX_CHARS
from bot.yamlfile import InputError
from tests.harness import EXAMPLE, SAMPLE, Harness, load_playbook, members

PEOPLE = ("u01:Ann", "u02:Bob", "u03:Cat", "u04:Dan", "u05:Eve", "op1:Op")

FIGURES = """\
name: Figures camp
days: 6
language: en
tracks:
  lesson:
    name: Lesson
    keywords: ["done"]
    days: [2, 3, 4, 5]
  reading:
    name: Reading
    keywords: ["read"]
    days: [2, 3]
    until: "12:00"
rewards:
  - {id: pack, name: Pack, track: reading, count: 2, dm: "{name}: {reward}, reading streak {streak}"}
  - {id: cert, name: Cert, track: lesson, count: 3, dm: "{name}: {reward}"}
commands:
  progress: ["progress"]
schedule:
  - day: 2
    at: "11:00"
    remind: {track: reading, text: "Reading: {checked_in} of {total} ({completion}), {rewarded} rewarded"}
  - day: 3
    at: "09:00"
    nudge: {track: lesson, dm: "{name}: streak {streak}; today {checked_in} of {total} ({completion})"}
  - {day: 4, at: "13:00", post: "So far {completion}; {checked_in} of {total} took part; {rewarded} rewarded"}
"""


async def said(h: Harness, at: str, *lines: str) -> None:
    """At ``at``, each line ("u01 done") is said in the group by the member it starts with."""
    await h.until(at)
    for line in lines:
        who, text = line.split(" ", 1)
        await h.say(who, text)


def test_percent_is_rounded_half_up_and_nobody_is_zero():
    assert [percent(7, 9), percent(1, 8), percent(2, 3), percent(5, 5), percent(0, 0)] == [
        "78%",
        "13%",
        "67%",
        "100%",
        "0%",
    ]


async def test_each_figure_in_a_remind_a_nudge_a_post_and_a_reward(harness):
    h: Harness = await harness(FIGURES, people=members(*PEOPLE), operators=("op1",))
    await said(h, "day 2 08:00", "u01 read", "u02 read", "op1 read")  # an operator's counts for nobody
    await h.until("day 2 11:00")
    await h.settle()
    remind = next(s for s in h.room() if s.text.startswith("Reading:"))
    # That day on the track: 2 of 5 learners; nobody rewarded yet.
    assert remind.text.splitlines()[0] == "Reading: 2 of 5 (40%), 0 rewarded"
    assert set(remind.mentions) == {"u03", "u04", "u05"}

    await said(h, "day 2 13:00", "u03 read")  # past `until`: not counted
    await said(h, "day 2 20:00", "u01 done", "u02 done", "u03 done")
    await said(h, "day 3 08:00", "u01 read", "u03 read", "u01 done")  # Ann's second reading: the pack
    await h.until("day 3 09:00")
    await h.settle()
    assert h.dms("u01")[-1].text == "Ann: Pack, reading streak 2"
    # The nudge about today: each member's streak going into it; today's lesson so far.
    nudged = {s.chat: s.text for s in h.dms() if "; today " in s.text}
    assert nudged == {
        "dm:u02": "Bob: streak 1; today 1 of 5 (20%)",
        "dm:u03": "Cat: streak 1; today 1 of 5 (20%)",
        "dm:u04": "Dan: streak 0; today 1 of 5 (20%)",
        "dm:u05": "Eve: streak 0; today 1 of 5 (20%)",
    }

    await said(h, "day 3 20:00", "u02 done", "u04 done")
    await said(h, "day 4 08:00", "u01 done", "u02 done")  # third lesson day: Ann and Bob's certificate
    await h.until("day 4 13:00")
    await h.settle()
    # The cohort so far: the track days over by 13:00 on day 4 are lesson 2, 3 and reading 2,
    # 3 (lesson 4 is still open): 3 + 3 + 2 + 2 check-ins of 5 learners x 4 days = 50%. Four
    # learners took part; two earned a reward (Ann two of them).
    post = next(s for s in h.room() if s.text.startswith("So far"))
    assert post.text == "So far 50%; 4 of 5 took part; 2 rewarded"


BOARDS = """\
name: Boards
days: 6
language: en
tracks:
  lesson: {name: Lesson, keywords: ["done"], days: [2, 3, 4, 5]}
schedule:
  - {id: by-days, day: 5, at: "21:00", leaderboard: {track: lesson}}
  - id: by-streak
    day: 5
    at: "21:00"
    leaderboard: {track: lesson, by: streak, title: "Streaks on day {day}, {completion} so far"}
  - {id: default-title, day: 5, at: "21:00", leaderboard: {track: lesson, by: streak, top: 1}}
"""


async def test_a_leaderboard_by_streak_ranks_current_runs_not_days(harness):
    h: Harness = await harness(BOARDS, people=members(*PEOPLE), operators=("op1",))
    days = {"u01": (2, 3, 5), "u02": (4, 5), "u03": (2, 3, 4, 5), "u04": (2,)}
    for day in (2, 3, 4, 5):
        await said(h, f"day {day} 20:00", *(f"{who} done" for who, on in days.items() if day in on))
    await h.until("day 5 21:00")
    await h.settle()
    boards = [s.text for s in h.room() if s.kinds == ("leaderboard",)]
    assert boards[0].splitlines()[1:] == ["🥇 Cat 4 days", "🥈 Ann 3 days", "🥉 Bob 2 days", "4. Dan 1 day"]
    # Ann has more days than Bob, but one in a row; Dan's run ended on day 3.
    # Days over by then: 2, 3, 4 (day 5 still open): 3 + 2 + 2 of 5 learners x 3 = 47%.
    assert boards[1].splitlines() == [
        "Streaks on day 5, 47% so far",
        "🥇 Cat 4 days",
        "🥈 Bob 2 days",
        "🥉 Ann 1 day",
    ]
    assert boards[2] == "🔥 Lesson streak leaderboard (as of day 5)\n🥇 Cat 4 days"


SUMMARY = """\
name: Summary camp
days: 4
language: en
tracks:
  lesson: {name: Lesson, keywords: ["done"], days: [2, 3]}
  reading: {name: Reading, keywords: ["read"], days: [3], until: "12:00"}
  extra: {name: Extra, keywords: ["extra"], days: [4]}
rewards:
  - {id: cert, name: Cert, track: lesson, count: 2, dm: "{name}: {reward}"}
schedule:
  - {id: sum3, day: 3, at: "21:00", summary: {}}
"""


async def test_an_english_summary_on_a_known_day_is_one_message(harness):
    h: Harness = await harness(SUMMARY, people=members(*PEOPLE), operators=("op1",))
    await said(h, "day 2 20:00", "u01 done", "u02 done", "u03 done")
    await said(h, "day 3 08:00", "u01 read")
    await said(h, "day 3 20:50", "u01 done")  # named in a roll call at once (the first in hours)
    await said(h, "day 3 20:55", "u02 done")  # waits for the next roll call: it rides in the summary
    await h.until("day 3 21:00")
    await h.settle()
    at_nine = [s for s in h.room() if h.local(s).startswith("03 21:00")]
    assert [s.kinds for s in at_nine] == [("summary",)]
    # Only the day's tracks (not Extra); streaks of two days and more; today's rewards.
    assert at_nine[0].text == "\n".join(
        [
            "🌙 Day 3 summary",
            "Lesson: 2/5 checked in today (40%)",
            "Reading: 1/5 checked in today (20%)",
            "🔥 Lesson streaks: Ann 2 days, Bob 2 days",
            "🎁 Cert earned today: Ann, Bob",
            "",
            "✅ Day 3 check-ins",
            "Lesson +1 (today 2/5): Bob",
            "🎁 Cert unlocked: Bob",
        ]
    )


async def test_a_long_summary_is_split_and_numbered(harness):
    crowd = [f"u{i:03}:Member with a long name {i:03}" for i in range(60)]
    text = SUMMARY.replace("count: 2", "count: 1")  # everyone earns the certificate today
    h: Harness = await harness(text, people=members(*crowd))
    await said(h, "day 3 08:00", *(f"{spec.split(':')[0]} done" for spec in crowd))
    await h.until("day 3 21:00")
    await h.settle()
    parts = [s.text for s in h.room() if s.kinds == ("summary",)]
    n = len(parts)
    assert n > 1
    assert parts[0].startswith("🌙 Day 3 summary\nLesson: 60/60 checked in today (100%)\n")
    for i, part in enumerate(parts, 1):
        assert part.endswith(f" ({i}/{n})")
        assert len(part) <= MAX_CHARS + len(f" ({i}/{n})")
    named = "".join(parts)
    assert all(named.count(spec.split(":")[1]) == 1 for spec in crowd)


def progress(h: Harness, member_id: str) -> str:
    return [s.text for s in h.dms(member_id) if s.text.startswith("📋")][-1]


async def test_progress_shows_the_current_streak_per_track(harness):
    h: Harness = await harness(FIGURES, people=members(*PEOPLE), operators=("op1",))
    for day in (2, 3):
        await said(h, f"day {day} 08:00", "u01 read", "u01 done")
    await said(h, "day 4 08:00", "u01 done")
    await h.dm("u01", "progress")
    await h.settle()
    assert progress(h, "u01").splitlines()[1:3] == [
        "· Lesson: 3/4 days (day 2, day 3, day 4), 3-day streak 🔥, today: checked in ✅",
        "· Reading: 2/2 days (day 2, day 3), 2-day streak 🔥",
    ]
    await h.until("day 5 09:00")
    await h.dm("u01", "progress")  # today's lesson still open: the streak holds
    await h.settle()
    assert "· Lesson: 3/4 days (day 2, day 3, day 4), 3-day streak 🔥, today: not yet" in progress(h, "u01")


CUT_OFF = """\
name: Cut-off
days: 4
language: en
tracks:
  reading: {name: Reading, keywords: ["read"], days: [2, 3, 4], until: "12:00"}
commands:
  progress: ["progress"]
"""


async def test_a_streak_ends_once_the_days_cut_off_has_passed(harness):
    h: Harness = await harness(CUT_OFF, people=members(*PEOPLE))
    for day in (2, 3):
        await said(h, f"day {day} 08:00", "u01 read")
    await h.until("day 4 11:00")
    await h.dm("u01", "progress")
    await h.until("day 4 13:00")
    await h.dm("u01", "progress")
    await h.settle()
    before, after = (s.text.splitlines()[1] for s in h.dms("u01")[-2:])
    assert before == "· Reading: 2/3 days (day 2, day 3), 2-day streak 🔥, today: not yet"
    assert after == "· Reading: 2/3 days (day 2, day 3), today: not yet"


ACKS = """\
name: Acks
days: 4
language: en
tracks:
  lesson:
    name: Lesson
    keywords: ["done"]
    days: [2, 3]
    acknowledge: each
    ack: "{name}: {done}/{total} ({completion}), streak {streak}"
"""


async def test_an_ack_quotes_the_days_completion_and_the_members_streak(harness):
    h: Harness = await harness(ACKS, people=members(*PEOPLE), operators=("op1",))
    await said(h, "day 2 20:00", "u01 done")
    await said(h, "day 3 20:00", "u02 done", "u01 done")
    await h.settle()
    # The two replies close together travel folded in one message.
    acks = [s.text for s in h.room() if "ack" in s.kinds]
    assert acks == ["Ann: 1/5 (20%), streak 1", "Bob: 1/5 (20%), streak 1\nAnn: 2/5 (40%), streak 2"]


async def test_the_sample_says_its_summary_and_closing_figures_in_chinese(harness):
    h: Harness = await harness(
        load_playbook(SAMPLE.read_text(encoding="utf-8"), str(SAMPLE)),
        people=members("u01:小明", "u02:小红", "u03:小刚", "u04:小丽"),
    )
    await said(h, "day 2 08:00", "u01 晨读打卡")
    await said(h, "day 2 20:00", "u01 打卡", "u02 打卡")
    await said(h, "day 3 08:00", "u01 晨读打卡")
    await said(h, "day 3 20:00", "u01 打卡", "u03 打卡")
    await h.until("day 3 22:00")
    await h.settle()
    summary = next(s for s in h.room() if s.kinds == ("summary",) and h.local(s).startswith("03"))
    assert summary.text.splitlines()[:5] == [
        "🌙 第3天小结：今天辛苦啦！",
        "正课：今日 2/4 人打卡（50%）",
        "晨读：今日 1/4 人打卡（25%）",
        "🔥 正课连续打卡：小明 2 天",
        "🔥 晨读连续打卡：小明 2 天",
    ]
    await h.until("day 6 20:00")
    await h.settle()
    closing = next(s for s in h.room() if s.text.startswith("🎓【结营仪式】"))
    # Lesson days 2-5 and reading days 2-5 are over: 4 + 2 check-ins of 4 learners x 8 days.
    assert "3 位同学参与了打卡，4 天正课和晨读的平均完成率是 19%；0 位同学" in closing.text


# --- validate -------------------------------------------------------------------------------

BASE = """\
name: Check camp
days: 5
tracks:
  lesson: {name: 正课, keywords: ["打卡"], days: [2, 3, 4]}
  reading: {name: 晨读, keywords: ["晨读"], days: [2, 3], until: "12:00"}
welcome: "欢迎 {name}"
schedule:
  - {day: 1, at: "19:30", post: 欢迎}
"""


def problem(text: str) -> tuple[int, str]:
    with pytest.raises(InputError) as info:
        load_playbook(text, "pb.yaml")
    (found,) = info.value.problems
    return found.line, found.message


BAD = [
    (
        '  - {day: 3, at: "20:00", post: "连续 {streak} 天"}\n',
        "`{streak}` is one member's streak, and this text goes to the whole group",
        "「{streak}」是某一位同学的连续打卡天数，而这段文字是发给全群的",
    ),
    (
        '  - {day: 3, at: "21:00", remind: {track: lesson, text: "连续 {streak} 天"}}\n',
        "`{streak}` is one member's streak",
        "「{streak}」是某一位同学的连续打卡天数",
    ),
    (
        '  - {day: 2, at: "11:00", post: "完成率 {completion}"}\n',
        "none is over by day 2 11:00: the first, day 2 of track `reading`, ends on day 2 at 12:00",
        "到第 2 天 11:00 还没有一天截止：最早的是打卡项「reading」的第 2 天，在第 2 天 12:00 截止",
    ),
    (
        '  - {day: 1, at: "20:00", post: "已有 {checked_in} 人"}\n',
        "`{checked_in}` here counts the members who have checked in so far, and check-ins begin on day 2",
        "打卡从第 2 天才开始",
    ),
    (
        '  - {day: 4, at: "20:00", post: "{rewarded} 人获奖"}\n',
        "this playbook has no `rewards:`",
        "这个剧本没有 `rewards:`",
    ),
    (
        '  - {day: 4, at: "20:00", summary: {title: "第{day}天 {completion}"}}\n',
        "`{completion}` cannot be filled here; this text may use {playbook}, {day}, {total}",
        "这里不能用「{completion}」；这段文字可以用的有：{playbook}, {day}, {total}",
    ),
    (
        '  - {day: 4, at: "21:00", summary: {tracks: [lesson, reading]}}\n',
        "track `reading` counts only on days 2, 3; a summary of day 4 would have nothing to tell",
        "打卡项「reading」只在第 2, 3 天打卡，第 4 天的小结里没有它的内容",
    ),
    (
        '  - {day: 5, at: "21:00", summary: {}}\n',
        "no track counts check-ins on day 5, so its summary would have nothing to tell",
        "第 5 天没有任何打卡项",
    ),
    (
        '  - {day: 4, at: "21:00", leaderboard: {track: lesson, by: weeks}}\n',
        "'days' or 'streak'",
        "'days' or 'streak'",
    ),
]


@pytest.mark.parametrize(("item", "english", "chinese"), BAD)
def test_a_figure_where_it_cannot_be_filled_is_refused_on_its_line_in_both_languages(item, english, chinese):
    text = BASE + item
    line = len(text.splitlines())  # the item's own line
    found_line, message = problem(text)
    assert found_line == line
    assert english in message, message
    i18n.use("zh")
    found_line, message = problem(text)
    assert found_line == line
    assert chinese in message, message


def test_a_figure_in_the_welcome_is_refused_with_what_it_may_use():
    line, message = problem(BASE.replace('"欢迎 {name}"', '"欢迎 {name}，已有 {checked_in} 人打卡"'))
    assert line == 6
    assert message == "`{checked_in}` cannot be filled here; this text may use {name}, {playbook}, {day}"


REWARD = 'rewards:\n  - {id: r, name: 奖, track: lesson, count: 3, dm: "{name} {streak}"}'


def test_figures_where_they_can_be_filled_load_and_version_1_playbooks_still_do():
    ok = (
        BASE.replace("tracks:", f"{REWARD}\ntracks:")
        + '  - {day: 3, at: "12:00", post: "{completion} {checked_in} {rewarded}"}\n'
        + '  - {day: 3, at: "09:00", nudge: {track: lesson, day: 2, dm: "{name} {streak} {completion}"}}\n'
        + '  - {day: 3, at: "21:00", remind: {track: lesson, text: "{checked_in}/{total} {completion}"}}\n'
        + '  - {day: 3, at: "22:00", summary: {title: "第{day}天 {rewarded}", top_streaks: 0}}\n'
        + '  - {day: 3, at: "22:10", leaderboard: {track: reading, by: streak, title: "{completion}"}}\n'
    )
    pb = load_playbook(ok)
    assert [it.kind for it in pb.schedule][-2:] == ["summary", "leaderboard"]
    assert load_playbook(EXAMPLE).schedule[-1].leaderboard.by == "days"
