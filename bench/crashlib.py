"""The crash harness: the real `cohortbot run` process against the mock Wechaty gateway,
SIGKILLed at seeded moments and restarted on the same database, then checked for
exactly-once. bench/crash.py is its command line; tests/test_crash.py runs a short version.

What runs: a playbook written here whose day 1 is today, in a time zone chosen so the
whole run falls on one local day, with a schedule item every minute (a post, and a remind or
a nudge on the `lesson` track; one leaderboard): one item past the grace window (it must be
skipped), a few in the last minutes (sent late at the first start) and one or more in the
next minutes. Members check in through the gateway in trickles and bursts, some twice, some
on the `reading` track; both tracks have a reward reachable with one check-in. Lurkers never
check in, so every remind and nudge has someone to reach. Counted check-ins are not answered
one by one: roll calls name them (a line per track, the `lesson` track's default line and
the `reading` track's own `roll_call:` template, and a line per reward), on their own or
carried by a reminder; the config paces them as fast as it allows (one a minute at most,
no name waiting more than a minute, no quiet hours).

Kills (SIGKILL, then an immediate restart on the same database) are of six kinds:
``minute`` within a second of a scheduled minute, ``burst`` right after a burst of
check-ins, ``recovery`` just after a restarted bot is up again (late items and the outbox's
recovery in flight), ``startup`` while the restarted bot is still starting, ``send`` the
moment the gateway records a send (before the bot can mark it sent: the "delivered but not
recorded" case), ``random`` anywhere. After the last
one the bot runs until everything due is sent, then is stopped with SIGINT.

Ground truth for what was sent is the gateway's record (`sent()`); the database is read for
check-ins, claimed items, grants and the outbox rows' final status (to tell a send cut by a
kill, which is reported to the operators and never repeated by design, from a real loss). A
check-in is acknowledged when a roll call line names the member on that track; one whose roll
call was composed but cut by a kill (`unknown`, never re-sent) counts with the other cut sends.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from sqlalchemy import create_engine, make_url, text  # noqa: E402

from tests.gateway.driver import Gateway  # noqa: E402

PG_URL = os.environ.get("COHORTBOT_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test")

ROOM = "crash@chatroom"
TOPIC = "崩溃测试营 1班"
COHORT = "crash"
OPERATOR = "op1"
ACTIVE = [f"m{i:02d}" for i in range(1, 20)]  # check in
LURKERS = [f"m{i:02d}" for i in range(20, 25)]  # never check in: every remind/nudge reaches them
MEMBERS = ACTIVE + LURKERS
ALIASED = {"m03", "m08", "m21"}  # shown by a group alias, as WeChat does
GRACE_MINUTES = 10
TRACKS = {"lesson": "正课", "reading": "晨读"}
REWARDS = {"lesson-pack": "lesson", "reading-pack": "reading"}
REWARD_NAMES = {"lesson-pack": "正课礼包", "reading-pack": "晨读礼包"}
# Each track's roll-call line: bot/rollcall.py's default for `lesson`, the playbook's own
# `roll_call:` for `reading`; and the reward line.
ROLL_CALL = {
    "lesson": "{track} +{count}（今日 {done}/{total}）：{names}",
    "reading": "📖 {track}打卡 +{count}（今日 {done}/{total}）：{names}",
}
REWARD_LINE = "🎁 解锁{reward}：{names}"
PART_TAIL = re.compile(r"（\d+/\d+）$")  # a message split in parts ends "（1/2）"
ROLL_CALL_EVERY = 1  # minutes, the config's pacing.ack_every_minutes (and ack_max_wait_minutes)
# A counted check-in still waiting for its roll call this long after it was made is overdue:
# a roll call waits for the interval, or its oldest name waits a minute, and a reminder due
# soon may carry the names (then the roll call's own time is a minute after the reminder).
OVERDUE_SECONDS = 200
MARK = re.compile(r"\[item:([a-z0-9-]+)\]")
REWARD_MARK = re.compile(r"\[reward:([a-z-]+)\]")
AT_PREFIX = re.compile(r"^(?:@[^\u2005]*\u2005)+")
READY_LINE = "day 1 = "


def name_of(mid: str) -> str:
    return f"学员{mid[1:]}"


def shown_of(mid: str) -> str:
    return f"学员{mid[1:]}（2组）" if mid in ALIASED else name_of(mid)


def world() -> dict:
    contacts = [{"id": OPERATOR, "name": "王助教"}]
    for mid in MEMBERS:
        c = {"id": mid, "name": name_of(mid)}
        if mid in ALIASED:
            c["alias"] = shown_of(mid)
        contacts.append(c)
    return {
        "bot": {"id": "bot", "name": "CohortBot"},
        "contacts": contacts,
        "rooms": [{"id": ROOM, "topic": TOPIC, "members": [OPERATOR, *MEMBERS]}],
    }


# --------------------------------------------------------------------------- the schedule


@dataclass(frozen=True)
class Item:
    id: str
    kind: str  # post | remind | nudge | leaderboard
    due: datetime  # UTC


def pick_zone(now: datetime, before: timedelta, after: timedelta) -> ZoneInfo:
    """UTC if [now - before, now + after] is one local day there, else the nearest whole-hour
    zone where it is (Etc/GMT-3 is UTC+3)."""
    for hours in (0, 1, -1, 2, -2, 3, -3, 4, -4, 5, -5, 6, -6, 7, -7, 8, -8, 9, -9, 10, -10, 11, -11, 12):
        name = "UTC" if hours == 0 else f"Etc/GMT{-hours:+d}"
        zone = ZoneInfo(name)
        if (now - before).astimezone(zone).date() == (now + after).astimezone(zone).date():
            return zone
    raise RuntimeError("no time zone keeps the run on one day")  # cannot happen: 24 zones


def plan_items(now: datetime, zone: ZoneInfo, horizon: datetime) -> list[Item]:
    """One past the grace window, three in the last minutes, then one every minute up to the
    horizon: a post each minute, and alternately a remind and a nudge."""
    minute = now.astimezone(zone).replace(second=0, microsecond=0).astimezone(UTC)
    items = [Item("old", "post", minute - timedelta(minutes=GRACE_MINUTES + 2))]
    k = -3
    while True:
        due = minute + timedelta(minutes=k)
        if due > horizon:
            break
        if k > 0 and due < now + timedelta(seconds=6):
            k += 1
            continue  # too close: the bot would not be up yet
        tag = due.astimezone(zone).strftime("%H%M")
        items.append(Item(f"p{tag}", "post", due))
        items.append(Item(f"{'r' if k % 2 == 0 else 'n'}{tag}", "remind" if k % 2 == 0 else "nudge", due))
        if k == 0:
            items.append(Item(f"l{tag}", "leaderboard", due))
        k += 1
    return items


def playbook_yaml(items: list[Item], zone: ZoneInfo) -> str:
    lines = [
        "name: 崩溃测试营",
        "days: 2",
        f"timezone: {zone.key}",
        "tracks:",
        '  lesson: {name: 正课, keywords: ["打卡"], days: [1]}',
        '  reading: {name: 晨读, keywords: ["晨读打卡", "晨读"], days: [1], '
        f'roll_call: "{ROLL_CALL["reading"]}"}}',
        "rewards:",
        "  - {id: lesson-pack, name: 正课礼包, track: lesson, count: 1,",
        '     dm: "🎁 {name}，这是你的{reward} [reward:lesson-pack]"}',
        "  - {id: reading-pack, name: 晨读礼包, track: reading, count: 1,",
        '     dm: "📚 {name}，这是你的{reward} [reward:reading-pack]"}',
        "schedule:",
    ]
    for it in items:
        at = it.due.astimezone(zone).strftime("%H:%M")
        head = f'  - {{id: {it.id}, day: 1, at: "{at}", '
        if it.kind == "post":
            lines.append(head + f'post: "📢 第{{day}}天公告 [item:{it.id}]"}}')
        elif it.kind == "remind":
            lines.append(head + f'remind: {{track: lesson, text: "还没打卡的同学抓紧哦 [item:{it.id}]"}}}}')
        elif it.kind == "nudge":
            lines.append(
                head + f'nudge: {{track: lesson, dm: "{{name}}，今天的课还没完成哦 [item:{it.id}]"}}}}'
            )
        else:
            lines.append(
                head + f'leaderboard: {{track: lesson, title: "🏆 {{track}}排行榜 [item:{it.id}]"}}}}'
            )
    return "\n".join(lines) + "\n"


def transport_yaml(gw: Gateway) -> str:
    """The config's `transport:` for the mock gateway, and pacing as fast as it goes."""
    return textwrap.dedent(f"""\
        transport:
          kind: wechaty
          endpoint: {gw.endpoint}
          token: {gw.token}
          connect_timeout_seconds: 30
          room_wait_seconds: 20
          ping_seconds: 5
        pacing:
          same_chat_seconds: 0.05
          any_chat_seconds: 0.05
          per_minute: 1000
        """)


