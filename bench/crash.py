"""Crash harness: the real `cohortbot run` against the mock Wechaty gateway, SIGKILLed
``--kills`` times at seeded moments (within a second of scheduled minutes, right after bursts
of check-ins, just after a restart, at random) and restarted on the same database; then a
table of what exactly-once promises: nothing sent twice, every counted check-in named once in
a roll call (unless a kill cut that roll call's send), nobody named who is not in the
database, nothing lost inside the grace window. Exit 1 if a must-be-zero figure is not zero.

Run: .venv/bin/python bench/crash.py [--kills 20] [--seed 1] [--db sqlite|postgres] [--keep]
(PostgreSQL: a scratch database is created on COHORTBOT_TEST_PG's server, default the local
one, and dropped after.) How it works: bench/crashlib.py.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import crashlib


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--kills", type=int, default=20, help="SIGKILLs to do (default 20)")
    ap.add_argument("--seed", type=int, default=1, help="seeds the kill moments and the traffic")
    ap.add_argument("--db", choices=("sqlite", "postgres"), default="sqlite")
    ap.add_argument("--duration", type=float, default=None, help="seconds of traffic (default: 8.5 per kill)")
    ap.add_argument(
        "--keep", action="store_true", help="keep the logs and the database (kept anyway on failure)"
    )
    args = ap.parse_args(argv)
    if args.db == "postgres" and (why := crashlib.postgres_available()) is not None:
        print(f"no PostgreSQL at {crashlib.PG_URL}: {why}", file=sys.stderr)
        return 2
    result = crashlib.run(
        kills=args.kills,
        seed=args.seed,
        db=args.db,
        duration=args.duration,
        keep=args.keep,
        say=lambda line: print(line, flush=True),
    )
    print(crashlib.table(result))
    return 0 if result.ok else 1


if __name__ == "__main__":
    sys.exit(main())
