"""The embedded demo: the sample playbook and about 60 generated members with different
habits, played on the virtual clock, then summary tables."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

from bot.playbook import Playbook
from bot.scenario import Scenario

SAMPLE_PLAYBOOK = Path(__file__).resolve().parent.parent / "playbooks" / "python-8day.yaml"

SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘"
GIVEN = [
    "伟",
    "芳",
    "娜",
    "敏",
    "静",
    "磊",
    "洋",
    "艳",
    "勇",
    "杰",
    "娟",
    "涛",
    "明",
    "超",
    "秀英",
    "霞",
    "平",
    "刚",
    "桂英",
    "晨",
    "子涵",
    "浩然",
    "雨萱",
    "梓轩",
    "欣怡",
    "一诺",
    "思远",
    "佳琪",
]
CHATTER = [
    "老师好",
    "收到",
    "👍👍",
    "今天的内容好实用",
    "请问作业在哪里交？",
    "😂",
    "打扰了，想问下链接打不开",
    "谢谢助教",
    "签到",
    "🌹🌹🌹",
]


@dataclass(frozen=True)
class Habit:
    name: str
    reading: float  # chance to do the morning reading on a lesson day
    lesson: float  # chance to finish the lesson on a lesson day
    late: bool  # does things late in the day
    chatty: float  # chance of a chat message a day


HABITS = [
    (Habit("diligent", 0.95, 0.95, False, 0.3), 0.40),
    (Habit("late", 0.6, 0.75, True, 0.2), 0.20),
    (Habit("casual", 0.5, 0.5, False, 0.2), 0.15),
    (Habit("lurker", 0.08, 0.1, False, 0.02), 0.25),
]


def _hhmm(minutes: int) -> str:
    minutes = max(0, min(minutes, 23 * 60 + 59))
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def _key(at: str) -> tuple[int, str]:
    """ "day N HH:MM" -> (N, "HH:MM"), which sorts in time order."""
    _, day, hhmm = at.split()
    return int(day), hhmm


def demo_scenario(
    playbook: Playbook, members: int = 60, seed: int = 7, start: date = date(2026, 12, 1)
) -> tuple[Scenario, dict[str, str]]:
    """A scenario for the sample playbook; also returns member id -> habit name."""
    rng = random.Random(seed)
    habits = [h for h, _ in HABITS]
    weights = [w for _, w in HABITS]
    people: list[dict[str, Any]] = [{"id": "op1", "name": "王助教"}]
    habit_of: dict[str, str] = {"op1": "operator"}
    used: set[str] = set()

    def new_name() -> str:
        while True:
            name = rng.choice(SURNAMES) + rng.choice(GIVEN)
            if name not in used:
                used.add(name)
                return name

    for i in range(1, members + 1):
        mid = f"u{i:02d}"
        people.append({"id": mid, "name": new_name()})
        habit_of[mid] = rng.choices(habits, weights)[0].name
    joiners = [
        {"id": f"u{members + 1:02d}", "name": new_name()},
        {"id": f"u{members + 2:02d}", "name": new_name()},
    ]
    for j in joiners:
        habit_of[j["id"]] = "diligent"
    leaver = "u05"
    habit_of[leaver] = "leaves on day 4"
    by_name = {h.name: h for h in habits}
    reading_days = playbook.tracks["reading"].days
    lesson_days = playbook.tracks["lesson"].days
    reflection_days = playbook.tracks["reflection"].days if "reflection" in playbook.tracks else []

    events: list[dict[str, Any]] = [
        {"at": "day 3 08:10", "join": joiners[0]},
        {"at": "day 3 13:40", "join": joiners[1]},
        {"at": "day 4 12:00", "leave": leaver},
        {"at": "day 1 09:05", "from": "u01", "text": "帮助"},
        {"at": "day 2 12:30", "from": "u02", "text": "今日安排"},
        {"at": "day 4 21:00", "from": "u03", "dm": True, "text": "进度"},
        {"at": "day 5 22:05", "from": "u04", "text": "排行榜"},
        {"at": "day 6 09:30", "from": "op1", "text": "大家结营快乐，今晚 8 点不见不散！"},
        {"at": "day 2 19:00", "from": "u07", "text": "@CohortBot 打卡"},
        {"at": "day 2 19:01", "from": "u07", "text": "打卡"},  # a duplicate
        {"at": "day 2 15:30", "from": "u09", "text": "🎉🎉🎉"},
        {"at": "day 2 15:31", "from": "u10", "text": "@CohortBot"},
        {"at": "day 2 15:32", "from": "u11", "text": "长消息" * 2000},
        {"at": "day 2 15:33", "from": "u12", "text": ""},
    ]
    for mid in [p["id"] for p in people[1:]] + [j["id"] for j in joiners]:
        habit = by_name.get(habit_of[mid], by_name["diligent"])
        first_day = 3 if mid in (joiners[0]["id"], joiners[1]["id"]) else 1
        last_day = 4 if mid == leaver else playbook.days
        for day in range(first_day, last_day + 1):
            if day in reading_days and rng.random() < habit.reading:
                t = rng.randint(7 * 60 + 35, 13 * 60 if habit.late else 11 * 60 + 50)
                if not (mid in (joiners[0]["id"],) and day == 3 and t < 8 * 60 + 10):
                    events.append(
                        {
                            "at": f"day {day} {_hhmm(t)}",
                            "from": mid,
                            "text": rng.choice(["晨读打卡", "晨读", "晨读打卡 今天的句子很棒"]),
                        }
                    )
            if day in lesson_days and rng.random() < habit.lesson and not (mid == leaver and day == 4):
                base = (
                    rng.randint(21 * 60 + 35, 23 * 60 + 50)
                    if habit.late
                    else rng.randint(19 * 60, 21 * 60 + 20)
                )
                events.append(
                    {
                        "at": f"day {day} {_hhmm(base)}",
                        "from": mid,
                        "text": rng.choice(["打卡", "打卡！", "完成", "打卡 第一次写出了循环"]),
                    }
                )
            if day in reflection_days and rng.random() < habit.lesson * 0.6:
                events.append(
                    {
                        "at": f"day {day} {_hhmm(rng.randint(20 * 60 + 5, 22 * 60))}",
                        "from": mid,
                        "text": "心得："
                        + rng.choice(["终于理解了函数", "坚持打卡真的有收获", "猜数字游戏写出来超有成就感"]),
                    }
                )
            if rng.random() < habit.chatty:
                events.append(
                    {
                        "at": f"day {day} {_hhmm(rng.randint(9 * 60, 23 * 60))}",
                        "from": mid,
                        "text": rng.choice(CHATTER),
                    }
                )
    # Joiners say nothing before they are in the group.
    joined_at = {e["join"]["id"]: _key(e["at"]) for e in events if "join" in e}
    events = [e for e in events if e.get("from") not in joined_at or _key(e["at"]) > joined_at[e["from"]]]
    sc = Scenario.model_validate(
        {
            "start": start,
            "room": "Python 8天训练营 1班",
            "bot": "CohortBot",
            "operators": ["op1"],
            "members": people,
            "events": events,
        }
    )
    return sc, habit_of
