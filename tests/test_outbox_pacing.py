"""The outbox keeps every send inside the pacing limits, however much piles up: a gap of
1.5 s in one chat and 3 s across chats, at most 30 sends in any 60 s, at most 20 @s in a
message; acknowledgements that pile up (tracks with `acknowledge: each`) fold into few
messages; roll calls name a crowd in a few messages.
"""

from __future__ import annotations

import itertools
from collections import Counter
from datetime import timedelta

from bot.outbox import Pacing
from bot.transports.base import Member
from bot.transports.simulated import Sent
from tests.harness import EXAMPLE, Harness

N = 200
PEOPLE = [Member(f"p{i:03d}", f"学员{i:03d}") for i in range(1, N + 1)]
OPERATORS = ("op1", "op2")
# Both tracks acknowledge each check-in on its own (the `ack` template, folded).
EACH = EXAMPLE.replace(
    "    days: [2, 3, 4, 5]\n    ack:", "    days: [2, 3, 4, 5]\n    acknowledge: each\n    ack:"
).replace('    until: "12:00"\n', '    until: "12:00"\n    acknowledge: each\n')
assert EACH.count("acknowledge: each") == 2


def names(s: Sent) -> list[str]:
    """The names a roll call message lists."""
    return [
        n
        for line in s.text.splitlines()
        if "：" in line
        for n in line.split("：", 1)[1].split("（")[0].split("、")
    ]


def pacing_violations(sent: list[Sent], pacing: Pacing) -> list[str]:
    out = []
    for a, b in itertools.pairwise(sent):
        gap = (b.at - a.at).total_seconds()
        need = pacing.same_chat_seconds if a.chat == b.chat else pacing.any_chat_seconds
        if gap < need - 1e-6:
            out.append(f"{a.chat}->{b.chat} after {gap:.3f}s at {b.at:%d %H:%M:%S.%f}")
    # Any 60 s window [t, t + 60 s) that starts at a send holds at most per_minute sends.
    times = [s.at for s in sent]
    j = 0
    for i, t in enumerate(times):
        while j < len(times) and times[j] < t + timedelta(seconds=60):
            j += 1
        if j - i > pacing.per_minute:
            out.append(f"{j - i} sends in the minute from {t:%d %H:%M:%S}")
    for s in sent:
        if len(s.mentions) > pacing.max_mentions:
            out.append(f"{len(s.mentions)} mentions at {s.at:%d %H:%M:%S}")
    return out


def same_chat_gaps(sent: list[Sent]) -> list[float]:
    last: dict[str, object] = {}
    gaps = []
    for s in sent:
        if s.chat in last:
            gaps.append((s.at - last[s.chat]).total_seconds())  # type: ignore[operator]
        last[s.chat] = s.at
    return gaps


async def test_a_burst_of_200_checkins_and_nudges_stays_inside_the_pacing():
    pacing = Pacing()
    people = PEOPLE + [Member(op, op) for op in OPERATORS]
    h = await Harness.start(EACH, people=people, operators=OPERATORS, pacing=pacing)

    # Day 2: all 200 members check in to the morning reading within one minute (0.29 s apart).
    await h.until("day 2 08:00")
    start = h.clock.now()
    for i, m in enumerate(PEOPLE):
        await h.until((start + timedelta(seconds=i * 0.29)).isoformat())
        await h.say(m.id, "晨读打卡")
    assert h.clock.now() - start < timedelta(seconds=60)
    await h.settle()
    morning_end = h.clock.now()

    # Day 3, 09:00: the nudge about day 2's lesson goes to all 200 members privately, while
    # 40 of them check in to day 3's lesson in the group during the burst.
    await h.until("day 3 09:00:05")
    asked = {}
    for i, m in enumerate(PEOPLE[:40]):
        await h.until(f"day 3 09:0{1 + i // 10}:{(i % 10) * 5:02d}")
        await h.say(m.id, "打卡")
        asked[m.id] = h.clock.now()
    await h.settle()

    sent = h.sent
    assert pacing_violations(sent, pacing) == []
    assert min(same_chat_gaps(sent)) >= pacing.same_chat_seconds

    # The 200 morning acknowledgements: few messages, everyone mentioned exactly once.
    acks = [s for s in h.room() if "晨读打卡成功" in s.text]
    assert len(acks) <= 30, len(acks)
    assert all(s.at <= morning_end for s in acks)
    counts = Counter(m for s in acks for m in s.mentions)
    assert set(counts) == {m.id for m in PEOPLE}
    assert set(counts.values()) == {1}
    assert sum(s.text.count("晨读打卡成功") for s in acks) == N
    # ... and a member's line travels in the message that mentions them.
    for s in acks:
        for mid in s.mentions:
            assert f"学员{mid[1:]} 第2天晨读打卡成功" in s.text

    # The nudge burst: one private message to each member, operators none.
    nudges = [s for s in h.dms() if s.kinds == ("nudge",)]
    assert Counter(s.chat for s in nudges) == Counter(f"dm:{m.id}" for m in PEOPLE)
    assert all(h.when("day 3 09:00") <= s.at for s in nudges)
    assert max(s.at for s in nudges) > h.when("day 3 09:05")  # a real burst: minutes long

    # The lesson acknowledgements during the nudge burst are answered within seconds: the
    # group's own traffic does not queue behind the private messages.
    lesson_acks = [s for s in h.room() if "第3天正课打卡成功" in s.text]
    assert Counter(m for s in lesson_acks for m in s.mentions) == Counter(list(asked))
    for s in lesson_acks:
        for mid in s.mentions:
            assert s.at - asked[mid] <= timedelta(seconds=10), (mid, h.local(s))
    assert all(len(s.mentions) <= pacing.max_mentions for s in h.room())
    await h.stop()


