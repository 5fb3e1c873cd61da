"""The console's report and member pages: `cohortbot report`'s own numbers (bot/report.py
`compute`) shown in the page, its files (xlsx, CSV in a zip, PNG) made on request, and one
member's days, check-ins, rewards and the messages the bot sent them.

The routes come from :func:`routes`, given what app.py's pages use (the page renderer and the
login-and-cohort check), so the same sessions and the same cohort limits apply."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import tempfile
import zipfile
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import quote

from sqlalchemy import Connection, or_, select, update
from sqlalchemy import Engine as Database
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route

from bot import commands, i18n
from bot.clock import Clock
from bot.cohort import CohortRun
from bot.i18n import N_
from bot.report import DONE, MAKEUP, MISSED, ON_LEAVE, MemberRow, Report, compute
from storage import repo

log = logging.getLogger(__name__)

Page = Callable[..., Response]
Checked = Callable[[Request], Any]  # -> (login, run) | Response
Language = Callable[[Request], str]

NOT_HERE = N_("Nothing like that here.")
CHARTS = ("funnel", "activity", "tiers", "hours", "reminders", "conversion")  # the HTML report's
STATE_CLASS = {DONE: "done", MAKEUP: "makeup", ON_LEAVE: "leave", MISSED: "missed", "": "none"}


@cache
def _echarts() -> bytes:
    from bot.report_charts import echarts_js

    return echarts_js().encode("utf-8")


def report_of(db: Database, run: CohortRun, now: datetime) -> Report:
    with db.connect() as conn:
        return compute(conn, run.id, now, run.playbook)


@dataclass(frozen=True)
class Sent:
    id: int
    at: datetime  # local
    kind: str
    private: bool
    status: str
    text: str


def checkins_of(conn: Connection, cohort_id: str, member_id: str) -> list[tuple[str, int, datetime, bool]]:
    """(track, day, at, a make-up) of one member's check-ins, oldest first."""
    t = repo.checkin_t
    q = (
        select(t.c.track, t.c.day, t.c.at, t.c.makeup_by.is_not(None))
        .where(t.c.cohort_id == cohort_id, t.c.member_id == member_id)
        .order_by(t.c.at, t.c.id)
    )
    return [(r[0], r[1], repo.utc(r[2]), bool(r[3])) for r in conn.execute(q)]


def sent_to(conn: Connection, run: CohortRun, member_id: str, most: int = 200) -> list[Sent]:
    """The bot's messages to one member: private ones, and group ones that @-mention them;
    newest first."""
    t = repo.out_t
    q = (
        select(t.c.id, t.c.created_at, t.c.sent_at, t.c.kind, t.c.member_id, t.c.status, t.c.text)
        .where(
            t.c.cohort_id == run.id,
            or_(t.c.member_id == member_id, t.c.mentions.contains(json.dumps(member_id), autoescape=True)),
        )
        .order_by(t.c.id.desc())
        .limit(most)
    )
    return [
        Sent(row_id, run.cal.local(repo.utc(sent or made)), kind, who is not None, status, text)
        for row_id, made, sent, kind, who, status, text in conn.execute(q)
    ]


def resend_failed(conn: Connection, cohort_id: str, row_id: int, now: datetime) -> str | None:
    """Put a failed message of this cohort back in the queue (due now, attempts anew); its
    kind, or None if there is no such failed message."""
    t = repo.out_t
    kind = conn.execute(
        select(t.c.kind).where(t.c.id == row_id, t.c.cohort_id == cohort_id, t.c.status == "failed")
    ).scalar()
    if kind is None:
        return None
    again = update(t).where(t.c.id == row_id, t.c.status == "failed")
    conn.execute(again.values(status="pending", not_before=now, attempts=0))
    return str(kind)


def member_days(report: Report, row: MemberRow) -> list[tuple[str, list[tuple[int, str]]]]:
    """Per track: (day, state) from the report's member sheet."""
    tracks: dict[str, list[tuple[int, str]]] = {}
    for (track, day), state in zip(report.grid, row.statuses, strict=True):
        tracks.setdefault(track, []).append((day, state))
    return list(tracks.items())


def _made(report: Report, kind: str) -> bytes:
    """The workbook, the CSV files in a zip, or the picture, as bytes."""
    from bot.report_charts import find_font, picture
    from bot.report_views import write_csv, write_xlsx

    if kind == "png":
        buffer = io.BytesIO()
        picture(report, find_font()).savefig(buffer, format="png", dpi=150, facecolor="white")
        return buffer.getvalue()
    with tempfile.TemporaryDirectory() as folder:
        base = Path(folder)
        if kind == "xlsx":
            return write_xlsx(report, base / "report.xlsx").read_bytes()
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as z:
            for path in write_csv(report, base / "csv"):
                z.write(path, path.name)
        return buffer.getvalue()


@dataclass(frozen=True)
class Console:
    """What these pages use of app.py's create_app: its renderer and its checks."""

    db: Database
    clock: Clock
    hooks: Any  # app.Hooks
    page: Page
    login_and_cohort: Checked  # -> (login, run) | the refusal
    language: Language
    checked: Callable[[Request], Awaitable[bool]]  # the POST's CSRF token is the session's
    forbidden: Callable[[], Response]


