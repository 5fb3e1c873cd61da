"""The operators' commands (状态, 未打卡, 暂停, 恢复, 提醒, 补卡, 精选, 报名, 重载, 帮助), in the one registry
of bot/commands.py. Each is allowed to the operator role only, and the role comes from the
sender's contact id (the config's `operators`), never from a display name.

An operator writes privately to the bot (or @-mentions it in the group); the answer is in the
config's language and goes to her privately. With several cohorts, a command names the cohort
by id or group name, or is answered with the list to choose from. Every action that changes
something is written to the audit log (operator_action).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import Connection

from bot import checkins, i18n, items
from bot.cohort import CohortRun
from bot.commands import OPERATORS, Asked, Desk, command, day_arg
from bot.conversions import source_said
from bot.i18n import N_
from bot.plan import PlannedItem
from bot.testimonials import excerpt, may_quote
from bot.transports.base import Member
from storage import repo
from storage.models import LEARNER

SEP = N_(", ")
WHICH = N_('Which cohort? Add its id or group name to the command, e.g. "{example}". The cohorts: {cohorts}')
NO_SUCH = N_('"{word}" is not a cohort, track, day or member here. {what}')
TRACKS_ARE = N_("The tracks: {tracks}.")
COHORTS_ARE = N_("The cohorts: {cohorts}.")
# 状态
STATUS_HEAD = N_("[{cohort}] {room} · day {day} of {days}")
STATUS_NOT_STARTED = N_("[{cohort}] {room} · starts on {start}")
STATUS_OVER = N_("[{cohort}] {room} · over (day {days} was {end})")
STATUS_ITEMS = N_("Today: {sent} items sent, {pending} to come{next}")
STATUS_NEXT = N_(" (next: {item} at {time})")
STATUS_TRACK = N_("{track}: {done}/{total} checked in")
STATUS_QUEUE = N_("Sends: {waiting} waiting, {failed} failed today")
STATUS_PAUSED = N_("⏸ Paused since {time} by {who}; {held} items held")
STATUS_CONNECTION = N_("Connection: {state}")
# 未打卡
MISSING_HEAD = N_("[{cohort}] Day {day}, {track}: {n} of {total} not checked in yet")
MISSING_LEAVE = N_(" ({n} on leave not counted)")
MISSING_NONE = N_("[{cohort}] Day {day}, {track}: everyone has checked in 🎉")
MISSING_MORE = N_("… and {n} more")
NO_TRACK_TODAY = N_("[{cohort}] No track counts check-ins on day {day}.")
NOT_RUNNING = N_("[{cohort}] The cohort is not on (day {day}).")
# 暂停 / 恢复
PAUSED = N_(
    "⏸ [{cohort}] Paused: nothing scheduled is sent; items that fall due are held and listed when "
    'you resume. Check-ins still count. To resume, send "{word}".'
)
ALREADY_PAUSED = N_("[{cohort}] Already paused (since {time}, by {who}).")
RESUMED = N_("▶️ [{cohort}] Resumed.")
NOT_PAUSED = N_("[{cohort}] Not paused.")
HELD = N_(
    'While paused, {n} items fell due and were held: {items}. Send "{send}" to send them now or '
    '"{skip}" to skip them.'
)
HELD_SENT = N_("[{cohort}] Sent now: {items}.")
HELD_SKIPPED = N_("[{cohort}] Skipped, not sent: {items}.")
NOTHING_HELD = N_("[{cohort}] Nothing is held.")
SEND_WORDS = ("发送", "send")
SKIP_WORDS = ("跳过", "skip")
# 提醒
REMINDED = N_("[{cohort}] Reminder sent for {track}: {n} members not checked in.")
NO_ONE_TO_REMIND = N_("[{cohort}] Everyone has checked in on {track} today; no reminder sent.")
DEFAULT_REMIND = N_("⏰ Day {day} {track}: not checked in yet? There is still time!")
TOO_SOON = N_(
    "[{cohort}] A reminder for {track} went {minutes} minutes ago; wait a little (the group mutes a "
    "bot that repeats itself)."
)
# 补卡
MARK_USAGE = N_('Write: "{word} NAME TRACK DAY", e.g. "{word} 小明 {track} 2".')
MARKED = N_("✅ [{cohort}] Make-up credited: {name}, {track}, day {day} (by you).")
ALREADY_IN = N_("[{cohort}] {name} is already checked in on {track} on day {day}.")
FUTURE_DAY = N_("[{cohort}] Day {day} has not come yet (today is day {today}).")
NOT_A_TRACK_DAY = N_("[{cohort}] {track} does not count on day {day} (its days: {days}).")
WHO = N_('[{cohort}] No member "{name}" here.')
WHO_AMBIGUOUS = N_('[{cohort}] "{name}" could be: {names}. Write the one you mean (or their id).')
# 报告
REPORT_TITLE = N_("📊 {name} ({cohort}) · day {day} of {days}")
REPORT_HEAD = N_(
    "In the group: {here} ({left} left) · completion so far: {rate} · rewards granted: {rewards}"
)
REPORT_TODAY = N_("Day {day}: {tracks}")
REPORT_TRACK = N_("{track} {done}/{total}")
REPORT_TIERS = N_("Lurkers (never spoke): {lurkers} · key members: {key}")
REPORT_ENROLLED = N_("Enrolled in the full course: {n} of {members} ({rate})")
REPORT_PICTURE = N_("📊 The picture follows; the whole report: `cohortbot report`.")
REPORT_NONE = N_("[{cohort}] No report yet: {why}")
HELP_REPORT = N_('"{word} [cohort]": the report in short, and its picture to forward')
# 重载
RELOAD_ASKED = N_("🔄 Reading the config and playbooks again; what changed follows in a moment.")
RELOAD_NOT_HERE = N_("Reloading is for `cohortbot run`; here, edit the files and start again.")
# 帮助
OPERATOR_HELP = N_("🛠 Operator commands (write them to me privately):")
HELP_STATUS = N_('"{word} [cohort]": day, items sent and to come, check-ins per track, sends, connection')
HELP_MISSING = N_('"{word} [track] [cohort]": who has not checked in today')
HELP_PAUSE = N_('"{word} [cohort]": send nothing scheduled; items falling due are held')
HELP_RESUME = N_('"{word} [cohort] [send|skip]": resume; send or skip the held items')
HELP_REMIND = N_('"{word} [track] [cohort]": that track\'s reminder now')
HELP_MARK = N_('"{word} NAME TRACK DAY [cohort]": credit a make-up check-in')
HELP_RELOAD = N_('"{word}": read the config and playbooks again')
HELP_HELP = N_('"{word}": this list')
MEMBER_NOTE = N_("Members' commands, as they see them:")

LIST_LIMIT = 120  # names in one private message; WeChat cuts very long texts


def _say(a: Asked, message: str) -> str:
    return i18n.gettext_in(_desk(a).language, message)


def _desk(a: Asked) -> Desk:
    return a.desk or Desk(runs={a.run.room_id: a.run})


def _runs(a: Asked) -> list[CohortRun]:
    return list(_desk(a).runs.values()) or [a.run]


def _cohort_list(a: Asked) -> str:
    return _say(a, SEP).join(f"{r.id}（{r.room}）" for r in _runs(a))


def _pick(a: Asked, word: str) -> tuple[CohortRun | None, list[str], str | None]:
    """The cohort the arguments name (by id or group name) and the other arguments; with one
    cohort it is that one. (None, args, reply) when it must be asked."""
    runs = _runs(a)
    rest = list(a.args)
    for arg in a.args:
        found = [r for r in runs if arg.lower() == r.id.lower() or arg == r.room]
        if found:
            rest.remove(arg)
            return found[0], rest, None
    for r in runs:  # a group name with spaces arrives as several arguments
        words = r.room.split()
        for i in range(len(rest) - len(words) + 1):
            if len(words) > 1 and rest[i : i + len(words)] == words:
                return r, rest[:i] + rest[i + len(words) :], None
    if len(runs) == 1:
        return runs[0], rest, None
    example = f"{word} {runs[0].id}"
    return None, rest, _say(a, WHICH).format(example=example, cohorts=_cohort_list(a))


def _track(run: CohortRun, arg: str) -> str | None:
    norm = checkins.normalize(arg)
    for tid, t in run.playbook.tracks.items():
        if norm in (tid, checkins.normalize(t.name)) or norm in (checkins.normalize(k) for k in t.keywords):
            return tid
    return None




def _hm(run: CohortRun, at: datetime) -> str:
    return f"{run.cal.local(at):%H:%M}"


def _unknown(a: Asked, run: CohortRun, arg: str) -> str:
    tracks = _say(a, SEP).join(f"{tid}（{t.name}）" for tid, t in run.playbook.tracks.items())
    what = _say(a, TRACKS_ARE).format(tracks=tracks)
    if len(_runs(a)) > 1:
        what += " " + _say(a, COHORTS_ARE).format(cohorts=_cohort_list(a))
    return _say(a, NO_SUCH).format(word=arg, what=what)


def _todays_tracks(run: CohortRun, day: int) -> list[str]:
    return [tid for tid, t in run.playbook.tracks.items() if day in t.days]


# --- 状态 ----------------------------------------------------------------------------------


@command("status", OPERATORS, HELP_STATUS, ("状态", "status", "进度"))
def status(a: Asked) -> str:
    runs = _runs(a)
    if a.args:
        run, _rest, ask = _pick(a, "状态")
        if run is None:
            return ask or ""
        runs = [run]
    parts = [_status_of(a, run) for run in runs]
    connection = _desk(a).connection()
    if connection:
        parts.append(_say(a, STATUS_CONNECTION).format(state=connection))
    return "\n\n".join(parts)


def _status_of(a: Asked, run: CohortRun) -> str:
    conn, now, pb = a.conn, a.now, run.playbook
    day = run.day(now)
    if day < 1:
        return _say(a, STATUS_NOT_STARTED).format(cohort=run.id, room=run.room, start=run.cal.start)
    if day > pb.days:
        end = run.cal.start + timedelta(days=pb.days - 1)
        return _say(a, STATUS_OVER).format(cohort=run.id, room=run.room, days=pb.days, end=end)
    lines = [_say(a, STATUS_HEAD).format(cohort=run.id, room=run.room, day=day, days=pb.days)]
    claimed = repo.claimed_items(conn, run.id)
    todays = [p for p in run.plan if run.day(p.due) == day]
    sent = sum(1 for p in todays if claimed.get(p.item_id) == "done")
    coming = [p for p in todays if p.item_id not in claimed and p.due > now]
    nxt = _say(a, STATUS_NEXT).format(item=coming[0].item_id, time=_hm(run, coming[0].due)) if coming else ""
    lines.append(_say(a, STATUS_ITEMS).format(sent=sent, pending=len(coming), next=nxt))
    for tid in _todays_tracks(run, day):
        done, total = repo.day_counts(conn, run.id, tid, day)
        lines.append(_say(a, STATUS_TRACK).format(track=pb.tracks[tid].name, done=done, total=total))
    counts = _desk(a).queue_counts
    if counts is not None:
        waiting, failed = counts(conn)
        lines.append(_say(a, STATUS_QUEUE).format(waiting=waiting, failed=failed))
    if paused := repo.paused(conn, run.id):
        held = len(repo.held_items(conn, run.id))
        who = _name(conn, run, paused[1])
        lines.append(_say(a, STATUS_PAUSED).format(time=_hm(run, paused[0]), who=who, held=held))
    return "\n".join(lines)


def _name(conn: Connection, run: CohortRun, member_id: str | None) -> str:
    if member_id is None:
        return "?"
    m = repo.member(conn, run.id, member_id)
    return m.shown if m else member_id


# --- 未打卡 --------------------------------------------------------------------------------


@command("missing", OPERATORS, HELP_MISSING, ("未打卡", "missing"))
def missing(a: Asked) -> str:
    run, rest, ask = _pick(a, "未打卡")
    if run is None:
        return ask or ""
    day = run.day(a.now)
    if not 1 <= day <= run.playbook.days:
        return _say(a, NOT_RUNNING).format(cohort=run.id, day=day)
    tracks = _todays_tracks(run, day)
    for arg in rest:
        tid = _track(run, arg)
        if tid is None:
            return _unknown(a, run, arg)
        tracks = [tid]
    if not tracks:
        return _say(a, NO_TRACK_TODAY).format(cohort=run.id, day=day)
    return "\n\n".join(_missing_on(a, run, tid, day) for tid in tracks)


def _missing_on(a: Asked, run: CohortRun, tid: str, day: int) -> str:
    conn = a.conn
    track = run.playbook.tracks[tid].name
    done = repo.checked_in_ids(conn, run.id, tid, day)
    leave = repo.on_leave_ids(conn, run.id, day) - done
    learners = repo.learners(conn, run.id)
    todo = [m for m in learners if m.member_id not in done and m.member_id not in leave]
    if not todo:
        return _say(a, MISSING_NONE).format(cohort=run.id, day=day, track=track)
    head = _say(a, MISSING_HEAD).format(
        cohort=run.id, day=day, track=track, n=len(todo), total=len(learners) - len(leave)
    )
    if leave:
        head += _say(a, MISSING_LEAVE).format(n=len(leave))
    names = _say(a, SEP).join(m.shown for m in todo[:LIST_LIMIT])
    if len(todo) > LIST_LIMIT:
        names += " " + _say(a, MISSING_MORE).format(n=len(todo) - LIST_LIMIT)
    return f"{head}\n{names}"


# --- 暂停 / 恢复 ---------------------------------------------------------------------------


@command("pause", OPERATORS, HELP_PAUSE, ("暂停", "pause"))
def pause(a: Asked) -> str:
    run, _rest, ask = _pick(a, "暂停")
    if run is None:
        return ask or ""
    if paused := repo.paused(a.conn, run.id):
        who = _name(a.conn, run, paused[1])
        return _say(a, ALREADY_PAUSED).format(cohort=run.id, time=_hm(run, paused[0]), who=who)
    repo.set_paused(a.conn, run.id, a.now, a.member_id)
    repo.audit(a.conn, run.id, a.member_id, "pause", "", a.now)
    return _say(a, PAUSED).format(cohort=run.id, word="恢复" if _desk(a).language == "zh" else "resume")


@command("resume", OPERATORS, HELP_RESUME, ("恢复", "resume"))
def resume(a: Asked) -> str:
    run, rest, ask = _pick(a, "恢复")
    if run is None:
        return ask or ""
    conn = a.conn
    choice = next((w for w in rest if w.lower() in SEND_WORDS + SKIP_WORDS), None)
    lines = []
    if repo.paused(conn, run.id) is not None:
        repo.set_paused(conn, run.id, None, None)
        repo.audit(conn, run.id, a.member_id, "resume", "", a.now)
        lines.append(_say(a, RESUMED).format(cohort=run.id))
    elif choice is None:
        lines.append(_say(a, NOT_PAUSED).format(cohort=run.id))
    held = repo.held_items(conn, run.id)
    if choice is None:
        if held:
            listed = _say(a, SEP).join(f"{i}（{_hm(run, due)}）" for i, due in held)
            zh = _desk(a).language == "zh"
            send, skip = ("恢复 发送", "恢复 跳过") if zh else ("resume send", "resume skip")
            if len(_runs(a)) > 1:
                send, skip = f"{send} {run.id}", f"{skip} {run.id}"
            lines.append(_say(a, HELD).format(n=len(held), items=listed, send=send, skip=skip))
        return "\n".join(lines)
    if not held:
        lines.append(_say(a, NOTHING_HELD).format(cohort=run.id))
        return "\n".join(lines)
    ids = [i for i, _due in held]
    if choice.lower() in SEND_WORDS:
        done = _send_held(a, run, ids)
        repo.audit(conn, run.id, a.member_id, "send-held", ", ".join(done), a.now)
        lines.append(_say(a, HELD_SENT).format(cohort=run.id, items=_say(a, SEP).join(done)))
    else:
        skipped = [i for i in ids if repo.release_item(conn, run.id, i, "skipped", a.now)]
        repo.audit(conn, run.id, a.member_id, "skip-held", ", ".join(skipped), a.now)
        lines.append(_say(a, HELD_SKIPPED).format(cohort=run.id, items=_say(a, SEP).join(skipped)))
    return "\n".join(lines)


def _send_held(a: Asked, run: CohortRun, ids: list[str]) -> list[str]:
    """Queue held items now, in the order they fell due, in this transaction."""
    done = []
    for p in run.plan:
        if p.item_id in ids and repo.release_item(a.conn, run.id, p.item_id, "done", a.now):
            items.queue_item(a.conn, run, p, a.now, _desk(a).max_mentions)
            done.append(p.item_id)
    return done


# --- 提醒 ----------------------------------------------------------------------------------

REMIND_AGAIN_AFTER = timedelta(minutes=30)  # the same track's reminder, asked again too soon


@command("remind", OPERATORS, HELP_REMIND, ("提醒", "remind"))
def remind(a: Asked) -> str:
    run, rest, ask = _pick(a, "提醒")
    if run is None:
        return ask or ""
    day = run.day(a.now)
    tracks = _todays_tracks(run, day) if 1 <= day <= run.playbook.days else []
    for arg in rest:
        tid = _track(run, arg)
        if tid is None:
            return _unknown(a, run, arg)
        tracks = [tid]
    if not tracks:
        return _say(a, NO_TRACK_TODAY).format(cohort=run.id, day=day)
    return "\n".join(_remind_now(a, run, tid, day) for tid in tracks)


def _remind_now(a: Asked, run: CohortRun, tid: str, day: int) -> str:
    conn, pb = a.conn, run.playbook
    track = pb.tracks[tid].name
    asked = repo.actions(conn, run.id, 20)
    last = next((at for at, _op, act, detail in asked if act == "remind" and detail == tid), None)
    if last is not None and a.now - last < REMIND_AGAIN_AFTER:
        minutes = int((a.now - last).total_seconds() // 60)
        return _say(a, TOO_SOON).format(cohort=run.id, track=track, minutes=minutes)
    # The playbook's own reminder for this track (today's, else any), else a plain one.
    scheduled = [p for p in run.plan if p.item.kind == "remind" and p.item.track == tid]
    todays = [p for p in scheduled if run.day(p.due) == day]
    chosen = (todays or scheduled or [None])[0]  # type: ignore[list-item]
    planned = _as_today(run, chosen, tid, day)
    todo = items.not_checked_in(conn, run, tid, day)
    if not todo:
        return _say(a, NO_ONE_TO_REMIND).format(cohort=run.id, track=track)
    items.queue_item(conn, run, planned, a.now, _desk(a).max_mentions)
    repo.audit(conn, run.id, a.member_id, "remind", tid, a.now)
    return _say(a, REMINDED).format(cohort=run.id, track=track, n=len(todo))


def _as_today(run: CohortRun, planned: PlannedItem | None, tid: str, day: int) -> PlannedItem:
    """A reminder item about today, from the playbook's (its text) or a plain one."""
    from bot.playbook import Remind, ScheduleItem

    if planned is not None and planned.item.remind is not None:
        text = planned.item.remind.text
    else:
        text = run.playbook.tr(DEFAULT_REMIND)
    item = ScheduleItem.model_validate(
        {"day": day, "at": "00:00", "remind": Remind(track=tid, text=text).model_dump()}
    )
    return PlannedItem(f"operator-remind-{tid}-d{day}", run.cal.at(day, item.at), item)


