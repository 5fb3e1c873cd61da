"""Many accounts, one PostgreSQL: three real `cohortbot run` processes, one per WeChat account
(each with its own mock Wechaty gateway, config and cohort), all on one database. Process C is
SIGKILLed a few seconds before a scheduled minute and restarted after it; process B's lease
connection is cut by the database (pg_terminate_backend) at the same moment; a fourth process
that claims B's cohort is refused. Then a table of what the leases promise, and exit 1 if a
must-be-zero figure is not zero:

- every scheduled post is sent exactly once per cohort, none lost, each through its own
  account's gateway (a row queued by one process is never sent by another);
- the accounts left running sent their posts due during C's outage on time, while C was down;
- C's lease lapsed when it died (its restart is not refused) and C sent its missed post late,
  within the grace window;
- C's restart (its outbox's recovery) did not touch a send A had in flight;
- B claimed its cohort again after its lease connection was cut, and sent that minute's post
  on time;
- the second claim of B's cohort is refused, exit code 2, naming B's host and pid.

Run: .venv/bin/python bench/leases.py [--keep]   (PostgreSQL: a scratch database on
COHORTBOT_TEST_PG's server, default the local one, dropped after). tests/test_leases.py runs it.
"""

from __future__ import annotations

import argparse
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

# bench/ for crashlib (not a package), and this checkout before any installed copy.
sys.path[:0] = [str(Path(__file__).resolve().parent), str(Path(__file__).resolve().parent.parent)]

import crashlib  # noqa: E402
from crashlib import ROOT, BotProcess  # noqa: E402
from sqlalchemy import Engine, create_engine, text  # noqa: E402

from storage import repo  # noqa: E402
from storage.db import lease_key, open_db, safe_url  # noqa: E402
from tests.gateway.driver import Gateway  # noqa: E402

ACCOUNTS = ("a", "b", "c")
KILLED, CUT = "c", "b"  # C is killed and restarted; B's lease connection is cut
OPERATOR = "op1"
MEMBERS = ("m1", "m2", "m3")
LEAD = 12  # seconds from the start to the first scheduled minute that may see the outage
DOWN_BEFORE = 5.0  # C is killed, and B's lease connection cut, this long before the minute
DOWN_AFTER = 3.0  # C stays down this long past the minute
ON_TIME = 3.0  # seconds: a post this late or less is on time
MARK = re.compile(r"\[(py-[a-z]):(p\d{4})\]")


def cohort(account: str) -> str:
    return f"py-{account}"


def room(account: str) -> str:
    return f"{account}@chatroom"


def world(account: str) -> dict:
    return {
        "bot": {"id": f"bot-{account}", "name": f"助教{account.upper()}"},
        "contacts": [{"id": OPERATOR, "name": "王老师"}, *({"id": m, "name": f"学员{m}"} for m in MEMBERS)],
        "rooms": [{"id": room(account), "topic": topic(account), "members": [OPERATOR, *MEMBERS]}],
    }


def topic(account: str) -> str:
    return f"Python 训练营 {account.upper()} 班"


def playbook_yaml(account: str, dues: list[datetime], zone: ZoneInfo) -> str:
    lines = [
        f"name: Python 训练营 {account.upper()}",
        "days: 2",
        f"timezone: {zone.key}",
        "tracks:",
        '  lesson: {name: 正课, keywords: ["打卡"], days: [1]}',
        "schedule:",
    ]
    for due in dues:
        local = due.astimezone(zone)
        item = f"p{local:%H%M}"
        lines.append(
            f'  - {{id: {item}, day: 1, at: "{local:%H:%M}", post: "📢 [{cohort(account)}:{item}]"}}'
        )
    return "\n".join(lines) + "\n"


def config_yaml(db_url: str, gw: Gateway, account: str, start: str) -> str:
    head = f"database: {db_url}\noperators: [{OPERATOR}]\nlanguage: en\n"
    return (
        head
        + crashlib.transport_yaml(gw)
        + textwrap.dedent(f"""\
        quiet_hours: "off"
        grace_minutes: 10
        cohorts:
          - {{id: {cohort(account)}, playbook: playbook.yaml, room: {topic(account)}, start: {start}}}
        """)
    )


