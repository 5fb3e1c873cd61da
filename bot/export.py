"""`cohortbot export`: one cohort's members, check-ins, rewards and sends for the operators'
spreadsheets: an xlsx workbook (a sheet per table) or a CSV file per table in UTF-8 with a
byte-order mark (without it Excel reads the Chinese as gibberish).

The rows are computed once (:func:`collect`) and written by either writer. The database is
read through storage.readonly: the bot may be running on it. Times are the cohort's local
time (stored UTC); headers are in the operator's language. Names come from WeChat and may
be anything, so text a spreadsheet would run as a formula is written to stay text."""

from __future__ import annotations

import csv
import os
import re
import unicodedata
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import Connection, Engine, select

from bot.i18n import N_, _
from bot.playbook import Playbook
from bot.yamlfile import resolved
from storage.models import LEARNER, OPERATOR
from storage.readonly import location
from storage.repo import checkin_t, cohort_t, grant_t, member_t, out_t

FORMATS = ("xlsx", "csv")
TIME_FORMAT = "yyyy-mm-dd hh:mm:ss"  # Excel's number format for the time columns
# OWASP (CSV injection): a cell starting with one of these is a formula to Excel, LibreOffice
# or Google Sheets (tab and CR: some strip them first).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
# XML 1.0 refuses these: no xlsx can hold them (openpyxl raises), and no reader wants them.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")
XLSX_CELL_MAX = 32_767  # Excel's limit on a cell's characters

Cell = str | int | float | datetime | None  # float: the report's rates

ROLES = {LEARNER: N_("member"), OPERATOR: N_("operator")}
STATUSES = {
    "pending": N_("queued"),
    "sending": N_("sending"),
    "sent": N_("sent"),
    "failed": N_("failed"),
    "unreachable": N_("not sent: not the account's friend"),
    "expired": N_("not sent: too late"),
    "unknown": N_("may have arrived (cut off while sending)"),
    "cancelled": N_("cancelled"),
}
KINDS = {
    "post": N_("post"),
    "rollcall": N_("roll call"),
    "ack": N_("check-in reply"),
    "remind": N_("reminder"),
    "nudge": N_("nudge"),
    "leaderboard": N_("leaderboard"),
    "summary": N_("day summary"),
    "welcome": N_("welcome"),
    "reward": N_("reward"),
    "announce": N_("reward announcement"),
    "notice": N_("check-in notice"),
    "friend": N_("add-friend request"),
    "reply": N_("command reply"),
    "alert": N_("operator alert"),
}


class ExportError(Exception):
    """What stops an export, in one line with what to do."""


@dataclass(frozen=True)
class Column:
    header: str  # an English msgid, translated where written
    time: bool = False  # a local time: a real date in xlsx, "YYYY-MM-DD HH:MM:SS" in CSV


@dataclass(frozen=True)
class Sheet:
    key: str  # in the CSV file's name
    title: str  # an English msgid: the sheet's name
    columns: tuple[Column, ...]
    rows: list[tuple[Cell, ...]]


@dataclass(frozen=True)
class Export:
    cohort: str
    zone: str
    sheets: tuple[Sheet, ...]

    def count(self, key: str) -> int:
        return next(len(s.rows) for s in self.sheets if s.key == key)


MEMBERS = (
    Column(N_("member id")),
    Column(N_("name")),
    Column(N_("group alias")),
    Column(N_("role")),
    Column(N_("still in the group")),
    Column(N_("joined at"), time=True),
    Column(N_("left at"), time=True),
    Column(N_("reachable privately")),
    Column(N_("muted (no @, no nudges)")),
    Column(N_("check-ins")),
    Column(N_("rewards")),
)
CHECKINS = (
    Column(N_("day")),
    Column(N_("track")),
    Column(N_("member id")),
    Column(N_("name")),
    Column(N_("checked in at"), time=True),
    Column(N_("make-up")),
)
REWARDS = (
    Column(N_("reward")),
    Column(N_("member id")),
    Column(N_("name")),
    Column(N_("granted at"), time=True),
)
SENDS = (
    Column(N_("id")),
    Column(N_("queued at"), time=True),
    Column(N_("sent at"), time=True),
    Column(N_("kind")),
    Column(N_("chat")),
    Column(N_("sent to")),
    Column(N_("sent to (id)")),
    Column(N_("status")),
    Column(N_("text")),
    Column(N_("error")),
)