# --- 补卡 (an operator's) -------------------------------------------------------------------


@command("mark", OPERATORS, HELP_MARK, ("补卡", "mark"))
def mark(a: Asked) -> str:
    run, rest, ask = _pick(a, "补卡")
    if run is None:
        return ask or ""
    pb = run.playbook
    word = "补卡" if _desk(a).language == "zh" else "mark"
    first_track = next(iter(pb.tracks))
    usage = _say(a, MARK_USAGE).format(word=word, track=first_track)
    day = next((d for d in map(day_arg, rest) if d is not None), None)
    tid = next((t for t in map(lambda r: _track(run, r), rest) if t is not None), None)
    names = [r for r in rest if day_arg(r) is None and _track(run, r) is None]
    if day is None or tid is None or not names:
        return usage
    found, reply = _member(a, run, " ".join(names))
    if found is None:
        return reply
    today = run.day(a.now)
    track = pb.tracks[tid]
    if day > today:
        return _say(a, FUTURE_DAY).format(cohort=run.id, day=day, today=today)
    if day not in track.days:
        days = _say(a, SEP).join(str(d) for d in track.days)
        return _say(a, NOT_A_TRACK_DAY).format(cohort=run.id, track=track.name, day=day, days=days)
    outcome = checkins.count_makeup(a.conn, run, found, tid, day, a.now, by=a.member_id)
    if outcome is checkins.Outcome.REPEAT:
        return _say(a, ALREADY_IN).format(cohort=run.id, name=found.shown, track=track.name, day=day)
    repo.audit(a.conn, run.id, a.member_id, "mark", f"{found.id} {tid} {day}", a.now)
    return _say(a, MARKED).format(cohort=run.id, name=found.shown, track=track.name, day=day)


