"""Streaks count a track's own days only, and today's open day does not break them."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from bot import streaks

DAYS = [2, 3, 4, 5, 7]  # no lesson on day 6


def test_current_streak():
    assert streaks.current({2, 3, 4}, DAYS, today=5) == 3  # today open, not yet checked in
    assert streaks.current({2, 3, 4, 5}, DAYS, today=5) == 4
    assert streaks.current({2, 4, 5}, DAYS, today=6) == 2  # day 6 is not a track day
    assert streaks.current({2, 4, 5}, DAYS, today=8) == 0  # day 7 missed
    assert streaks.current({2, 3, 4, 5, 7}, DAYS, today=8) == 5
    assert streaks.current(set(), DAYS, today=1) == 0


def test_longest_streak():
    assert streaks.longest({2, 3, 5, 7}, DAYS) == 2
    assert streaks.longest({5, 7}, DAYS) == 2  # across the day without a lesson
    assert streaks.longest(set(), DAYS) == 0


@given(st.sets(st.integers(1, 10)), st.integers(0, 12))
def test_a_streak_is_never_more_than_the_days_done_nor_the_longest(done, today):
    track = list(range(1, 11))
    done = {d for d in done if d <= today}
    assert streaks.current(done, track, today) <= min(len(done), streaks.longest(done, track))
