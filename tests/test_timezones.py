"""Time zones: a schedule's "HH:MM" is wall-clock time in the playbook's zone, across
daylight-saving changes; a check-in counts for the local day on which it was sent.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from bot.plan import Calendar, build_plan
from storage import repo
from tests.harness import EXAMPLE, Harness, load_playbook, members

BERLIN = ZoneInfo("Europe/Berlin")
SHANGHAI = ZoneInfo("Asia/Shanghai")
DST_END = date(2026, 10, 22)  # day 4 = Sunday 2026-10-25, when Berlin goes from UTC+2 to UTC+1


def playbook(zone: str, days: int = 8) -> str:
    posts = "".join(
        f'  - day: {d}\n    at: "07:30"\n    post: "第{{day}}天早安"\n' for d in range(1, days + 1)
    )
    all_days = ", ".join(str(d) for d in range(1, days + 1))
    return f"""\
name: 时区营
days: {days}
timezone: {zone}
tracks:
  lesson:
    name: 正课
    keywords: ["打卡"]
    days: [{all_days}]
  reading:
    name: 晨读
    keywords: ["晨读"]
    days: [{all_days}]
    until: "12:00"
schedule:
{posts}  - day: 4
    at: "21:30"
    remind:
      track: lesson
      text: "还没打卡的同学 👇"
