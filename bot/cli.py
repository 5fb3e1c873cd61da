"""The `cohortbot` command: wiring only; the work happens in the modules it calls."""

from __future__ import annotations

import json
import logging
import re
import sys
import time
from collections.abc import Sequence
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from pydantic import TypeAdapter
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from typer._click import exceptions as click_exceptions
from typer.core import TyperGroup

from bot import cli_words, i18n
from bot import playbook as playbooks
from bot import scenario as scenarios
from bot.i18n import N_, _
from bot.plan import StartDate
from bot.yamlfile import InputError, Problem, read_yaml, resolved

if TYPE_CHECKING:
    from bot.config import Loaded
    from bot.report import Report


def _lang_argument(args: list[str]) -> str | None:
    """The value of ``--lang X`` / ``--lang=X`` in the command line, before click parses it
    (the help must already be in that language)."""
    for i, a in enumerate(args):
        if a == "--":
            break
        if a == "--lang" and i + 1 < len(args):
            return args[i + 1]
        if a.startswith("--lang="):
            return a.split("=", 1)[1]
    return None


class _Localized(TyperGroup):
    """Chooses the operator's language (--lang, then the locale) before anything is printed,
    and says click's own texts (usage, usage errors) in it."""

    def main(self, args: Sequence[str] | None = None, *a: Any, **kw: Any) -> Any:
        argv = list(sys.argv[1:] if args is None else args)
        i18n.use(i18n.detect(_lang_argument(argv)))
        cli_words.localize(self)
        kw["standalone_mode"] = False
        try:
            code = super().main(args, *a, **kw)
        except click_exceptions.ClickException as e:
            cli_words.show(e)
            sys.exit(e.exit_code)
        except typer.Abort:
            err.print(_(cli_words.ABORTED))
            sys.exit(1)
        sys.exit(code if isinstance(code, int) else 0)


app = typer.Typer(
    cls=_Localized,
    add_completion=False,
    no_args_is_help=True,
    rich_markup_mode=None,
    help=N_("cohortbot: the operator's assistant for 8-day WeChat course cohorts."),
)
out = Console(highlight=False)
err = Console(stderr=True, highlight=False)


@app.callback()
def _options(
    lang: Annotated[
        str | None,
        typer.Option(
            "--lang",
            metavar="zh|en",
            help=N_("the language of messages and help: zh or en; default: from the locale (LANG)"),
        ),
    ] = None,
) -> None:
    if lang is not None and lang not in i18n.LANGUAGES:
        error(_("--lang {value}: write zh or en").format(value=lang))
        raise typer.Exit(2)


def error(text: str) -> None:
    """An error line; ``text`` is already escaped for rich markup where it needs to be."""
    err.print(_("[bold red]error[/] {text}").format(text=text), soft_wrap=True)


def fail(exc: InputError, **wanted: Path | None) -> typer.Exit:
    """The problems, then exit 2. ``wanted`` (kind=path) are the files the command takes: one of
    another kind (the scenario given as the playbook, the two swapped) is said as such, in
    place of its problems, which would only be a list of unknown keys."""
    wrong: set[str] = set()
    for kind, path in wanted.items():
        if path is not None and (found := _kind_of(path)) not in (None, kind):
            said = _("this is {found}, not {wanted}; check which file goes where (and in what order)")
            error(escape(f"{path}:1: " + said.format(found=_(KINDS[found]), wanted=_(KINDS[kind]))))
            wrong.add(str(path))
    for p in exc.problems:
        if p.path not in wrong:
            error(escape(str(p)))
    return typer.Exit(2)


KINDS = {"playbook": N_("a playbook"), "scenario": N_("a scenario"), "config": N_("a config")}


def _kind_of(path: Path) -> str | None:
    """What a file surely is by its keys; None if it cannot be read or its keys do not say."""
    try:
        data = read_yaml(path).data
    except InputError:
        return None
    keys = set(data) if isinstance(data, dict) else set()
    found = [
        kind
        for kind, has in (
            ("config", {"cohorts"}),
            ("scenario", {"events", "members"}),
            ("playbook", {"tracks"}),
        )
        if keys & has
    ]
    return found[0] if len(found) == 1 else None


def _kind(data: object) -> str:
    """playbook, config or scenario, from the file's top-level keys."""
    if isinstance(data, dict):
        if "cohorts" in data or "transport" in data:
            return "config"
        if "events" in data or ("start" in data and "schedule" not in data):
            return "scenario"
    return "playbook"