# --- where from, where to -------------------------------------------------------------------


def database_url(value: str) -> str:
    """``--db``: a database URL, or the path of an SQLite file (what `demo --db` writes)."""
    return value if "://" in value else f"sqlite:///{resolved(Path(value).expanduser())}"


def check_folder(out: Path, what: str | None = None) -> None:
    """``out`` is, or can be made, a folder this user may write in; checked before the
    database is read, so a wrong --out costs nothing. ``what`` begins the error: the option
    the operator typed (``--csv DIR``), ``--out DIR`` if not given."""
    what = what or f"--out {out}"
    existing = out
    while not existing.exists() and existing.parent != existing:
        existing = existing.parent
    if not existing.is_dir():
        raise ExportError(
            _("{what}: {path} is a file, not a folder; name a folder").format(what=what, path=existing)
        )
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ExportError(
            _("{what}: cohortbot may not write in {path}; choose a folder this user may write to").format(
                what=what, path=existing
            )
        )


def pick_cohort(conn: Connection, wanted: str | None, where: str) -> str:
    ids = sorted(conn.execute(select(cohort_t.c.id)).scalars())
    if wanted is not None and wanted in ids:
        return wanted
    if not ids:
        raise ExportError(
            _("{where} holds no cohort yet (a cohort is recorded when its bot starts)").format(where=where)
        )
    if wanted is None and len(ids) == 1:
        return ids[0]
    listed = ", ".join(ids)
    if wanted is None:
        raise ExportError(
            _("{where} holds {n} cohorts; name one with --cohort: {ids}").format(
                where=where, n=len(ids), ids=listed
            )
        )
    raise ExportError(
        _("no cohort {cohort!r} in {where}; the cohorts there: {ids}").format(
            cohort=wanted, where=where, ids=listed
        )
    )


# --- the rows, once ---------------------------------------------------------------------------


