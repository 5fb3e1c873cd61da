"""Rewards: granted once, on the check-in that makes `count` distinct days on the track; a
private message with the reward's `dm` and, in the group, a line of the roll call
("🎁 解锁{reward}：{names}") on a roll-call track or, on an `acknowledge: each` track, the
reward's `announce` template.

EXAMPLE: reading-pack (资料大礼包) for 4 distinct reading days; reading counts on days 2..5
until 12:00.
"""

from __future__ import annotations

from datetime import timedelta

from storage import repo
from tests.harness import EXAMPLE, Harness, members

PEOPLE = ("u01:小明", "u02:小红", "u03:小刚")
REWARD_DM = "恭喜完成 4 天晨读！资料大礼包：https://example.com/pack 提取码 8888"

# Reading counts on days 2..7, so a member can go on checking in after earning the reward.
LONG_READING = EXAMPLE.replace(
    'keywords: ["晨读打卡", "晨读"]\n    days: [2, 3, 4, 5]',
    'keywords: ["晨读打卡", "晨读"]\n    days: [2, 3, 4, 5, 6, 7]',
)
assert LONG_READING != EXAMPLE
# The reading track acknowledges each check-in on its own and announces rewards itself.
READING_EACH = EXAMPLE.replace('    until: "12:00"\n', '    until: "12:00"\n    acknowledge: each\n')
assert READING_EACH != EXAMPLE


def room_lines(h: Harness) -> list[str]:
    return [line for s in h.room() for line in s.text.splitlines()]


def rewards(h: Harness, member_id: str) -> list[str]:
    """The reward messages the member got privately."""
    return [s.text for s in h.dms(member_id) if s.kinds == ("reward",)]


def announcements(h: Harness) -> list[str]:
    return [line for line in room_lines(h) if line.startswith("🎁")]


def rollcall_lines(h: Harness) -> list[str]:
    return [line for s in h.room() if "rollcall" in s.kinds for line in s.text.splitlines()]


async def read_on(h: Harness, days: list[int], who: list[str], at: str = "08:00", text: str = "晨读打卡"):
    """Check in on each day at ``at``; a minute later, what it caused has gone out."""
    for d in days:
        await h.until(f"day {d} {at}")
        for mid in who:
            await h.say(mid, text)
        await h.until(h.run.cal.local(h.when(f"day {d} {at}") + timedelta(minutes=1)).isoformat())
        await h.settle()


async def test_reward_on_the_fourth_distinct_reading_day():
    h = await Harness.start(people=members(*PEOPLE))
    await read_on(h, [2, 3, 4], ["u01"])
    assert rewards(h, "u01") == []
    assert announcements(h) == []

    await read_on(h, [5], ["u01"])
    dms = [s for s in h.dms("u01") if s.text == REWARD_DM]
    assert rewards(h, "u01") == [REWARD_DM]
    # The group hears it in the roll call that names the check-in, not on its own.
    call = [s for s in h.room() if "rollcall" in s.kinds][-1]
    assert call.text == "✅ 第5天打卡播报\n晨读 +1（今日 1/3）：小明\n🎁 解锁资料大礼包：小明"
    assert announcements(h) == ["🎁 解锁资料大礼包：小明"]
    assert not any("announce" in s.kinds for s in h.room())
    # Both go out on day 5, once the ack window has passed.
    assert h.local(dms[0]).startswith("05 08:00")
    assert h.local(call).startswith("05 08:00")
    assert dms[0].at >= h.when("day 5 08:00") + timedelta(seconds=3)
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
    await h.until("day 5 12:00")
    await h.settle()
    assert rewards(h, "u01") == [REWARD_DM]
    assert announcements(h) == ["🎁 解锁资料大礼包：小明"]
    # The repeats are silent: nothing after day 5's roll call, nothing private but the reward.
    assert h.room()[-1].text == "✅ 第5天打卡播报\n晨读 +1（今日 1/3）：小明\n🎁 解锁资料大礼包：小明"
    assert [s.kinds for s in h.dms("u01") if h.local(s) >= "05 08:01"] == []
    with h.bot.db.connect() as conn:
        assert repo.rewards_of(conn, "c1", "u01") == ["reading-pack"]
    await h.stop()


async def test_checking_in_after_the_reward_does_not_grant_it_again():
    h = await Harness.start(LONG_READING, people=members(*PEOPLE))
    await read_on(h, [2, 3, 4, 5, 6, 7], ["u01"])
    assert rewards(h, "u01") == [REWARD_DM]
    assert announcements(h) == ["🎁 解锁资料大礼包：小明"]
    assert rollcall_lines(h)[-2:] == ["✅ 第7天打卡播报", "晨读 +1（今日 1/3）：小明"]
    await h.stop()


async def test_two_members_each_earn_it_once():
    h = await Harness.start(people=members(*PEOPLE))
    await read_on(h, [2, 3, 4], ["u01", "u02", "u03"])
    await read_on(h, [5], ["u02", "u01"])  # 小刚 misses the last morning
    assert rewards(h, "u01") == [REWARD_DM]
    assert rewards(h, "u02") == [REWARD_DM]
    assert rewards(h, "u03") == []
    # One roll call names both (earned at the same instant: in no particular order).
    [line] = announcements(h)
    assert line.startswith("🎁 解锁资料大礼包：")
    assert sorted(line.split("：", 1)[1].split("、")) == ["小明", "小红"]
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
    assert "晨读 +1（今日 1/2）：小明" in rollcall_lines(h)
    assert announcements(h) == ["🎁 解锁资料大礼包：小明"]
    assert [s.text for s in h.dms("op")] == ["收到～助教的打卡不计入统计哦"] * 4
    assert rewards(h, "op") == []
    # The reading leaderboard on day 5 lists members only.
    await h.until("day 5 22:01")
    await h.settle()
    board = next(s.text for s in h.room() if s.text.startswith("🏆"))
    assert "助教" not in board
    assert board.splitlines()[1] == "🥇 小明 4 天"
    await h.stop()


async def test_on_an_each_track_the_reward_is_announced_with_its_template():
    h = await Harness.start(READING_EACH, people=members(*PEOPLE))
    await read_on(h, [2, 3, 4, 5], ["u01"])
    assert rewards(h, "u01") == [REWARD_DM]
    announce = [s for s in h.room() if "announce" in s.kinds]
    assert [s.text.splitlines()[-1] for s in announce] == ["🎁 小明 完成 4 天晨读，获得资料大礼包！"]
    assert h.local(announce[0]).startswith("05 08:00")
    assert announcements(h) == ["🎁 小明 完成 4 天晨读，获得资料大礼包！"]  # not in a roll call too
    assert not any("rollcall" in s.kinds for s in h.room())
    await h.stop()


async def _progress(h: Harness, member_id: str) -> str:
    await h.dm(member_id, "进度")
    await h.settle()
    return h.dms(member_id)[-1].text