def routes(console: Console) -> list[Route]:
    db, clock, hooks, page = console.db, console.clock, console.hooks, console.page
    login_and_cohort, language = console.login_and_cohort, console.language
    checked, forbidden = console.checked, console.forbidden

    async def report(request: Request) -> Response:
        found = login_and_cohort(request)
        if isinstance(found, Response):
            return found
        login, run = found
        from bot.report_charts import charts
        from bot.report_views import as_of, enrolled_line, headline, title

        with i18n.speaking(language(request)):
            rep = report_of(db, run, clock.now())
            words = dict(
                title=title(rep), as_of=as_of(rep), headline=headline(rep), enrolled=enrolled_line(rep)
            )
            options = charts(rep)
        shown = json.dumps(options, ensure_ascii=False).replace("<", "\\u003c")
        return page(
            request, "report.html", login=login, run=run, report=rep, options=shown, charts=CHARTS, **words
        )

    async def download(request: Request) -> Response:
        found = login_and_cohort(request)
        if isinstance(found, Response):
            return found
        run = found[1]
        kind = request.path_params["kind"]
        if kind not in ("xlsx", "zip", "png"):
            return PlainTextResponse(_not_here(request, language), status_code=404)
        with i18n.speaking(language(request)):
            rep = report_of(db, run, clock.now())
            # Made in a thread (500 members: the workbook 0.45 s, the picture 0.8 s, measured),
            # which takes this request's language with it (a copy of its context).
            content = await asyncio.to_thread(_made, rep, kind)
        media, name = {
            "xlsx": ("application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", "report.xlsx"),
            "zip": ("application/zip", "report-csv.zip"),
            "png": ("image/png", "report.png"),
        }[kind]
        name = f"{run.id}-{name}"
        headers = {"Content-Disposition": f'attachment; filename="{name}"', "Cache-Control": "no-store"}
        return Response(content, media_type=media, headers=headers)

    def member_page(
        request: Request, login: Any, run: CohortRun, member_id: str, reply: str = ""
    ) -> Response:
        with i18n.speaking(language(request)):
            rep = report_of(db, run, clock.now())
        row = next((m for m in rep.members if m.member_id == member_id), None)
        if row is None:
            return PlainTextResponse(_not_here(request, language), status_code=404)
        with db.connect() as conn:
            checkins = checkins_of(conn, run.id, member_id)
            messages = sent_to(conn, run, member_id)
        names = {tid: t.name for tid, t in run.playbook.tracks.items()}
        shown = [(names.get(tr, tr), day, run.cal.local(at), makeup) for tr, day, at, makeup in checkins]
        return page(
            request,
            "member.html",
            login=login,
            run=run,
            member=row,
            days=member_days(rep, row),
            track_ids={t.name: tid for tid, t in run.playbook.tracks.items()},
            checkins=shown,
            messages=messages,
            state_class=STATE_CLASS,
            reply=reply,
        )

    async def member(request: Request) -> Response:
        found = login_and_cohort(request)
        if isinstance(found, Response):
            return found
        login, run = found
        return member_page(request, login, run, request.path_params["member"])

    async def posted(request: Request) -> tuple[Any, CohortRun, Any] | Response:
        """An action's operator, cohort and form; else the refusal (no session, not her
        cohort, not the session's CSRF token)."""
        found = login_and_cohort(request)
        if isinstance(found, Response):
            return found
        if not await checked(request):
            return forbidden()
        return found[0], found[1], await request.form()

    async def mark(request: Request) -> Response:
        """A make-up check-in, counted by the operator command 补卡 itself (its checks, its
        rewards, its audit line), as web:NAME."""
        found = await posted(request)
        if isinstance(found, Response):
            return found
        login, run, form = found
        member_id = request.path_params["member"]
        track, day = str(form.get("track") or ""), str(form.get("day") or "")
        if track not in run.playbook.tracks or not day.isdecimal():
            return PlainTextResponse(_not_here(request, language), status_code=404)
        with db.begin() as conn:
            if repo.member(conn, run.id, member_id) is None:
                return PlainTextResponse(_not_here(request, language), status_code=404)
            desk = replace(hooks.desk, language=language(request))
            args = (run.id, member_id, track, day)
            asked = commands.Asked(conn, run, f"web:{login.name}", login.name, clock.now(), args, desk)
            reply = commands.answer("mark", asked)
        hooks.after_action()
        log.info("web: %s: mark %s", login.name, " ".join(args))
        return member_page(request, login, run, member_id, reply)

    async def resend(request: Request) -> Response:
        """A failed message back in the queue, with its attempts anew; the audit log says who."""
        found = await posted(request)
        if isinstance(found, Response):
            return found
        login, run, form = found
        row_id = str(form.get("id") or "")
        with db.begin() as conn:
            # A row id: decimal digits ("²" is a digit int() refuses), few enough for an SQL integer.
            number = row_id.isascii() and row_id.isdecimal() and len(row_id) <= 18
            again = resend_failed(conn, run.id, int(row_id), clock.now()) if number else None
            if again is not None:
                repo.audit(conn, run.id, f"web:{login.name}", "resend", f"{row_id} {again}", clock.now())
        if again is None:
            return PlainTextResponse(_not_here(request, language), status_code=404)
        hooks.after_action()
        log.info("web: %s: resend %s", login.name, row_id)
        member = str(form.get("member") or "")
        back = f"/cohort/{quote(run.id)}" + (f"/member/{quote(member)}" if member else "")
        return RedirectResponse(back, status_code=303)

    async def echarts(request: Request) -> Response:
        return Response(_echarts(), media_type="text/javascript", headers={"Cache-Control": "max-age=86400"})

    return [
        Route("/cohort/{cohort}/report", report),
        Route("/cohort/{cohort}/report.{kind}", download),
        Route("/cohort/{cohort}/member/{member}", member),
        Route("/cohort/{cohort}/member/{member}/mark", mark, methods=["POST"]),
        Route("/cohort/{cohort}/resend", resend, methods=["POST"]),
        Route("/report-assets/echarts.min.js", echarts),
    ]


def _not_here(request: Request, language: Language) -> str:
    return i18n.translation(language(request)).gettext(NOT_HERE)