@app.command(
    help=N_(
        "Check files; exit 0 if all are valid, 2 otherwise. Warnings (legal, but almost surely "
        "not meant) are printed and count as errors with --strict."
    )
)
def validate(
    files: Annotated[list[Path], typer.Argument(help=N_("playbooks (or configs, scenarios)"))],
    strict: Annotated[bool, typer.Option("--strict", help=N_("warnings count as errors"))] = False,
) -> None:
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
                        warnings += pb.quiet_warnings(quiet.start, quiet.end, _("the quiet hours"))
            elif kind == "scenario":
                scenarios.parse(src)
            else:
                pb = playbooks.parse(src)
                warnings = list(pb.warnings)
            for w in warnings:
                err.print(_("[bold yellow]warning[/] {text}").format(text=escape(str(w))), soft_wrap=True)
            if warnings and strict:
                bad += 1
                continue
            if kind == "playbook":
                n_days, n_tracks, n_items = pb.days, len(pb.tracks), len(pb.schedule)
                counts = {
                    "days": i18n.ngettext("{n} day", "{n} days", n_days).format(n=n_days),
                    "tracks": i18n.ngettext("{n} track", "{n} tracks", n_tracks).format(n=n_tracks),
                    "items": i18n.ngettext("{n} item", "{n} items", n_items).format(n=n_items),
                }
                said = _("[green]ok[/] {file}: {name}, {days}, {tracks}, {items}")
                out.print(said.format(file=escape(str(f)), name=escape(pb.name), **counts))
                continue
            kinds = {"config": _("config"), "scenario": _("scenario")}
            out.print(_("[green]ok[/] {file} ({kind})").format(file=escape(str(f)), kind=kinds[kind]))
        except InputError as exc:
            bad += 1
            told = [(p, False) for p in exc.problems] + [(w, True) for w in exc.warnings]
            for p, warned in sorted(told, key=lambda t: t[0].line):
                if warned:
                    err.print(_("[bold yellow]warning[/] {text}").format(text=escape(str(p))), soft_wrap=True)
                else:
                    error(escape(str(p)))
    if bad:
        raise typer.Exit(2)


@app.command(help=N_("Print the playbook format as JSON Schema (for editors' completion and checks)."))
def schema() -> None:
    sys.stdout.write(json.dumps(playbooks.json_schema(), ensure_ascii=False, indent=2) + "\n")


@app.command(
    help=N_(
        "The timeline of every item, in the playbook's local time: a post's first line, what "
        "the other kinds do. {total}, the members in the group when an item is sent, is unknown "
        "before the cohort runs: it is shown as N (or --members)."
    )
)
def preview(
    playbook: Path,
    start: Annotated[str, typer.Option(help=N_("day 1, YYYY-MM-DD"))],
    timezone: Annotated[str, typer.Option(help=N_("if the playbook sets none"))] = "Asia/Shanghai",
    members: Annotated[
        int | None, typer.Option(min=0, help=N_("fill {total} with this count; default: shown as N"))
    ] = None,
) -> None:
    from rich import box

    from bot import items, templates
    from bot.cohort import CohortRun
    from bot.plan import calendar

    try:
        day1 = TypeAdapter(StartDate).validate_python(date.fromisoformat(start))
    except ValueError:
        error(escape(_("--start {value!r}: write a date as YYYY-MM-DD, e.g. 2026-12-01").format(value=start)))
        raise typer.Exit(2) from None
    try:
        playbooks.check_timezone(timezone)
    except ValueError as exc:
        error(escape(f"--timezone: {exc}"))
        raise typer.Exit(2) from None
    try:
        pb = playbooks.load(playbook)
    except InputError as exc:
        raise fail(exc, playbook=playbook) from None
    cal = calendar(pb, day1, timezone)
    run = CohortRun.create("preview", pb, cal, "room")
    total = "N" if members is None else str(members)
    table = Table(
        title=_("{name} · {zone} · day 1 = {weekday} {date}").format(
            name=pb.name, zone=cal.zone.key, weekday=i18n.weekday(day1), date=day1
        ),
        box=box.SIMPLE_HEAD,
        expand=True,
        padding=(0, 1),
    )
    table.add_column(_("time"), no_wrap=True)
    table.add_column(_("what"), ratio=1, no_wrap=True, overflow="ellipsis")
    table.add_column(_("id"), no_wrap=True, style="dim")
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
            table.add_row(
                _("day {day}").format(day=it.day),
                f"{i18n.weekday(local.date())} {local:%Y-%m-%d}",
                "",
                style="bold",
            )
        last_of_day = i + 1 == len(run.plan) or run.plan[i + 1].item.day != it.day
        table.add_row(f"{local:%H:%M}", escape(what), p.item_id, end_section=last_of_day)
    if uses_total:
        table.caption = (
            _("N: the members in the group when the item is sent; --members 60 fills it in")
            if members is None
            else _("{{total}} shown as {members} (--members)").format(members=members)
        )
    out.print(table)