def _member(a: Asked, run: CohortRun, written: str) -> tuple[Member | None, str]:
    everyone = repo.members(a.conn, run.id, present_only=False)
    exact = [m for m in everyone if written in (m.member_id, m.name, m.alias)]
    close = exact or [m for m in everyone if written in m.shown or written in m.name]
    if len(close) == 1:
        m = close[0]
        return Member(m.member_id, m.name, m.alias), ""
    if not close:
        return None, _say(a, WHO).format(cohort=run.id, name=written)
    names = _say(a, SEP).join(f"{m.shown}（{m.member_id}）" for m in close[:10])
    return None, _say(a, WHO_AMBIGUOUS).format(cohort=run.id, name=written, names=names)


# --- 报告 ----------------------------------------------------------------------------------


@command("report", OPERATORS, HELP_REPORT, ("报告", "report"))
def report(a: Asked) -> str:
    from bot import report as reports
    from bot.report_views import pct

    run, _rest, ask = _pick(a, "报告")
    if run is None:
        return ask or ""
    try:
        result = reports.compute(a.conn, run.id, a.now, run.playbook)
    except reports.ReportError as exc:
        return _say(a, REPORT_NONE).format(cohort=run.id, why=exc)
    lines = [
        _say(a, REPORT_TITLE).format(name=result.name, cohort=run.id, day=result.last_day, days=result.days),
        _say(a, REPORT_HEAD).format(
            here=result.in_group_now,
            left=len(result.left),
            rate=pct(result.completion()),
            rewards=sum(len(r.people) for r in result.rewards),
        ),
    ]
    todays = [r for r in result.funnel if r.day == result.last_day]
    if todays:
        tracks = _say(a, SEP).join(
            _say(a, REPORT_TRACK).format(track=r.track, done=r.done, total=r.in_group) for r in todays
        )
        lines.append(_say(a, REPORT_TODAY).format(day=result.last_day, tracks=tracks))
    lurkers, key = result.tier(reports.LURKER), result.tier(reports.KEY)
    key_names = _say(a, SEP).join(p.name for p in key[:5]) or "-"
    lines.append(_say(a, REPORT_TIERS).format(lurkers=len(lurkers), key=key_names))
    overall = result.conversion.overall
    if overall.converted:
        rate = pct(result.conversion_rate())
        lines.append(_say(a, REPORT_ENROLLED).format(n=overall.converted, members=overall.members, rate=rate))
    picture = _desk(a).picture
    if picture is not None:
        picture(run, a.member_id, result)
        lines.append(_say(a, REPORT_PICTURE))
    repo.audit(a.conn, run.id, a.member_id, "report", "", a.now)
    return "\n".join(lines)