@dataclass
class Result:
    figures: dict[str, int] = field(default_factory=dict)  # must be zero
    info: dict[str, object] = field(default_factory=dict)
    details: list[str] = field(default_factory=list)
    wall: float = 0.0
    workdir: Path | None = None

    @property
    def ok(self) -> bool:
        return all(v == 0 for v in self.figures.values())


def run(keep: bool = False, say=print) -> Result:
    wall0 = time.monotonic()
    workdir = Path(tempfile.mkdtemp(prefix="cohortbot-leases-"))
    gateways = {a: Gateway(world(a)) for a in ACCOUNTS}
    result: Result | None = None
    try:
        starters = [threading.Thread(target=gw.start) for gw in gateways.values()]
        for t in starters:
            t.start()
        for t in starters:
            t.join()
        with crashlib.scratch_postgres() as url:
            result = _run(url, gateways, workdir, say)
    except BaseException:
        say(f"the run stopped; logs kept in {workdir}")
        raise
    finally:
        for gw in gateways.values():
            gw.close()
        if result is not None and result.ok and not keep:
            shutil.rmtree(workdir, ignore_errors=True)
    result.wall = time.monotonic() - wall0
    result.workdir = None if result.ok and not keep else workdir
    return result


def schedule(now: datetime) -> tuple[list[datetime], list[datetime], ZoneInfo]:
    """(past dues, future dues, zone): three minutes already begun (sent late at the start),
    then the first two minutes at least LEAD seconds away (the outage falls on one of them)."""
    minute = now.replace(second=0, microsecond=0)
    past = [minute - timedelta(minutes=k) for k in (2, 1, 0)]
    first = minute + timedelta(minutes=1)
    while first < now + timedelta(seconds=LEAD):
        first += timedelta(minutes=1)
    future = [first, first + timedelta(minutes=1)]
    zone = crashlib.pick_zone(now, timedelta(minutes=4), future[-1] - now + timedelta(minutes=3))
    return past, future, zone


def _run(url: str, gateways: dict[str, Gateway], workdir: Path, say) -> Result:
    res = Result()
    now = datetime.now(UTC)
    past, future, zone = schedule(now)
    bots: dict[str, BotProcess] = {}
    for a in ACCOUNTS:
        folder = workdir / a
        folder.mkdir()
        (folder / "playbook.yaml").write_text(playbook_yaml(a, past + future, zone), encoding="utf-8")
        start = now.astimezone(zone).date().isoformat()
        (folder / "config.yaml").write_text(config_yaml(url, gateways[a], a, start), encoding="utf-8")
        bots[a] = BotProcess(folder / "config.yaml", folder)
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    say(f"3 accounts on {safe_url(url)}; posts due {', '.join(f'{d:%H:%M}' for d in past + future)} UTC")
    try:
        for b in bots.values():
            b.spawn()
        for b in bots.values():
            b.wait_ready(60)  # the three created the tables together, on an empty database
        db = open_db(url)
        res.info["3 processes started, slowest to ready (s)"] = round(
            max(b.life.ready - b.life.spawned for b in bots.values()), 2
        )
        planted = _plant_a_send_in_flight(db, now)
        claim = threading.Thread(target=_second_claim, args=(res, bots, workdir))
        claim.start()
        # The outage covers the first future minute still far enough away.
        outage = next(d for d in future if d.timestamp() - time.time() >= DOWN_BEFORE + 0.5)
        _sleep_until(outage.timestamp() - DOWN_BEFORE, bots)
        bots[KILLED].kill()
        killed_at = time.time()
        res.info["killed process's lease free after (ms)"] = round(
            _lapse(admin, cohort(KILLED), killed_at) * 1000
        )
        _cut_lease(res, admin, bots[CUT])
        claim.join()
        _sleep_until(outage.timestamp() + DOWN_AFTER, bots)
        restarted_at = time.time()
        bots[KILLED].spawn()
        bots[KILLED].wait_ready(60)
        refused = sum(1 for life in bots[KILLED].lives if life.how.startswith("refused"))
        res.figures["restarts refused because the dead process's lease was still held"] = refused
        res.info["restart to ready (s)"] = round(bots[KILLED].life.ready - restarted_at, 2)
        last_due = max(d for d in past + future if d.timestamp() <= time.time())
        dues = [d for d in past + future if d <= last_due]
        _wait_sent(gateways, len(dues), bots)
    finally:
        codes = {a: b.stop() for a, b in bots.items() if b.proc is not None}
        for b in bots.values():
            b.ensure_dead()
    res.figures["processes that did not stop cleanly (exit code not 0)"] = sum(1 for c in codes.values() if c)
    _analyse(res, gateways, db, dues, outage, killed_at, restarted_at, planted, zone)
    db.dispose()
    admin.dispose()
    return res