def _not_a_rehearsal(db: Path) -> str | None:
    """Why `demo --fresh` must not delete ``db`` (a bot's database, or no database at all, given
    by mistake), or None: it holds rehearsals only, or nothing."""
    import sqlite3
    from contextlib import closing
    from urllib.parse import quote

    from bot.demo import DEMO_LOGIN
    from bot.simulate import COHORT_ID

    try:
        if db.stat().st_size == 0:
            return None
        with closing(sqlite3.connect(f"file:{quote(str(resolved(db)))}?mode=ro", uri=True)) as conn:
            ids = {row[0] for row in conn.execute("SELECT id FROM cohort")}
            logins = conn.execute("SELECT count(*) FROM web_login WHERE name != ?", (DEMO_LOGIN,)).fetchone()[
                0
            ]
    except (OSError, sqlite3.Error):
        return _("it is not a cohortbot database")
    if others := sorted(ids - {COHORT_ID}):
        return _("it holds the cohorts {ids}").format(ids=", ".join(others))
    if logins:  # `operator add` before a bot's first start: its database, not a demo's (--web's login)
        return _("it holds the web console's logins")
    return None


def _can_open(url: str) -> None:
    """A rehearsal's database (simulate, demo --db) opened once before it plays: one that
    cannot be (a bad URL, a symlink loop, a read-only folder) is one line and exit 2."""
    from storage.db import explain_failure, open_db

    try:
        open_db(url).dispose()
    except Exception as exc:  # the driver's, SQLAlchemy's or the OS's
        error(escape(explain_failure(url, exc)))
        raise typer.Exit(2) from None


@app.command(
    help=N_(
        "Rehearse a playbook against a scenario on a virtual clock. Without --transcript: JSON "
        "Lines of every send on standard output (or --out). With --transcript: every message "
        "whole, then the summary tables; JSON Lines only into --out."
    )
)
def simulate(
    playbook: Path,
    scenario: Path,
    out_file: Annotated[
        Path | None,
        typer.Option("--out", help=N_("write the JSON Lines here (with --transcript, only here)")),
    ] = None,
    transcript: Annotated[
        bool,
        typer.Option(help=N_("show a readable transcript and summary tables instead of JSON Lines")),
    ] = False,
    db: Annotated[str, typer.Option(help=N_("database URL; default: in memory"))] = "sqlite://",
    config: Annotated[
        Path | None,
        typer.Option("--config", help=N_("use this config's pacing, quiet_hours and timezone")),
    ] = None,
) -> None:
    from bot import config as configs
    from bot import export as exports
    from bot.plan import calendar
    from bot.simulate import simulate as run_simulation
    from bot.simulate import to_json
    from bot.summary import summary_tables
    from bot.transcript import for_scenario

    if out_file is not None:  # before the rehearsal, which may take a while
        try:
            if out_file.is_dir():
                raise exports.ExportError(
                    _("--out {file} is a folder; name a file, e.g. rehearsal.jsonl").format(file=out_file)
                )
            exports.check_folder(out_file.parent, f"--out {out_file}")
        except exports.ExportError as exc:
            error(escape(str(exc)))
            raise typer.Exit(2) from None
    if db != "sqlite://":  # in memory: nothing that can fail
        _can_open(db)
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
        raise fail(exc, playbook=playbook, scenario=scenario, config=config) from None
    text = "".join(to_json(s, result.cal) + "\n" for s in result.sent)
    if out_file:

        def write(part: Path) -> None:
            part.write_text(text, encoding="utf-8")

        try:
            exports.write_file(out_file, write)
        except exports.ExportError as exc:  # the disk full, the folder gone meanwhile
            error(escape(str(exc)))
            raise typer.Exit(2) from None
    elif not transcript:
        sys.stdout.write(text)
    if transcript:
        for table in summary_tables(result, sc):
            out.print(table)
        if out_file:
            written = i18n.ngettext(
                "{n} message written to {file}", "{n} messages written to {file}", len(result.sent)
            )
            out.print("[dim]" + written.format(n=len(result.sent), file=escape(str(out_file))) + "[/]")