# --- 重载, 帮助 -----------------------------------------------------------------------------


@command("reload", OPERATORS, HELP_RELOAD, ("重载", "reload"))
def reload(a: Asked) -> str:
    again = _desk(a).reload
    if again is None or not again():
        return _say(a, RELOAD_NOT_HERE)
    return _say(a, RELOAD_ASKED)


@command("operator_help", OPERATORS, HELP_HELP, ("帮助", "help", "菜单"))
def operator_help(a: Asked) -> str:
    from bot.commands import REGISTRY, help_text

    zh = _desk(a).language == "zh"
    lines = [_say(a, OPERATOR_HELP)]
    for cmd in REGISTRY.values():
        if cmd.words and "member" not in cmd.who:
            word = cmd.words[0] if zh else cmd.words[1]
            lines.append("· " + _say(a, cmd.describe).replace("{word}", word))
    lines += ["", _say(a, MEMBER_NOTE), help_text(a.run)]
    return "\n".join(lines)


# --- 精选 / 取消精选 (testimonials) ---------------------------------------------------------

FEATURE_LIST_HEAD = N_("[{cohort}] The latest testimonials (⭐ featured, 🔒 asked not to be quoted):")
FEATURE_LIST_LINE = N_("{name} · day {day} {time}{marks}: {text}")
FEATURE_HINT = N_('To feature one, send "{word} NAME" (their latest) or "{word} NAME DAY".')
NO_TESTIMONIALS = N_("[{cohort}] No testimonials yet{on_day}.")
NO_TESTIMONIAL_TRACK = N_(
    "[{cohort}] No track keeps testimonials; add `testimonial: true` to the 心得 track of the playbook."
)
ON_DAY = N_(" on day {day}")
NONE_FROM = N_("[{cohort}] No testimonial from {name}{on_day}.")
FEATURED = N_("⭐ [{cohort}] Featured: {name}, day {day} {time}: {text}")
ALREADY_FEATURED = N_("[{cohort}] Featured already: {name}, day {day} {time}.")
NOT_PUBLIC = N_("🔒 They asked not to be quoted: keep it out of anything public.")
UNFEATURED = N_("[{cohort}] No longer featured: {name}, day {day} {time}.")
NOT_FEATURED = N_("[{cohort}] {name} has no featured testimonial{on_day}.")
HELP_FEATURE = N_(
    '"{word} [NAME] [DAY] [cohort]": feature a testimonial (their latest, or that day\'s); '
    "without a name, the latest ones"
)
HELP_UNFEATURE = N_('"{word} NAME [DAY] [cohort]": take a featured mark away')
FEATURE_LIST_LIMIT = 10


