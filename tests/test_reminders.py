"""Schedule items that look at check-ins: remind (@-mention the members not checked in),
nudge (a private message to each of them), leaderboard.

"Not checked in" (playbook-format.md): the members in the group at the time of the item,
less the bot and the operators, with no counted check-in on that track and day. EXAMPLE:
remind lesson at day 2 21:30, nudge lesson day 2 at day 3 09:00, reading leaderboard at
day 5 22:00.
"""

from __future__ import annotations

import itertools
from datetime import timedelta

from bot.outbox import Pacing
from bot.transports.base import Member
from tests.harness import EXAMPLE, Harness, members

REMIND = "今天的课还没完成的同学抓紧哦 👇"


def reminders(h: Harness):
    return [s for s in h.room() if s.text.startswith(REMIND)]


def nudges(h: Harness):
    return [s for s in h.dms() if s.text.endswith("今天补上吧～")]


async def test_remind_mentions_exactly_the_members_present_and_not_checked_in():
    h = await Harness.start(
        people=members("u01:小明", "u02:小红", "u03:小刚", "u04:小丽", "op:助教"), operators=("op",)
    )
    await h.until("day 2 10:00")
    await h.say("u01", "打卡")
    await h.say("u02", "晨读打卡")  # another track: still missing the lesson
    await h.group.leave("u03")  # left: not mentioned
    await h.group.join(Member("u05", "小华"))  # joined mid-cohort with a join event
    await h.until("day 2 20:00")
    await h.group.join(Member("u06", "小新"), announce=False)  # QR-code join: no event at all
    await h.until("day 2 21:31")
    await h.settle()

    sent = reminders(h)
    assert len(sent) == 1
    assert h.local(sent[0]) == "02 21:30:00"
    assert sent[0].text == REMIND
    assert set(sent[0].mentions) == {"u02", "u04", "u05", "u06"}
    assert len(sent[0].mentions) == 4
    await h.stop()


REMIND_WITH_NUMBERS = EXAMPLE.replace(
    'text: "今天的课还没完成的同学抓紧哦 👇"',
    'text: "今天的课还没完成的同学抓紧哦 👇 第{day}天{track} {done}/{total}"',
)
assert REMIND_WITH_NUMBERS != EXAMPLE


async def test_remind_numbers_count_members_present_less_operators():
    h = await Harness.start(
        REMIND_WITH_NUMBERS,
        people=members("u01:小明", "u02:小红", "u03:小刚", "u04:小丽", "op:助教"),
        operators=("op",),
    )
    await h.until("day 2 10:00")
    await h.say("op", "打卡")
    await h.say("u01", "打卡")
    await h.say("u03", "打卡")
    await h.group.leave("u03")  # checked in, then left: no longer in the numbers
    await h.group.join(Member("u05", "小华"), announce=False)
    await h.until("day 2 21:31")
    await h.settle()
    sent = reminders(h)
    assert [s.text for s in sent] == [REMIND + " 第2天正课 1/4"]
    assert set(sent[0].mentions) == {"u02", "u04", "u05"}
    await h.stop()


async def test_a_checkin_made_on_another_day_does_not_count_for_the_reminder():
    h = await Harness.start(people=members("u01:小明", "u02:小红"))
    await h.until("day 1 10:00")
    await h.say("u01", "打卡")  # day 1 is not a lesson day
    await h.until("day 2 21:31")
    await h.settle()
    assert [set(s.mentions) for s in reminders(h)] == [{"u01", "u02"}]
    await h.stop()


async def test_nobody_missing_means_no_reminder():
    h = await Harness.start(people=members("u01:小明", "u02:小红", "op:助教"), operators=("op",))
    await h.until("day 2 10:00")
    await h.say("u01", "打卡")
    await h.say("u02", "完成")
    await h.until("day 2 23:00")
    await h.settle()
    assert reminders(h) == []
    # Only the morning post and the one roll call naming both went to the room.
    assert [s.kinds for s in h.room() if h.local(s).startswith("02")] == [("post",), ("rollcall",)]
    await h.stop()


async def test_a_member_who_left_and_came_back_is_counted_again():
    h = await Harness.start(people=members("u01:小明", "u02:小红"))
    await h.until("day 2 10:00")
    await h.group.leave("u02")
    await h.until("day 2 11:00")
    await h.group.join(Member("u02", "小红"))
    await h.until("day 2 21:31")
    await h.settle()
    assert [set(s.mentions) for s in reminders(h)] == [{"u01", "u02"}]
    await h.stop()


async def test_mentions_are_split_by_max_mentions_in_member_order():
    people = [Member(f"u{i:03d}", f"学员{i:03d}") for i in range(1, 46)]
    h = await Harness.start(people=people, pacing=Pacing(max_mentions=20))
    await h.until("day 2 21:31")
    await h.settle()

    parts = reminders(h)
    assert [len(s.mentions) for s in parts] == [20, 20, 5]
    assert [m for s in parts for m in s.mentions] == [m.id for m in people]
    texts = [s.text for s in parts]
    assert len(set(texts)) == 3  # never three identical texts in a burst
    assert all(t.startswith(REMIND) for t in texts)
    # Sent one after another, paced, within seconds of the item.
    gaps = [(b.at - a.at).total_seconds() for a, b in itertools.pairwise(parts)]
    assert all(g >= 1.5 for g in gaps), gaps
    assert parts[0].at == h.when("day 2 21:30")
    assert parts[-1].at - parts[0].at <= timedelta(seconds=10)
    await h.stop()