@app.command(
    help=N_(
        "Play a playbook (the sample 8-day cohort by default) with generated members whose "
        "habits follow its tracks, cut-offs and commands; no WeChat account needed. A --db file "
        "holds one rehearsal: an existing file is refused (it would mix two rehearsals) unless "
        "--fresh, which deletes it first."
    )
)
def demo(
    playbook: Annotated[
        Path | None,
        typer.Argument(metavar="PLAYBOOK", help=N_("the playbook to rehearse; default: the sample")),
    ] = None,
    members: Annotated[int, typer.Option(help=N_("generated members, 1 to 500"))] = 60,
    seed: Annotated[int, typer.Option(help=N_("random seed for the members' habits"))] = 7,
    quiet: Annotated[bool, typer.Option(help=N_("summary tables only, no transcript"))] = False,
    db: Annotated[
        Path | None, typer.Option(help=N_("keep the database in this SQLite file; it must not exist yet"))
    ] = None,
    fresh: Annotated[
        bool, typer.Option("--fresh", help=N_("with --db: delete the file first if it exists"))
    ] = False,
    png: Annotated[
        Path | None, typer.Option("--png", help=N_("also write the report's picture to forward in WeChat"))
    ] = None,
    html: Annotated[
        Path | None, typer.Option("--html", help=N_("also write the report as one web page"))
    ] = None,
    web: Annotated[
        str | None,
        typer.Option(
            "--web",
            metavar="HOST:PORT",
            help=N_(
                "play it at a watchable pace with the web console over it (`--web` alone: "
                "127.0.0.1:8080) until Ctrl-C; prints the address and a login"
            ),
        ),
    ] = None,
    speed: Annotated[
        float,
        typer.Option(help=N_("with --web: minutes of cohort time per real second (24: a day a minute)")),
    ] = 24.0,
) -> None:
    from bot.demo import MAX_MEMBERS, MIN_MEMBERS, SAMPLE_PLAYBOOK, demo_scenario, describe, rehearsal_report
    from bot.plan import calendar
    from bot.report_views import summary
    from bot.simulate import simulate as run_simulation
    from bot.summary import summary_tables
    from bot.transcript import for_scenario

    started = time.perf_counter()
    if not MIN_MEMBERS <= members <= MAX_MEMBERS:
        error(
            _("--members {n}: write a number from {low} to {high}").format(
                n=members, low=MIN_MEMBERS, high=MAX_MEMBERS
            )
        )
        raise typer.Exit(2)
    if db is not None:
        if db.is_dir():
            error(_("--db {file} is a folder; name a file, e.g. demo.db").format(file=escape(str(db))))
            raise typer.Exit(2)
        if not db.parent.is_dir():
            error(_("--db {file}: its folder does not exist").format(file=escape(str(db))))
            raise typer.Exit(2)
        if db.exists() and not fresh:
            err.print(
                _(
                    "[bold red]error[/] --db {file} already exists. A demo writes a whole new "
                    "cohort into it; played into an old file, its members, check-ins and messages would "
                    "mix with the earlier rehearsal's. Add --fresh to delete the file and start fresh, "
                    "or name a new file."
                ).format(file=escape(str(db))),
                soft_wrap=False,
            )
            raise typer.Exit(2)
        if db.exists() and (why := _not_a_rehearsal(db)) is not None:
            error(
                _(
                    "--fresh deletes only a rehearsal's database, and {file} is not one ({why}); "
                    "nothing was deleted: name another file"
                ).format(file=escape(str(db)), why=escape(why))
            )
            raise typer.Exit(2)
        if db.exists():
            for stale in (db, *(db.with_name(db.name + s) for s in ("-wal", "-shm", "-journal"))):
                stale.unlink(missing_ok=True)
            out.print(
                _("--fresh: deleted the old {file}; this rehearsal starts fresh in it").format(
                    file=escape(str(db))
                )
            )
    try:
        pb = playbooks.load(playbook or SAMPLE_PLAYBOOK)
    except InputError as exc:
        raise fail(exc, playbook=playbook) from None
    sc, habits = demo_scenario(pb, members, seed)
    who, kinds = describe(sc, habits)
    out.print(
        _("[bold]{name}[/] · {who} · seed {seed}\nhabits: {kinds}").format(
            name=escape(pb.name), who=who, seed=seed, kinds=kinds
        )
    )
    db_url = f"sqlite:///{resolved(db)}" if db else "sqlite://"
    if db is not None:
        _can_open(db_url)
    if web is not None:
        _demo_web(pb, sc, web, speed, db_url)
        return
    tr = None if quiet else for_scenario(out, calendar(pb, sc.start), sc, fold=True)
    result = run_simulation(
        pb,
        sc,
        db_url=db_url,
        on_send=tr.bot if tr else None,
        on_event=tr.on_event if tr else None,
    )
    if tr is not None:
        tr.flush()
    for table in summary_tables(result, sc):
        out.print(table)
    rehearsed = rehearsal_report(result, pb)
    for part in summary(rehearsed):
        out.print(part)
    _report_files(rehearsed, None, None, png, html)
    played = _("played {days} days in {seconds:.1f} s of real time")
    out.print("[dim]" + played.format(days=pb.days, seconds=time.perf_counter() - started) + "[/]")
    if db:
        out.print("[dim]" + _("the database is in {file}").format(file=escape(str(db))) + "[/]")


