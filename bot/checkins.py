"""Check-ins (打卡): which message is one, which day it counts for, and counting it, with its
acknowledgement and any reward it earns, in one transaction."""

from __future__ import annotations

import enum
import re
import unicodedata
from collections.abc import Collection
from datetime import datetime, timedelta

from sqlalchemy import Connection

from bot import figures, streaks, templates
from bot.cohort import CohortRun
from bot.friends import ask_to_add
from bot.i18n import N_
from bot.transports.base import Member, clean_text
from storage import repo

# Texts for members: English msgids, said in the playbook's language (Playbook.tr).
DEFAULT_ACK = N_("✅ {name} checked in to {track} on day {day} (today {done}/{total})")
ALREADY = N_("{name}, you already checked in to {track} today, no need to again ✅")
NOT_TODAY = N_("{name}, today is not a {track} day; come back to check in on {days}")
ENDED = N_("{name}, {track} check-ins are over; thank you for keeping at it 🌟")
TOO_LATE = N_("{name}, today's {track} check-in closed at {until}; come a little earlier tomorrow")
DAY = N_("day {n}")
LIST_SEPARATOR = N_(", ")
DATE = N_("{month}/{day}")

# WeChat separates an @-mention from the text with U+2005 (four-per-em space).
_SPACES = " \t\u2005\u3000\u00a0"
# Full-width ASCII (＠, ＡＢＣ, １２３) typed on a Chinese keyboard, folded to ASCII. Only this
# block: NFKC on everything would also turn look-alikes (radicals such as ⼝) into real
# characters and count messages that do not say the keyword.
_FULL_WIDTH = {c: chr(c - 0xFEE0) for c in range(0xFF01, 0xFF5F)}


def normalize(text: str) -> str:
    """The text as matched against keywords and commands: composed (NFC), without invisible
    characters (zero-width spaces, byte-order marks), full-width ASCII folded."""
    return unicodedata.normalize("NFC", clean_text(text)).translate(_FULL_WIDTH)


def strip_bot_mention(text: str, bot_names: Collection[str], mentions_bot: bool) -> str:
    """Normalize and trim the text and remove one leading @-mention of the bot."""
    text = normalize(text).strip(_SPACES + "\r\n")
    bot_names = [normalize(n) for n in bot_names]
    if not text.startswith("@"):
        return text
    for name in bot_names:
        if name and text.startswith("@" + name):
            rest = text[len(name) + 1 :]
            if not rest or rest[0] in _SPACES:
                return rest.strip(_SPACES + "\r\n")
    if mentions_bot:
        # The network says the bot was mentioned but under a name we do not know (a group
        # alias): drop the first @word.
        m = re.match(rf"@[^{_SPACES}]*[{_SPACES}]+", text)
        if m:
            return text[m.end() :].strip(_SPACES + "\r\n")
    return text


def match_track(run: CohortRun, text: str) -> tuple[str, str] | None:
    """(track id, keyword) of the longest keyword the text starts with."""
    for kw, tid in run.keywords:
        if text.startswith(kw):
            return tid, kw
    return None


def day_list(run: CohortRun, days: list[int]) -> str:
    """ "第2天、第3天" / "day 2, day 3": days in the playbook's language."""
    tr = run.playbook.tr
    return tr(LIST_SEPARATOR).join(tr(DAY).format(n=d) for d in sorted(days))


class Outcome(enum.Enum):
    COUNTED = "counted"  # new: named in the next roll call (or acknowledged on its own)
    REPEAT = "repeat"  # already counted that day: silent, they are in a roll call already
    NOTICE = "notice"  # did not count; the member is told once a day and track
    QUIET = "quiet"  # did not count, and they were told already