async def test_mention_split_respects_a_smaller_limit():
    people = [Member(f"u{i:02d}", f"学员{i:02d}") for i in range(1, 8)]
    h = await Harness.start(people=people, pacing=Pacing(max_mentions=3))
    await h.until("day 2 21:31")
    await h.settle()
    assert [s.mentions for s in reminders(h)] == [
        ("u01", "u02", "u03"),
        ("u04", "u05", "u06"),
        ("u07",),
    ]
    await h.stop()


async def test_nudge_reaches_each_member_not_checked_in_on_the_nudge_day():
    h = await Harness.start(people=members("u01:小明", "u02:小红", "u03:小刚", "op:助教"), operators=("op",))
    await h.until("day 2 10:00")
    await h.say("u01", "打卡")
    await h.until("day 3 08:00")
    await h.say("u02", "打卡")  # day 3's lesson: day 2 is still missing
    await h.settle()
    await h.until("day 3 08:59")
    assert nudges(h) == []
    await h.until("day 3 12:00")
    await h.settle()

    sent = nudges(h)
    assert sorted(s.chat for s in sent) == ["dm:u02", "dm:u03"]
    for s in sent:
        assert h.when("day 3 09:00") <= s.at < h.when("day 3 09:05")
    assert [s.text for s in h.dms("u02") if s in sent] == ["小红，第2天的课还没完成，今天补上吧～"]
    assert [s.text for s in h.dms("u03")] == ["小刚，第2天的课还没完成，今天补上吧～"]
    assert h.dms("u01") == []
    assert h.dms("op") == []
    await h.stop()


async def test_nudge_uses_the_group_nickname_and_includes_silent_joiners():
    h = await Harness.start(people=[Member("u01", "Wang Xiaoming", alias="小明同学")])
    await h.until("day 2 20:00")
    # A QR-code join on day 2: no event; the member list read before the 21:30 reminder
    # finds them.
    await h.group.join(Member("u02", "小新"), announce=False)
    await h.until("day 3 08:00")
    # Joined after day 2 ended: not nudged about day 2.
    await h.group.join(Member("u03", "小华"), announce=False)
    await h.until("day 3 09:10")
    await h.settle()
    assert [set(s.mentions) for s in reminders(h)] == [{"u01", "u02"}]
    assert [s.text for s in h.dms("u01")] == ["小明同学，第2天的课还没完成，今天补上吧～"]
    assert [s.text for s in h.dms("u02")] == ["小新，第2天的课还没完成，今天补上吧～"]
    assert h.dms("u03") == []
    await h.stop()


LEADERBOARD_EVERY_DAY = EXAMPLE.replace(
    """  - day: 5
    at: "22:00"
    leaderboard:
      track: reading
      top: 10
""",
    """  - day: 5
    at: "22:00"
    leaderboard:
      track: reading
      top: 3
""",
)
assert LEADERBOARD_EVERY_DAY != EXAMPLE


async def test_leaderboard_lists_members_by_days_ties_by_earliest():
    h = await Harness.start(
        people=members("u01:小明", "u02:小红", "u03:小刚", "u04:小丽", "op:助教"), operators=("op",)
    )
    # Reading days: 小红 3; 小刚 2 and 小明 2 (小明 started first, but 小刚 got his second
    # day on day 3, 小明 only on day 4); 小丽 none; the operator 4 (excluded).
    script = {
        2: ["op", "u02", "u01", "u03"],
        3: ["op", "u02", "u03"],
        4: ["op", "u02", "u01"],
        5: ["op"],
    }
    for day, who in script.items():
        for minute, mid in enumerate(who):
            await h.until(f"day {day} 08:{minute * 5:02d}")
            await h.say(mid, "晨读打卡")
    await h.until("day 5 22:00")
    await h.settle()
    board = [s for s in h.room() if s.text.startswith("🏆")]
    assert len(board) == 1
    assert h.local(board[0]) == "05 22:00:00"
    assert board[0].text == "\n".join(
        ["🏆 晨读排行榜（截至第5天）", "🥇 小红 3 天", "🥈 小刚 2 天", "🥉 小明 2 天"]
    )
    await h.stop()


async def test_leaderboard_top_limits_the_list():
    people = [Member(f"u{i:02d}", f"学员{i:02d}") for i in range(1, 6)]
    h = await Harness.start(LEADERBOARD_EVERY_DAY, people=people)
    await h.until("day 2 08:00")
    for m in people:
        await h.say(m.id, "晨读")
    await h.until("day 5 22:01")
    await h.settle()
    board = next(s.text for s in h.room() if s.text.startswith("🏆")).splitlines()
    assert board[1:] == ["🥇 学员01 1 天", "🥈 学员02 1 天", "🥉 学员03 1 天"]
    await h.stop()