def _sleep_until(at: float, bots: dict[str, BotProcess]) -> None:
    while time.time() < at:
        for b in bots.values():
            if b.life.ended is None:
                b.check_alive()
        time.sleep(min(0.05, max(0.0, at - time.time())))


def _plant_a_send_in_flight(db: Engine, now: datetime) -> int:
    """A row of A's in `sending`, as if A were sending it right now: only A may ever touch it
    (C's recovery at its restart must leave it alone)."""
    with db.begin() as conn:
        row = repo.enqueue(
            conn, cohort("a"), room_id=room("a"), text="in flight [planted]", kind="post", now=now
        )
        repo.claim_sends(conn, [row])
    return row


def _second_claim(res: Result, bots: dict[str, BotProcess], workdir: Path) -> None:
    """A fourth process whose config names B's cohort: refused, exit 2, naming B."""
    dup = workdir / "dup"
    dup.mkdir()
    shutil.copy(bots[CUT].config.parent / "playbook.yaml", dup / "playbook.yaml")
    shutil.copy(bots[CUT].config, dup / "config.yaml")
    t0 = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "bot.cli", "run", "--config", str(dup / "config.yaml")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        env=crashlib.bot_env(),
    )
    said = " ".join((done.stdout + done.stderr).split())
    want = (
        f"cohort {cohort(CUT)} is already run by cohortbot on host {socket.gethostname()}, "
        f"pid {bots[CUT].proc.pid}; stop it first or remove the cohort from this config"
    )
    res.info["second claim: exit code, seconds"] = f"{done.returncode}, {time.monotonic() - t0:.1f}"
    wrong = done.returncode != 2 or want not in said
    res.figures["second claims of a held cohort not refused (exit 2, holder's host and pid)"] = int(wrong)
    if wrong:
        res.details.append(f"second claim: exit {done.returncode}: {said[-600:]}")


def lease_holders(admin: Engine, cohort_id: str) -> list[tuple[int, str]]:
    """(server pid, application_name) of the session holding a cohort's lease."""
    key = lease_key(cohort_id)
    with admin.connect() as conn:
        return [
            tuple(r)  # type: ignore[misc]
            for r in conn.execute(
                text(
                    "select a.pid, a.application_name from pg_locks l join pg_stat_activity a using (pid) "
                    "where l.locktype = 'advisory' and l.granted and l.objsubid = 1 "
                    "and l.classid::bigint = :high and l.objid::bigint = :low"
                ),
                {"high": (key >> 32) & 0xFFFFFFFF, "low": key & 0xFFFFFFFF},
            )
        ]


def _cut_lease(res: Result, admin: Engine, bot: BotProcess) -> None:
    """Terminate B's lease connection (as a database restart would): B must claim its cohort
    again within a few seconds, and carry on."""
    (backend, _), *_ = lease_holders(admin, cohort(CUT))
    with admin.connect() as conn:
        conn.execute(text("select pg_terminate_backend(:pid)"), {"pid": backend})
    t0 = time.monotonic()
    mine = f"cohortbot pid={bot.proc.pid} "
    while time.monotonic() - t0 < 15:
        held = lease_holders(admin, cohort(CUT))
        if held and held[0][0] != backend and held[0][1].startswith(mine):
            res.info["cut lease connection: claimed again after (s)"] = round(time.monotonic() - t0, 2)
            res.figures["cut lease connections never claimed again"] = 0
            return
        bot.check_alive()
        time.sleep(0.05)
    res.figures["cut lease connections never claimed again"] = 1
    res.details.append(f"B did not claim {cohort(CUT)} again:\n{bot.log_text()[-1500:]}")


def _lapse(admin: Engine, cohort_id: str, since: float) -> float:
    while lease_holders(admin, cohort_id):
        if time.time() - since > 30:
            raise RuntimeError(f"the lease of {cohort_id} was still held 30 s after its process died")
        time.sleep(0.01)
    return time.time() - since