async def test_a_burst_of_200_checkins_named_in_roll_calls_and_nudges_stays_inside_the_pacing():
    pacing = Pacing()
    people = PEOPLE + [Member(op, op) for op in OPERATORS]
    h = await Harness.start(people=people, operators=OPERATORS, pacing=pacing)

    # Day 2: all 200 members check in to the morning reading within one minute (0.29 s apart).
    await h.until("day 2 08:00")
    start = h.clock.now()
    for i, m in enumerate(PEOPLE):
        await h.until((start + timedelta(seconds=i * 0.29)).isoformat())
        await h.say(m.id, "晨读打卡")
    await h.until("day 2 09:00")
    await h.settle()

    # Day 3, 09:00: the nudge about day 2's lesson goes to all 200 members privately, while
    # 40 of them check in to day 3's lesson in the group during the burst.
    await h.until("day 3 09:00:05")
    for i, m in enumerate(PEOPLE[:40]):
        await h.until(f"day 3 09:0{1 + i // 10}:{(i % 10) * 5:02d}")
        await h.say(m.id, "打卡")
    await h.until("day 3 10:00")
    await h.settle()

    sent = h.sent
    assert pacing_violations(sent, pacing) == []
    assert min(same_chat_gaps(sent)) >= pacing.same_chat_seconds
    assert not any(s.kinds == ("ack",) for s in sent)  # nobody answered one by one

    # Day 2's reading: the first check-ins (those of the first 3 s) are named at once; the
    # others a roll-call interval later, in a few messages, everyone exactly once, no @s.
    day2 = [s for s in h.room() if "rollcall" in s.kinds and h.local(s) < "03"]
    assert h.local(day2[0]) == "02 08:00:03"
    assert names(day2[0]) == [m.name for m in PEOPLE[:11]]  # 0.29 s apart: 0 .. 2.9 s
    assert all(h.local(s).startswith("02 08:20") for s in day2[1:])
    assert 2 <= len(day2) <= 4, [s.text[:40] for s in day2]
    assert Counter(n for s in day2 for n in names(s)) == Counter(m.name for m in PEOPLE)
    assert all(s.mentions == () for s in day2)

    # The nudge burst: one private message to each member, operators none.
    nudges = [s for s in h.dms() if s.kinds == ("nudge",)]
    assert Counter(s.chat for s in nudges) == Counter(f"dm:{m.id}" for m in PEOPLE)
    assert all(h.when("day 3 09:00") <= s.at for s in nudges)
    assert max(s.at for s in nudges) > h.when("day 3 09:05")  # a real burst: minutes long

    # The lesson roll calls during the nudge burst go on time: the group's own traffic does
    # not queue behind the private messages.
    day3 = [s for s in h.room() if "rollcall" in s.kinds and h.local(s) >= "03"]
    assert [names(s) for s in day3] == [["学员001"], [m.name for m in PEOPLE[1:40]]]
    assert h.local(day3[0]).startswith("03 09:01:0")
    assert h.local(day3[1]).startswith("03 09:21:0")
    await h.stop()


async def test_remind_to_200_members_is_paced_and_split():
    pacing = Pacing()
    h = await Harness.start(people=PEOPLE, pacing=pacing)
    await h.until("day 2 21:31")
    await h.settle()
    parts = [s for s in h.room() if s.text.startswith("今天的课还没完成")]
    assert [len(s.mentions) for s in parts] == [20] * 10
    assert len({s.text for s in parts}) == 10
    assert pacing_violations(h.sent, pacing) == []
    await h.stop()


async def test_a_tighter_pacing_is_obeyed():
    # Roll calls @ the members they name here (small groups), so they too must keep to
    # max_mentions.
    pacing = Pacing(
        same_chat_seconds=2.0, any_chat_seconds=5.0, per_minute=10, max_mentions=7, roll_call_mentions=True
    )
    people = PEOPLE[:30]
    h = await Harness.start(people=people, pacing=pacing)
    await h.until("day 2 08:00")
    for m in people:
        await h.say(m.id, "晨读打卡")
    await h.until("day 3 09:10")
    await h.settle()
    assert pacing_violations(h.sent, pacing) == []
    calls = [s for s in h.room() if "rollcall" in s.kinds]
    assert [len(s.mentions) for s in calls] == [7, 7, 7, 7, 2]
    assert Counter(m for s in calls for m in s.mentions) == Counter(m.id for m in people)
    reminds = [s for s in h.room() if "remind" in s.kinds]
    assert [len(s.mentions) for s in reminds] == [7, 7, 7, 7, 2]
    assert len([s for s in h.dms() if s.kinds == ("nudge",)]) == 30
    await h.stop()


async def test_a_queued_picture_goes_out_whole_and_alone(harness):
    """An image row is sent as a picture, never folded into a text message."""
    from storage import repo
    from tests.harness import members

    h = await harness(people=members("op1:王助教", "u01:小明"), operators=("op1",), now="day 2 08:00")
    png = b"\x89PNG\r\n\x1a\n" + b"x" * 5000
    with h.bot.db.begin() as conn:
        now = h.clock.now()
        repo.enqueue(conn, "c1", member_id="op1", text="第一条", kind="reply", now=now)
        repo.enqueue(conn, "c1", member_id="op1", text="report.png", kind="image", now=now, image=png)
    await h.settle()
    assert [s.text for s in h.dms("op1")] == ["第一条", "[report.png]"]
    assert h.group.images == [("op1", "report.png", png)]