def _demo_web(pb: Any, sc: Any, bind: str, speed: float, db_url: str) -> None:
    """`demo --web`: the cohort on a PacedLoop with the console, until Ctrl-C (exit 0)."""
    import signal

    from bot.config import split_bind
    from bot.demo import LiveDemo, play_live
    from bot.web.serve import BindError

    try:
        split_bind(bind)
    except ValueError:
        error(_("--web {bind}: write HOST:PORT, e.g. 127.0.0.1:8080").format(bind=escape(bind)))
        raise typer.Exit(2) from None
    if not 0 < speed <= 1440:
        error(_("--speed {n}: write a number above 0 and at most 1440").format(n=speed))
        raise typer.Exit(2)

    def ready(live: LiveDemo) -> None:
        out.print(
            _(
                "the console: [bold]{url}[/]\nlogin: [bold]{name}[/]  password: [bold]{password}[/] "
                "(shown only now)\none cohort day takes {minutes:.0f} min; Ctrl-C stops"
            ).format(url=live.url, name=live.name, password=live.password, minutes=24 * 60 / speed / 60)
        )

    def on_ctrl_c(stopping: Any) -> None:
        import asyncio

        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stopping.set)

    try:
        play_live(pb, sc, bind, speed, db_url, ready, on_ctrl_c)
    except BindError as exc:
        error(escape(str(exc)))
        raise typer.Exit(1) from None
    out.print(_("stopped"))


@app.command(help=N_("Run the bot for the cohorts in the config."))
def run(config: Annotated[Path, typer.Option("--config", help=N_("the deployment config (YAML)"))]) -> None:
    from bot import config as configs
    from bot.runner import run_forever

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("apscheduler").setLevel(logging.WARNING)  # one line per job is noise
    try:
        loaded = configs.load(config)
    except InputError as exc:
        raise fail(exc, config=config) from None
    if loaded.config.language is not None and _lang_argument(sys.argv[1:]) is None:
        i18n.use(loaded.config.language)  # the config's choice over the locale's
    code = run_forever(loaded, out)
    raise typer.Exit(code)


@app.command(
    help=N_(
        "Make the `cohortbot run` of this config read it and its playbooks again now (it also "
        "notices saved files by itself). The files are checked here first; exit 2 if they are "
        "not valid, 1 if no bot runs with this config."
    )
)
def reload(
    config: Annotated[Path, typer.Option("--config", help=N_("the running bot's config (YAML)"))],
) -> None:
    from bot import config as configs
    from bot.reload import signal_running

    try:
        loaded = configs.load(config)
    except InputError as exc:
        err.print(_("[bold red]not reloaded[/]: the running bot keeps the last good version"))
        raise fail(exc, config=config) from None
    try:
        pid = signal_running(loaded)
    except LookupError as exc:
        error(escape(str(exc)))
        raise typer.Exit(1) from None
    out.print(
        _("asked cohortbot (process {pid}) to reload; what changed goes to the operators and its log").format(
            pid=pid
        )
    )


# For the commands that read a bot's database (export, survey).
DbOption = Annotated[
    str | None,
    typer.Option(help=N_("instead of --config: a database URL, or an SQLite file such as demo --db wrote")),
]
CohortOption = Annotated[
    str | None, typer.Option(help=N_("the cohort's id; may be left out if the database holds one"))
]


def _database(config: Path | None, db: str | None) -> tuple[Loaded | None, str]:
    """A reader's database (export, survey): the config's, with its playbooks, or --db's."""
    from bot import config as configs
    from bot.export import database_url

    if (config is None) == (db is None):
        error(_("name the database with --config FILE or --db URL (one of them)"))
        raise typer.Exit(2)
    try:
        loaded = configs.load(config) if config is not None else None
    except InputError as exc:
        raise fail(exc, config=config) from None
    return loaded, loaded.database_url if loaded else database_url(str(db))


@app.command(
    help=N_(
        "Write a cohort's members, check-ins, rewards and sends into a folder: one xlsx workbook "
        "(a sheet each) or a CSV file each (UTF-8 with a byte-order mark, for Excel). Times are "
        "the cohort's local time. Only reads the database: the bot may go on running."
    )
)
def export(
    out_dir: Annotated[Path, typer.Option("--out", help=N_("the folder to write into; made if missing"))],
    config: Annotated[
        Path | None, typer.Option("--config", help=N_("the bot's config: its database and track names"))
    ] = None,
    db: DbOption = None,
    cohort: CohortOption = None,
    fmt: Annotated[str, typer.Option("--format", metavar="xlsx|csv", help=N_("xlsx or csv"))] = "xlsx",
) -> None:
    from bot import export as exports
    from storage.readonly import CannotRead, open_readonly

    if fmt not in exports.FORMATS:
        error(_("--format {value}: write xlsx or csv").format(value=escape(fmt)))
        raise typer.Exit(2)
    loaded, url = _database(config, db)
    try:
        exports.check_folder(out_dir)
        engine = open_readonly(url)
        try:
            result = exports.collect(engine, url, cohort, loaded.playbooks if loaded else {})
        finally:
            engine.dispose()
        files = exports.write(result, out_dir, fmt)
    except (CannotRead, exports.ExportError) as exc:
        error(escape(str(exc)))
        raise typer.Exit(2) from None
    for f in files:
        out.print(_("wrote {file}").format(file=escape(str(f))))
    counts = _(
        "members: {members}, check-ins: {checkins}, rewards: {rewards}, sends: {sends}; times in {zone}"
    )
    out.print(
        counts.format(
            members=result.count("members"),
            checkins=result.count("checkins"),
            rewards=result.count("rewards"),
            sends=result.count("sends"),
            zone=result.zone,
        )
    )


