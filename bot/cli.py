"""The `cohortbot` command: wiring only; the work happens in the modules it calls."""

from __future__ import annotations

import json
import logging
import sys
import time
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
    members: Annotated[
        int | None, typer.Option(min=0, help="fill {total} with this count; default: shown as N")
    ] = None,
) -> None:
    """The timeline of every item, in the playbook's local time: a post's first line, what
    the other kinds do. {total}, the members in the group when an item is sent, is unknown
    before the cohort runs: it is shown as N (or --members)."""
    from rich import box

    from bot import items, templates
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
    total = "N" if members is None else str(members)
    table = Table(
        title=f"{pb.name} · {cal.zone.key} · day 1 = {day1:%a} {day1}",
        box=box.SIMPLE_HEAD,
        expand=True,
        padding=(0, 1),
    )
    table.add_column("time", no_wrap=True)
    table.add_column("what", ratio=1, no_wrap=True, overflow="ellipsis")
    table.add_column("id", no_wrap=True, style="dim")
    uses_total = False
    for i, p in enumerate(run.plan):
        it = p.item
        if it.post is not None:
            lines = [line for line in it.post.strip().splitlines() if line.strip()]
            first = lines[0].strip() if lines else ""
            uses_total |= "{total}" in first
            what = templates.render(first, {"playbook": pb.name, "day": it.day, "total": total})
        else:
            what = items.preview(run, it)
        local = cal.local(p.due)
        if i == 0 or run.plan[i - 1].item.day != it.day:  # a heading row for each day
            table.add_row(f"day {it.day}", f"{local:%a %Y-%m-%d}", "", style="bold")
        last_of_day = i + 1 == len(run.plan) or run.plan[i + 1].item.day != it.day
        table.add_row(f"{local:%H:%M}", escape(what), p.item_id, end_section=last_of_day)
    if uses_total:
        table.caption = (
            "N: the members in the group when the item is sent; --members 60 fills it in"
            if members is None
            else f"{{total}} shown as {members} (--members)"
        )
    out.print(table)


@app.command()
def simulate(
    playbook: Path,
    scenario: Path,
    out_file: Annotated[
        Path | None, typer.Option("--out", help="write the JSON Lines here (with --transcript, only here)")
    ] = None,
    transcript: Annotated[
        bool,
        typer.Option(help="show a readable transcript and summary tables instead of JSON Lines"),
    ] = False,
    db: Annotated[str, typer.Option(help="database URL; default: in memory")] = "sqlite://",
    config: Annotated[
        Path | None,
        typer.Option("--config", help="use this config's pacing, quiet_hours and timezone"),
    ] = None,
) -> None:
    """Rehearse a playbook against a scenario on a virtual clock. Without --transcript: JSON
    Lines of every send on standard output (or --out). With --transcript: every message
    whole, then the summary tables; JSON Lines only into --out."""
    from bot import config as configs
    from bot.plan import calendar
    from bot.simulate import simulate as run_simulation
    from bot.simulate import to_json
    from bot.summary import summary_tables
    from bot.transcript import for_scenario

    try:
        loaded = configs.load(config) if config is not None else None
        zone = loaded.config.timezone if loaded else "Asia/Shanghai"
        pb = playbooks.load(playbook)
        sc, src = scenarios.load(scenario)
        tr = for_scenario(out, calendar(pb, sc.start, zone), sc) if transcript else None
        result = run_simulation(
            pb,
            sc,
            source=src,
            db_url=db,
            settings=loaded.settings() if loaded else None,
            on_send=tr.bot if tr else None,
            on_event=tr.on_event if tr else None,
            default_zone=zone,
        )
    except InputError as exc:
        raise fail(exc) from None
    text = "".join(to_json(s, result.cal) + "\n" for s in result.sent)
    if out_file:
        out_file.write_text(text, encoding="utf-8")
    elif not transcript:
        sys.stdout.write(text)
    if transcript:
        for table in summary_tables(result, sc):
            out.print(table)
        if out_file:
            out.print(f"[dim]{len(result.sent)} messages written to {escape(str(out_file))}[/]")