@command("feature", OPERATORS, HELP_FEATURE, ("精选", "feature"))
def feature(a: Asked) -> str:
    return _feature(a, "精选", on=True)


@command("unfeature", OPERATORS, HELP_UNFEATURE, ("取消精选", "unfeature"))
def unfeature(a: Asked) -> str:
    return _feature(a, "取消精选", on=False)


def _feature(a: Asked, word: str, on: bool) -> str:
    run, rest, ask = _pick(a, word)
    if run is None:
        return ask or ""
    if not any(t.testimonial for t in run.playbook.tracks.values()):
        return _say(a, NO_TESTIMONIAL_TRACK).format(cohort=run.id)
    day = next((d for d in map(day_arg, rest) if d is not None), None)
    on_day = _say(a, ON_DAY).format(day=day) if day is not None else ""
    names = [r for r in rest if day_arg(r) is None]
    if not names:
        return _recent_testimonials(a, run, day, on_day)
    found, reply = _member(a, run, " ".join(names))
    if found is None:
        return reply
    theirs = [
        t
        for t in repo.testimonials(a.conn, run.id, member_id=found.id, newest_first=True)
        if (day is None or t.day == day) and (on or t.featured_at is not None)
    ]
    if not theirs:
        said = NONE_FROM if on else NOT_FEATURED
        return _say(a, said).format(cohort=run.id, name=found.shown, on_day=on_day)
    t = theirs[0]
    values = {"cohort": run.id, "name": found.shown, "day": t.day, "time": _hm(run, t.at)}
    if not on:
        repo.set_featured(a.conn, t.id, None, None)
        repo.audit(a.conn, run.id, a.member_id, "unfeature", f"{found.id} {t.id}", a.now)
        return _say(a, UNFEATURED).format(**values)
    if t.featured_at is not None:
        return _say(a, ALREADY_FEATURED).format(**values)
    repo.set_featured(a.conn, t.id, a.now, a.member_id)
    repo.audit(a.conn, run.id, a.member_id, "feature", f"{found.id} {t.id}", a.now)
    reply = _say(a, FEATURED).format(**values, text=excerpt(t.text))
    return reply if may_quote(t.text) else f"{reply}\n{_say(a, NOT_PUBLIC)}"