@app.command(
    help=N_(
        "A cohort's questionnaire (the playbook's `survey:`): who was asked, answered and finished, "
        "each choice with its count and share, and the written answers with name and time; "
        "--xlsx or --csv also writes them for Excel. Only reads the database: the bot may go on running."
    )
)
def survey(
    config: Annotated[
        Path | None, typer.Option("--config", help=N_("the bot's config: its database and questions"))
    ] = None,
    db: DbOption = None,
    cohort: CohortOption = None,
    xlsx: Annotated[Path | None, typer.Option("--xlsx", help=N_("write an xlsx workbook here"))] = None,
    csv_dir: Annotated[
        Path | None, typer.Option("--csv", help=N_("write a CSV file per table into this folder"))
    ] = None,
) -> None:
    from bot import export as exports
    from bot import survey as surveys
    from bot.survey_view import show, write_files
    from storage.readonly import CannotRead, open_readonly

    loaded, url = _database(config, db)
    try:
        engine = open_readonly(url)
        try:
            found = surveys.read(engine, url, cohort, loaded.playbooks if loaded else {})
        finally:
            engine.dispose()
        files = write_files(found, xlsx, csv_dir)
    except (CannotRead, exports.ExportError) as exc:
        error(escape(str(exc)))
        raise typer.Exit(2) from None
    show(out, found)
    for f in files:
        out.print(_("wrote {file}").format(file=escape(str(f))))


# --- testimonials and conversions (issue 10) -----------------------------------------------

ConfigOption = Annotated[
    Path | None, typer.Option("--config", help=N_("the bot's config: its database and track names"))
]


def _source(config: Path | None, db: str | None) -> tuple[dict[str, playbooks.Playbook], str]:
    """The playbooks (by cohort id; none with --db) and the database URL of --config or --db."""
    loaded, url = _database(config, db)
    return (dict(loaded.playbooks) if loaded is not None else {}), url


@app.command(
    help=N_(
        "Show a cohort's testimonials (the whole texts of check-ins on tracks with "
        "`testimonial: true`), or write them with name and local time into one file: --xlsx "
        "FILE or --csv FILE. Only reads the database: the bot may go on running."
    )
)
def testimonials(
    config: ConfigOption = None,
    db: DbOption = None,
    cohort: CohortOption = None,
    xlsx: Annotated[Path | None, typer.Option("--xlsx", help=N_("write an xlsx workbook here"))] = None,
    csv_file: Annotated[
        Path | None, typer.Option("--csv", help=N_("write a CSV file here (UTF-8 with a BOM, for Excel)"))
    ] = None,
    featured: Annotated[bool, typer.Option("--featured", help=N_("only the featured ones (精选)"))] = False,
) -> None:
    from bot import export as exports
    from bot import testimonials as kept
    from storage.readonly import CannotRead, open_readonly

    pbs, url = _source(config, db)
    try:
        engine = open_readonly(url)
        try:
            found = kept.collect(engine, url, cohort, pbs, featured)
        finally:
            engine.dispose()
        files = [kept.write(found, path) for path in (xlsx, csv_file) if path is not None]
    except (CannotRead, exports.ExportError) as exc:
        error(escape(str(exc)))
        raise typer.Exit(2) from None
    for f in files:
        out.print(_("wrote {file}: {n} testimonials").format(file=escape(str(f)), n=len(found.rows)))
    if not files:
        out.print(kept.table(found))


conversions_app = typer.Typer(
    no_args_is_help=False,
    rich_markup_mode=None,
    help=N_(
        "List the members marked as enrolled in the full course (报名), with the cohort's "
        "conversion by completion and by reminders; `conversions import FILE` marks the buyers "
        "of a shop's order export."
    ),
)
app.add_typer(conversions_app, name="conversions")


