"""Benchmark: the sample playbook with 500 members.

1. A burst of 500 check-ins within one minute (day 2, 20:00): check-ins handled per CPU
   second and the handler's latency p50/p99 (from the message arriving to its check-in,
   acknowledgement and any reward committed; pacing waits are the sender's, not counted).
2. The whole 8-day cohort with 500 generated members: wall time of the simulation.

Run: .venv/bin/python bench/checkins.py [--db sqlite|postgres]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from datetime import date
from pathlib import Path

from bot import playbook as playbooks
from bot.app import Bot
from bot.clock import VirtualClock, run_virtual
from bot.cohort import CohortRun
from bot.demo import SAMPLE_PLAYBOOK, demo_scenario
from bot.engine import Settings
from bot.plan import calendar
from bot.scenario import BOT_ID, _when
from bot.simulate import simulate
from bot.transports.base import Member
from bot.transports.simulated import SimulatedGroup

MEMBERS = 500


def burst(db_url: str) -> dict[str, float]:
    pb = playbooks.load(SAMPLE_PLAYBOOK)
    cal = calendar(pb, date(2026, 12, 1))
    people = [Member(f"u{i:03d}", f"学员{i:03d}") for i in range(MEMBERS)]

    async def main(clock: VirtualClock) -> dict[str, float]:
        group = SimulatedGroup(
            clock, rooms={"room": "班级群"}, members=people, bot=Member(BOT_ID, "CohortBot")
        )
        run = CohortRun.create("bench", pb, cal, "班级群")
        from storage.db import open_db

        bot = Bot(open_db(db_url), group, clock, Settings(), [run], reconcile_minutes=0)
        await bot.start()
        await asyncio.sleep((_when("day 2 20:00", cal) - clock.now()).total_seconds())
        latencies, cpu = [], 0.0
        for m in people:
            await asyncio.sleep(60 / MEMBERS)  # 500 check-ins spread over one minute
            c0, t0 = time.process_time(), time.perf_counter()
            await group.say(m.id, "打卡")
            latencies.append(time.perf_counter() - t0)
            cpu += time.process_time() - c0
        await bot.drain()
        sends = len([s for s in group.sent if s.at >= _when("day 2 20:00", cal)])
        with bot.db.connect() as conn:
            from storage import repo

            counted = len(repo.checked_in_ids(conn, "bench", "lesson", 2))
        await bot.stop()
        latencies.sort()
        return {
            "counted": counted,
            "rate": MEMBERS / cpu,
            "p50_ms": statistics.median(latencies) * 1000,
            "p99_ms": latencies[int(len(latencies) * 0.99) - 1] * 1000,
            "sends": sends,
        }

    return run_virtual(cal.start_utc(), main)


def whole_cohort(db_url: str) -> tuple[float, int]:
    pb = playbooks.load(SAMPLE_PLAYBOOK)
    sc, _ = demo_scenario(pb, members=MEMBERS - 2, seed=1)
    t0 = time.perf_counter()
    result = simulate(pb, sc, db_url=db_url)
    return time.perf_counter() - t0, len(result.sent)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--db", choices=["sqlite", "postgres"], default="sqlite")
    ap.add_argument("--pg", default="postgresql+psycopg://postgres@127.0.0.1:5432/test")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:

        def url(name: str) -> str:
            if args.db == "postgres":
                from sqlalchemy import create_engine
                from sqlmodel import SQLModel

                engine = create_engine(args.pg)
                SQLModel.metadata.drop_all(engine)
                with engine.begin() as conn:
                    conn.exec_driver_sql("drop table if exists alembic_version")
                engine.dispose()
                return args.pg
            return f"sqlite:///{Path(tmp) / name}"

        b = burst(url("burst.db"))
        print(f"database: {args.db} (file, WAL)" if args.db == "sqlite" else f"database: {args.pg}")
        print(
            f"burst: {MEMBERS} check-ins in one minute, {b['counted']} counted, "
            f"acknowledged in {b['sends']} sends"
        )
        print(f"  check-ins handled per CPU second: {b['rate']:,.0f}   (target >= 1,000)")
        print(
            f"  handler latency p50: {b['p50_ms']:.2f} ms   p99: {b['p99_ms']:.2f} ms   (target p99 < 5 ms)"
        )
        wall, sends = whole_cohort(url("cohort.db"))
        print(f"8-day cohort, {MEMBERS} members: {wall:.1f} s wall time, {sends} sends   (target < 10 s)")


if __name__ == "__main__":
    main()