def _recent_testimonials(a: Asked, run: CohortRun, day: int | None, on_day: str) -> str:
    kept = [t for t in repo.testimonials(a.conn, run.id, newest_first=True) if day is None or t.day == day]
    if not kept:
        return _say(a, NO_TESTIMONIALS).format(cohort=run.id, on_day=on_day)
    lines = [_say(a, FEATURE_LIST_HEAD).format(cohort=run.id)]
    for t in kept[:FEATURE_LIST_LIMIT]:
        marks = ("⭐" if t.featured_at else "") + ("" if may_quote(t.text) else "🔒")
        lines.append(
            _say(a, FEATURE_LIST_LINE).format(
                name=t.name,
                day=t.day,
                time=_hm(run, t.at),
                marks=f" {marks}" if marks else "",
                text=excerpt(t.text, 40),
            )
        )
    if len(kept) > FEATURE_LIST_LIMIT:
        lines.append(_say(a, MISSING_MORE).format(n=len(kept) - FEATURE_LIST_LIMIT))
    lines.append(_say(a, FEATURE_HINT).format(word="精选" if _desk(a).language == "zh" else "feature"))
    return "\n".join(lines)


# --- 报名 / 取消报名 (conversions) ----------------------------------------------------------

ENROLL_USAGE = N_('Write: "{word} NAME", e.g. "{word} 小明".')
ENROLLED = N_(
    "🎉 [{cohort}] {name} marked as enrolled in the full course (by you). Enrolled so far: {n} of {total}."
)
ALREADY_ENROLLED = N_("[{cohort}] {name} is marked enrolled already ({time}, {source}).")
UNENROLLED = N_("[{cohort}] {name} is no longer marked enrolled. Enrolled now: {n} of {total}.")
NOT_ENROLLED = N_("[{cohort}] {name} is not marked enrolled.")
HELP_ENROLL = N_('"{word} NAME [cohort]": mark a member enrolled in the full course (报名)')
HELP_UNENROLL = N_('"{word} NAME [cohort]": undo a mistaken enrolment mark')