"""


def counted(h: Harness, track: str = "lesson") -> dict[int, set[str]]:
    """Who counted on the track, by cohort day (days with nobody left out)."""
    with h.bot.db.connect() as conn:
        found = {d: repo.checked_in_ids(conn, h.run.id, track, d) for d in range(0, 10)}
    return {d: ids for d, ids in found.items() if ids}


async def test_daily_post_keeps_its_local_time_across_the_dst_change():
    h = await Harness.start(playbook("Europe/Berlin"), people=members("u01:Anna"), start=DST_END)
    await h.until("day 9 00:00")
    posts = [s for s in h.room() if s.text.endswith("早安")]
    assert [s.text for s in posts] == [f"第{d}天早安" for d in range(1, 9)]
    assert [h.local(s) for s in posts] == [f"{22 + d:02d} 07:30:00" for d in range(8)]
    assert [s.at.astimezone(UTC).strftime("%d %H:%M") for s in posts] == [
        "22 05:30",
        "23 05:30",
        "24 05:30",
        "25 06:30",
        "26 06:30",
        "27 06:30",
        "28 06:30",
        "29 06:30",
    ]
    # The remind at 21:30 on the 25-hour day is at 21:30 local too.
    remind = [s for s in h.room() if s.text.startswith("还没打卡")]
    assert [s.at for s in remind] == [datetime(2026, 10, 25, 20, 30, tzinfo=UTC)]
    await h.stop()


async def test_checkins_count_for_the_local_day_in_berlin():
    h = await Harness.start(playbook("Europe/Berlin"), people=members("u01:Anna", "u02:Ben"), start=DST_END)
    await h.until("day 3 23:30")  # 21:30 UTC the same date
    await h.say("u01", "打卡")
    await h.until("day 4 00:30")  # 22:30 UTC on the 24th: still day 3 in UTC
    await h.say("u02", "打卡")
    await h.until("day 4 23:30")  # the 25-hour day: 22:30 UTC
    await h.say("u01", "打卡")
    await h.settle()
    assert counted(h) == {3: {"u01"}, 4: {"u01", "u02"}}
    await h.stop()


async def test_until_is_local_time_after_the_dst_change():
    h = await Harness.start(playbook("Europe/Berlin"), people=members("u01:Anna", "u02:Ben"), start=DST_END)
    await h.until("day 4 11:50")  # 10:50 UTC
    await h.say("u01", "晨读")
    await h.until("day 4 12:10")  # 11:10 UTC: past 12:00 local
    await h.say("u02", "晨读")
    await h.settle()
    assert counted(h, "reading") == {4: {"u01"}}
    assert [s.text for s in h.dms("u02")] == ["Ben 今天的晨读打卡已在 12:00 截止，明天早点来哦"]
    await h.stop()


async def test_a_late_evening_checkin_west_of_utc_counts_for_the_local_day():
    la = playbook("America/Los_Angeles")
    h = await Harness.start(la, people=members("u01:Amy"), start=date(2026, 6, 1))
    await h.until("day 2 23:30")  # 06:30 UTC on day 3's date
    await h.say("u01", "打卡")
    await h.settle()
    assert h.when("day 2 23:30").date() == date(2026, 6, 3)
    assert counted(h) == {2: {"u01"}}
    await h.stop()


async def test_checkin_just_after_midnight_in_shanghai_counts_for_the_new_day():
    h = await Harness.start(EXAMPLE, people=members("u01:小明", "u02:小红"))
    await h.until("day 2 23:59")
    await h.say("u02", "打卡")
    await h.until("day 3 00:10")  # 16:10 UTC, still day 2's date in UTC
    await h.say("u01", "打卡")
    await h.say("u02", "打卡")  # a new day for her as well, not a duplicate
    await h.settle()
    assert h.when("day 3 00:10") == datetime(2026, 12, 2, 16, 10, tzinfo=UTC)
    assert counted(h) == {2: {"u02"}, 3: {"u01", "u02"}}
    # Day 2 had one lesson check-in; so the day-3 nudge about day 2 goes to 小明 only.
    await h.until("day 3 09:10")
    await h.settle()
    assert [s.chat for s in h.dms()] == ["dm:u01"]
    # The night's roll call (after quiet hours) names each under its own day.
    assert [(h.local(s), s.text) for s in h.room() if "rollcall" in s.kinds] == [
        (
            "03 07:50:00",
            "✅ 第2天打卡播报\n正课 +1（今日 1/2）：小红\n✅ 第3天打卡播报\n正课 +2（今日 2/2）：小明、小红",
        )
    ]
    await h.stop()


async def test_an_item_at_a_skipped_local_time_is_sent_once_after_the_jump():
    text = playbook("Europe/Berlin").replace(
        "schedule:\n", 'schedule:\n  - day: 4\n    at: "02:30"\n    post: "夜猫子"\n'
    )
    h = await Harness.start(text, people=members("u01:Anna"), start=date(2027, 3, 25))
    await h.until("day 5 00:00")
    owls = [s for s in h.room() if s.text == "夜猫子"]
    assert len(owls) == 1
    assert owls[0].at == datetime(2027, 3, 28, 1, 30, tzinfo=UTC)  # 03:30 CEST
    await h.stop()


# --- bot.plan.Calendar ---------------------------------------------------------------


def test_calendar_at_keeps_wall_time_across_dst():
    cal = Calendar(DST_END, 8, BERLIN)
    assert cal.at(1, time(7, 30)) == datetime(2026, 10, 22, 5, 30, tzinfo=UTC)
    assert cal.at(3, time(7, 30)) == datetime(2026, 10, 24, 5, 30, tzinfo=UTC)
    assert cal.at(4, time(7, 30)) == datetime(2026, 10, 25, 6, 30, tzinfo=UTC)
    assert cal.at(8, time(7, 30)) == datetime(2026, 10, 29, 6, 30, tzinfo=UTC)
    assert cal.at(4, time(7, 30)).tzinfo == UTC
    # Day 4 is 25 hours long.
    assert cal.at(5, time(0, 0)) - cal.at(4, time(0, 0)) == timedelta(hours=25)
    assert cal.start_utc() == datetime(2026, 10, 21, 22, 0, tzinfo=UTC)
    assert cal.end_utc() == datetime(2026, 10, 29, 23, 0, tzinfo=UTC)


def test_calendar_day_of_uses_the_local_date():
    cal = Calendar(DST_END, 8, BERLIN)
    assert cal.day_of(datetime(2026, 10, 21, 21, 59, tzinfo=UTC)) == 0  # 23:59 the day before
    assert cal.day_of(datetime(2026, 10, 21, 22, 0, tzinfo=UTC)) == 1  # local midnight
    assert cal.day_of(datetime(2026, 10, 24, 21, 59, tzinfo=UTC)) == 3
    assert cal.day_of(datetime(2026, 10, 24, 22, 0, tzinfo=UTC)) == 4  # 00:00 CEST on the 25th
    assert cal.day_of(datetime(2026, 10, 25, 22, 59, tzinfo=UTC)) == 4  # 23:59 CET
    assert cal.day_of(datetime(2026, 10, 25, 23, 0, tzinfo=UTC)) == 5
    assert cal.day_of(cal.end_utc()) == 9
    # Any offset of the instant works, not only UTC.
    assert cal.day_of(datetime(2026, 10, 25, 7, 0, tzinfo=SHANGHAI)) == 4  # 01:00 CEST

    sh = Calendar(date(2026, 12, 1), 8, SHANGHAI)
    assert sh.at(3, time(0, 10)) == datetime(2026, 12, 2, 16, 10, tzinfo=UTC)
    assert sh.day_of(datetime(2026, 12, 2, 16, 10, tzinfo=UTC)) == 3
    assert sh.day_of(datetime(2026, 12, 2, 15, 59, tzinfo=UTC)) == 2


def test_calendar_at_a_nonexistent_local_time_moves_forward_by_the_gap():
    cal = Calendar(date(2027, 3, 25), 8, BERLIN)  # day 4 = 2027-03-28, 02:00 -> 03:00
    when = cal.at(4, time(2, 30))
    assert when == datetime(2027, 3, 28, 1, 30, tzinfo=UTC)
    assert cal.local(when).strftime("%H:%M %z") == "03:30 +0200"
    assert cal.day_of(when) == 4
    # Around the gap, real times are unaffected.
    assert cal.at(4, time(1, 59)) == datetime(2027, 3, 28, 0, 59, tzinfo=UTC)
    assert cal.at(4, time(3, 0)) == datetime(2027, 3, 28, 1, 0, tzinfo=UTC)


def test_calendar_at_an_ambiguous_local_time_is_that_wall_time_on_that_day():
    cal = Calendar(DST_END, 8, BERLIN)  # 2026-10-25 02:00-03:00 happens twice
    when = cal.at(4, time(2, 30))
    assert when in (datetime(2026, 10, 25, 0, 30, tzinfo=UTC), datetime(2026, 10, 25, 1, 30, tzinfo=UTC))
    assert cal.local(when).strftime("%H:%M") == "02:30"
    assert cal.day_of(when) == 4


def test_plan_is_in_schedule_order_and_in_utc():
    pb = load_playbook(playbook("Europe/Berlin"))
    cal = Calendar(DST_END, pb.days, BERLIN)
    plan = build_plan(pb, cal)
    dues = [p.due for p in plan]
    assert dues == sorted(dues)
    assert all(d.tzinfo == UTC for d in dues)
    assert [cal.local(p.due).strftime("%d %H:%M") for p in plan if p.item.kind == "post"] == [
        f"{22 + d:02d} 07:30" for d in range(8)
    ]