def count_checkin(
    conn: Connection,
    run: CohortRun,
    member: Member,
    track_id: str,
    at: datetime,
    now: datetime,
    ack_window: float,
    text: str = "",
) -> Outcome:
    """Record a check-in sent at ``at``, with what it causes: on an ``acknowledge: each``
    track its own acknowledgement; on a roll-call track nothing yet (the roll call names it);
    any reward it earns. A check-in that does not count never gets a group message of its
    own: a repeat is silent, the others are told once a day and track, privately where the
    member can be reached, otherwise in the next roll call's footer.

    On a ``testimonial: true`` track the message's whole ``text`` is kept when it is sent on
    one of the track's days: a second one that day too (usually the rest of the story), and a
    late one too (past ``until`` the check-in does not count, but the words are worth keeping)."""
    track = run.playbook.tracks[track_id]
    day = run.day(at)
    each = track.acknowledge == "each"
    values: dict[str, object] = {
        "name": member.shown,
        "day": day,
        "track": track.name,
        "playbook": run.playbook.name,
    }
    ack_at = now + timedelta(seconds=ack_window)

    def notice(reason: str, template: str) -> Outcome:
        private = repo.reachable(conn, run.id, member.id)
        if not repo.add_notice(conn, run.id, member.id, track_id, day, reason, now, private):
            return Outcome.QUIET
        if private:
            repo.enqueue(
                conn,
                run.id,
                member_id=member.id,
                text=templates.render(template, values),
                kind="notice",
                now=now,
                priority=1,
            )
        return Outcome.NOTICE

    if day not in track.days:
        later = [d for d in track.days if d > day]
        if later:
            values["days"] = day_list(run, later)
            return notice("not_today", run.playbook.messages.not_today or run.playbook.tr(NOT_TODAY))
        return notice("ended", run.playbook.messages.ended or run.playbook.tr(ENDED))
    if track.testimonial and text:
        repo.add_testimonial(conn, run.id, member.id, track_id, day, at, text)
    if track.until is not None and at > run.cal.deadline(day, track.until):
        # Already counted comes before the cut-off: a second check-in after `until` is a
        # repeat, not a late one.
        if repo.has_checkin(conn, run.id, member.id, track_id, day):
            return Outcome.REPEAT
        values["until"] = f"{track.until:%H:%M}"
        return notice("too_late", run.playbook.messages.too_late or run.playbook.tr(TOO_LATE))
    if not repo.record_checkin(conn, run.id, member.id, track_id, day, at, named_at=now if each else None):
        return Outcome.REPEAT
    if each:
        done, total = repo.day_counts(conn, run.id, track_id, day)
        values |= {"done": done, "total": total, "completion": figures.percent(done, total)}
        values["streak"] = streaks.current(
            repo.member_days(conn, run.id, member.id, track_id), track.days, day
        )
        repo.enqueue(
            conn,
            run.id,
            room_id=run.room_id,
            text=templates.render(track.ack or run.playbook.tr(DEFAULT_ACK), values),
            kind="ack",
            mentions=[member.id],
            now=now,
            not_before=ack_at,
        )
    _grant_rewards(conn, run, member, track_id, now, after=ack_at, announce=each)
    return Outcome.COUNTED


def count_makeup(
    conn: Connection, run: CohortRun, member: Member, track_id: str, day: int, now: datetime, by: str
) -> Outcome:
    """A make-up check-in (补卡) for ``day``, credited by ``by`` (the member themself or an
    operator): counted toward rewards like any other, named in the next roll call as a
    make-up. The caller has checked the day may be made up."""
    if not repo.record_checkin(conn, run.id, member.id, track_id, day, now, makeup_by=by):
        return Outcome.REPEAT
    _grant_rewards(conn, run, member, track_id, now, after=now, announce=False)
    return Outcome.COUNTED


def _grant_rewards(
    conn: Connection,
    run: CohortRun,
    member: Member,
    track_id: str,
    now: datetime,
    after: datetime,
    announce: bool,
) -> None:
    """Grant what the member's days on this track earn: the reward's private message now;
    its group announcement on its own (``announce``, the track acknowledges each check-in)
    or, by default, as a line of the next roll call."""
    rewards = [r for r in run.playbook.rewards if r.track == track_id]
    if not rewards:
        return
    days = repo.member_days(conn, run.id, member.id, track_id)
    track = run.playbook.tracks[track_id]
    for r in rewards:
        if len(days) < r.count or not repo.grant_reward(conn, run.id, member.id, r.id, now):
            continue
        values = {
            "name": member.shown,
            "reward": r.name,
            "playbook": run.playbook.name,
            "track": track.name,
            "day": run.day(now),
            "streak": streaks.current(days, track.days, figures.streak_day(run, track, now)),
        }
        # After the acknowledgement, which waits a moment to travel with others.
        row = repo.enqueue(
            conn,
            run.id,
            member_id=member.id,
            text=templates.render(r.dm, values),
            kind="reward",
            now=now,
            not_before=after,
        )
        if not repo.reachable(conn, run.id, member.id):
            # Not the account's friend: held until they add it; the group asks them to.
            repo.mark(conn, [row], "unreachable")
            ask_to_add(conn, run, member.id, member.shown, now, after)
        if not announce:
            continue  # the roll call names it (the grant waits with named_at unset)
        repo.mark_grant_named(conn, run.id, member.id, r.id, now)
        if r.announce:
            repo.enqueue(
                conn,
                run.id,
                room_id=run.room_id,
                kind="announce",
                now=now,
                not_before=after,
                text=templates.render(r.announce, values),
            )