@command("enrolled", OPERATORS, HELP_ENROLL, ("报名", "enrolled"))
def enrolled(a: Asked) -> str:
    return _enrol(a, "报名", on=True)


@command("unenroll", OPERATORS, HELP_UNENROLL, ("取消报名", "unenroll"))
def unenroll(a: Asked) -> str:
    return _enrol(a, "取消报名", on=False)


def _enrol(a: Asked, word: str, on: bool) -> str:
    run, rest, ask = _pick(a, word)
    if run is None:
        return ask or ""
    if not rest:
        shown = word if _desk(a).language == "zh" else ("enrolled" if on else "unenroll")
        return _say(a, ENROLL_USAGE).format(word=shown)
    found, reply = _member(a, run, " ".join(rest))
    if found is None:
        return reply
    conn = a.conn
    values = {"cohort": run.id, "name": found.shown}
    if on and not repo.add_conversion(conn, run.id, found.id, a.now, a.member_id):
        [row] = repo.conversions(conn, run.id, found.id)
        source = source_said(row.source, {row.source: _name(conn, run, row.source)}, lambda m: _say(a, m))
        when = f"{run.cal.local(row.at):%m-%d %H:%M}"
        return _say(a, ALREADY_ENROLLED).format(**values, time=when, source=source)
    if not on and not repo.remove_conversion(conn, run.id, found.id):
        return _say(a, NOT_ENROLLED).format(**values)
    repo.audit(conn, run.id, a.member_id, "enrolled" if on else "unenroll", found.id, a.now)
    learners = {m.member_id for m in repo.members(conn, run.id, present_only=False) if m.role == LEARNER}
    n = len({c.member_id for c in repo.conversions(conn, run.id)} & learners)
    return _say(a, ENROLLED if on else UNENROLLED).format(**values, n=n, total=len(learners))