@conversions_app.callback(invoke_without_command=True)
def conversions(
    ctx: typer.Context,
    config: ConfigOption = None,
    db: DbOption = None,
    cohort: CohortOption = None,
) -> None:
    if ctx.invoked_subcommand is not None:
        return
    from rich import box

    from bot import conversions as conv
    from bot import export as exports
    from storage.readonly import CannotRead, location, open_readonly

    pbs, url = _source(config, db)
    try:
        engine = open_readonly(url)
        try:
            with engine.connect() as conn:
                ids = [exports.pick_cohort(conn, cohort, location(url))] if cohort else None
                figures = [f for f in conv.every_cohort(conn, pbs) if ids is None or f.cohort_id in ids]
                listed = {f.cohort_id: conv.listing(conn, f.cohort_id) for f in figures}
        finally:
            engine.dispose()
    except (CannotRead, exports.ExportError) as exc:
        error(escape(str(exc)))
        raise typer.Exit(2) from None
    for f in figures:
        table = Table(box=box.SIMPLE_HEAD, padding=(0, 1), title=f.cohort_id)
        for column in (_("name"), _("member id"), _("marked at"), _("by")):
            table.add_column(column, no_wrap=True, overflow="ellipsis")
        for name, member_id, at, source in listed[f.cohort_id]:
            when = f"{at:%Y-%m-%d %H:%M}" if at else ""
            table.add_row(escape(name), escape(member_id), when, escape(source))
        if listed[f.cohort_id]:
            out.print(table)
        for line in conv.describe(f, pbs.get(f.cohort_id)):
            out.print(escape(line))


@conversions_app.command(
    "import",
    help=N_(
        "Mark the buyers of a shop's order export as enrolled (CSV in UTF-8 or GBK, or xlsx; "
        "the header row names a nickname column, 昵称/微信昵称/nickname/name, or a WeChat id "
        "column, 微信号/wechat id/id). Rows matching nobody or several members are listed, "
        "nothing is guessed; importing again is harmless. Writes only the conversions: the bot "
        "may go on running."
    ),
)
def conversions_import(
    file: Annotated[Path, typer.Argument(help=N_("the order export: .csv or .xlsx"))],
    config: ConfigOption = None,
    db: DbOption = None,
    cohort: Annotated[
        str | None, typer.Option("--cohort", help=N_("the cohort's id; default: match in every cohort"))
    ] = None,
) -> None:
    from sqlalchemy.exc import SQLAlchemyError

    from bot import conversions as conv
    from bot import export as exports
    from bot.clock import SystemClock
    from storage.db import explain_failure
    from storage.readonly import CannotRead, open_readonly

    _pbs, url = _source(config, db)
    try:
        orders = conv.read_orders(file)
        engine = open_readonly(url, writes=conv.WRITES)
        try:
            result = conv.import_orders(engine, url, orders, cohort, SystemClock().now())
        finally:
            engine.dispose()
    except (conv.CannotImport, CannotRead, exports.ExportError) as exc:
        error(escape(str(exc)))
        raise typer.Exit(2) from None
    except SQLAlchemyError as exc:  # e.g. the database stayed locked; nothing was written
        error(escape(explain_failure(url, exc)))
        raise typer.Exit(2) from None
    for line in conv.report(result):
        out.print(escape(line), soft_wrap=True)


@app.command(
    help=N_(
        "How a cohort is going: completion per day and track, when members check in and whether "
        "reminders work, daily activity and retention, lurkers, active and key members by name, "
        "rewards, streaks, opt-outs, conversion (报名) and the questionnaire; in the terminal, and "
        "in files with --xlsx, --csv, --png and --html. With --config and several cohorts but no "
        "--cohort: the cohorts side by side. Only reads the database: the bot may go on running."
    )
)
def report(
    config: ConfigOption = None,
    db: DbOption = None,
    cohort: CohortOption = None,
    xlsx: Annotated[Path | None, typer.Option("--xlsx", help=N_("also write an Excel workbook"))] = None,
    csv: Annotated[
        Path | None, typer.Option("--csv", help=N_("also write CSV files into this folder"))
    ] = None,
    png: Annotated[
        Path | None, typer.Option("--png", help=N_("also write one picture to forward in WeChat"))
    ] = None,
    html: Annotated[
        Path | None, typer.Option("--html", help=N_("also write one web page with interactive charts"))
    ] = None,
) -> None:
    from bot import export as exports
    from bot.clock import SystemClock
    from bot.report import ReportError, Thresholds, compare, compute
    from bot.report_views import comparison, tables
    from storage.readonly import CannotRead, location, open_readonly

    loaded, url = _database(config, db)
    if loaded and loaded.config.language is not None and _lang_argument(sys.argv[1:]) is None:
        i18n.use(loaded.config.language)  # the config's choice over the locale's
    limits = Thresholds(**loaded.config.report.model_dump()) if loaded else Thresholds()
    # The config's cohorts are the ones that run (the database may hold old rehearsals too).
    several = [c.id for c in loaded.config.cohorts] if loaded and cohort is None else []
    if len(several) > 1 and any(f is not None for f in (xlsx, csv, png, html)):
        error(
            _(
                "the config runs {n} cohorts and the files are one cohort's report; name it with "
                "--cohort: {ids}"
            ).format(n=len(several), ids=", ".join(several))
        )
        raise typer.Exit(2)
    try:
        engine = open_readonly(url)
        try:
            with engine.connect() as conn:
                if len(several) > 1:
                    assert loaded is not None
                    lines = compare(conn, several, SystemClock().now(), loaded.playbooks, limits)
                else:
                    cohort_id = exports.pick_cohort(conn, cohort, location(url))
                    pb = loaded.playbooks.get(cohort_id) if loaded else None
                    result = compute(conn, cohort_id, SystemClock().now(), pb, limits)
        finally:
            engine.dispose()
    except (CannotRead, exports.ExportError, ReportError) as exc:
        error(escape(str(exc)))
        raise typer.Exit(2) from None
    if len(several) > 1:
        for part in comparison(lines):
            out.print(part)
        return
    for part in tables(result):
        out.print(part)
    _report_files(result, xlsx, csv, png, html)


