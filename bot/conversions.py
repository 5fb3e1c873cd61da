"""Conversion (报名): the members who bought the full course, the number the cohort exists for.

Operators mark them in the bot (`报名 NAME`, bot/operator_commands.py) or import a shop's order
export (`cohortbot conversions import FILE`): CSV in UTF-8 (with or without a BOM) or GBK, or
xlsx, whose header row names a nickname column (昵称, 微信昵称, nickname, name, ...) and/or a
WeChat id column (微信号, wechat id, id); other columns (手机, amounts, addresses) are not read.
A row is matched to a learner by id first, else by name (group alias or WeChat name); a
name that fits several members, or nobody, is reported and nothing is guessed. Importing
twice is harmless: a member is marked once per cohort.

The importer is another process while the bot runs: it opens the database like
`cohortbot export` (storage/readonly.py: no migration, the schema must be this code's) but
may write the ``conversion`` table, and nothing else, in one short transaction.

:func:`conversion_figures` computes a cohort's conversion, overall and by completion, by
whether reminders reached the member, and by a tier the caller defines."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path

from sqlalchemy import Connection, Engine, select

from bot import checkins
from bot import export as exports
from bot.i18n import N_, _
from bot.playbook import Playbook
from bot.testimonials import cohort_zone, local
from storage import repo
from storage.models import LEARNER
from storage.readonly import location

WRITES = ("conversion",)  # the one table `conversions import` may write
MAX_FILE = 50 * 1024 * 1024  # an order export is a few MB; a bigger file is not one
HEADER_ROWS = 20  # shops put a title or a date range above the header row
LISTED = 30  # rows named in a report's lists

# Header names, best first (a file with both 微信昵称 and 收货人姓名 is matched by the first).
NAME_HEADERS = (
    "微信昵称",
    "昵称",
    "用户昵称",
    "买家昵称",
    "客户昵称",
    "群昵称",
    "nickname",
    "wechat nickname",
    "wechat name",
    "name",
    "姓名",
)
ID_HEADERS = ("微信号", "微信id", "wechat id", "wechatid", "wxid", "用户id", "id")


class CannotImport(Exception):
    """A file that cannot be read as an order export, in one line with what to do."""


@dataclass(frozen=True)
class Buyer:
    line: int  # the file's row number, as a spreadsheet shows it
    name: str
    id: str

    def said(self) -> str:
        return " / ".join(v for v in (self.name, self.id) if v)


@dataclass(frozen=True)
class Orders:
    path: Path
    buyers: list[Buyer]
    columns: list[str]  # the headers read, as written in the file


# --- reading the file -------------------------------------------------------------------------


def read_orders(path: Path) -> Orders:
    """The buyers listed in an order export. Raises CannotImport."""
    try:
        if path.is_dir():
            raise CannotImport(_("{file} is a folder; name the order export file").format(file=path))
        if path.stat().st_size > MAX_FILE:
            raise CannotImport(
                _("{file} is over 50 MB; an order export is much smaller: is it the right file?").format(
                    file=path
                )
            )
        data = path.read_bytes()
    except FileNotFoundError:
        raise CannotImport(_("there is no file {file}; check the path").format(file=path)) from None
    except OSError as exc:
        raise CannotImport(
            _("cannot read {file}: {reason}").format(file=path, reason=exc.strerror or exc)
        ) from None
    rows = _xlsx_rows(path, data) if data.startswith(b"PK\x03\x04") else _csv_rows(path, data)
    return _buyers(path, rows)


def _xlsx_rows(path: Path, data: bytes) -> list[list[str]]:
    from zipfile import BadZipFile

    from openpyxl import load_workbook
    from openpyxl.utils.exceptions import InvalidFileException

    try:
        book = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except (BadZipFile, InvalidFileException, KeyError, ValueError, OSError):
        raise CannotImport(
            _("{file} is a zip file but not an xlsx workbook; save it from Excel as .xlsx or .csv").format(
                file=path
            )
        ) from None
    try:
        # The first sheet with a header row we know; an export's other sheets are summaries.
        for ws in book.worksheets:
            rows = [[_cell(v) for v in row] for row in ws.iter_rows(values_only=True)]
            if _header(rows) is not None:
                return rows
        return [[_cell(v) for v in row] for row in book.worksheets[0].iter_rows(values_only=True)]
    finally:
        book.close()


def _cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))  # a numeric id read back as 12345.0
    if isinstance(value, datetime | date):
        return value.isoformat()
    return str(value).strip()


def _csv_rows(path: Path, data: bytes) -> list[list[str]]:
    if data.startswith(b"\xd0\xcf\x11\xe0"):
        raise CannotImport(
            _("{file} is an old Excel .xls file; open it in Excel and save it as .xlsx or .csv").format(
                file=path
            )
        )
    text = _decode(data)
    if text is None or "\x00" in text:
        raise CannotImport(
            _(
                "{file} is neither CSV text (UTF-8 or GBK) nor an xlsx workbook; export the orders as "
                "CSV or xlsx"
            ).format(file=path)
        )
    sample = text[:8192]
    try:
        dialect: type[csv.Dialect] | csv.Dialect = csv.Sniffer().sniff(sample, delimiters=",\t;")
    except csv.Error:
        dialect = csv.excel
    try:
        rows = [[c.strip() for c in row] for row in csv.reader(io.StringIO(text, newline=""), dialect)]
    except csv.Error as exc:
        raise CannotImport(
            _("{file} is not readable as CSV: {reason}").format(file=path, reason=exc)
        ) from None
    if (line := _unclosed_quote(text, dialect)) is not None:
        raise CannotImport(
            _(
                '{file}, line {line}: a quote " opens a field and is never closed, so the rest of the '
                "file was read as that one field; close the quote or delete it, then import again"
            ).format(file=path, line=line)
        )
    return rows


def _unclosed_quote(text: str, dialect: type[csv.Dialect] | csv.Dialect) -> int | None:
    """The line where a quoted field begins that runs to the end of the file: the csv module
    (not strict) takes all that is left as one field, and the buyers in it are lost unsaid."""
    reader = csv.reader(io.StringIO(text, newline=""), dialect, strict=True)
    start = 1
    try:
        for _row in reader:
            start = reader.line_num + 1
    except csv.Error as exc:
        if "unexpected end of data" in str(exc):
            return start
    return None  # strict mode's other complaints (a quote inside a field) read fine without it


def _decode(data: bytes) -> str | None:
    """UTF-8 (with or without Excel's BOM), else GBK: Chinese shops often export in GBK
    (GB 18030, its superset, reads it too)."""
    for encoding in ("utf-8-sig", "gb18030"):
        try:
            return data.decode(encoding)
        except UnicodeDecodeError:
            continue
    return None


def _header_key(text: str) -> str:
    key = checkins.normalize(text).casefold().strip()
    for ch in " _-:：*()（）":
        key = key.replace(ch, "")
    return key


_NAMES = {_header_key(h): i for i, h in enumerate(NAME_HEADERS)}
_IDS = {_header_key(h): i for i, h in enumerate(ID_HEADERS)}


def _header(rows: list[list[str]]) -> tuple[int, int | None, int | None] | None:
    """(header row index, name column, id column) of the first row that names one."""
    for r, row in enumerate(rows[:HEADER_ROWS]):
        keys = [_header_key(c) for c in row]
        names = sorted((_NAMES[k], i) for i, k in enumerate(keys) if k in _NAMES)
        ids = sorted((_IDS[k], i) for i, k in enumerate(keys) if k in _IDS)
        if names or ids:
            return r, names[0][1] if names else None, ids[0][1] if ids else None
    return None


def _buyers(path: Path, rows: list[list[str]]) -> Orders:
    found = _header(rows)
    if found is None:
        seen = next((row for row in rows if any(row)), [])
        raise CannotImport(
            _(
                "{file}: no column named 昵称 / 微信昵称 / nickname / name or 微信号 / wechat id / id in "
                "its first {n} rows (the first row says: {headers}); rename the column of the buyers' "
                "nicknames or WeChat ids"
            ).format(file=path, n=HEADER_ROWS, headers=", ".join(c for c in seen if c)[:200] or "-")
        )
    r, name_col, id_col = found

    def at(row: list[str], col: int | None) -> str:
        return " ".join(row[col].split()) if col is not None and col < len(row) else ""

    buyers = [
        Buyer(i + 1, at(row, name_col), at(row, id_col))
        for i, row in enumerate(rows[r + 1 :], start=r + 1)
        if at(row, name_col) or at(row, id_col)
    ]
    columns = [rows[r][c] for c in (name_col, id_col) if c is not None]
    return Orders(path, buyers, columns)


# --- matching and recording -------------------------------------------------------------------


@dataclass(frozen=True)
class Candidate:
    cohort_id: str
    member_id: str
    name: str
    alias: str | None

    @property
    def shown(self) -> str:
        return self.alias or self.name


@dataclass
class Imported:
    orders: Orders
    new: list[tuple[Buyer, Candidate]] = field(default_factory=list)
    again: list[tuple[Buyer, Candidate]] = field(default_factory=list)  # marked before
    unmatched: list[Buyer] = field(default_factory=list)
    ambiguous: list[tuple[Buyer, list[Candidate]]] = field(default_factory=list)


def name_key(name: str) -> str:
    """A name as compared: composed, no invisible characters, full-width ASCII folded, spaces
    collapsed, case ignored."""
    return " ".join(checkins.normalize(name).split()).casefold()


def _lost_in_gbk(ch: str) -> bool:
    try:
        ch.encode("gbk")
    except UnicodeEncodeError:
        return True
    return False


def _fits_with_lost(written: str, name: str) -> bool:
    """A GBK export writes each character GBK lacks (emoji) as "?" (or U+FFFD): "小明??" is
    "小明🌟✨", and nobody else."""
    if len(written) != len(name):
        return False
    return all(a == b or (a in "?\ufffd" and _lost_in_gbk(b)) for a, b in zip(written, name, strict=True))


class Matcher:
    """The learners of some cohorts (present or gone: a member who left may still buy), by id
    and by name."""

    def __init__(self, people: Iterable[Candidate]) -> None:
        self.people = list(people)
        self.by_id: dict[str, list[Candidate]] = {}
        self.by_name: dict[str, list[Candidate]] = {}
        for p in self.people:
            self.by_id.setdefault(p.member_id.casefold(), []).append(p)
            for n in {name_key(p.name), name_key(p.alias or "")} - {""}:
                self.by_name.setdefault(n, []).append(p)

    def find(self, buyer: Buyer) -> list[Candidate]:
        if buyer.id and (found := self.by_id.get(buyer.id.casefold())):
            return found
        if not buyer.name:
            return []
        if found := self.by_name.get(name_key(buyer.name)):
            return found
        if "?" in buyer.name or "\ufffd" in buyer.name:
            written = checkins.normalize(buyer.name).strip()
            return [
                p for p in self.people if any(_fits_with_lost(written, n) for n in (p.name, p.alias) if n)
            ]
        return []


def learners_of(conn: Connection, cohort_ids: Iterable[str]) -> list[Candidate]:
    return [
        Candidate(cid, m.member_id, m.name, m.alias)
        for cid in cohort_ids
        for m in repo.members(conn, cid, present_only=False)
        if m.role == LEARNER
    ]


def import_orders(engine: Engine, url: str, orders: Orders, cohort: str | None, now: datetime) -> Imported:
    """Mark the buyers of ``orders`` converted, in one transaction; every cohort of the
    database when ``cohort`` is None (a shop's export covers them all)."""
    out = Imported(orders)
    source = f"import:{orders.path.name}"
    with engine.begin() as conn:
        if cohort is not None:
            ids = [exports.pick_cohort(conn, cohort, location(url))]
        else:
            ids = sorted(conn.execute(select(repo.cohort_t.c.id)).scalars())
            if not ids:
                exports.pick_cohort(conn, None, location(url))  # says the database holds none
        matcher = Matcher(learners_of(conn, ids))
        for buyer in orders.buyers:
            found = matcher.find(buyer)
            if not found:
                out.unmatched.append(buyer)
            elif len(found) > 1:
                out.ambiguous.append((buyer, found))
            elif repo.add_conversion(conn, found[0].cohort_id, found[0].member_id, now, source):
                out.new.append((buyer, found[0]))
            else:
                out.again.append((buyer, found[0]))
    return out


def report(result: Imported) -> list[str]:
    """What an import did, for the operator: counts, then the rows that matched nobody and
    those that could be several members."""
    o = result.orders
    matched = len(result.new) + len(result.again)
    lines = [
        _(
            "{file}: {rows} buyers read (columns {columns}): {matched} matched ({new} newly marked, "
            "{again} marked before), {unmatched} matched nobody, {ambiguous} could be several members"
        ).format(
            file=o.path.name,
            rows=len(o.buyers),
            columns=", ".join(o.columns),
            matched=matched,
            new=len(result.new),
            again=len(result.again),
            unmatched=len(result.unmatched),
            ambiguous=len(result.ambiguous),
        )
    ]
    if result.unmatched:
        lines.append(_("Matched nobody (check the spelling, or mark them in the bot with 报名 NAME):"))
        lines += [
            "  " + _("row {line}: {who}").format(line=b.line, who=b.said()) for b in result.unmatched[:LISTED]
        ]
        lines += _more(len(result.unmatched))
    if result.ambiguous:
        lines.append(_("Could be several members (add their WeChat id to the file, or use 报名 in the bot):"))
        for b, found in result.ambiguous[:LISTED]:
            who = ", ".join(f"{p.shown} ({p.member_id}, {p.cohort_id})" for p in found[:10])
            lines.append(
                "  " + _("row {line}: {who} → {members}").format(line=b.line, who=b.said(), members=who)
            )
        lines += _more(len(result.ambiguous))
    return lines


def _more(n: int) -> list[str]:
    return ["  " + _("… and {n} more").format(n=n - LISTED)] if n > LISTED else []


# --- the figures ------------------------------------------------------------------------------

FINISHED, NOT_FINISHED = "finished", "not_finished"
REACHED, MISSED, NEVER = "reached", "missed", "never"


@dataclass(frozen=True)
class Rate:
    members: int
    converted: int

    @property
    def rate(self) -> float | None:
        return self.converted / self.members if self.members else None

    def __add__(self, other: Rate) -> Rate:
        return Rate(self.members + other.members, self.converted + other.converted)


@dataclass(frozen=True)
class ConversionFigures:
    """A cohort's conversion. Members: its learners, those who left included (leaving is a
    step of the funnel). ``by_completion``: FINISHED (a check-in, make-ups included, on every
    day of ``lesson_track``) and NOT_FINISHED; empty without a playbook. ``by_reminders``:
    REACHED (a reminder sent to the group @-mentioned them, or a nudge reached them
    privately), MISSED (one was meant for them but none arrived: not a friend, failed) and
    NEVER (never reminded: they always checked in, or muted). ``by_tier``: per tier of the
    caller's mapping; members it leaves out are in no tier."""

    cohort_id: str
    overall: Rate
    lesson_track: str | None
    by_completion: Mapping[str, Rate]
    by_reminders: Mapping[str, Rate]
    by_tier: Mapping[str, Rate]
    converted: frozenset[str]  # their member ids


def lesson_track(playbook: Playbook) -> str | None:
    """The track whose days make "finished the course": `lesson` if the playbook has it,
    else its first track that is not a testimonial track."""
    tracks = {k: t for k, t in playbook.tracks.items() if not t.testimonial}
    return "lesson" if "lesson" in tracks else next(iter(tracks), None)


def conversion_figures(
    conn: Connection,
    cohort_id: str,
    playbook: Playbook | None,
    tiers: Mapping[str, str] | None = None,
    track: str | None = None,
) -> ConversionFigures:
    """``tiers``: member id -> tier, as the caller defines them. ``track``: the lesson track
    (default: :func:`lesson_track`)."""
    people = {m.member_id for m in repo.members(conn, cohort_id, present_only=False) if m.role == LEARNER}
    converted = {c.member_id for c in repo.conversions(conn, cohort_id)} & people

    def rate(ids: set[str]) -> Rate:
        return Rate(len(ids), len(ids & converted))

    track = track or (lesson_track(playbook) if playbook is not None else None)
    by_completion: dict[str, Rate] = {}
    if playbook is not None and track in playbook.tracks:
        days = set(playbook.tracks[track].days)
        done = repo.track_days(conn, cohort_id, track)
        finished = {m for m in people if days <= done.get(m, set())}
        by_completion = {FINISHED: rate(finished), NOT_FINISHED: rate(people - finished)}
    reached, meant = repo.reminder_reach(conn, cohort_id)
    by_reminders = {
        REACHED: rate(people & reached),
        MISSED: rate(people & meant - reached),
        NEVER: rate(people - meant),
    }
    groups: dict[str, set[str]] = {}
    for member_id, tier in (tiers or {}).items():
        if member_id in people:
            groups.setdefault(tier, set()).add(member_id)
    return ConversionFigures(
        cohort_id,
        rate(people),
        track if by_completion else None,
        by_completion,
        by_reminders,
        {tier: rate(ids) for tier, ids in groups.items()},
        frozenset(converted),
    )


def every_cohort(
    conn: Connection, playbooks: Mapping[str, Playbook], tiers: Mapping[str, str] | None = None
) -> list[ConversionFigures]:
    """The figures of each cohort in the database, by id: several cohorts side by side."""
    ids = sorted(conn.execute(select(repo.cohort_t.c.id)).scalars())
    return [conversion_figures(conn, cid, playbooks.get(cid), tiers) for cid in ids]


def percent(r: Rate) -> str:
    """25%, 33.3%, or - when there is nobody to count."""
    return "-" if r.rate is None else f"{r.rate:.1%}".replace(".0%", "%")


def describe(f: ConversionFigures, playbook: Playbook | None) -> list[str]:
    """The figures, a line each, for the terminal."""

    def part(label: str, r: Rate) -> str:
        return _("{label}: {converted} of {members} ({percent})").format(
            label=label, converted=r.converted, members=r.members, percent=percent(r)
        )

    lines = [part(_("{cohort}, enrolled").format(cohort=f.cohort_id), f.overall)]
    if f.by_completion and f.lesson_track is not None:
        name = playbook.tracks[f.lesson_track].name if playbook else f.lesson_track
        lines.append(part(_("finished every day of {track}").format(track=name), f.by_completion[FINISHED]))
        lines.append(part(_("did not finish"), f.by_completion[NOT_FINISHED]))
    else:
        lines.append(_("by completion: needs the playbook (--config instead of --db)"))
    r = f.by_reminders
    lines.append(part(_("reminders reached them"), r[REACHED]))
    lines.append(part(_("a reminder was meant for them but none arrived"), r[MISSED]))
    lines.append(part(_("never reminded"), r[NEVER]))
    lines += [part(tier, rate) for tier, rate in sorted(f.by_tier.items())]
    return [lines[0], *("  " + line for line in lines[1:])]


SOURCE_IMPORT = N_("imported from {file}")
SOURCE_BY = N_("by {name}")


def source_said(source: str, shown: Mapping[str, str], say: Callable[[str], str] = _) -> str:
    """Who marked a conversion, for people: "imported from orders.csv", "by 王助教"."""
    if source.startswith("import:"):
        return say(SOURCE_IMPORT).format(file=source.removeprefix("import:"))
    return say(SOURCE_BY).format(name=shown.get(source, source))


def listing(conn: Connection, cohort_id: str) -> list[tuple[str, str, datetime | None, str]]:
    """(name, member id, local time, who marked it) of each converted member, in order."""
    zone = cohort_zone(conn, cohort_id)
    shown = {m.member_id: m.shown for m in repo.members(conn, cohort_id, present_only=False)}
    return [
        (c.name, c.member_id, local(c.at, zone), source_said(c.source, shown))
        for c in repo.conversions(conn, cohort_id)
    ]
