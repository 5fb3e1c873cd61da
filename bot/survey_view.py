"""`cohortbot survey`: a cohort's questionnaire in the terminal, and in files for Excel
through bot/export.py's writers (the figures are bot/survey.py's)."""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from pathlib import Path
from zoneinfo import ZoneInfo

from rich import box
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from bot import export as exports
from bot.i18n import _
from bot.survey import Found, QuestionFigures, export_of
from storage.repo import SurveyRow

SHOWN_CHARS = 60  # of a written answer in the terminal; the files hold it whole
BAR = 20  # characters of a 100 % bar


def show(out: Console, found: Found) -> None:
    f = found.figures
    out.print(
        _(
            "[bold]{survey}[/] · {cohort}: {invited} had it ({asked} asked privately, {linked} given the "
            "link in the group); {answered} answered, {done} answered every question"
        ).format(
            survey=escape(f.survey_id),
            cohort=escape(found.cohort_id),
            invited=f.invited,
            asked=f.asked,
            linked=f.linked,
            answered=f.answered,
            done=f.done,
        )
    )
    for q in f.questions:
        title = (
            _("{number}. {text} ({n} answers)").format(number=q.number, text=q.text, n=q.answered)
            if q.text
            else _("question {number} ({n} answers)").format(number=q.number, n=q.answered)
        )
        out.print(f"\n[bold]{escape(title)}[/]")
        if q.choices:
            out.print(_tally(q))
        written = q.others if q.choices else q.answers
        if written:
            out.print(_written(written, ZoneInfo(found.zone)))


def _tally(q: QuestionFigures) -> Table:
    table = Table(box=box.SIMPLE_HEAD, padding=(0, 1))
    table.add_column(_("choice"))
    table.add_column(_("count"), justify="right")
    table.add_column("%", justify="right")
    table.add_column("")
    rows = [(q.label(i), n) for i, n in enumerate(q.counts(), 1)]
    if q.others:
        rows.append((_("(none of the choices)"), len(q.others)))
    for label, n in rows:
        share = q.share(n)
        table.add_row(escape(label), str(n), str(share), "█" * round(BAR * share / 100))
    return table


def _written(answers: Sequence[SurveyRow], zone: ZoneInfo) -> Table:
    """Written answers, one line each (the files hold them whole)."""
    table = Table(box=box.SIMPLE_HEAD, padding=(0, 1))
    table.add_column(_("name"), no_wrap=True)
    table.add_column(_("answered at ({zone})").format(zone=zone.key), no_wrap=True)
    table.add_column(_("answer"))
    for a in answers:
        one_line = " ".join(a.text.split())
        shown = one_line if len(one_line) <= SHOWN_CHARS else one_line[: SHOWN_CHARS - 1] + "…"
        table.add_row(escape(a.name), f"{a.at.astimezone(zone):%m-%d %H:%M}", escape(shown))
    return table


def write_files(found: Found, xlsx: Path | None, csv_dir: Path | None) -> list[Path]:
    """The tallies and answers as an xlsx workbook and/or CSV files (bot/export.py's writers:
    each file complete or absent)."""
    export = export_of(found.figures, found.cohort_id, found.zone)
    files: list[Path] = []
    if xlsx is not None:
        if xlsx.is_dir():
            raise exports.ExportError(
                _("--xlsx {file} is a folder; name a file, e.g. survey.xlsx").format(file=xlsx)
            )
        files.append(exports.write_file(xlsx, partial(exports.write_xlsx, export)))
    if csv_dir is not None:
        exports.check_folder(csv_dir, f"--csv {csv_dir}")
        files += exports.write(export, csv_dir, "csv")
    return files