def _report_files(
    result: Report, xlsx: Path | None, csv: Path | None, png: Path | None, html: Path | None
) -> None:
    """The report's files, each said when written; a file that cannot be written: exit 2."""
    from bot import export as exports
    from bot import report_charts, report_views

    written: list[Path] = []
    try:
        if xlsx is not None:
            written.append(report_views.write_xlsx(result, xlsx))
        if csv is not None:
            written += report_views.write_csv(result, csv)
        if png is not None:
            font = report_charts.find_font()
            if font is None:
                err.print("[yellow]" + escape(report_charts.no_font_warning()) + "[/]", soft_wrap=True)
            written.append(report_charts.write_png(result, png, font))
        if html is not None:
            written.append(report_charts.write_html(result, html))
    except exports.ExportError as exc:
        error(escape(str(exc)))
        raise typer.Exit(2) from None
    for f in written:
        out.print(_("wrote {file}").format(file=escape(str(f))))


operator_app = typer.Typer(
    no_args_is_help=True, rich_markup_mode=None, help=N_("The web console's operators (config `web:`).")
)
app.add_typer(operator_app, name="operator")


@operator_app.command(
    "add",
    help=N_(
        "Give an operator a login to the web console, or a new password: asked twice (or read "
        "from standard input with --password-stdin), stored as an argon2 hash."
    ),
)
def operator_add(
    name: Annotated[str, typer.Argument(metavar="NAME", help=N_("the name she logs in with"))],
    config: ConfigOption = None,
    db: DbOption = None,
    cohorts: Annotated[
        str | None, typer.Option(help=N_("only these cohorts, by id, comma-separated; default: all"))
    ] = None,
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help=N_("read the password from standard input"))
    ] = False,
) -> None:
    from datetime import UTC, datetime

    from bot.web.auth import BadLogin, add_operator
    from storage.db import explain_failure, open_db

    loaded, url = _database(config, db)
    if db is not None or url.rstrip("/") in ("sqlite:", "sqlite:///:memory:"):
        # A database named by hand must be a bot's: a typo would be a new file, another
        # program's database would get cohortbot's tables, and one in memory is gone at exit.
        from storage.readonly import CannotRead, open_readonly

        try:
            open_readonly(url).dispose()
        except CannotRead as exc:
            error(escape(str(exc)))
            raise typer.Exit(2) from None
    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = typer.prompt(_("Password"), hide_input=True)
        if typer.prompt(_("The password again"), hide_input=True) != password:
            error(_("the two passwords differ; nothing was changed"))
            raise typer.Exit(2)
    wanted = [c.strip() for c in (cohorts or "").split(",") if c.strip()]
    known = [c.id for c in loaded.config.cohorts] if loaded else None
    try:
        database = open_db(url)
        new = add_operator(database, name, password, wanted, known, datetime.now(UTC))
    except BadLogin as exc:
        error(str(exc))
        raise typer.Exit(2) from None
    except Exception as exc:  # the driver's, SQLAlchemy's or the OS's: one line
        error(explain_failure(url, exc))
        raise typer.Exit(2) from None
    said = _("added {name}") if new else _("changed the password of {name}; her open sessions end")
    limited = _(" (cohorts: {ids})").format(ids=", ".join(wanted)) if wanted else ""
    out.print(escape(said.format(name=name) + limited))


def _web_alone(args: list[str]) -> list[str]:
    """`demo --web` with no HOST:PORT after it (Typer has no option with an optional value):
    the default address is put in."""
    if "--web" not in args:
        return args
    from bot.demo import DEFAULT_BIND

    fixed = []
    for i, a in enumerate(args):
        fixed.append(a)
        after = args[i + 1] if i + 1 < len(args) else ""
        if a == "--web" and not re.fullmatch(r"\[?[\w.:-]*\]?:\d+", after):
            fixed.append(DEFAULT_BIND)
    return fixed


def main() -> None:
    sys.argv[1:] = _web_alone(sys.argv[1:])
    try:
        app()
    except KeyboardInterrupt:
        err.print(_("stopped"))
        sys.exit(130)


if __name__ == "__main__":
    main()
