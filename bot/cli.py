"""The `cohortbot` command: wiring only; the work happens in the modules it calls."""

from __future__ import annotations

import json
import logging
import sys
import time
from collections import Counter
from datetime import date
from pathlib import Path
from typing import Annotated

import typer
from pydantic import TypeAdapter
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from bot import playbook as playbooks
from bot import scenario as scenarios
from bot.plan import StartDate
from bot.yamlfile import InputError, Problem, read_yaml

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    rich_markup_mode=None,
    help="cohortbot: the operator's assistant for 8-day WeChat course cohorts.",
)
out = Console(highlight=False)
err = Console(stderr=True, highlight=False)


def fail(exc: InputError) -> typer.Exit:
    for p in exc.problems:
        err.print(f"[bold red]error[/] {escape(str(p))}", markup=True, soft_wrap=True)
    return typer.Exit(2)


def _kind(data: object) -> str:
    """playbook, config or scenario, from the file's top-level keys."""
    if isinstance(data, dict):
        if "cohorts" in data or "transport" in data:
            return "config"
        if "events" in data or ("start" in data and "schedule" not in data):
            return "scenario"
    return "playbook"


@app.command()
def validate(
    files: Annotated[list[Path], typer.Argument(help="playbooks (or configs, scenarios)")],
    strict: Annotated[bool, typer.Option("--strict", help="warnings count as errors")] = False,
) -> None:
    """Check files; exit 0 if all are valid, 2 otherwise. Warnings (legal, but almost surely
    not meant) are printed and count as errors with --strict."""
    from bot import config

    bad = 0
    for f in files:
        try:
            src = read_yaml(f)  # once: a big file takes seconds to read
            kind = _kind(src.data)
            warnings: list[Problem] = []
            if kind == "config":
                loaded = config.load(f, source=src)
                quiet = loaded.config.quiet_hours
                for pb in {id(p): p for p in loaded.playbooks.values()}.values():
                    warnings += [w for w in pb.warnings if w.where != "schedule"]
                    if quiet is not None:
                        warnings += pb.quiet_warnings(quiet.start, quiet.end, "the quiet hours")
            elif kind == "scenario":
                scenarios.parse(src)
            else:
                pb = playbooks.parse(src)
                warnings = list(pb.warnings)
            for w in warnings:
                err.print(f"[bold yellow]warning[/] {escape(str(w))}", soft_wrap=True)
            if warnings and strict:
                bad += 1
                continue
            if kind == "playbook":
                out.print(
                    f"[green]ok[/] {f}: {pb.name}, {pb.days} days, {len(pb.tracks)} tracks, "
                    f"{len(pb.schedule)} items"
                )
                continue
            out.print(f"[green]ok[/] {f} ({kind})")
        except InputError as exc:
            bad += 1
            for p in exc.problems:
                err.print(f"[bold red]error[/] {escape(str(p))}", soft_wrap=True)
    if bad:
        raise typer.Exit(2)


@app.command()
def schema() -> None:
    """Print the playbook format as JSON Schema (for editors' completion and checks)."""
    sys.stdout.write(json.dumps(playbooks.json_schema(), ensure_ascii=False, indent=2) + "\n")


@app.command()
def preview(
    playbook: Path,
    start: Annotated[str, typer.Option(help="day 1, YYYY-MM-DD")],
    timezone: Annotated[str, typer.Option(help="if the playbook sets none")] = "Asia/Shanghai",
) -> None:
    """The timeline of every item, in the playbook's local time."""
    from bot import items
    from bot.cohort import CohortRun
    from bot.plan import calendar

    try:
        day1 = TypeAdapter(StartDate).validate_python(date.fromisoformat(start))
    except ValueError:
        err.print(f"[bold red]error[/] --start {start!r}: write a date as YYYY-MM-DD, e.g. 2026-12-01")
        raise typer.Exit(2) from None
    try:
        playbooks.check_timezone(timezone)
    except ValueError as exc:
        err.print(f"[bold red]error[/] --timezone: {exc}")
        raise typer.Exit(2) from None
    try:
        pb = playbooks.load(playbook)
    except InputError as exc:
        raise fail(exc) from None
    cal = calendar(pb, day1, timezone)
    run = CohortRun.create("preview", pb, cal, "room")
    table = Table(title=f"{pb.name} · {cal.zone.key} · day 1 = {day1}")
    for col in ("day", "local time", "id", "kind", "what"):
        table.add_column(col)
    for p in run.plan:
        it = p.item
        table.add_row(
            str(it.day),
            f"{cal.local(p.due):%Y-%m-%d %a %H:%M %Z}",
            p.item_id,
            it.kind,
            items.preview(run, it),
        )
    out.print(table)