@app.command()
def demo(
    playbook: Annotated[
        Path | None,
        typer.Argument(metavar="PLAYBOOK", help="the playbook to rehearse; default: the sample"),
    ] = None,
    members: Annotated[int, typer.Option(help="generated members, 1 to 500")] = 60,
    seed: Annotated[int, typer.Option(help="random seed for the members' habits")] = 7,
    quiet: Annotated[bool, typer.Option(help="summary tables only, no transcript")] = False,
    db: Annotated[
        Path | None, typer.Option(help="keep the database in this SQLite file; it must not exist yet")
    ] = None,
    fresh: Annotated[
        bool, typer.Option("--fresh", help="with --db: delete the file first if it exists")
    ] = False,
) -> None:
    """Play a playbook (the sample 8-day cohort by default) with generated members whose
    habits follow its tracks, cut-offs and commands; no WeChat account needed. A --db file
    holds one rehearsal: an existing file is refused (it would mix two rehearsals) unless
    --fresh, which deletes it first."""
    from bot.demo import MAX_MEMBERS, MIN_MEMBERS, SAMPLE_PLAYBOOK, demo_scenario, describe
    from bot.plan import calendar
    from bot.simulate import simulate as run_simulation
    from bot.summary import summary_tables
    from bot.transcript import for_scenario

    started = time.perf_counter()
    if not MIN_MEMBERS <= members <= MAX_MEMBERS:
        err.print(
            f"[bold red]error[/] --members {members}: write a number from {MIN_MEMBERS} to {MAX_MEMBERS}"
        )
        raise typer.Exit(2)
    if db is not None:
        if db.is_dir():
            err.print(f"[bold red]error[/] --db {escape(str(db))} is a folder; name a file, e.g. demo.db")
            raise typer.Exit(2)
        if not db.parent.is_dir():
            err.print(f"[bold red]error[/] --db {escape(str(db))}: its folder does not exist")
            raise typer.Exit(2)
        if db.exists() and not fresh:
            err.print(
                f"[bold red]error[/] --db {escape(str(db))} already exists. A demo writes a whole new "
                "cohort into it; played into an old file, its members, check-ins and messages would "
                "mix with the earlier rehearsal's. Add --fresh to delete the file and start fresh, "
                "or name a new file.",
                soft_wrap=False,
            )
            raise typer.Exit(2)
        if db.exists():
            for stale in (db, *(db.with_name(db.name + s) for s in ("-wal", "-shm", "-journal"))):
                stale.unlink(missing_ok=True)
            out.print(f"--fresh: deleted the old {escape(str(db))}; this rehearsal starts fresh in it")
    try:
        pb = playbooks.load(playbook or SAMPLE_PLAYBOOK)
    except InputError as exc:
        raise fail(exc) from None
    sc, habits = demo_scenario(pb, members, seed)
    who, kinds = describe(sc, habits)
    out.print(f"[bold]{escape(pb.name)}[/] · {who} · seed {seed}\nhabits: {kinds}")
    tr = None if quiet else for_scenario(out, calendar(pb, sc.start), sc)
    result = run_simulation(
        pb,
        sc,
        db_url=f"sqlite:///{db.resolve()}" if db else "sqlite://",
        on_send=tr.bot if tr else None,
        on_event=tr.on_event if tr else None,
    )
    for table in summary_tables(result, sc):
        out.print(table)
    out.print(f"[dim]played {pb.days} days in {time.perf_counter() - started:.1f} s of real time[/]")
    if db:
        out.print(f"[dim]the database is in {escape(str(db))}[/]")


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


@app.command()
def reload(config: Annotated[Path, typer.Option("--config", help="the running bot's config (YAML)")]) -> None:
    """Make the `cohortbot run` of this config read it and its playbooks again now (it also
    notices saved files by itself). The files are checked here first; exit 2 if they are
    not valid, 1 if no bot runs with this config."""
    from bot import config as configs
    from bot.reload import signal_running

    try:
        loaded = configs.load(config)
    except InputError as exc:
        err.print("[bold red]not reloaded[/]: the running bot keeps the last good version")
        raise fail(exc) from None
    try:
        pid = signal_running(loaded)
    except LookupError as exc:
        err.print(f"[bold red]error[/] {escape(str(exc))}", soft_wrap=True)
        raise typer.Exit(1) from None
    out.print(f"asked cohortbot (process {pid}) to reload; what changed goes to the operators and its log")


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        err.print("stopped")
        sys.exit(130)


if __name__ == "__main__":
    main()