def config_yaml(db_url: str, gw: Gateway, start: str) -> str:
    return (
        f"database: {db_url}\noperators: [{OPERATOR}]\n"
        + transport_yaml(gw)
        + textwrap.dedent(f"""\
          max_mentions: 8
          ack_window_seconds: 0.5
          ack_every_minutes: {ROLL_CALL_EVERY}
          ack_max_wait_minutes: {ROLL_CALL_EVERY}
        quiet_hours: "off"
        grace_minutes: {GRACE_MINUTES}
        cohorts:
          - {{id: {COHORT}, playbook: playbook.yaml, room: {TOPIC}, start: {start}}}
        """)
    )


# --------------------------------------------------------------------------- the bot process


@dataclass
class Life:
    n: int
    spawned: float
    ready: float | None = None
    ended: float | None = None
    how: str = ""  # killed | stopped | exited <code>


def bot_env() -> dict[str, str]:
    """The environment of a bot process: this checkout's bot, whatever else is installed or
    on the path; unbuffered output; lines wide enough to read whole."""
    return {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]),
        "PYTHONUNBUFFERED": "1",
        "COLUMNS": "200",
    }


def refused(log: str) -> bool:
    """The bot refused to start because what it would run is held: the dead one's lock or
    lease not let go yet (PostgreSQL may take a moment to notice the closed connection)."""
    return "another cohortbot is running" in log or "is already run by" in log


