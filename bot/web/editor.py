"""The playbook editor: a cohort's playbook file in CodeMirror (served from the package),
checked on the server with the same code as `cohortbot validate`, saved over the running
version only when it is valid and nobody else saved meanwhile, then made live through the
live-edit path (bot/reload.py's Reloader) and told as the items it moves, adds and removes.

The file is always the one the cohort's config names (``run.playbook.path``), never a path
from the request. A save is written to a temporary file beside it and renamed over it, so the
bot's watcher never reads half of it."""

from __future__ import annotations

import contextlib
import difflib
import hashlib
import logging
import os
import tempfile
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from bot import i18n
from bot import playbook as playbooks
from bot import reload as reloads
from bot.cohort import CohortRun
from bot.plan import calendar
from bot.playbook import Playbook
from bot.web import auth
from bot.yamlfile import MAX_BYTES, InputError, Problem, parse_yaml

log = logging.getLogger(__name__)

# A form posts the text URL-encoded: a Chinese character is 9 bytes on the wire.
BODY_LIMIT = 3 * MAX_BYTES

Page = Callable[..., Response]
Found = Callable[[Request], "tuple[Any, CohortRun] | Response"]


@dataclass
class Checked:
    """The posted text, checked like `cohortbot validate` checks a playbook."""

    problems: list[Problem]
    warnings: list[Problem]
    playbook: Playbook | None


def version_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:16]


def check(text: str, path: str, language: str) -> Checked:
    with i18n.speaking(language):
        try:
            pb = playbooks.parse(parse_yaml(text, path))
        except InputError as exc:
            return Checked(exc.problems, exc.warnings, None)
        return Checked([], list(pb.warnings), pb)


def what_changes(run: CohortRun, pb: Playbook, language: str) -> str:
    """The edit against the running version, as a live edit would tell it ("" for nothing)."""
    fresh = _planned(run, pb)
    change = reloads.diff(run, fresh)
    if not change:
        return ""
    return reloads.describe(change, fresh, i18n.translation(language))


def text_diff(saved: str, yours: str, saved_name: str, yours_name: str) -> list[str]:
    return list(
        difflib.unified_diff(saved.splitlines(), yours.splitlines(), saved_name, yours_name, lineterm="", n=2)
    )


def write_atomically(path: Path, data: bytes) -> None:
    """Written beside it and renamed over it: a reader sees the old file or the new one."""
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        with contextlib.suppress(OSError):
            os.chmod(temp, path.stat().st_mode & 0o777)
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise


def routes(
    reload: Callable[[], Awaitable[Any]] | None,
    page: Page,
    login_and_cohort: Found,
    forbidden: Callable[[], Response],
    language: Callable[[Request], str],
) -> list[Route]:
    """The editor's pages; ``reload`` is the running bot's live edit (None: the watcher's)."""
    from bot.web.app import _

    def too_big() -> Response:
        limit = MAX_BYTES // 1_000_000
        return PlainTextResponse(
            _("This playbook is too big to save here (over {limit} MB); a real one is a few KB.").format(
                limit=limit
            ),
            status_code=413,
        )

    async def form_of(request: Request) -> dict[str, str] | Response:
        """The posted form, read no further than BODY_LIMIT; its CSRF token checked."""
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > BODY_LIMIT:
            return too_big()
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > BODY_LIMIT:
                return too_big()
        fields = {
            k: v[0] for k, v in parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True).items()
        }
        given = request.headers.get("X-CSRF-Token") or fields.get("csrf", "")
        if not auth.same_token(request.session.get("csrf"), given):
            return forbidden()
        # A form posts a textarea's lines ending in CRLF: the file keeps the YAML's LF.
        fields["text"] = fields.get("text", "").replace("\r\n", "\n")
        if len(fields["text"].encode("utf-8")) > MAX_BYTES:
            return too_big()
        return fields

    def shown(request: Request, run: CohortRun, login: Any, status: int = 200, **result: Any) -> Response:
        template = "_editor_result.html" if request.headers.get("HX-Request") else "editor.html"
        return page(request, template, status, login=login, run=run, **result)

    def current(run: CohortRun) -> tuple[Path, bytes] | Response:
        path = Path(run.playbook.path)
        try:
            return path, path.read_bytes()
        except FileNotFoundError:
            return path, b""  # deleted under the running bot: the editor can write it again
        except OSError as exc:
            return cannot(path, exc)

    def cannot(path: Path, exc: OSError) -> Response:
        log.error("web: cannot read or write %s: %s", path, exc)
        said = _("Cannot read or write {file} ({reason}); ask whoever runs the bot to check the file.")
        return PlainTextResponse(said.format(file=path.name, reason=exc.strerror or exc), status_code=500)

    async def editor(request: Request) -> Response:
        found = login_and_cohort(request)
        if isinstance(found, Response):
            return found
        login, run = found
        read = current(run)
        if isinstance(read, Response):
            return read
        path, data = read
        text = data.decode("utf-8", "replace")
        return page(
            request, "editor.html", login=login, run=run, file=path.name, text=text, version=version_of(data)
        )

    async def posted(request: Request) -> tuple[Any, CohortRun, dict[str, str], Checked, str] | Response:
        found = login_and_cohort(request)
        if isinstance(found, Response):
            return found
        form = await form_of(request)
        if isinstance(form, Response):
            return form
        login, run = found
        lang = language(request)
        checked = check(form.get("text", ""), Path(run.playbook.path).name, lang)
        return login, run, form, checked, lang

    def result_of(run: CohortRun, checked: Checked, lang: str) -> dict[str, Any]:
        marks = [("error", p) for p in checked.problems] + [("warning", w) for w in checked.warnings]
        marks.sort(key=lambda m: m[1].line)
        change = what_changes(run, checked.playbook, lang) if checked.playbook else None
        return dict(marks=marks, valid=checked.playbook is not None, change=change)

    async def check_page(request: Request) -> Response:
        got = await posted(request)
        if isinstance(got, Response):
            return got
        login, run, form, checked, lang = got
        path = Path(run.playbook.path)
        result = result_of(run, checked, lang)
        return shown(
            request,
            run,
            login,
            file=path.name,
            text=form.get("text", ""),
            version=form.get("version", ""),
            checked=True,
            **result,
        )

    async def save(request: Request) -> Response:
        got = await posted(request)
        if isinstance(got, Response):
            return got
        login, run, form, checked, lang = got
        text = form.get("text", "")
        read = current(run)
        if isinstance(read, Response):
            return read
        path, data = read
        result = result_of(run, checked, lang)
        context = dict(file=path.name, text=text, **result)
        if checked.playbook is None:
            return shown(
                request, run, login, 422, version=form.get("version", ""), refused="errors", **context
            )
        now = version_of(data)
        if form.get("version") != now:
            saved = data.decode("utf-8", "replace")
            lines = text_diff(saved, text, _("saved meanwhile"), _("yours"))
            log.info(
                "web: %s: %s's save of %s refused: saved by someone else meanwhile", run.id, login.name, path
            )
            return shown(request, run, login, 409, version=now, refused="conflict", lines=lines, **context)
        new = text.encode("utf-8")
        try:
            write_atomically(path, new)
        except OSError as exc:
            return cannot(path, exc)
        log.info("web: %s: %s saved %s (%s)", run.id, login.name, path, result["change"] or "nothing changed")
        live = True
        if reload is not None:
            await reload()
            live = not reloads.diff(run, _planned(run, checked.playbook))
            if not live:  # the config around it refused it: the running version stays on disk too
                write_atomically(path, data)
                log.warning("web: %s: the bot did not take %s; the old version is back", run.id, path)
                return shown(request, run, login, 422, version=now, refused="not_live", **context)
        return shown(
            request, run, login, version=version_of(new), saved=True, live=reload is not None, **context
        )

    return [
        Route("/cohort/{cohort}/playbook", editor),
        Route("/cohort/{cohort}/playbook/check", check_page, methods=["POST"]),
        Route("/cohort/{cohort}/playbook/save", save, methods=["POST"]),
    ]


def _planned(run: CohortRun, pb: Playbook) -> CohortRun:
    return CohortRun.create(run.id, pb, calendar(pb, run.cal.start, run.cal.zone.key), run.room)