def _wait_sent(gateways: dict[str, Gateway], count: int, bots: dict[str, BotProcess]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if all(len([s for s in gw.sent() if MARK.search(s["text"])]) >= count for gw in gateways.values()):
            time.sleep(1)  # a post sent twice would show now
            return
        for b in bots.values():
            b.check_alive()
        time.sleep(0.1)


def _analyse(res, gateways, db, dues, outage, killed_at, restarted_at, planted, zone) -> None:
    twice = lost = foreign = late = 0
    items = {f"p{d.astimezone(zone):%H%M}": d for d in dues}
    lateness: list[float] = []
    for a, gw in gateways.items():
        sent = [s for s in gw.sent() if MARK.search(s["text"])]
        seen = Counter()
        for s in sent:
            owner, item = MARK.search(s["text"]).groups()
            if owner != cohort(a) or s["conversationId"] != room(a):
                foreign += 1
                res.details.append(f"gateway {a} sent {s['text']!r} to {s['conversationId']}")
                continue
            seen[item] += 1
            due = items.get(item)
            if due is None or item != f"p{outage.astimezone(zone):%H%M}":
                continue
            at = s["ts"] / 1000
            if a == KILLED:
                res.info["killed account's post due in the outage, sent late by (s)"] = round(
                    at - due.timestamp(), 2
                )
                if not restarted_at <= at <= due.timestamp() + 600:
                    lost += 1
                    res.details.append(
                        f"{a}: {item} sent at {at - due.timestamp():+.1f} s, not after the restart"
                    )
            else:
                lateness.append(at - due.timestamp())
                if not due.timestamp() <= at <= min(due.timestamp() + ON_TIME, restarted_at):
                    late += 1
                    res.details.append(
                        f"{a}: {item} sent at {at - due.timestamp():+.1f} s while {KILLED} was down"
                    )
        for item in items:
            if seen[item] == 0:
                lost += 1
                res.details.append(f"{a}: {item} never sent")
            elif seen[item] > 1:
                twice += seen[item] - 1
                res.details.append(f"{a}: {item} sent {seen[item]} times")
    with db.connect() as conn:
        rows = conn.execute(text("select id, cohort_id, kind, status from outgoing order by id")).all()
    left = [r for r in rows if r.id != planted and r.status not in ("sent",)]
    for r in left:
        res.details.append(f"outbox row {r.id} ({r.cohort_id}, {r.kind}) left {r.status}")
    planted_status = next(r.status for r in rows if r.id == planted)
    res.figures["posts sent twice"] = twice
    res.figures["posts never sent (or the killed one's not after its restart)"] = lost
    res.figures["posts sent through another account's gateway"] = foreign
    res.figures["running accounts' posts not on time during the outage"] = late
    res.figures["outbox rows not sent at the end"] = len(left)
    res.figures["another process's send in flight touched by a restart"] = int(planted_status != "sending")
    res.info["posts due per cohort"] = len(items)
    res.info["running accounts' lateness during the outage (s)"] = ", ".join(f"{x:.2f}" for x in lateness)
    res.info["outage (s)"] = round(restarted_at - killed_at, 1)


def table(r: Result) -> str:
    w = 74
    out = [f"leases: 3 accounts, one PostgreSQL, code {crashlib.code_version()}"]
    out.append(f"{'figure':<{w}} {'value':>7}  must be zero")
    out.append("-" * (w + 22))
    for name, v in r.figures.items():
        out.append(f"{name:<{w}} {v:>7}  yes{'' if v == 0 else '  <-- FAIL'}")
    for name, v in r.info.items():
        out.append(f"{name:<{w}} {v!s:>7}")
    out.append(f"{'wall time':<{w}} {r.wall:>6.1f}s")
    out.append("result: " + ("OK, every must-be-zero figure is zero" if r.ok else "FAIL"))
    out += ["  " + d for d in r.details[:30]]
    if r.workdir is not None:
        out.append(f"logs kept in {r.workdir}")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--keep", action="store_true", help="keep the logs (kept anyway on failure)")
    args = ap.parse_args(argv)
    if (why := crashlib.postgres_available()) is not None:
        print(f"no PostgreSQL at {crashlib.PG_URL}: {why}", file=sys.stderr)
        return 2
    result = run(keep=args.keep, say=lambda line: print(line, flush=True))
    print(table(result))
    return 0 if result.ok else 1


if __name__ == "__main__":
    sys.exit(main())
