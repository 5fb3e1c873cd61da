"""The outbox keeps every send inside the pacing limits, however much piles up: a gap of
1.5 s in one chat and 3 s across chats, at most 30 sends in any 60 s, at most 20 @s in a
message; acknowledgements that pile up fold into few messages.
"""

from __future__ import annotations

import itertools
from collections import Counter
from datetime import timedelta

from bot.outbox import Pacing
from bot.transports.base import Member
from bot.transports.simulated import Sent
from tests.harness import Harness

N = 200
PEOPLE = [Member(f"p{i:03d}", f"学员{i:03d}") for i in range(1, N + 1)]
OPERATORS = ("op1", "op2")


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
    h = await Harness.start(people=people, operators=OPERATORS, pacing=pacing)

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
    nudges = [s for s in h.dms() if s.text.endswith("今天补上吧～")]
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
    pacing = Pacing(same_chat_seconds=2.0, any_chat_seconds=5.0, per_minute=10, max_mentions=7)
    people = PEOPLE[:30]
    h = await Harness.start(people=people, pacing=pacing)
    await h.until("day 2 08:00")
    for m in people:
        await h.say(m.id, "晨读打卡")
    await h.until("day 3 09:10")
    await h.settle()
    assert pacing_violations(h.sent, pacing) == []
    acks = [s for s in h.room() if "晨读打卡成功" in s.text]
    assert [len(s.mentions) for s in acks] == [7, 7, 7, 7, 2]
    assert len([s for s in h.dms() if s.text.endswith("今天补上吧～")]) == 30
    await h.stop()
