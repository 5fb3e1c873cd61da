"""The commands members (and operators) send the bot, in one registry: each declares the
playbook's name for it (its keywords are in the playbook's `commands:`), who may use it, and
the function that answers. Where an operator command is handled: here, like every other.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection

from bot.cohort import CohortRun
from storage import repo
from storage.models import LEARNER, OPERATOR

MEMBER = frozenset({LEARNER, OPERATOR})
OPERATORS = frozenset({OPERATOR})


@dataclass(frozen=True)
class Asked:
    """One command as asked: by whom, in which cohort, when."""

    conn: Connection
    run: CohortRun
    member_id: str
    name: str
    now: datetime


@dataclass(frozen=True)
class Command:
    name: str  # its key in the playbook's `commands:`
    who: frozenset[str]  # the roles that may use it
    answer: Callable[[Asked], str]
    describe: str  # for the help text; {word} is its first keyword


REGISTRY: dict[str, Command] = {}


def command(
    name: str, who: frozenset[str], describe: str
) -> Callable[[Callable[[Asked], str]], Callable[[Asked], str]]:
    def register(answer: Callable[[Asked], str]) -> Callable[[Asked], str]:
        REGISTRY[name] = Command(name, who, answer, describe)
        return answer

    return register


def allowed(name: str, role: str) -> bool:
    found = REGISTRY.get(name)
    return found is not None and role in found.who


def answer(name: str, asked: Asked) -> str:
    return REGISTRY[name].answer(asked)


MEDALS = ["🥇", "🥈", "🥉"]


def progress(conn: Connection, run: CohortRun, member_id: str, name: str, now: datetime) -> str:
    today = run.day(now)
    lines = [f"📋 {name} 的学习进度（{run.playbook.name}）"]
    for tid, track in run.playbook.tracks.items():
        days = repo.member_days(conn, run.id, member_id, tid)
        line = f"· {track.name}：{len(days)}/{len(track.days)} 天"
        if days:
            line += "（" + "、".join(f"第{d}天" for d in days) + "）"
        if today in track.days:
            line += "，今天" + ("已打卡 ✅" if today in days else "还没打卡")
        lines.append(line)
    granted = set(repo.rewards_of(conn, run.id, member_id))
    for r in run.playbook.rewards:
        have = len(repo.member_days(conn, run.id, member_id, r.track))
        state = "已获得 🎁" if r.id in granted else f"还差 {max(r.count - have, 0)} 天"
        lines.append(f"· {r.name}：{state}")
    return "\n".join(lines)


def ranking(conn: Connection, run: CohortRun, track: str | None, top: int) -> list[tuple[str, int]]:
    names = {m.member_id: m.alias or m.name for m in repo.members(conn, run.id)}
    rows = [(names[mid], n) for mid, n, _ in repo.checkin_totals(conn, run.id, track) if mid in names]
    return rows[:top]


def format_ranking(title: str, rows: list[tuple[str, int]], unit: str) -> str:
    if not rows:
        return f"{title}\n还没有人打卡，快来做第一个吧！"
    lines = [title]
    for i, (name, n) in enumerate(rows):
        mark = MEDALS[i] if i < len(MEDALS) else f"{i + 1}."
        lines.append(f"{mark} {name} {n}{unit}")
    return "\n".join(lines)


def leaderboard(conn: Connection, run: CohortRun) -> str:
    return format_ranking("🏆 打卡总排行榜（前 10 名）", ranking(conn, run, None, 10), " 次")


@command("progress", MEMBER, "「{word}」查看你的打卡进度")
def _progress(a: Asked) -> str:
    return progress(a.conn, a.run, a.member_id, a.name, a.now)


@command("leaderboard", MEMBER, "「{word}」查看打卡排行榜")
def _leaderboard(a: Asked) -> str:
    return leaderboard(a.conn, a.run)


@command("today", MEMBER, "「{word}」查看今天的安排")
def _today(a: Asked) -> str:
    return today(a.run, a.now, repo.present_count(a.conn, a.run.id))


@command("help", MEMBER, "「{word}」查看这条说明")
def _help(a: Asked) -> str:
    return help_text(a.run)


@command("mute", MEMBER, "「{word}」不再@你、不再私信提醒你")
def _mute(a: Asked) -> str:
    repo.set_muted(a.conn, a.run.id, a.member_id, True)
    unmute = a.run.playbook.commands.unmute
    back = f"，想恢复就发「{unmute[0]}」" if unmute else ""
    return f"好的，{a.name}，之后不再@你、也不再私信提醒你{back}。打卡照常计入 ✅"


@command("unmute", MEMBER, "「{word}」恢复打卡提醒")
def _unmute(a: Asked) -> str:
    repo.set_muted(a.conn, a.run.id, a.member_id, False)
    return f"好的，{a.name}，打卡提醒已恢复 🔔"


def today(run: CohortRun, now: datetime, total: int | str = "") -> str:
    from bot import items  # (items builds on this module's rankings)

    day = run.day(now)
    start = run.cal.start
    if day < 1:
        return f"📅 {run.playbook.name} 将于 {start.month}月{start.day}日 开始，敬请期待！"
    if day > run.playbook.days:
        return f"📅 {run.playbook.name} 已经结束啦，感谢参与！"
    lines = [f"📅 第{day}天安排"]
    for it in run.playbook.schedule:
        if it.day == day and (text := items.describe(run, it, total)):
            lines.append(f"{it.at:%H:%M} {text}")
    checkins = [t for t in run.playbook.tracks.values() if day in t.days]
    if checkins:
        lines.append(
            "今日打卡："
            + "；".join(
                f"{t.name}发「{t.keywords[0]}」" + (f"（{t.until:%H:%M} 前）" if t.until else "")
                for t in checkins
            )
        )
    if len(lines) == 1:
        lines.append("今天没有安排，好好休息～")
    return "\n".join(lines)


def help_text(run: CohortRun) -> str:
    c = run.playbook.commands
    lines = [f"🤖 我是{run.playbook.name}的助教机器人，可以发送："]
    for name, cmd in REGISTRY.items():
        words = getattr(c, name, None)
        if words and LEARNER in cmd.who:
            lines.append("· " + cmd.describe.replace("{word}", words[0]))
    for t in run.playbook.tracks.values():
        what = t.name if t.name.endswith("打卡") else "打卡" + t.name
        lines.append(f"{what}：在群里发「{t.keywords[0]}」")
    return "\n".join(lines)