class BotProcess:
    """`cohortbot run` as an operator starts it; one log file per life."""

    def __init__(self, config: Path, workdir: Path) -> None:
        self.config = config
        self.workdir = workdir
        self.proc: subprocess.Popen | None = None
        self.lives: list[Life] = []
        self._log: Path | None = None

    @property
    def life(self) -> Life:
        return self.lives[-1]

    def spawn(self) -> None:
        # A bot refused because the dead one's lock is still held (PostgreSQL may take a
        # moment to notice the closed connection) is spawned again by wait_ready/check_alive.
        if sum(1 for life in self.lives if life.how.startswith("refused")) > 50:
            raise RuntimeError("the bot kept refusing to start: the database lock was never released")
        n = len(self.lives) + 1
        self._log = self.workdir / f"bot-{n:02d}.log"
        with open(self._log, "wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "bot.cli", "run", "--config", str(self.config)],
                cwd=ROOT,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=bot_env(),
            )
        self.lives.append(Life(n, time.time()))

    def log_text(self) -> str:
        return self._log.read_text(errors="replace") if self._log and self._log.exists() else ""

    def poll_ready(self) -> bool:
        if self.life.ready is None and READY_LINE in self.log_text():
            self.life.ready = time.time()
        return self.life.ready is not None

    def wait_ready(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while not self.poll_ready():
            if self.proc is not None and self.proc.poll() is not None:
                if refused(self.log_text()):
                    self.life.ended, self.life.how = time.time(), "refused: lock still held"
                    time.sleep(0.3)
                    self.spawn()
                    continue
                raise RuntimeError(f"the bot exited with {self.proc.returncode}:\n{self.log_text()[-3000:]}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"the bot was not up after {timeout}s:\n{self.log_text()[-3000:]}")
            time.sleep(0.02)

    def check_alive(self) -> None:
        """A bot that died on its own (not by our hand) is a finding: stop the run."""
        if self.proc is not None and self.proc.poll() is not None and self.life.ended is None:
            code = self.proc.returncode
            if refused(self.log_text()):
                self.life.ended, self.life.how = time.time(), "refused: lock still held"
                self.spawn()
                return
            raise RuntimeError(f"the bot exited by itself with {code}:\n{self.log_text()[-3000:]}")

    def kill(self) -> bool:
        """SIGKILL; True if it was up (had finished starting)."""
        assert self.proc is not None
        self.poll_ready()
        self.check_alive()
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()
        self.life.ended, self.life.how = time.time(), "killed"
        return self.life.ready is not None

    def stop(self, timeout: float = 60) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.life.ended, self.life.how = time.time(), f"stopped ({self.proc.returncode})"
        return self.proc.returncode

    def ensure_dead(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


# --------------------------------------------------------------------------- traffic


class Traffic:
    """Members writing in the group through the gateway; every message is recorded."""

    def __init__(self, gw: Gateway) -> None:
        self.gw = gw
        self.lock = threading.Lock()
        self.said: list[tuple[float, str, str]] = []  # (time, member, track | "progress" | "chat")
        self.errors: list[str] = []

    def checkin(self, mid: str, rng: random.Random) -> None:
        track = "reading" if rng.random() < 0.3 else "lesson"
        word = {"lesson": "打卡", "reading": rng.choice(["晨读打卡", "晨读"])}[track]
        self._say(mid, word + rng.choice(["", " 今天学完了", "！"]), track)

    def _say(self, mid: str, text: str, what: str) -> None:
        t = time.time()
        try:
            if what == "progress":
                self.gw.dm(mid, text)
            else:
                self.gw.say(mid, text)
        except Exception as exc:  # the gateway is never killed: record, do not die
            self.errors.append(f"{mid}: {exc}")
            return
        with self.lock:
            self.said.append((t, mid, what))

    def ask(self, mid: str) -> None:
        self._say(mid, "进度", "progress")

    def burst(self, size: int, rng: random.Random) -> None:
        for mid in rng.sample(ACTIVE, min(size, len(ACTIVE))):
            self.checkin(mid, rng)

    def trickle_one(self, rng: random.Random) -> None:
        r = rng.random()
        mid = rng.choice(ACTIVE)
        if r < 0.08:
            self._say(mid, "进度", "progress")
        elif r < 0.15:
            self._say(rng.choice(MEMBERS), "大家好，今天的作业有点难", "chat")
        else:
            self.checkin(mid, rng)


# --------------------------------------------------------------------------- kills


@dataclass
class Kill:
    kind: str  # minute | burst | recovery | startup | send | random
    at: float  # planned (epoch seconds); for recovery: delay after the bot is up
    done_at: float | None = None
    was_up: bool = False
    burst: int = 0


def plan_kills(rng: random.Random, kills: int, begin: float, end: float, minutes: list[float]) -> list[Kill]:
    """One kill per slot of equal length; a slot holding a scheduled minute gets a kill
    within a second of it; the others are bursts, recoveries and random moments."""
    if kills <= 0:
        return []
    slot = (end - begin) / kills
    plan: list[Kill] = []
    bag = ["burst", "recovery", "random", "send", "startup"] * kills
    rng.shuffle(bag)
    minute_slots = {}
    for m in minutes:
        i = int((m - begin) // slot)
        if 0 <= i < kills and i not in minute_slots:
            minute_slots[i] = m
    for i in range(kills):
        lo, hi = begin + i * slot, begin + (i + 1) * slot
        if i in minute_slots:
            plan.append(Kill("minute", minute_slots[i] + rng.uniform(-0.5, 1.0)))
            continue
        # Leave the bot time to be up at the next scheduled minute.
        if i + 1 in minute_slots:
            hi = min(hi, minute_slots[i + 1] - 6)
        if i - 1 in minute_slots:
            lo = max(lo, minute_slots[i - 1] + 4)
        hi = max(hi, lo + 0.5)
        kind = bag.pop()
        if kind == "recovery":
            plan.append(Kill("recovery", rng.uniform(0.2, 1.5)))
        elif kind == "startup":
            plan.append(Kill("startup", rng.uniform(0.3, 1.8)))
        elif kind == "burst":
            plan.append(Kill("burst", rng.uniform(lo + (hi - lo) * 0.3, hi), burst=rng.randint(6, 16)))
        elif kind == "send":
            plan.append(Kill("send", rng.uniform(lo, hi)))
        else:
            plan.append(Kill("random", rng.uniform(lo, hi)))
    return plan


def wait_for_a_send(gw: Gateway, timeout: float) -> bool:
    """Return the moment the gateway reports a new send from the bot (its record is written
    before the bot hears back, so a kill now usually falls before the bot marks the row
    sent); False after ``timeout``."""
    events = gw.events
    last = events[-1] if events else None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if events and events[-1] is not last:
            if events[-1].get("event") == "bot-sent":
                return True
            last = events[-1]
        time.sleep(0.0002)
    return False


# --------------------------------------------------------------------------- the run


@dataclass
class Result:
    db: str
    seed: int
    kills_planned: int
    kills: list[Kill]
    lives: list[Life]
    items: list[Item]
    figures: dict[str, int]  # the must-be-zero ones
    info: dict[str, object]
    dup_by_kind: dict[str, int]
    details: list[str]
    wall: float
    workdir: Path | None = None

    @property
    def ok(self) -> bool:
        return all(v == 0 for v in self.figures.values())


def _sqlite_url(workdir: Path) -> str:
    return f"sqlite:///{workdir / 'bot.db'}"


@contextlib.contextmanager
def scratch_postgres(base_url: str = PG_URL):
    """A database of its own on the server (the bot's lock and tables stay out of `test`)."""
    base = make_url(base_url)
    name = f"cohortbot_crash_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield base.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def postgres_available(base_url: str = PG_URL) -> str | None:
    """None if the server answers, else why not."""
    try:
        engine = create_engine(base_url)
        with engine.connect() as conn:
            conn.execute(text("select 1"))
        engine.dispose()
    except Exception as exc:
        return str(exc).splitlines()[0]
    return None


def run(
    kills: int = 20,
    seed: int = 1,
    db: str = "sqlite",
    duration: float | None = None,
    keep: bool = False,
    say=print,  # progress lines
    wait_for_roll_calls: bool = True,
) -> Result:
    """``wait_for_roll_calls``: at the end, wait (up to OVERDUE_SECONDS) until every counted
    check-in and reward has been named in a roll call; otherwise check-ins still waiting in
    the database are reported (and fail the run only if overdue)."""
    wall0 = time.monotonic()
    rng = random.Random(seed)
    workdir = Path(tempfile.mkdtemp(prefix="cohortbot-crash-"))
    gw = Gateway(world())
    ok = False
    try:
        gw.start()
        if db == "postgres":
            with scratch_postgres() as url:
                result = _run(gw, url, workdir, kills, seed, db, duration, rng, say, wait_for_roll_calls)
        else:
            result = _run(
                gw, _sqlite_url(workdir), workdir, kills, seed, db, duration, rng, say, wait_for_roll_calls
            )
        ok = result.ok
    except BaseException:
        say(f"the run stopped; logs and database kept in {workdir}")
        raise
    finally:
        gw.close()
        if ok and not keep:
            shutil.rmtree(workdir, ignore_errors=True)
    result.wall = time.monotonic() - wall0
    result.workdir = None if ok and not keep else workdir
    return result


def _run(gw, db_url, workdir, kills, seed, db, duration, rng, say, wait_for_roll_calls) -> Result:
    spacing = 8.5  # seconds per kill: a restart takes ~2-3 s, then the bot works a while
    if duration is None:
        duration = max(kills * spacing, 20.0)
    now = datetime.now(UTC)
    t_now = time.time()
    horizon = now + timedelta(seconds=duration + 4)
    zone = pick_zone(
        now, timedelta(minutes=GRACE_MINUTES + 3), timedelta(seconds=duration + OVERDUE_SECONDS + 120)
    )
    items = plan_items(now, zone, horizon)
    (workdir / "playbook.yaml").write_text(playbook_yaml(items, zone), encoding="utf-8")
    cfg = workdir / "config.yaml"
    cfg.write_text(config_yaml(db_url, gw, now.astimezone(zone).date().isoformat()), encoding="utf-8")
    checked = subprocess.run(
        # The config with its playbook, warnings refused too (e.g. an `ack` the roll calls
        # would never use); the playbook alone would be checked against the default quiet hours.
        [sys.executable, "-m", "bot.cli", "validate", "--strict", str(cfg)],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    if checked.returncode != 0:
        raise RuntimeError(
            f"cohortbot validate refused the harness's files:\n{checked.stdout}{checked.stderr}"
        )
    future = [it.due.timestamp() for it in items if it.due > now and it.kind == "post"]
    say(
        f"{db}: zone {zone.key}, {len(items)} items ({len(future)} minute(s) ahead), "
        f"{kills} kills over {duration:.0f} s, seed {seed}"
    )

    bot = BotProcess(cfg, workdir)
    traffic = Traffic(gw)
    bot.spawn()
    bot.wait_ready(60)
    begin = time.time() + 1.5
    end = t_now + duration
    plan = plan_kills(rng, kills, begin, end, future)
    stop_traffic = threading.Event()

    def background() -> None:
        trng = random.Random(seed * 7919 + 1)
        next_burst = time.time() + trng.uniform(3, 8)
        while not stop_traffic.is_set() and time.time() < end:
            if time.time() >= next_burst:
                traffic.burst(trng.randint(4, 12), trng)
                next_burst = time.time() + trng.uniform(8, 16)
            else:
                traffic.trickle_one(trng)
            stop_traffic.wait(trng.uniform(0.4, 1.8))

    bg = threading.Thread(target=background, name="crash-traffic", daemon=True)
    bg.start()
    done: list[Kill] = []
    try:
        for k in plan:
            if k.kind == "recovery":
                bot.wait_ready(60)
                target = time.time() + k.at
            elif k.kind == "startup":
                target = bot.life.spawned + k.at
            else:
                target = k.at
                if k.kind == "burst":
                    target -= 0.6  # the kill follows the burst by a moment
            while time.time() < target:
                bot.check_alive()
                bot.poll_ready()
                time.sleep(min(0.02, max(target - time.time(), 0)))
            if k.kind == "burst":
                bot.wait_ready(60)  # a burst at a bot still starting would only be lost
                traffic.burst(k.burst, rng)
                time.sleep(rng.uniform(0.05, 1.0))
            if k.kind == "send":
                bot.wait_ready(60)
                # Check-ins are named in roll calls (a minute apart at most): a question asked
                # privately makes sure some send comes soon, and whichever comes first (a
                # roll call, an item, that answer) is cut.
                traffic.checkin(rng.choice(ACTIVE), rng)
                if rng.random() < 0.5:
                    traffic.ask(rng.choice(ACTIVE))
                if not wait_for_a_send(gw, 8):
                    k.kind = "send (none came)"
            k.was_up = bot.kill()
            k.done_at = time.time()
            done.append(k)
            bot.spawn()
        # Let it finish: the traffic ends, the last bot sends everything due.
        while time.time() < end:
            bot.check_alive()
            time.sleep(0.1)
        stop_traffic.set()
        bg.join(10)
        bot.wait_ready(60)
        last_due = max(it.due for it in items)
        _settle(
            bot,
            gw,
            db_url,
            items,
            until=max(last_due.timestamp(), time.time()) + 1,
            names=wait_for_roll_calls,
        )
        code = bot.stop()
        if code != 0:
            raise RuntimeError(f"the last bot did not stop cleanly ({code}):\n{bot.log_text()[-3000:]}")
    finally:
        stop_traffic.set()
        bot.ensure_dead()
    return analyse(gw.sent(), db_url, items, traffic, bot.lives, done, kills, db, seed)


def _settle(bot: BotProcess, gw: Gateway, db_url: str, items: list[Item], until: float, names: bool) -> None:
    """Wait until every item due is claimed, the outbox is empty and the gateway is quiet;
    with ``names``, also until no check-in or reward waits for a roll call."""
    engine = create_engine(db_url)
    deadline = time.monotonic() + 120 + (OVERDUE_SECONDS if names else 0)
    last_count, quiet_since = -1, time.monotonic()
    try:
        while time.monotonic() < deadline:
            bot.check_alive()
            count = len(gw.sent())
            if count != last_count:
                last_count, quiet_since = count, time.monotonic()
            with engine.connect() as conn:
                claimed = set(conn.execute(text("select item_id from item_run")).scalars())
                busy = conn.execute(
                    text(
                        "select count(*) from outgoing where status in ('pending', 'sending') "
                        "and kind != 'alert'"  # alerts wait a minute to gather an incident
                    )
                ).scalar()
                if names:
                    busy += conn.execute(
                        text(
                            "select (select count(*) from checkin where named_at is null) "
                            "+ (select count(*) from reward_grant where named_at is null)"
                        )
                    ).scalar()
            due = {it.id for it in items if it.due.timestamp() <= time.time()}
            if time.time() >= until and due <= claimed and not busy and time.monotonic() - quiet_since > 1.5:
                return
            time.sleep(0.25)
    finally:
        engine.dispose()


# --------------------------------------------------------------------------- the checks


def _line_pattern(template: str, values: dict[str, str]) -> re.Pattern[str]:
    pattern = re.escape(template)
    for key, value in values.items():
        pattern = pattern.replace(re.escape("{" + key + "}"), value)
    return re.compile(f"^{pattern}$")


_NUMBERS = {"count": r"(?P<count>\d+)", "done": r"\d+", "total": r"\d+", "names": r"(?P<names>.+)"}
ROLL_PATTERNS = {
    t: _line_pattern(tpl, {"track": re.escape(TRACKS[t]), **_NUMBERS}) for t, tpl in ROLL_CALL.items()
}
REWARD_PATTERNS = {
    rid: _line_pattern(REWARD_LINE, {"reward": re.escape(name), "names": r"(?P<names>.+)"})
    for rid, name in REWARD_NAMES.items()
}


def _member_by_shown() -> dict[str, str]:
    """A roll call's name -> member id: the name as the bot shows it (group alias first),
    cleaned and cut to 40 characters as it does."""
    from bot.transports.base import clean_name

    return {clean_name(shown_of(mid)): mid for mid in MEMBERS}


SHOWN = _member_by_shown()


@dataclass
class RollCall:
    """What the roll-call lines of one message name."""

    checkins: list[tuple[str, str]]  # (member, track)
    rewards: list[tuple[str, str]]  # (member, reward)
    strangers: list[str]  # names that are nobody's (garbled, or cut wrongly)
    counts_wrong: list[str]  # lines whose +count is not the number of names


def roll_call(text_: str) -> RollCall:
    """Parse the roll-call lines of a group message (a roll call, a part of one, several
    folded together, or a reminder carrying one). Names are joined by "、"; a message split
    in parts ends its last line with "（i/n）"."""
    out = RollCall([], [], [], [])
    for line in AT_PREFIX.sub("", text_).split("\n"):
        line = PART_TAIL.sub("", line)
        for track, pattern in ROLL_PATTERNS.items():
            m = pattern.match(line)
            if m:
                names = m["names"].split("、")
                if int(m["count"]) < len(names):  # a list split in parts repeats the count
                    out.counts_wrong.append(line)
                out.checkins += [(SHOWN[n], track) for n in names if n in SHOWN]
                out.strangers += [n for n in names if n not in SHOWN]
                break
        else:
            for rid, pattern in REWARD_PATTERNS.items():
                m = pattern.match(line)
                if m:
                    names = m["names"].split("、")
                    out.rewards += [(SHOWN[n], rid) for n in names if n in SHOWN]
                    out.strangers += [n for n in names if n not in SHOWN]
    return out


def analyse(sent, db_url, items, traffic, lives, kills, planned, db, seed) -> Result:
    engine = create_engine(db_url)
    with engine.connect() as conn:
        checkin_rows = {
            (m, t): (_epoch(at), _epoch(named))
            for m, t, at, named in conn.execute(
                text("select member_id, track, at, named_at from checkin where cohort_id = :c"), {"c": COHORT}
            )
        }
        checkins = set(checkin_rows)
        item_runs = dict(
            conn.execute(
                text("select item_id, status from item_run where cohort_id = :c"), {"c": COHORT}
            ).all()
        )
        grant_rows = {
            (m, r): (_epoch(at), _epoch(named))
            for m, r, at, named in conn.execute(
                text("select member_id, reward_id, at, named_at from reward_grant where cohort_id = :c"),
                {"c": COHORT},
            )
        }
        grants = set(grant_rows)
        rows = [
            dict(r._mapping)
            for r in conn.execute(
                text(
                    "select id, room_id, member_id, text, mentions, kind, status from outgoing "
                    "where cohort_id = :c order by id"
                ),
                {"c": COHORT},
            )
        ]
    engine.dispose()
    details: list[str] = []
    dup: Counter[str] = Counter()

    to_ops = [s for s in sent if s["kind"] == "dm" and s["conversationId"] == OPERATOR]
    room = [s for s in sent if s["kind"] == "room"]
    dms = [s for s in sent if s["kind"] == "dm" and s["conversationId"] != OPERATOR]

    # --- schedule items: the gateway's record, by the marker each item's text carries
    by_item_room: dict[str, list[dict]] = defaultdict(list)
    # What the roll calls named (on their own, folded together, or carried by a reminder).
    named_ci: Counter[tuple[str, str]] = Counter()
    named_rw: Counter[tuple[str, str]] = Counter()
    strangers: list[str] = []
    counts_wrong: list[str] = []
    roll_msgs = carried = 0
    for s in room:
        marks = set(MARK.findall(s["text"]))
        for m in marks:
            by_item_room[m].append(s)
        rc = roll_call(s["text"])
        if rc.checkins or rc.rewards or rc.strangers:
            roll_msgs += 1
            carried += bool(marks)
        named_ci.update(rc.checkins)
        named_rw.update(rc.rewards)
        strangers += rc.strangers
        counts_wrong += rc.counts_wrong
    for name in strangers[:5]:
        details.append(f"a roll call names {name!r}, who is no member")
    for line in counts_wrong[:5]:
        details.append(f"a roll-call line names more members than its count: {line!r}")
    by_item_dm: dict[str, Counter[str]] = defaultdict(Counter)
    reward_dms: Counter[tuple[str, str]] = Counter()
    replies: Counter[str] = Counter()
    for s in dms:
        marks = MARK.findall(s["text"])
        rewards = REWARD_MARK.findall(s["text"])
        for m in marks:
            by_item_dm[m][s["conversationId"]] += 1
        for r in rewards:
            reward_dms[(s["conversationId"], r)] += 1
        if not marks and not rewards:
            replies[s["conversationId"]] += 1

    def rows_with(pred) -> list[dict]:
        return [r for r in rows if pred(r)]

    items_twice = 0
    never: list[tuple[Item, str]] = []  # (item, why)
    cut_partial = lost_partial = 0
    now_end = max(life.ended or time.time() for life in lives)
    for it in items:
        if it.due.timestamp() > now_end:
            continue
        status = item_runs.get(it.id)
        if it.kind in ("post", "leaderboard"):
            n = len(by_item_room[it.id])
            if n > 1:
                items_twice += 1
                dup[it.kind] += n - 1
                details.append(f"item {it.id} ({it.kind}) sent {n} times")
            if n == 0:
                never.append(
                    (
                        it,
                        _why_unsent(
                            it, status, rows_with(lambda r, i=it.id: f"[item:{i}]" in r["text"]), lives
                        ),
                    )
                )
            continue
        if it.kind == "remind":
            mentioned: Counter[str] = Counter(m for s in by_item_room[it.id] for m in s["mentionIdList"])
            texts = Counter(s["text"] for s in by_item_room[it.id])
            extra = sum(n - 1 for n in mentioned.values() if n > 1)
            if extra or any(n > 1 for n in texts.values()):
                items_twice += 1
                dup["remind"] += max(extra, sum(n - 1 for n in texts.values()))
                details.append(
                    f"item {it.id} (remind) mentioned {dict(+mentioned - Counter(set(mentioned)))} again"
                )
            reached = set(mentioned)
            item_rows = rows_with(lambda r, i=it.id: f"[item:{i}]" in r["text"])
        else:  # nudge
            got = by_item_dm[it.id]
            extra = sum(n - 1 for n in got.values() if n > 1)
            if extra:
                items_twice += 1
                dup["nudge"] += extra
                details.append(f"item {it.id} (nudge) sent twice to {[m for m, n in got.items() if n > 1]}")
            reached = set(got)
            item_rows = rows_with(lambda r, i=it.id: f"[item:{i}]" in r["text"])
        if not reached:
            never.append((it, _why_unsent(it, status, item_rows, lives)))
            continue
        # Sent, at least in part: every lurker (never checked in) must have been reached,
        # unless the message that would have reached them was cut by a kill.
        for mid in LURKERS:
            if mid in reached:
                continue
            mine = [
                r
                for r in item_rows
                if (r["member_id"] == mid) or (r["mentions"] and mid in json.loads(r["mentions"]))
            ]
            if any(r["status"] == "unknown" for r in mine):
                cut_partial += 1
            else:
                lost_partial += 1
                states = [r["status"] for r in mine] or "no row"
                details.append(f"item {it.id} ({it.kind}) never reached {mid}: {states}")

    real_losses = sum(1 for _, why in never if why == "lost")
    skips = sum(1 for _, why in never if why == "skip")
    cut = sum(1 for _, why in never if why == "cut")
    why_text = {
        "skip": "skipped, past the grace window with no bot up (allowed)",
        "cut": "its send was cut by a kill (unknown, not repeated)",
        "lost": "LOST",
    }
    for it, why in never:
        details.append(f"item {it.id} ({it.kind}, due {it.due:%H:%M:%S}Z) never sent: {why_text[why]}")

    # --- check-ins: every name in a roll call is a check-in (or grant) in the database
    missing_ci = sorted(k for k in named_ci if k not in checkins)
    for mid, track in missing_ci:
        details.append(f"{mid} was named in a roll call on {track} but has no check-in row")
    missing_rw = sorted(k for k in named_rw if k not in grants)
    for mid, rid in missing_rw:
        details.append(f"{mid} was named for reward {rid} in a roll call but has no grant row")

    def roll_rows(key: tuple[str, str], reward: bool) -> list[dict]:
        """Group messages whose roll-call lines name ``key`` (roll calls, reminders)."""
        found = []
        for r in rows:
            if r["room_id"] is None or r["kind"] in ("post", "leaderboard"):
                continue
            rc = roll_call(r["text"])
            if key in (rc.rewards if reward else rc.checkins):
                found.append(r)
        return found

    end_at = max(life.ended or time.time() for life in lives)

    def unnamed(keys, db_rows, reward: bool, what: str) -> tuple[int, int, int, int]:
        """Of the counted check-ins (or grants) no roll call named: (waiting in the database,
        of which overdue; named in a roll call a kill cut; lost)."""
        waiting = overdue = cut_ = lost = 0
        for key in sorted(keys):
            at, named_at = db_rows[key]
            if named_at is None:
                # Not named yet: still waiting in the database (the next roll call names it).
                waiting += 1
                if end_at - at > OVERDUE_SECONDS:
                    overdue += 1
                    details.append(f"{key[0]}'s {what} {key[1]} waited {end_at - at:.0f} s for a roll call")
                continue
            mine = roll_rows(key, reward)
            if any(r["status"] == "unknown" for r in mine):
                cut_ += 1  # composed, its send cut by a kill: never re-sent (at most once)
            else:
                lost += 1
                states = [r["status"] for r in mine] or "no row"
                details.append(f"{key[0]}'s {what} {key[1]} was marked named, never named: {states}")
        return waiting, overdue, cut_, lost

    ci_waiting, ci_overdue, unacked_cut, unacked_lost = unnamed(
        checkins - set(named_ci), checkin_rows, False, "check-in on"
    )
    rw_waiting, rw_overdue, rw_cut, rw_lost = unnamed(grants - set(named_rw), grant_rows, True, "reward")
    said: Counter[tuple[str, str]] = Counter((m, w) for _, m, w in traffic.said)
    for key, n in named_ci.items():
        if n > 1:
            dup["rollcall name"] += n - 1
            details.append(f"{key[0]}'s {key[1]} check-in named {n} times in roll calls")
        if n > said[key]:
            details.append(f"{key[0]} was named {n} times on {key[1]} for {said[key]} message(s)")
    for mid, n in replies.items():
        asked = said[(mid, "progress")]
        if n > asked:
            dup["reply"] += n - asked
            details.append(f"{mid} got {n} private replies for {asked} question(s)")

    # --- rewards: one private message and one roll-call line per grant
    rewards_twice = 0
    for (mid, rid), n in reward_dms.items():
        if n > 1:
            rewards_twice += 1
            dup["reward"] += n - 1
            details.append(f"{mid} got reward {rid} {n} times")
        if (mid, rid) not in grants:
            details.append(f"{mid} got reward {rid} without a grant row")
    for (mid, rid), n in named_rw.items():
        if n > 1:
            dup["reward line"] += n - 1
            if reward_dms[(mid, rid)] <= 1:
                rewards_twice += 1
            details.append(f"{mid}'s reward {rid} named {n} times in roll calls")

    # --- messages queued and never sent, though no kill cut them
    # (operator alerts wait a while to gather an incident: one still queued goes out at the
    # next start, and is no message the cohort was promised)
    stuck = [r for r in rows if r["status"] in ("pending", "sending", "failed") and r["kind"] != "alert"]
    alerts_waiting = sum(1 for r in rows if r["kind"] == "alert" and r["status"] == "pending")
    for r in stuck[:10]:
        details.append(f"outbox row {r['id']} ({r['kind']}) left {r['status']}: {r['text'][:40]!r}")
    statuses = Counter(r["status"] for r in rows)
    unsent_grants = [g for g in grants if reward_dms[(g[0], g[1])] == 0]
    # A grant whose private message never arrived: cut by a kill (unknown, never resent by
    # design, the operators are told) or lost.
    reward_cut = reward_lost = 0
    for mid, rid in unsent_grants:
        mine = [r for r in rows if r["member_id"] == mid and f"[reward:{rid}]" in r["text"]]
        if any(r["status"] == "unknown" for r in mine):
            reward_cut += 1
            details.append(f"{mid}'s {rid} was granted; its message was cut by a kill (operators told)")
        else:
            reward_lost += 1
            states = [r["status"] for r in mine] or "no row"
            details.append(f"{mid}'s {rid} was granted, its message never sent: {states}")

    # --- sends a kill cut: whether each arrived (then exactly once) or was lost (reported)
    cut_rows = [r for r in rows if r["status"] == "unknown"]
    arrived = 0
    for r in cut_rows:
        where = r["room_id"] or r["member_id"]
        if any(r["text"] in s["text"] for s in sent if s["conversationId"] == where):
            arrived += 1

    figures = {
        "items sent twice": items_twice,
        "rewards sent twice (private message or roll-call line)": rewards_twice,
        "names in roll calls missing from the database": len(missing_ci) + len(missing_rw),
        "names in roll calls that are no member, or over the count": len(strangers) + len(counts_wrong),
        "items never sent within the grace window (real losses)": real_losses,
        "recipients of a sent item never reached (not cut by a kill)": lost_partial,
        "counted check-ins never named in a roll call (not cut by a kill)": unacked_lost,
        f"counted check-ins still waiting for a roll call after {OVERDUE_SECONDS} s": ci_overdue,
        "rewards granted, never named in a roll call (not cut by a kill)": rw_lost + rw_overdue,
        "rewards granted, never delivered (not cut by a kill)": reward_lost,
        "duplicate sends, all kinds": sum(dup.values()),
        "queued messages never sent (not cut by a kill)": len(stuck),
    }
    info: dict[str, object] = {
        "items due": sum(1 for it in items if it.due.timestamp() <= now_end),
        "items never sent": len(never),
        "  past the grace window (allowed skips)": skips,
        "  cut mid-send by a kill (unknown; at most once)": cut,
        "  within the grace window (real losses)": real_losses,
        "item recipients missed because a kill cut the send": cut_partial,
        "check-in messages sent to the group": sum(1 for _, _, w in traffic.said if w in TRACKS),
        "check-ins in the database": len(checkins),
        "check-ins named in a roll call (member, track)": len(named_ci),
        "  their roll call cut by a kill (unknown; at most once)": unacked_cut,
        "  still waiting in the database at the end (named next)": ci_waiting,
        "group messages naming check-ins / of them reminders": f"{roll_msgs} / {carried}",
        "rewards named in a roll call / cut by a kill / waiting": (
            f"{len(named_rw)} / {rw_cut} / {rw_waiting}"
        ),
        "rewards granted / delivered": f"{len(grants)} / {len(grants) - len(unsent_grants)}",
        "  message cut by a kill before arriving (unknown)": reward_cut,
        "sends seen by the gateway": len(sent),
        "outbox rows cut mid-send by a kill (unknown)": len(cut_rows),
        "  of which had reached the gateway (then not repeated)": arrived,
        "  of which never arrived (the operators are to be told)": len(cut_rows) - arrived,
        "operator alerts (private, expected)": len(to_ops),
        "operator alerts still waiting at the end (go at the next start)": alerts_waiting,
        "outbox rows by status": dict(sorted(statuses.items())),
        "traffic errors": len(traffic.errors),
    }
    for k in ("post", "remind", "nudge", "leaderboard", "rollcall name", "reward", "reward line", "reply"):
        dup.setdefault(k, 0)
    return Result(db, seed, planned, kills, lives, items, figures, info, dict(dup), details, 0.0)


def _epoch(value) -> float | None:
    """A database time (SQLite gives naive UTC, PostgreSQL aware) as epoch seconds."""
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.timestamp()


def _why_unsent(it: Item, status: str | None, rows: list[dict], lives: list[Life]) -> str:
    """skip: claimed as missed and no bot was up to send it within the grace window;
    cut: its message was being sent when a kill came (marked unknown, never repeated);
    lost: anything else."""
    if status == "missed":
        due, last = it.due.timestamp(), it.due.timestamp() + GRACE_MINUTES * 60 - 2
        up = any(
            life.ready is not None and life.ready <= last and (life.ended is None or life.ended >= due)
            for life in lives
        )
        return "lost" if up else "skip"
    if status is None:
        return "lost"
    if rows and all(r["status"] in ("unknown",) for r in rows):
        return "cut"
    if rows and all(r["status"] == "expired" for r in rows):
        return "lost"  # a group notice expires only past the grace window; the bot was up
    if not rows and it.kind in ("remind", "nudge"):
        return "lost"  # lurkers never check in: there was always someone to reach
    return "lost"


# --------------------------------------------------------------------------- the table


def code_version() -> str:
    """The commit the bot ran from, and whether the work tree differs from it."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no", "--", "bot", "storage"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown (not a git checkout)"
    return head + (" + uncommitted changes to bot/ or storage/" if dirty else "")


def table(r: Result) -> str:
    out = []
    kinds = Counter(k.kind for k in r.kills)
    up = sum(1 for k in r.kills if k.was_up)
    out.append(
        f"crash harness: {r.db}, seed {r.seed}, {len(r.kills)} kills ({r.kills_planned} planned), "
        f"code {code_version()}"
    )
    w = 62
    out.append(f"{'figure':<{w}} {'value':>7}  must be zero")
    out.append("-" * (w + 22))
    for name, v in r.figures.items():
        if name == "duplicate sends, all kinds":
            continue
        out.append(f"{name:<{w}} {v:>7}  yes{'' if v == 0 else '  <-- FAIL'}")
    out.append(f"{'duplicate sends by kind':<{w}} {sum(r.dup_by_kind.values()):>7}  yes")
    for k, v in r.dup_by_kind.items():
        out.append(f"{'  ' + k:<{w}} {v:>7}{'  <-- FAIL' if v else ''}")
    for name, v in r.info.items():
        val = v if isinstance(v, int | str) else json.dumps(v)
        out.append(f"{name:<{w}} {val!s:>7}")
    kinds_s = ", ".join(f"{k} {n}" for k, n in sorted(kinds.items()))
    out.append(
        f"{'kills done':<{w}} {len(r.kills):>7}  ({kinds_s}; {up} with the bot up, "
        f"{len(r.kills) - up} while it was starting)"
    )
    restarts = [lf for lf in r.lives if lf.ready is not None and lf.n > 1]
    if restarts:
        avg = sum(lf.ready - lf.spawned for lf in restarts) / len(restarts)
        out.append(f"{'bot lives / mean restart-to-ready':<{w}} {len(r.lives):>7}  ({avg:.2f} s)")
    out.append(f"{'wall time':<{w}} {r.wall:>6.1f}s")
    out.append("result: " + ("OK, every must-be-zero figure is zero" if r.ok else "FAIL"))
    if r.details:
        out.append("details:")
        out += ["  " + d for d in r.details[:40]]
    if r.workdir is not None:
        out.append(f"logs and database kept in {r.workdir}")
    return "\n".join(out)
