"""Views of a :class:`bot.report.Report`: Rich tables for an 80-column terminal, and the same
figures as spreadsheet sheets, written by bot/export.py's writers (xlsx through openpyxl, CSV
in UTF-8 with a byte-order mark; text that would run as a formula stays text). The numbers
are the report's own, rounded once there: a rate is the same 61.7 on screen and in Excel."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from functools import partial
from pathlib import Path

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from bot import conversions as conv
from bot import export as exports
from bot.export import Cell, Column, Export, Sheet, write_file, yes_no
from bot.i18n import N_, _
from bot.report import (
    DONE,
    LEFT,
    MAKEUP,
    MISSED,
    ON_LEAVE,
    TIERS,
    CohortLine,
    Person,
    ReminderRow,
    Report,
    percent,
)
from bot.survey import export_of

NAMES_SHOWN = 40  # names per list on screen; the files have them all
BAR = 16  # the widest bar on screen, in cells
KINDS = {"remind": N_("group @"), "nudge": N_("private")}
STATUS = {DONE: "✓", MAKEUP: N_("make-up"), ON_LEAVE: N_("leave"), MISSED: "✗", "": ""}
# The conversion's groups, in conversions.describe's words.
REACH = {
    conv.REACHED: N_("reminders reached them"),
    conv.MISSED: N_("a reminder was meant for them but none arrived"),
    conv.NEVER: N_("never reminded"),
}
GROUP_OF = {**TIERS, LEFT: N_("left the group")}
SURVEY_HEAD = N_(
    "{invited} had it ({asked} asked privately, {linked} given the link in the group); {answered} "
    "answered, {done} answered every question"
)


def pct(value: float | None) -> str:
    return "–" if value is None else f"{value:.1f}%"


def num(value: float | None) -> str:
    return "–" if value is None else f"{value:g}"


def day_label(report: Report, day: int) -> str:
    return _("{day} (so far)").format(day=day) if report.today_open and day == report.last_day else str(day)


def names(people: Sequence[Person], most: int | None = None) -> str:
    shown = [p.name for p in people[:most]] if most is not None else [p.name for p in people]
    text = _(", ").join(shown)
    if most is not None and len(people) > most:
        text += _(" … and {n} more").format(n=len(people) - most)
    return text


def title(report: Report) -> str:
    return _("{name} ({cohort}) · {start} to {end} · day {day} of {days}").format(
        name=report.name,
        cohort=report.cohort,
        start=report.start,
        end=report.end,
        day=report.last_day,
        days=report.days,
    )


def headline(report: Report) -> str:
    return _(
        "members in the group: {here} ({left} left) · completion {rate} · rewards granted: {rewards}"
    ).format(
        here=report.in_group_now,
        left=len(report.left),
        rate=pct(report.completion()),
        rewards=sum(len(r.people) for r in report.rewards),
    )


def enrolled_line(report: Report) -> str:
    o = report.conversion.overall
    return _("enrolled in the full course (报名): {n} of {members} members who joined ({rate})").format(
        n=o.converted, members=o.members, rate=pct(report.conversion_rate())
    )


def conversion_rows(report: Report) -> list[tuple[str, str, int, int, float | None]]:
    """(by what, group, members, enrolled, rate %): the conversion's rows, every view's."""
    f = report.conversion
    parts: list[tuple[str, str, conv.Rate]] = [(N_("all"), _("everyone who joined"), f.overall)]
    if f.by_completion:
        finished = _("finished every day of {track}").format(track=report.lesson_track())
        parts.append((N_("completion"), finished, f.by_completion[conv.FINISHED]))
        parts.append((N_("completion"), _("did not finish"), f.by_completion[conv.NOT_FINISHED]))
    parts += [(N_("reminders"), _(label), f.by_reminders[code]) for code, label in REACH.items()]
    parts += [
        (N_("tier"), _(label), f.by_tier.get(code, conv.Rate(0, 0)))
        for code, label in GROUP_OF.items()
        if code != LEFT or code in f.by_tier
    ]
    return [(_(by), group, r.members, r.converted, percent(r.converted, r.members)) for by, group, r in parts]


def no_completion_note() -> str:
    return _("by completion: needs the playbook (--config instead of --db)")


def no_survey_note(report: Report) -> str:
    if report.with_playbook:
        return _("no questionnaire: the playbook has no `survey:`")
    return _("no questionnaire recorded in the database (with --config its questions have their words)")


def survey_rows(report: Report) -> list[tuple[Cell, ...]]:
    """(question, its text, answer, count, share %): `cohortbot survey`'s tallies, every view's."""
    assert report.survey is not None
    return export_of(report.survey, report.cohort, report.zone).sheets[0].rows


def survey_table(report: Report) -> list[tuple[str, Cell, Cell, Cell, bool]]:
    """:func:`survey_rows` on screen: (the question, on its first row only; answer, count,
    share %; whether the question's last row)."""
    assert report.survey is not None
    answered: dict[Cell, int] = {q.number: q.answered for q in report.survey.questions}
    rows = survey_rows(report)
    out = []
    for i, (number, text, label, n, share) in enumerate(rows):
        first = i == 0 or rows[i - 1][0] != number
        last = i + 1 == len(rows) or rows[i + 1][0] != number
        out.append((question_title(number, text, answered[number]) if first else "", label, n, share, last))
    return out


def survey_head(report: Report) -> str:
    assert report.survey is not None
    f = report.survey
    return _(SURVEY_HEAD).format(
        invited=f.invited, asked=f.asked, linked=f.linked, answered=f.answered, done=f.done
    )


def question_title(number: Cell, text: Cell, answers: int) -> str:
    if text:
        return _("{number}. {text} ({n} answers)").format(number=number, text=text, n=answers)
    return _("question {number} ({n} answers)").format(number=number, n=answers)


def as_of(report: Report) -> str:
    return _("as of {time} ({zone})").format(time=f"{report.as_of:%Y-%m-%d %H:%M}", zone=report.zone)


# --- the terminal ------------------------------------------------------------------------------


def _table(name: str) -> Table:
    return Table(title=_(name), title_justify="left", title_style="bold", pad_edge=False)


def _bar(value: float | None, full: float) -> str:
    if not value or not full:
        return ""
    return "█" * max(1, round(BAR * value / full))


def tables(report: Report) -> list[RenderableType]:
    """The report on screen, section by section, each within 80 columns."""
    out: list[RenderableType] = [
        Text(title(report), style="bold"),
        Text(as_of(report)),
        Text(headline(report)),
        Text(enrolled_line(report)),
        _funnel(report),
        _hours(report),
    ]
    if report.reminders:
        out.append(_reminders(report))
    out += [_daily(report), _tiers(report), _rewards(report), _streaks(report), _people(report)]
    out += [_conversion(report), _survey(report)]
    out.append(Text(_("each member's days, streaks, rewards and messages: in --xlsx and --csv")))
    return out


def summary(report: Report) -> list[RenderableType]:
    """The report's short form, after a demo's own tables: activity, reminders, tiers."""
    out: list[RenderableType] = [Text(_("Report"), style="bold"), Text(headline(report)), _daily(report)]
    for kind in KINDS:
        total = report.reminder_totals(kind)
        if total is not None:
            out.append(Text(_reminder_line(kind, total)))
    out += [_tiers(report), _people(report)]
    return out


def _reminder_line(kind: str, r: ReminderRow) -> str:
    return _(
        "{kind}: {done} of {reminded} reminded checked in within 2 h ({rate}); others: {others_done} "
        "of {others} ({others_rate})"
    ).format(
        kind=_(KINDS[kind]),
        done=r.reminded_done,
        reminded=r.reminded,
        rate=pct(r.reminded_rate),
        others_done=r.others_done,
        others=r.others,
        others_rate=pct(r.others_rate),
    )


def _funnel(report: Report) -> Table:
    t = _table(N_("Completion per day and track (checked in / in the group that day)"))
    for col in (N_("day"), N_("track"), N_("checked in"), N_("in the group that day"), N_("rate")):
        t.add_column(_(col), justify="left" if col == N_("track") else "right")
    t.add_column("", no_wrap=True)
    for r in report.funnel:
        t.add_row(
            day_label(report, r.day),
            Text(r.track),
            str(r.done),
            str(r.in_group),
            pct(r.rate),
            _bar(r.rate, 100),
        )
    if not report.funnel:
        t.caption = _("no track has had a day yet")
    return t


def _hours(report: Report) -> Group:
    busiest = max(range(24), key=lambda h: report.hours[h])
    tables = []
    for half in (range(12), range(12, 24)):
        t = Table(show_header=True, box=None, padding=(0, 1))
        t.add_column(_("hour"), style="dim")
        for h in half:
            t.add_column(f"{h:02d}", justify="right")
        t.add_row(_("check-ins"), *(str(report.hours[h]) for h in half))
        tables.append(t)
    line = _("busiest hour: {start:02d}:00-{end:02d}:00 ({n} check-ins)").format(
        start=busiest, end=(busiest + 1) % 24, n=report.hours[busiest]
    )
    return Group(Text(_("When members check in (by local hour)"), style="bold"), *tables, Text(line))


def _reminders(report: Report) -> Table:
    t = _table(N_("Reminders: checked in within 2 hours, reminded or not"))
    heads = (N_("day"), N_("time"), N_("kind"), N_("reminded"), N_("in 2 h"), N_("rate"))
    for col in (*heads, N_("others"), N_("in 2 h"), N_("rate")):
        t.add_column(_(col), justify="left" if col == N_("kind") else "right")
    for r in report.reminders:
        t.add_row(str(r.day), f"{r.at:%H:%M}", _(KINDS[r.kind]), *_reminder_cells(r))
    for kind in KINDS:
        total = report.reminder_totals(kind)
        if total is not None:
            t.add_row(_("all"), "", _(KINDS[kind]), *_reminder_cells(total), style="bold")
    t.caption = _("others: in the group, not reminded, nothing checked in yet that day")
    return t


def _reminder_cells(r: ReminderRow) -> tuple[str, ...]:
    return tuple(pct(v) if isinstance(v, float) or v is None else str(v) for v in r.figures())


def _daily(report: Report) -> Table:
    t = _table(N_("Daily activity (active: spoke or checked in)"))
    heads = (N_("day"), N_("in group"), N_("active"), "%", N_("messages"))
    for col in (*heads, N_("per member"), N_("check-ins"), N_("next day")):
        t.add_column(_(col), justify="right")
    for r in report.daily:
        here, active, rate, said, per_member, checkins, _retained, retention = r.figures()
        t.add_row(
            day_label(report, r.day),
            str(here),
            str(active),
            pct(rate),
            str(said),
            num(per_member),
            str(checkins),
            pct(retention),
        )
    t.caption = _("next day: of the members active that day, the share active the day after")
    return t


def _tiers(report: Report) -> Table:
    limits = report.thresholds
    t = _table(N_("Members by tier (in the group now)"))
    t.add_column(_("tier"))
    t.add_column(_("members"), justify="right")
    t.add_column(_("who"), overflow="fold", ratio=1)
    for code, people in report.tiers:
        t.add_row(_(TIERS[code]), str(len(people)), Text(names(people, NAMES_SHOWN)))
    t.caption = _(
        "active: at least {n} messages; key: the {k} of them with the most messages and check-ins"
    ).format(n=limits.active_min_messages, k=limits.key_members)
    return t


def _rewards(report: Report) -> Table:
    t = _table(N_("Rewards granted"))
    t.add_column(_("reward"))
    t.add_column(_("members"), justify="right")
    t.add_column(_("who"), overflow="fold", ratio=1)
    for r in report.rewards:
        t.add_row(Text(r.reward), str(len(r.people)), Text(names(r.people, NAMES_SHOWN)))
    if not report.rewards:
        t.caption = _("no rewards")
    return t


def _streaks(report: Report) -> Table:
    t = _table(N_("Streaks (consecutive track days checked in)"))
    for col in (N_("track"), N_("days"), N_("every day"), N_("longest")):
        t.add_column(_(col), justify="left" if col == N_("track") else "right")
    t.add_column(_("who has the longest"), overflow="fold", ratio=1)
    for s in report.streaks:
        t.add_row(Text(s.track), str(s.days), str(s.full), str(s.longest), Text(names(s.holders, 12)))
    return t


def _people(report: Report) -> Table:
    t = _table(N_("To look after"))
    t.add_column("")
    t.add_column(_("members"), justify="right")
    t.add_column(_("who"), overflow="fold", ratio=1)
    for label, people in _lists(report):
        t.add_row(_(label), str(len(people)), Text(names(people, NAMES_SHOWN)))
    return t


def _conversion(report: Report) -> Table:
    t = _table(N_("Conversion: enrolled in the full course (报名)"))
    t.add_column(_("which members"), overflow="fold", ratio=1)
    for col in (N_("members"), N_("enrolled"), N_("rate")):
        t.add_column(_(col), justify="right")
    t.add_column("", no_wrap=True)
    rows = conversion_rows(report)
    for i, (by, group, members, enrolled, rate) in enumerate(rows):
        last = i + 1 == len(rows) or rows[i + 1][0] != by
        t.add_row(Text(group), str(members), str(enrolled), pct(rate), _bar(rate, 100), end_section=last)
    notes = [_("members: everyone who joined, those who left included; tiers as above")]
    if not report.conversion.by_completion:
        notes.append(no_completion_note())
    t.caption = "\n".join(notes)
    return t


def _survey(report: Report) -> RenderableType:
    f = report.survey
    if f is None:
        return Text(no_survey_note(report))
    t = Table(pad_edge=False)
    t.add_column(_("question"), overflow="fold", ratio=2)
    t.add_column(_("answer"), overflow="fold", ratio=1)
    t.add_column(_("count"), justify="right")
    t.add_column("%", justify="right")
    for head, label, n, share, last in survey_table(report):
        t.add_row(Text(head), Text(str(label)), str(n), str(share), end_section=last)
    t.caption = _("written answers are counted here; `cohortbot survey` shows them, with --xlsx whole")
    return Group(
        Text(_("Questionnaire {survey}").format(survey=f.survey_id), style="bold"),
        Text(survey_head(report)),
        t,
    )


def comparison(lines: Sequence[CohortLine]) -> list[RenderableType]:
    """Several cohorts side by side, a line each: `report --config` when the config runs
    several and no --cohort is named."""
    t = _table(N_("Cohorts side by side"))
    t.add_column(_("cohort"), overflow="fold", ratio=1)
    heads = (N_("day"), N_("in group"), N_("completion"), N_("enrolled"), N_("conversion"))
    for col in heads:
        t.add_column(_(col), justify="right")
    notes: list[RenderableType] = []
    for line in lines:
        r = line.report
        if r is None:
            t.add_row(Text(line.cohort), *("–" for _h in heads))
            notes.append(Text(f"{line.cohort}: {line.problem}"))
            continue
        o = r.conversion.overall
        t.add_row(
            Text(line.cohort),
            f"{r.last_day}/{r.days}",
            str(r.in_group_now),
            pct(r.completion()),
            f"{o.converted}/{o.members}",
            pct(r.conversion_rate()),
        )
    t.caption = _(
        "completion: check-ins over members in the group, closed days; conversion: enrolled over "
        "everyone who joined"
    )
    return [t, *notes, Text(_("one cohort's whole report: add --cohort ID"))]


def _lists(report: Report) -> list[tuple[str, tuple[Person, ...]]]:
    return [
        (N_("opted out (mute)"), report.muted),
        (N_("not reachable privately"), report.unreachable),
        (N_("left the group"), report.left),
    ]


# --- the same figures as sheets ----------------------------------------------------------------


def sheets(report: Report) -> tuple[Sheet, ...]:
    scores = {m.member_id: (m.messages, m.checkins) for m in report.members}
    return (
        _summary_sheet(report),
        Sheet(
            "report-funnel",
            N_("completion"),
            _cols(
                N_("day"),
                N_("track"),
                N_("checked in"),
                N_("make-ups"),
                N_("in the group that day"),
                N_("rate (%)"),
            ),
            [(r.day, r.track, r.done, r.makeups, r.in_group, r.rate) for r in report.funnel],
        ),
        Sheet(
            "report-hours",
            N_("by hour"),
            _cols(N_("hour"), N_("check-ins")),
            [(f"{h:02d}:00", n) for h, n in enumerate(report.hours)],
        ),
        Sheet(
            "report-reminders",
            N_("reminders"),
            (
                Column(N_("day")),
                Column(N_("first sent at"), time=True),
                *_cols(N_("kind"), N_("reminded"), N_("checked in within 2 h"), N_("rate (%)")),
                *_cols(N_("others"), N_("others checked in within 2 h"), N_("others' rate (%)")),
            ),
            [(r.day, r.at, _(KINDS[r.kind]), *r.figures()) for r in report.reminders],
        ),
        Sheet(
            "report-daily",
            N_("daily activity"),
            _cols(
                N_("day"),
                N_("in the group that day"),
                N_("active"),
                N_("active (%)"),
                N_("messages"),
                N_("messages per member"),
                N_("check-ins"),
                N_("active the next day"),
                N_("next-day retention (%)"),
            ),
            [(r.day, *r.figures()) for r in report.daily],
        ),
        Sheet(
            "report-tiers",
            N_("tiers"),
            _cols(N_("tier"), N_("member id"), N_("name"), N_("messages"), N_("check-ins")),
            [
                (_(TIERS[code]), p.member_id, p.name, *scores[p.member_id])
                for code, people in report.tiers
                for p in people
            ],
        ),
        Sheet(
            "report-rewards",
            N_("rewards"),
            _cols(N_("reward"), N_("member id"), N_("name")),
            [(r.reward, p.member_id, p.name) for r in report.rewards for p in r.people],
        ),
        Sheet(
            "report-streaks",
            N_("streaks"),
            _cols(N_("track"), N_("days"), N_("every day"), N_("longest"), N_("who has the longest")),
            [(s.track, s.days, s.full, s.longest, names(s.holders)) for s in report.streaks],
        ),
        Sheet(
            "report-people",
            N_("to look after"),
            _cols(N_("list"), N_("member id"), N_("name")),
            [(_(label), p.member_id, p.name) for label, people in _lists(report) for p in people],
        ),
        Sheet(
            "report-conversion",
            N_("conversion"),
            _cols(N_("grouped by"), N_("which members"), N_("members"), N_("enrolled"), N_("rate (%)")),
            list(conversion_rows(report)),
        ),
        *_survey_sheet(report),
        _member_sheet(report),
    )


def _survey_sheet(report: Report) -> tuple[Sheet, ...]:
    """`cohortbot survey`'s tallies sheet (each answer whole is that command's)."""
    if report.survey is None:
        return ()
    tallies = export_of(report.survey, report.cohort, report.zone).sheets[0]
    return (replace(tallies, key="report-survey"),)


def _cols(*headers: str) -> tuple[Column, ...]:
    return tuple(Column(h) for h in headers)


def _summary_sheet(report: Report) -> Sheet:
    rows: list[tuple[Cell, ...]] = [
        (_("cohort"), report.cohort),
        (_("playbook"), report.name),
        (_("group"), report.room),
        (_("first day"), f"{report.start}"),
        (_("last day"), f"{report.end}"),
        (_("days covered"), report.last_day),
        (_("as of"), f"{report.as_of:%Y-%m-%d %H:%M} ({report.zone})"),
        (_("members in the group now"), report.in_group_now),
        (_("left the group"), len(report.left)),
        (_("completion (%), closed days"), report.completion()),
        (_("active a day (%), on average"), report.active_average()),
        (_("rewards granted"), sum(len(r.people) for r in report.rewards)),
    ]
    for kind in KINDS:
        total = report.reminder_totals(kind)
        if total is not None:
            rows.append(
                (_("{kind}: checked in within 2 h (%)").format(kind=_(KINDS[kind])), total.reminded_rate)
            )
            rows.append((_("{kind}: others (%)").format(kind=_(KINDS[kind])), total.others_rate))
    rows += [(_(TIERS[code]), len(people)) for code, people in report.tiers]
    o = report.conversion.overall
    rows += [
        (_("enrolled (报名)"), o.converted),
        (_("conversion (%), everyone who joined"), percent(o.converted, o.members)),
    ]
    f = report.survey
    if f is not None:
        rows += [
            (_("questionnaire"), f.survey_id),
            (_("questionnaire: had it"), f.invited),
            (_("questionnaire: given the link in the group"), f.linked),
            (_("questionnaire: answered"), f.answered),
            (_("questionnaire: answered every question"), f.done),
        ]
    else:
        rows.append((_("questionnaire"), no_survey_note(report)))
    rows += [
        (_("active: at least this many messages"), report.thresholds.active_min_messages),
        (_("key members: this many"), report.thresholds.key_members),
    ]
    return Sheet("report-summary", N_("summary"), _cols(N_("what"), N_("value")), rows)


def _member_sheet(report: Report) -> Sheet:
    tracks = [t.name for t in report.tracks]
    columns = (
        *_cols(N_("member id"), N_("name"), N_("still in the group")),
        Column(N_("joined at"), time=True),
        Column(N_("left at"), time=True),
        *_cols(N_("tier"), N_("messages"), N_("check-ins")),
        *(Column(_("{track}, day {day}").format(track=t, day=d)) for t, d in report.grid),
        *(Column(_("{track}: streak now").format(track=t)) for t in tracks),
        *(Column(_("{track}: longest streak").format(track=t)) for t in tracks),
        *_cols(N_("rewards"), N_("muted (no @, no nudges)"), N_("reachable privately"), N_("enrolled")),
    )
    rows: list[tuple[Cell, ...]] = [
        (
            m.member_id,
            m.name,
            yes_no(m.present),
            m.joined,
            m.left,
            _(TIERS[m.tier]) if m.tier else "",
            m.messages,
            m.checkins,
            *(_(STATUS[s]) if s else "" for s in m.statuses),
            *(now for now, _longest in m.streaks),
            *(longest for _now, longest in m.streaks),
            _(", ").join(m.rewards),
            yes_no(m.muted),
            yes_no(m.reachable),
            yes_no(m.enrolled),
        )
        for m in report.members
    ]
    return Sheet("report-members", N_("members"), columns, rows)


def as_export(report: Report) -> Export:
    return Export(report.cohort, report.zone, tuple(_cleaned(s) for s in sheets(report)))


def _cleaned(sheet: Sheet) -> Sheet:
    return Sheet(sheet.key, sheet.title, sheet.columns, exports.clean(sheet.rows))


def write_xlsx(report: Report, path: Path) -> Path:
    """One workbook, a sheet per section."""
    return write_file(path, partial(exports.write_xlsx, as_export(report)))


def write_csv(report: Report, folder: Path) -> list[Path]:
    """A CSV file per section in ``folder``: ID-report-funnel.csv, ..."""
    exports.check_folder(folder, f"--csv {folder}")
    return exports.write(as_export(report), folder, "csv")
