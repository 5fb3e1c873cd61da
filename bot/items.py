"""What each kind of schedule item sends: a post, a reminder that @-mentions the members not
checked in, private nudges, a leaderboard. Queued in the transaction that claims the item."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection

from bot import commands, templates
from bot.cohort import CohortRun
from bot.plan import PlannedItem
from storage import repo

DEFAULT_LEADERBOARD_TITLE = "🏆 {track}排行榜（截至第{day}天）"


def not_checked_in(conn: Connection, run: CohortRun, track: str, day: int) -> list[repo.MemberRow]:
    """Members in the group now, less the bot and operators, with no check-in that day."""
    done = repo.checked_in_ids(conn, run.id, track, day)
    return [m for m in repo.learners(conn, run.id) if m.member_id not in done]


def chunks(ids: list[str], size: int) -> list[list[str]]:
    return [ids[i : i + size] for i in range(0, len(ids), size)]


def queue_item(
    conn: Connection,
    run: CohortRun,
    planned: PlannedItem,
    now: datetime,
    max_mentions: int,
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
        if not missing:
            return 0
        text = templates.render(it.remind.text, values)
        parts = chunks([m.member_id for m in missing], max_mentions)
        for i, ids in enumerate(parts, 1):
            # A numbered tail keeps split parts from being identical texts in a burst.
            tail = f"（{i}/{len(parts)}）" if len(parts) > 1 else ""
            repo.enqueue(
                conn, run.id, room_id=run.room_id, kind="remind", now=now, text=text + tail, mentions=ids
            )
        return len(parts)
    if it.nudge is not None:
        missing = not_checked_in(conn, run, track_id, day)
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
