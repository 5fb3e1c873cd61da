"""Testimonials (心得): on a track with ``testimonial: true`` the whole text of each check-in
is kept (bot/checkins.py), an operator may feature one (精选, bot/operator_commands.py), and
`cohortbot testimonials` shows them in a terminal table or writes them to one xlsx or CSV
file with the member's name and the local time, through bot/export.py's writers (formula-
looking names and texts stay text; CSV in UTF-8 with a BOM).

A member who does not want to be quoted says so in the text (the sample playbook asks them
to end with 「不公开」): such a testimonial is marked "may be quoted: no" everywhere it is
shown, and featuring it warns the operator."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from rich import box
from rich.markup import escape
from rich.table import Table
from sqlalchemy import Connection, Engine, select

from bot import export as exports
from bot.i18n import N_, _
from bot.playbook import Playbook
from storage import repo
from storage.readonly import location

# Words by which a member asks not to be quoted; looked for anywhere in the text (an error
# this way costs one quote, the other way a member's trust).
NOT_PUBLIC = ("不公开", "不要公开", "请勿公开", "not public", "do not quote", "don't quote")
EXCERPT = 60  # characters of a testimonial in a one-line preview

COLUMNS = (
    exports.Column(N_("day")),
    exports.Column(N_("track")),
    exports.Column(N_("member id")),
    exports.Column(N_("name")),
    exports.Column(N_("written at"), time=True),
    exports.Column(N_("featured (精选)")),
    exports.Column(N_("featured by")),
    exports.Column(N_("may be quoted")),
    exports.Column(N_("characters")),
    exports.Column(N_("text")),
)


def may_quote(text: str) -> bool:
    low = text.casefold()
    return not any(mark in low for mark in NOT_PUBLIC)


def excerpt(text: str, limit: int = EXCERPT) -> str:
    """One line of a testimonial: its lines joined, cut at ``limit`` characters."""
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


def cohort_zone(conn: Connection, cohort_id: str) -> ZoneInfo:
    """The cohort's time zone, for local times (UTC if the stored one is unknown here)."""
    name = conn.execute(select(repo.cohort_t.c.timezone).where(repo.cohort_t.c.id == cohort_id)).scalar()
    try:
        return ZoneInfo(name or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def local(value: datetime | None, zone: ZoneInfo) -> datetime | None:
    return None if value is None else value.astimezone(zone).replace(tzinfo=None, microsecond=0)


@dataclass(frozen=True)
class Kept:
    """A cohort's testimonials, read once, for the table and the file alike."""

    export: exports.Export  # one sheet, "testimonials"

    @property
    def rows(self) -> list[tuple[exports.Cell, ...]]:
        return self.export.sheets[0].rows


def collect(
    engine: Engine,
    url: str,
    cohort: str | None,
    playbooks: Mapping[str, Playbook],
    featured_only: bool = False,
) -> Kept:
    """The testimonials of one cohort, oldest first, in one read."""
    with engine.connect() as conn:
        cohort_id = exports.pick_cohort(conn, cohort, location(url))
        zone = cohort_zone(conn, cohort_id)
        kept = repo.testimonials(conn, cohort_id, featured_only=featured_only)
        shown = {m.member_id: m.shown for m in repo.members(conn, cohort_id, present_only=False)}
    pb = playbooks.get(cohort_id)
    tracks = {k: t.name for k, t in pb.tracks.items()} if pb else {}
    rows = [
        (
            t.day,
            tracks.get(t.track, t.track),
            t.member_id,
            t.name,
            local(t.at, zone),
            exports.yes_no(t.featured_at is not None),
            shown.get(t.featured_by, t.featured_by) if t.featured_by else "",
            exports.yes_no(may_quote(t.text)),
            len(t.text),
            t.text,
        )
        for t in kept
    ]
    sheet = exports.Sheet("testimonials", N_("testimonials"), COLUMNS, exports.clean(rows))
    return Kept(exports.Export(cohort_id, zone.key, (sheet,)))


def write(kept: Kept, path: Path) -> Path:
    """One file, xlsx or CSV by its suffix, complete or absent."""
    if path.suffix.lower() == ".csv":
        writer = partial(exports.write_csv, kept.export.sheets[0], kept.export.zone)
    else:
        writer = partial(exports.write_xlsx, kept.export)
    return exports.write_file(path, writer)


def table(kept: Kept) -> Table:
    """A line per testimonial, its text cut to the terminal's width (the file has it whole)."""
    t = Table(
        title=_("{cohort}: {n} testimonials · times in {zone}").format(
            cohort=kept.export.cohort, n=len(kept.rows), zone=kept.export.zone
        ),
        box=box.SIMPLE_HEAD,
        expand=True,
        padding=(0, 1),
    )
    t.add_column(_("day"), no_wrap=True, justify="right")
    t.add_column(_("time"), no_wrap=True)
    t.add_column(_("name"), no_wrap=True, max_width=14, overflow="ellipsis")
    t.add_column("⭐", no_wrap=True)
    t.add_column(_("text"), ratio=1, no_wrap=True, overflow="ellipsis")
    yes = _("yes")
    for day, _track, _id, name, at, featured, _by, quote, _n, text in kept.rows:
        mark = ("⭐" if featured == yes else "") + ("" if quote == yes else "🔒")
        when = f"{at:%m-%d %H:%M}" if isinstance(at, datetime) else ""
        t.add_row(str(day), when, escape(str(name)), mark, escape(excerpt(str(text), 200)))
    return t
