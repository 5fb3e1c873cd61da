"""Rewards: granted once, on the check-in that makes `count` distinct days on the track; a
private message with the reward's `dm` and, if given, a group announcement.

EXAMPLE: reading-pack (资料大礼包) for 4 distinct reading days; reading counts on days 2..5
until 12:00.
"""

from __future__ import annotations

from tests.harness import EXAMPLE, Harness, members

PEOPLE = ("u01:小明", "u02:小红", "u03:小刚")
REWARD_DM = "恭喜完成 4 天晨读！资料大礼包：https://example.com/pack 提取码 8888"

# Reading counts on days 2..7, so a member can go on checking in after earning the reward.
LONG_READING = EXAMPLE.replace(
    'keywords: ["晨读打卡", "晨读"]\n    days: [2, 3, 4, 5]',
    'keywords: ["晨读打卡", "晨读"]\n    days: [2, 3, 4, 5, 6, 7]',
)
assert LONG_READING != EXAMPLE


def room_lines(h: Harness) -> list[str]:
    return [line for s in h.room() for line in s.text.splitlines()]


def rewards(h: Harness, member_id: str) -> list[str]:
    """Private messages to the member other than the lesson nudges and command replies."""
    return [s.text for s in h.dms(member_id) if not s.text.endswith("今天补上吧～") and "📋" not in s.text]


def announcements(h: Harness) -> list[str]:
    return [line for line in room_lines(h) if line.startswith("🎁")]


async def read_on(h: Harness, days: list[int], who: list[str], at: str = "08:00", text: str = "晨读打卡"):
    for d in days:
        await h.until(f"day {d} {at}")
        for mid in who:
            await h.say(mid, text)
        await h.settle()


async def test_reward_on_the_fourth_distinct_reading_day():
    h = await Harness.start(people=members(*PEOPLE))
    await read_on(h, [2, 3, 4], ["u01"])
    assert rewards(h, "u01") == []
    assert announcements(h) == []

    await read_on(h, [5], ["u01"])
    dms = [s for s in h.dms("u01") if s.text == REWARD_DM]
    assert rewards(h, "u01") == [REWARD_DM]
    assert announcements(h) == ["🎁 小明 完成 4 天晨读，获得资料大礼包！"]
    # Both go out on day 5, right after the check-in's acknowledgement.
    assert h.local(dms[0]).startswith("05 08:00")
    ack = next(s for s in h.room() if "✅ 小明 第5天晨读打卡成功" in s.text)
    assert dms[0].at >= ack.at
    assert "资料大礼包：已获得 🎁" in await _progress(h, "u01")
    await h.stop()


async def test_three_days_earn_nothing():
    h = await Harness.start(people=members(*PEOPLE))
    await read_on(h, [2], ["u01"])
    await read_on(h, [3], ["u01"], text="打卡")  # a lesson check-in does not count toward reading
    await read_on(h, [4, 5], ["u01"])
    await h.until("day 9 00:00")
    await h.settle()
    assert rewards(h, "u01") == []
    assert announcements(h) == []
    assert "资料大礼包：还差 1 天" in await _progress(h, "u01")
    await h.stop()


async def test_late_checkin_does_not_count_toward_the_reward():
    h = await Harness.start(people=members(*PEOPLE))
    await read_on(h, [2, 3, 4], ["u01"])
    await read_on(h, [5], ["u01"], at="12:30")  # past `until`: not a reading day
    await h.until("day 9 00:00")
    await h.settle()
    assert rewards(h, "u01") == []
    assert announcements(h) == []
    await h.stop()


async def test_duplicate_checkin_on_the_fourth_day_does_not_grant_twice():
    h = await Harness.start(people=members(*PEOPLE))
    await read_on(h, [2, 3, 4, 5], ["u01"])
    await h.until("day 5 09:00")
    await h.say("u01", "晨读打卡")
    await h.say("u01", "晨读")
    await h.settle()
    assert rewards(h, "u01") == [REWARD_DM]
    assert len(announcements(h)) == 1
    assert room_lines(h).count("小明 今天的晨读已经打过卡啦，不用重复打卡 ✅") == 2
    await h.stop()


async def test_checking_in_after_the_reward_does_not_grant_it_again():
    h = await Harness.start(LONG_READING, people=members(*PEOPLE))
    await read_on(h, [2, 3, 4, 5, 6, 7], ["u01"])
    assert rewards(h, "u01") == [REWARD_DM]
    assert len(announcements(h)) == 1
    assert "✅ 小明 第7天晨读打卡成功（今日 1/3）" in room_lines(h)
    await h.stop()


async def test_two_members_each_earn_it_once():
    h = await Harness.start(people=members(*PEOPLE))
    await read_on(h, [2, 3, 4], ["u01", "u02", "u03"])
    await read_on(h, [5], ["u02", "u01"])  # 小刚 misses the last morning
    assert rewards(h, "u01") == [REWARD_DM]
    assert rewards(h, "u02") == [REWARD_DM]
    assert rewards(h, "u03") == []
    assert announcements(h) == [
        "🎁 小红 完成 4 天晨读，获得资料大礼包！",
        "🎁 小明 完成 4 天晨读，获得资料大礼包！",
    ]
    await h.stop()


async def test_reward_counts_distinct_days_not_checkins():
    h = await Harness.start(people=members(*PEOPLE))
    await read_on(h, [2, 3], ["u01"])
    await h.until("day 3 09:00")
    for _ in range(3):
        await h.say("u01", "晨读打卡")
    await h.settle()
    await read_on(h, [4], ["u01"])
    assert rewards(h, "u01") == []
    await h.stop()


async def test_operator_checkins_do_not_affect_members_rewards_or_numbers():
    h = await Harness.start(people=members("u01:小明", "u02:小红", "op:助教"), operators=("op",))
    await read_on(h, [2, 3, 4, 5], ["op", "u01"])
    # 小明 earned it on his own four days; 小红 none; the operator's check-ins never
    # counted in the numbers members see.
    assert rewards(h, "u01") == [REWARD_DM]
    assert rewards(h, "u02") == []
    assert "✅ 小明 第5天晨读打卡成功（今日 1/2）" in room_lines(h)
    assert "🎁 小明 完成 4 天晨读，获得资料大礼包！" in announcements(h)
    # The reading leaderboard on day 5 lists members only.
    await h.until("day 5 22:01")
    await h.settle()
    board = next(s.text for s in h.room() if s.text.startswith("🏆"))
    assert "助教" not in board
    assert board.splitlines()[1] == "🥇 小明 4 天"
    await h.stop()


async def _progress(h: Harness, member_id: str) -> str:
    await h.dm(member_id, "进度")
    await h.settle()
    return h.dms(member_id)[-1].text
