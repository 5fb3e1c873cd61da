"""Streaks (连续打卡): consecutive days checked in on a track, counting only the track's own
days (a weekend the track skips does not break a streak). One definition for `progress`,
leaderboards (`by: streak`), posts (`{streak}`), the evening summary and the report."""

from __future__ import annotations

from collections.abc import Collection, Sequence


def current(done: Collection[int], track_days: Sequence[int], today: int) -> int:
    """The streak a member has now: the run of checked-in track days that ends on the last
    track day before ``today``, or on ``today`` itself once checked in (today, still open,
    does not break it)."""
    past = [d for d in sorted(track_days) if d <= today]
    if past and past[-1] == today and today not in done:
        past = past[:-1]
    n = 0
    for d in reversed(past):
        if d not in done:
            break
        n += 1
    return n


def longest(done: Collection[int], track_days: Sequence[int]) -> int:
    """The longest run of checked-in track days in the cohort so far."""
    best = run = 0
    for d in sorted(track_days):
        run = run + 1 if d in done else 0
        best = max(best, run)
    return best