@app.command()
def simulate(
    playbook: Path,
    scenario: Path,
    out_file: Annotated[Path | None, typer.Option("--out", help="write JSON Lines here")] = None,
    transcript: Annotated[bool, typer.Option(help="also show a readable transcript on stderr")] = False,
    db: Annotated[str, typer.Option(help="database URL; default: in memory")] = "sqlite://",
) -> None:
    """Rehearse a playbook against a scenario on a virtual clock; JSON Lines of every send."""
    from bot.simulate import simulate as run_simulation
    from bot.simulate import to_json

    try:
        pb = playbooks.load(playbook)
        sc, src = scenarios.load(scenario)
        lines: list[str] = []
        show = _transcript_hooks(err, pb, sc) if transcript else None
        result = run_simulation(
            pb,
            sc,
            source=src,
            db_url=db,
            on_send=show[0] if show else None,
            on_event=show[1] if show else None,
        )
    except InputError as exc:
        raise fail(exc) from None
    lines = [to_json(s, result.cal) for s in result.sent]
    text = "".join(line + "\n" for line in lines)
    if out_file:
        out_file.write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)


def _transcript_hooks(console: Console, pb, sc):  # type: ignore[no-untyped-def]
    from bot.plan import calendar
    from bot.transcript import Transcript

    cal = calendar(pb, sc.start)
    names = {m.id: m.alias or m.name for m in sc.members}
    names.update({e.join.id: e.join.name for e in sc.events if e.join})
    tr = Transcript(console, cal, lambda mid: names.get(mid, mid), sc.bot)

    def on_event(ev):  # type: ignore[no-untyped-def]
        if ev.kind in ("say", "dm"):
            tr.member(ev.at, ev.member.shown, ev.text, dm=ev.kind == "dm")
        else:
            tr.event(ev.at, f"{ev.member.shown} {'加入了群聊' if ev.kind == 'join' else '退出了群聊'}")

    return tr.bot, on_event


@app.command()
def demo(
    members: Annotated[int, typer.Option(min=1, max=500, help="generated members")] = 60,
    seed: Annotated[int, typer.Option(help="random seed for the members' habits")] = 7,
    quiet: Annotated[bool, typer.Option(help="summary tables only, no transcript")] = False,
    db: Annotated[Path | None, typer.Option(help="keep the database in this SQLite file")] = None,
) -> None:
    """Play the sample 8-day cohort with generated members; no WeChat account needed."""
    from bot.demo import SAMPLE_PLAYBOOK, demo_scenario
    from bot.simulate import simulate as run_simulation
    from bot.summary import summary_tables

    started = time.perf_counter()
    pb = playbooks.load(SAMPLE_PLAYBOOK)
    sc, habits = demo_scenario(pb, members, seed)
    hooks = None if quiet else _transcript_hooks(out, pb, sc)
    out.print(
        f"[bold]{pb.name}[/] · {len(sc.members) - 1} members + 2 joining on day 3 · "
        f"habits: {dict(Counter(v for k, v in habits.items() if k != 'op1'))}"
    )
    result = run_simulation(
        pb,
        sc,
        db_url=f"sqlite:///{db.resolve()}" if db else "sqlite://",
        on_send=hooks[0] if hooks else None,
        on_event=hooks[1] if hooks else None,
    )
    for table in summary_tables(result, sc):
        out.print(table)
    out.print(f"[dim]played {pb.days} days in {time.perf_counter() - started:.1f} s of real time[/]")


@app.command()
def run(config: Annotated[Path, typer.Option("--config", help="the deployment config (YAML)")]) -> None:
    """Run the bot for the cohorts in the config."""
    from bot import config as configs
    from bot.runner import run_forever

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("apscheduler").setLevel(logging.WARNING)  # one line per job is noise
    try:
        loaded = configs.load(config)
    except InputError as exc:
        raise fail(exc) from None
    code = run_forever(loaded, out)
    raise typer.Exit(code)


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        err.print("stopped")
        sys.exit(130)


if __name__ == "__main__":
    main()