def collect(engine: Engine, url: str, cohort: str | None, playbooks: Mapping[str, Playbook]) -> Export:
    """Every table of the cohort, read in one transaction (one moment, whatever the bot
    commits meanwhile). ``playbooks`` (by cohort id, from --config) give tracks and rewards
    their names; without one they are shown by id."""
    with engine.connect() as conn:
        cohort_id = pick_cohort(conn, cohort, location(url))
        row = conn.execute(select(cohort_t).where(cohort_t.c.id == cohort_id)).one()
        try:
            zone = ZoneInfo(row.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            zone = ZoneInfo("UTC")  # the headers say which zone the times are in
        pb = playbooks.get(cohort_id)
        tracks = {k: t.name for k, t in pb.tracks.items()} if pb else {}
        rewards = {r.id: r.name for r in pb.rewards} if pb else {}

        def local(value: datetime | None) -> datetime | None:
            if value is None:
                return None
            return value.astimezone(zone).replace(tzinfo=None, microsecond=0)

        people = list(
            conn.execute(
                select(member_t)
                .where(member_t.c.cohort_id == cohort_id)
                .order_by(member_t.c.joined_at, member_t.c.member_id)
            )
        )
        shown = {m.member_id: m.alias or m.name or m.member_id for m in people}
        checkins = list(
            conn.execute(
                select(checkin_t)
                .where(checkin_t.c.cohort_id == cohort_id)
                .order_by(checkin_t.c.day, checkin_t.c.track, checkin_t.c.at, checkin_t.c.id)
            )
        )
        grants = list(
            conn.execute(
                select(grant_t)
                .where(grant_t.c.cohort_id == cohort_id)
                .order_by(grant_t.c.at, grant_t.c.member_id, grant_t.c.reward_id)
            )
        )
        sends = list(conn.execute(select(out_t).where(out_t.c.cohort_id == cohort_id).order_by(out_t.c.id)))
        per_member = Counter(c.member_id for c in checkins)
        granted = Counter(g.member_id for g in grants)
        room = row.room

    members = [
        (
            m.member_id,
            m.name,
            m.alias or "",
            _label(ROLES, m.role),
            yes_no(m.present),
            local(m.joined_at),
            local(m.left_at),
            yes_no(m.reachable),
            yes_no(m.muted),
            per_member[m.member_id],
            granted[m.member_id],
        )
        for m in people
    ]
    checkin_rows = [
        (
            c.day,
            tracks.get(c.track, c.track),
            c.member_id,
            shown.get(c.member_id, c.member_id),
            local(c.at),
            makeup(c, shown),
        )
        for c in checkins
    ]
    reward_rows = [
        (rewards.get(g.reward_id, g.reward_id), g.member_id, shown.get(g.member_id, g.member_id), local(g.at))
        for g in grants
    ]
    send_rows = [
        (
            s.id,
            local(s.created_at),
            local(s.sent_at),
            _label(KINDS, s.kind),
            _("group") if s.room_id is not None else _("private"),
            room if s.room_id is not None else shown.get(s.member_id, s.member_id),
            s.room_id if s.room_id is not None else s.member_id,
            _label(STATUSES, s.status),
            s.text,
            s.error or "",
        )
        for s in sends
    ]
    return Export(
        cohort_id,
        zone.key,
        (
            Sheet("members", N_("members"), MEMBERS, clean(members)),
            Sheet("checkins", N_("check-ins"), CHECKINS, clean(checkin_rows)),
            Sheet("rewards", N_("rewards"), REWARDS, clean(reward_rows)),
            Sheet("sends", N_("sends"), SENDS, clean(send_rows)),
        ),
    )


def makeup(row: Any, shown: Mapping[str, str]) -> str:
    """The make-up column: "" for an ordinary check-in; "self" for a member's own 补卡; else
    who credited it (an operator's name). ``makeup_by`` is read with getattr: databases
    written before make-ups existed have no such column."""
    by = getattr(row, "makeup_by", None)
    if not by:
        return ""
    if by == row.member_id:
        return _("self")
    return shown.get(by, by)


def _label(labels: Mapping[str, str], code: str) -> str:
    """A stored code in the operator's words; one this version does not know, as stored."""
    return _(labels[code]) if code in labels else code


def yes_no(value: bool) -> str:
    return _("yes") if value else _("no")


def clean(rows: list[tuple[Any, ...]]) -> list[tuple[Cell, ...]]:
    """The rows without control characters (a spreadsheet refuses them in text)."""
    return [tuple(_CONTROL.sub("", v) if isinstance(v, str) else v for v in r) for r in rows]


def headers(sheet: Sheet, zone: str) -> list[str]:
    return [
        _("{column} ({zone})").format(column=_(c.header), zone=zone) if c.time else _(c.header)
        for c in sheet.columns
    ]


def risky(text: str) -> bool:
    """Text a spreadsheet would run (or could be made to run on editing) as a formula."""
    return text.startswith(FORMULA_STARTS)


# --- two writers ------------------------------------------------------------------------------


def write(export: Export, out: Path, fmt: str) -> list[Path]:
    """The files of ``export`` in ``out`` (made if missing), each complete or absent: written
    aside, then renamed over any older export of the same name."""
    try:
        out.mkdir(parents=True, exist_ok=True)
        stem = _stem(export.cohort)
        if fmt == "csv":
            files = [(out / f"{stem}-{s.key}.csv", partial(write_csv, s, export.zone)) for s in export.sheets]
        else:
            files = [(out / f"{stem}.xlsx", partial(write_xlsx, export))]
        return [_atomic(path, writer) for path, writer in files]
    except OSError as exc:
        raise ExportError(
            _("cannot write the export into {out}: {reason}").format(out=out, reason=exc.strerror or exc)
        ) from None


def write_file(path: Path, writer: Callable[[Path], None]) -> Path:
    """One file, its folder made if missing; complete or absent (written aside, then renamed);
    a folder or disk that refuses it is one line (ExportError)."""
    check_folder(path.parent, _("cannot write {file}").format(file=path))
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        return _atomic(path, writer)
    except OSError as exc:
        raise ExportError(
            _("cannot write {file}: {reason}").format(file=path, reason=exc.strerror or exc)
        ) from None


def _stem(cohort: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", cohort).lstrip(".") or "cohort"


def _atomic(path: Path, writer: Callable[[Path], None]) -> Path:
    part = path.with_name(f".{path.name}.part")
    try:
        writer(part)
        os.replace(part, path)
    finally:
        part.unlink(missing_ok=True)
    return path


def write_csv(sheet: Sheet, zone: str, path: Path) -> None:
    with path.open("w", encoding="utf-8-sig", newline="") as f:
        w = csv.writer(f, quoting=csv.QUOTE_ALL)  # OWASP: every field in quotes, too
        w.writerow(headers(sheet, zone))
        w.writerows([_csv_cell(v) for v in r] for r in sheet.rows)


def _csv_cell(value: Cell) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return f"{value:%Y-%m-%d %H:%M:%S}"
    if isinstance(value, str) and risky(value):
        return "'" + value  # OWASP: Excel shows it as text, the quote visible
    return str(value)


def write_xlsx(export: Export, path: Path) -> None:
    from openpyxl import Workbook
    from openpyxl.styles import Font
    from openpyxl.utils import get_column_letter

    wb = Workbook()
    wb.remove(wb.active)  # type: ignore[arg-type]
    bold = Font(bold=True)
    for sheet in export.sheets:
        ws = wb.create_sheet(_(sheet.title))
        names = headers(sheet, export.zone)
        for i, name in enumerate(names, 1):
            _text_cell(ws.cell(row=1, column=i), name).font = bold
        for r, row in enumerate(sheet.rows, 2):
            for i, value in enumerate(row, 1):
                cell = ws.cell(row=r, column=i)
                if isinstance(value, str):
                    _text_cell(cell, value)
                elif value is not None:
                    cell.value = value
                    if isinstance(value, datetime):
                        cell.number_format = TIME_FORMAT
        ws.freeze_panes = "A2"
        ws.auto_filter.ref = f"A1:{get_column_letter(len(names))}{len(sheet.rows) + 1}"
        for i, width in enumerate(widths(names, sheet), 1):
            ws.column_dimensions[get_column_letter(i)].width = width
    wb.save(path)


def _text_cell(cell: Any, text: str) -> Any:
    """A string cell, whatever the text: openpyxl makes "=..." a formula and "#N/A" an error,
    so the type is set after the value. A text that starts like a formula also gets Excel's
    quote prefix (the hidden apostrophe of typing '=...), or editing the cell would make it one."""
    if len(text) > XLSX_CELL_MAX:
        text = text[: XLSX_CELL_MAX - 1] + "…"
    cell.value = text
    cell.data_type = "s"
    if risky(text):
        cell.quotePrefix = True
    return cell


def widths(names: Sequence[str], sheet: Sheet, most: int = 60, sample: int = 500) -> list[int]:
    """Each column as wide as its header (bold, and the filter's button beside it) or its
    widest value among the first rows, at most ``most`` (a message's text would make a
    column pages wide); Chinese characters count double."""
    out = []
    for i, name in enumerate(names):
        seen = [_display_width(name) + 2]
        for row in sheet.rows[:sample]:
            value = row[i]
            if isinstance(value, datetime):
                seen.append(len(TIME_FORMAT))
            elif value is not None:
                seen.append(_display_width(str(value).split("\n", 1)[0]))
        out.append(min(max(seen) + 2, most))
    return out


def _display_width(text: str) -> int:
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)
