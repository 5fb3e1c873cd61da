"""The console's Starlette app: pages rendered on the server (Jinja2), htmx for the buttons,
server-sent events to refresh a cohort's page when something happens.

Every route but the login page and the static files needs a session; every POST needs the
session's CSRF token (a form field, or the X-CSRF-Token header htmx sends). Actions go through
the operator commands (bot/operator_commands.py) as "web:NAME", so they are the same actions,
in the same audit log, as an operator's message in WeChat."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import datetime
from importlib import resources
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape
from sqlalchemy import Engine as Database
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from bot import commands, i18n
from bot.clock import Clock
from bot.cohort import CohortRun
from bot.incidents import Incidents, Showing
from bot.link import Link
from bot.web import auth, editor, pages, views
from storage import repo

log = logging.getLogger(__name__)

SESSION_HOURS = 12
ACTIONS = {  # the form's action -> the operator command and its words after the cohort
    "pause": ("pause", ()),
    "resume": ("resume", ()),
    "send": ("resume", ("send",)),
    "skip": ("resume", ("skip",)),
    "remind": ("remind", ()),
}
STATES = (views.NOT_YET, views.DONE, views.LEAVE, views.MUTED, views.UNREACHABLE)


@dataclass
class Hooks:
    """What the console reaches of the running bot."""

    runs: Callable[[], list[CohortRun]]  # the cohorts running now (a live edit swaps them)
    desk: commands.Desk  # what the operator commands reach
    after_action: Callable[[], None]  # a command queued something: wake the sender
    link: Callable[[], Link]  # the connection to WeChat, as the transport's events tell it
    # The incidents the operators were alerted to and that are not over (bot/incidents.py).
    incidents: Callable[[], list[Showing]] = lambda: []
    reload: Callable[[], Awaitable[Any]] | None = None  # the live edit (bot/reload.py Reloader.reload)


@dataclass(frozen=True)
class WebSettings:
    language: str = "zh"  # until the operator picks one
    poll_seconds: float = 1.0  # how often a live page's cohort is looked at (loop seconds)
    overview_seconds: float = 15.0  # how often an open overview refreshes itself (browser seconds)
    https_only: bool = False  # cookies only over HTTPS: behind a TLS proxy
    # argon2 takes a moment of CPU on purpose: verified in a thread, not in the loop the bot
    # sends from. (The tests' virtual clock would run on while a thread works: they say False.)
    verify_in_thread: bool = True


def hooks_of(engine: Any, incidents: Incidents | None = None) -> Hooks:
    """The hooks of a running bot.engine.Engine (and its alerts: bot.app.Bot.alerting)."""

    def after() -> None:
        for run in engine.runs.values():
            engine.rollcalls.request(run)  # a resume lets held roll calls go
        engine.outbox.wake()

    return Hooks(
        runs=lambda: list(engine.runs.values()),
        desk=engine.router.desk,
        after_action=after,
        link=lambda: engine.link,
        incidents=incidents.showing if incidents is not None else lambda: [],
    )


_language: contextvars.ContextVar[str] = contextvars.ContextVar("web_language", default="en")


def _(message: str) -> str:
    return i18n.translation(_language.get()).gettext(message)


def _ngettext(singular: str, plural: str, n: int) -> str:
    return i18n.translation(_language.get()).ngettext(singular, plural, n)


def _templates() -> Jinja2Templates:
    folder = str(resources.files("bot.web") / "templates")
    env = Environment(
        loader=FileSystemLoader(folder),
        autoescape=select_autoescape(default=True, default_for_string=True),
        extensions=["jinja2.ext.i18n"],
    )
    env.install_gettext_callables(gettext=_, ngettext=_ngettext, newstyle=False)  # type: ignore[attr-defined]
    return Jinja2Templates(env=env)


def create_app(db: Database, hooks: Hooks, settings: WebSettings, clock: Clock) -> Starlette:
    with db.begin() as conn:
        secret = repo.web_secret(conn, auth.new_token())
    templates = _templates()
    attempts = auth.Attempts(clock)
    stopping = asyncio.Event()

    def language(request: Request) -> str:
        return str(request.session.get("lang") or settings.language)

    def csrf(request: Request) -> str:
        token = request.session.get("csrf")
        if not token:
            token = request.session["csrf"] = auth.new_token()
        return str(token)

    def page(request: Request, template: str, status: int = 200, **context: Any) -> Response:
        _language.set(language(request))
        context.update(lang=language(request), csrf=csrf(request), now=clock.now(), states=STATES)
        return templates.TemplateResponse(request, template, context, status_code=status)

    def login_of(request: Request) -> repo.WebLoginRow | None:
        name = request.session.get("op")
        if not name:
            return None
        with db.connect() as conn:
            found = repo.web_login(conn, str(name))
        # A changed password (`operator add` again) ends the sessions opened with the old one.
        if found is None or request.session.get("v") != found.password_hash[-16:]:
            return None
        return found

    def visible(login: repo.WebLoginRow) -> list[CohortRun]:
        return [r for r in hooks.runs() if not login.cohorts or r.id in login.cohorts]

    def refused(request: Request) -> Response:
        page_asked = request.method == "GET" and not request.url.path.endswith(("/events", "/live"))
        if request.headers.get("HX-Request") or not page_asked:
            return PlainTextResponse(_("Log in first."), status_code=401)
        return RedirectResponse("/login", status_code=303)

    async def checked(request: Request) -> bool:
        """The POST's CSRF token is the session's."""
        given = request.headers.get("X-CSRF-Token")
        if given is None:
            given = str((await request.form()).get("csrf") or "")
        return auth.same_token(request.session.get("csrf"), given)

    def forbidden() -> Response:
        return PlainTextResponse(
            _("This form is stale or was not sent from the console; reload the page and try again."),
            status_code=403,
        )

    # --- logging in -----------------------------------------------------------------------

    async def login_page(request: Request) -> Response:
        if request.method == "GET":
            return page(request, "login.html")
        if not await checked(request):
            return forbidden()
        form = await request.form()
        name, password = str(form.get("name") or "").strip(), str(form.get("password") or "")
        address = request.client.host if request.client else "?"
        if not attempts.allow(f"ip:{address}", f"name:{name}"):
            log.warning("web: too many login attempts from %s for %r", address, name)
            return page(request, "login.html", 429, error="limit", name=name)
        with db.connect() as conn:
            found = repo.web_login(conn, name) if name else None
        known = found.password_hash if found else None
        if settings.verify_in_thread:
            ok = await asyncio.to_thread(auth.verify, known, password)
        else:
            ok = auth.verify(known, password)
        if found is None or not ok:
            log.info("web: failed login for %r from %s", name, address)
            return page(request, "login.html", 401, error="wrong", name=name)
        lang = request.session.get("lang")
        request.session.clear()  # a new session: nothing chosen before logging in carries over
        request.session.update(op=found.name, v=found.password_hash[-16:], csrf=auth.new_token())
        if lang:
            request.session["lang"] = lang
        log.info("web: %s logged in from %s", found.name, address)
        return RedirectResponse("/", status_code=303)

    async def logout(request: Request) -> Response:
        if not await checked(request):
            return forbidden()
        request.session.clear()
        return RedirectResponse("/login", status_code=303)

    async def choose_language(request: Request) -> Response:
        code = request.path_params["code"]
        if code in i18n.LANGUAGES:
            request.session["lang"] = code
        back = request.query_params.get("next", "/")
        if not back.startswith("/") or back.startswith("//"):
            back = "/"  # never a redirect to another site
        return RedirectResponse(back, status_code=303)

    # --- pages ------------------------------------------------------------------------------

    async def overview(request: Request) -> Response:
        login = login_of(request)
        if login is None:
            return refused(request)
        now = clock.now()
        runs = visible(login)
        with db.connect() as conn:
            rows = [(r, views.overview(conn, r, now)) for r in runs]
        zone = runs[0].cal if runs else None  # times in the first cohort's time zone

        def local(at: datetime | None) -> str:
            if at is None:
                return "?"
            return f"{zone.local(at) if zone else at:%m-%d %H:%M}"

        link, incidents = hooks.link(), hooks.incidents()
        return page(
            request,
            "overview.html",
            login=login,
            rows=rows,
            link=link,
            incidents=incidents,
            local=local,
            refresh=settings.overview_seconds,
        )

    def cohort_of(request: Request, login: repo.WebLoginRow) -> CohortRun | None:
        wanted = request.path_params["cohort"]
        return next((r for r in visible(login) if r.id == wanted), None)

    def live_context(run: CohortRun) -> dict[str, Any]:
        now = clock.now()
        day = run.day(now)
        with db.connect() as conn:
            return dict(
                run=run,
                day=day,
                summary=views.overview(conn, run, now),
                tracks=views.todays_tracks(run, day),
                roster=views.roster(conn, run, day),
                timeline=views.timeline(conn, run, day, now),
                queue=repo.send_queue(conn, run.id),
                held=repo.held_items(conn, run.id),
                audit=repo.actions(conn, run.id, 30),
            )

    def login_and_cohort(request: Request) -> tuple[repo.WebLoginRow, CohortRun] | Response:
        """The operator and the cohort the path names; else the refusal (a cohort she may
        not see is "not here", the same as one that does not exist)."""
        login = login_of(request)
        if login is None:
            return refused(request)
        run = cohort_of(request, login)
        if run is None:
            return PlainTextResponse(_("No such cohort here."), status_code=404)
        return login, run

    async def cohort(request: Request) -> Response:
        found = login_and_cohort(request)
        if isinstance(found, Response):
            return found
        return page(request, "cohort.html", login=found[0], **live_context(found[1]))

    async def live(request: Request) -> Response:
        found = login_and_cohort(request)
        if isinstance(found, Response):
            return found
        return page(request, "_live.html", login=found[0], **live_context(found[1]))

    async def events(request: Request) -> Response:
        found = login_and_cohort(request)
        if isinstance(found, Response):
            return found
        run = found[1]

        async def changes() -> AsyncIterator[str]:
            last = None
            yield "retry: 2000\n\n"
            while not stopping.is_set():
                with db.connect() as conn:
                    stamp = repo.change_stamp(conn, run.id)
                if last is not None and stamp != last:
                    yield "event: change\ndata: 1\n\n"
                last = stamp
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stopping.wait(), settings.poll_seconds)

        headers = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}  # nginx: do not buffer it
        return StreamingResponse(changes(), media_type="text/event-stream", headers=headers)

    async def act(request: Request) -> Response:
        login = login_of(request)
        if login is None:
            return refused(request)
        if not await checked(request):
            return forbidden()
        run = cohort_of(request, login)
        form = await request.form()
        action = ACTIONS.get(str(form.get("action") or ""))
        if run is None or action is None:
            return PlainTextResponse(_("No such cohort or action here."), status_code=404)
        name, words = action
        track = str(form.get("track") or "")
        args = (run.id, *words, *([track] if name == "remind" and track in run.playbook.tracks else []))
        with db.begin() as conn:
            desk = replace(hooks.desk, language=language(request))  # the answer in the page's language
            asked = commands.Asked(conn, run, f"web:{login.name}", login.name, clock.now(), args, desk)
            reply = commands.answer(name, asked)
        hooks.after_action()
        log.info("web: %s: %s %s", login.name, name, " ".join(args))
        if not request.headers.get("HX-Request"):
            return RedirectResponse(f"/cohort/{run.id}", status_code=303)
        return page(request, "_live.html", login=login, reply=reply, **live_context(run))

    app = Starlette(
        routes=[
            Route("/", overview),
            Route("/login", login_page, methods=["GET", "POST"]),
            Route("/logout", logout, methods=["POST"]),
            Route("/lang/{code}", choose_language),
            Route("/cohort/{cohort}", cohort),
            Route("/cohort/{cohort}/live", live),
            Route("/cohort/{cohort}/events", events),
            Route("/cohort/{cohort}/act", act, methods=["POST"]),
            *pages.routes(
                pages.Console(db, clock, hooks, page, login_and_cohort, language, checked, forbidden)
            ),
            *editor.routes(hooks.reload, page, login_and_cohort, forbidden, language),
            Mount("/static", StaticFiles(packages=[("bot.web", "static")]), name="static"),
        ],
        middleware=[
            Middleware(
                SessionMiddleware,
                secret_key=secret,
                session_cookie="cohortbot_session",
                max_age=SESSION_HOURS * 3600,
                same_site="lax",
                https_only=settings.https_only,
            ),
            Middleware(_SecurityHeaders),
        ],
    )
    app.state.stop_streams = stopping  # set by serve.py before uvicorn waits for connections
    return app


class _SecurityHeaders:
    """No framing, no sniffing, scripts and styles from the console only."""

    HEADERS = (
        (
            b"content-security-policy",
            b"default-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
        ),
        (b"x-content-type-options", b"nosniff"),
        (b"referrer-policy", b"same-origin"),
        (b"x-frame-options", b"DENY"),
    )

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Any) -> None:
            if message["type"] == "http.response.start":
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], *self.HEADERS]
            await send(message)

        await self.app(scope, receive, with_headers)
