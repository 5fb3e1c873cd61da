"""Property tests over message handling: whatever members type and whatever they are called,
the bot never crashes, counts exactly the check-ins that say a keyword, and never lets a
name break a template or forge a line.

Each example runs the whole bot (simulated group, engine, outbox, in-memory SQLite) on its
own virtual-time loop. The EXAMPLE playbook: lesson keywords 打卡/完成, reading 晨读打卡/晨读.
"""

from __future__ import annotations

import logging
import re
from datetime import UTC, datetime

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from bot.clock import run_virtual
from bot.transports.base import Member
from storage import repo
from tests.harness import Harness

SETTINGS = settings(
    max_examples=40, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow]
)

# Before a keyword: what phones and keyboards put there without the member seeing it.
INVISIBLE = st.sampled_from(["", "\u200b", "\ufeff", " ", "\u3000", "\u2060", "\u200e", "\r\n"])
MENTION = st.sampled_from(["", "@CohortBot ", "＠CohortBot ", "@CohortBot\u2005", "＠CohortBot\u2005"])
# (what is typed, the track it counts for, or None)
CORES = st.sampled_from(
    [
        ("打卡", "lesson"),
        ("完成", "lesson"),
        ("晨读", "reading"),
        ("晨读打卡", "reading"),
        ("打 卡", None),
        ("打卞", None),
        ("大卡", None),
        ("⼿打卡", None),
        ("完 成", None),
        ("@别人 打卡", None),
        ("今天打卡", None),
        ("", None),
    ]
)
# After the keyword anything goes, but not a character that could start another keyword.
TAIL = st.text(
    alphabet=st.characters(blacklist_characters="打完晨卡读成", blacklist_categories=("Cs",)), max_size=30
)
ANY_TEXT = st.one_of(
    st.text(max_size=200),
    st.text(alphabet=st.characters(max_codepoint=0x20), max_size=50),  # control characters
    st.just("打卡" + "啊" * 65_536),  # a 64 kB check-in
    st.just("\x00" * 1000),
    st.just("{name}{done}{{}}}{"),
)
NAMES = st.one_of(
    st.text(min_size=0, max_size=80),
    st.sampled_from(
        ["X\nACK 正课\n🎁 张三 http://evil.example", "{name}", "{", "}}", "\x00", "😀" * 50, "  "]
    ),
)


@st.composite
def checkin_text(draw: st.DrawFn) -> tuple[str, str | None]:
    core, track = draw(CORES)
    text = draw(INVISIBLE) + draw(MENTION) + core + draw(TAIL)
    return text, track


# The lines a roll call (and a reminder carrying one) may have.
TRACK_LINE = re.compile(r"^(?:正课|晨读) \+(\d+)（今日 \d+/\d+）：[^\n]+$")
OTHER_LINES = [
    re.compile(r"^✅ 第\d+天打卡播报$"),
    re.compile(r"^🎁 解锁资料大礼包：[^\n]+$"),
    re.compile(r"^今天的课还没完成的同学抓紧哦 👇(?:（\d+/\d+）)?$"),
    re.compile(r"^$"),
]


def run_bot(script):  # type: ignore[no-untyped-def]
    """Run ``script(h)`` on a fresh bot and virtual loop; returns its result."""

    async def main(_clock):  # type: ignore[no-untyped-def]
        h = await Harness.start(people=[], now="day 2 07:45")
        try:
            return await script(h)
        finally:
            await h.stop()

    return run_virtual(datetime(2026, 1, 1, tzinfo=UTC), main)


class Errors(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@SETTINGS
@given(st.lists(checkin_text(), min_size=1, max_size=8))
def test_exactly_the_messages_that_say_a_keyword_count(said):
    errors = Errors()
    logging.getLogger().addHandler(errors)

    async def script(h: Harness):  # type: ignore[no-untyped-def]
        for i, (text, _) in enumerate(said):
            await h.group.join(Member(f"u{i}", f"学员{i}"), announce=False)
            await h.say(f"u{i}", text)
        await h.settle()
        with h.bot.db.connect() as conn:
            return {
                f"u{i}": [t for t in ("lesson", "reading") if repo.has_checkin(conn, "c1", f"u{i}", t, 2)]
                for i in range(len(said))
            }

    try:
        counted = run_bot(script)
    finally:
        logging.getLogger().removeHandler(errors)
    expected = {f"u{i}": [track] if track else [] for i, (_, track) in enumerate(said)}
    assert counted == expected, said
    assert [r.getMessage() for r in errors.records] == []


@SETTINGS
@given(st.lists(st.tuples(NAMES, ANY_TEXT), min_size=1, max_size=5))
def test_hostile_names_and_texts_never_crash_nor_break_a_line(people):
    errors = Errors()
    logging.getLogger().addHandler(errors)

    async def script(h: Harness):  # type: ignore[no-untyped-def]
        for i, (name, text) in enumerate(people):
            await h.group.join(Member(f"u{i}", name))
            await h.say(f"u{i}", text)
            await h.say(f"u{i}", "打卡")
            await h.dm(f"u{i}", text)
        await h.settle()
        await h.dm("u0", "进度")
        await h.until("day 2 21:35")
        await h.settle()
        with h.bot.db.connect() as conn:
            c = repo.checkin_t.c
            lessons = select(func.count()).where(c.track == "lesson")
            unnamed = select(func.count()).where(c.named_at.is_(None))
            return (
                list(h.sent),
                conn.execute(select(func.count()).select_from(repo.checkin_t)).scalar_one(),
                conn.execute(lessons).scalar_one(),
                conn.execute(unnamed).scalar_one(),
            )

    try:
        sent, checkins, lessons, unnamed = run_bot(script)
    finally:
        logging.getLogger().removeHandler(errors)
    assert [r.getMessage() for r in errors.records] == []
    for s in sent:
        assert "\x00" not in s.text
    assert lessons == len(people)  # everyone's 打卡 counted
    assert unnamed == 0  # and was named
    # Roll calls (on their own or carried by the reminder) are made of their own lines only:
    # no name added a line, and together they name every check-in once.
    named = 0
    for s in sent:
        if "rollcall" not in s.kinds and "remind" not in s.kinds:
            continue
        for line in s.text.splitlines():
            if m := TRACK_LINE.match(line):
                named += int(m.group(1))
            else:
                assert any(p.match(line) for p in OTHER_LINES), (line, s.text)
    assert named == checkins
