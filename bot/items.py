"""What each kind of schedule item sends: a post, a reminder that @-mentions the members not
checked in, private nudges, a leaderboard. Queued in the transaction that claims the item."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from sqlalchemy import Connection

from bot import commands, templates
from bot.cohort import CohortRun
from bot.plan import PlannedItem
from storage import repo

DEFAULT_LEADERBOARD_TITLE = "🏆 {track}排行榜（截至第{day}天）"


def not_checked_in(conn: Connection, run: CohortRun, track: str, day: int) -> list[repo.MemberRow]:
    """Whom a reminder or nudge is about: members in the group now, less the bot and
    operators, with no check-in that day; not those who joined after that day ended (a
    member who joins on day 3 is not nudged about day 2) nor those who opted out."""
    done = repo.checked_in_ids(conn, run.id, track, day)
    day_end = run.cal.at(day + 1, run.cal.day_starts)
    return [m for m in repo.learners_to_remind(conn, run.id, day_end) if m.member_id not in done]


def chunks(ids: list[str], size: int) -> list[list[str]]:
    return [ids[i : i + size] for i in range(0, len(ids), size)]


def queue_item(
    conn: Connection,
    run: CohortRun,
    planned: PlannedItem,
    now: datetime,
    max_mentions: int,
    ride_along: Callable[[Connection, CohortRun, datetime], str | None] | None = None,
) -> int:
    """Queue what the item sends; returns how many messages."""
    it = planned.item
    pb = run.playbook
    day = it.checked_day
    values: dict[str, object] = {
        "playbook": pb.name,
        "day": day,
        "total": repo.present_count(conn, run.id),
    }
    if it.post is not None:
        repo.enqueue(
            conn, run.id, room_id=run.room_id, kind="post", now=now, text=templates.render(it.post, values)
        )
        return 1
    track_id = it.track
    assert track_id is not None
    values["track"] = pb.tracks[track_id].name
    values["done"] = repo.day_counts(conn, run.id, track_id, day)[0]
    if it.remind is not None:
        missing = not_checked_in(conn, run, track_id, day)
        # Who has checked in since the last roll call travels in the reminder's message.
        named = ride_along(conn, run, now) if ride_along is not None else None
        if not missing:
            if named:  # nobody to remind: the roll call goes on its own
                repo.enqueue(conn, run.id, room_id=run.room_id, kind="rollcall", now=now, text=named)
            return 1 if named else 0
        text = templates.render(it.remind.text, values)
        parts = chunks([m.member_id for m in missing], max_mentions)
        for i, ids in enumerate(parts, 1):
            # A numbered tail keeps split parts from being identical texts in a burst.
            tail = f"（{i}/{len(parts)}）" if len(parts) > 1 else ""
            extra = f"\n\n{named}" if named and i == len(parts) else ""
            repo.enqueue(
                conn,
                run.id,
                room_id=run.room_id,
                kind="remind",
                now=now,
                text=text + tail + extra,
                mentions=ids,
            )
        return len(parts)
    if it.nudge is not None:
        # Members WeChat will not let the account message (not friends) are left to the
        # group's reminder.
        missing = [m for m in not_checked_in(conn, run, track_id, day) if m.reachable]
        for m in missing:
            text = templates.render(it.nudge.dm, {**values, "name": m.alias or m.name})
            # Bulk private messages wait behind the group and members' own questions.
            repo.enqueue(conn, run.id, member_id=m.member_id, kind="nudge", now=now, text=text, priority=2)
        return len(missing)
    assert it.leaderboard is not None
    board = it.leaderboard
    title = templates.render(board.title or DEFAULT_LEADERBOARD_TITLE, values)
    rows = commands.ranking(conn, run, track_id, board.top)
    repo.enqueue(
        conn,
        run.id,
        room_id=run.room_id,
        kind="leaderboard",
        now=now,
        text=commands.format_ranking(title, rows, " 天"),
    )
    return 1
