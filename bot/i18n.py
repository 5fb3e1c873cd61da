"""The operator's language: English or Chinese, from gettext catalogs in ``bot/locale``.

English is the msgid language, so English needs no catalog. The operator's language (the
CLI's output and help, validation messages, the log lines and alerts an operator reads) is
chosen once per process with :func:`use`; :func:`_` and :func:`ngettext` translate into it
(or, within :func:`speaking`, into one task's language: the console's pages).
Texts for members follow the playbook's language instead: they ask :func:`translation` for
that language's catalog, per call.

Catalogs: ``pybabel extract -F babel.cfg -o bot/locale/cohortbot.pot .``, then
``pybabel update`` and ``pybabel compile`` (see README, Development).
"""

from __future__ import annotations

import gettext
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import date
from functools import cache
from importlib import resources
from typing import Literal

DOMAIN = "cohortbot"
LANGUAGES = ("en", "zh")
Language = Literal["en", "zh"]


def locale_dir() -> str:
    """Where the compiled catalogs are, inside the installed package."""
    return str(resources.files("bot") / "locale")


@cache
def translation(language: str) -> gettext.NullTranslations:
    """The catalog of ``language`` ("en": none, msgids are English)."""
    if language == "en":
        return gettext.NullTranslations()
    return gettext.translation(DOMAIN, locale_dir(), languages=[language])


def normalize(value: str | None) -> Language | None:
    """``zh``, ``zh_CN.UTF-8``, ``zh-Hans`` -> "zh"; any other set value -> "en"; unset -> None."""
    if not value:
        return None
    return "zh" if value.strip().lower().startswith("zh") else "en"


def detect(explicit: str | None = None, environ: Mapping[str, str] | None = None) -> Language:
    """An explicit choice (``--lang``, config ``language:``) first, then the locale:
    LC_ALL, LC_MESSAGES, LANG, the first one set. Chinese if it starts with ``zh``."""
    env = os.environ if environ is None else environ
    for value in (explicit, env.get("LC_ALL"), env.get("LC_MESSAGES"), env.get("LANG")):
        found = normalize(value)
        if found is not None:
            return found
    return "en"


_current: gettext.NullTranslations = translation("en")
_language: Language = "en"
# A language for one task or thread only (the console's pages, each in its reader's language):
# a context variable, so a page in English never changes what a report drawn in a thread, or
# the bot's own log, says meanwhile.
_speaking: ContextVar[tuple[Language, gettext.NullTranslations] | None] = ContextVar(
    "cohortbot_speaking", default=None
)


def use(language: str) -> None:
    """Make ``language`` the operator's language for this process."""
    global _current, _language
    _language = normalize(language) or "en"
    _current = translation(_language)


def current() -> Language:
    here = _speaking.get()
    return here[0] if here else _language


def _(message: str) -> str:
    here = _speaking.get()
    return (here[1] if here else _current).gettext(message)


def ngettext(singular: str, plural: str, n: int) -> str:
    here = _speaking.get()
    return (here[1] if here else _current).ngettext(singular, plural, n)


def gettext_in(language: str, message: str) -> str:
    """``message`` (an English msgid, marked with :func:`N_`) in ``language``, whatever the
    operator's: the texts for members, in their playbook's language."""
    return translation(normalize(language) or "zh").gettext(message)


def N_(message: str) -> str:
    """Marks a text for the catalog without translating it (it is translated where shown)."""
    return message


# strftime's %a follows the C locale (English whatever the operator's language): these do not.
WEEKDAYS = (N_("Mon"), N_("Tue"), N_("Wed"), N_("Thu"), N_("Fri"), N_("Sat"), N_("Sun"))


def weekday(day: date) -> str:
    """``day``'s weekday, short, in the operator's language ("Tue", "周二")."""
    return _(WEEKDAYS[day.weekday()])


@contextmanager
def speaking(language: str) -> Iterator[None]:
    """:func:`_` and :func:`ngettext` in ``language`` within the block, for this task (or
    thread) only; the process's language stays what :func:`use` made it everywhere else."""
    chosen = normalize(language) or "en"
    token = _speaking.set((chosen, translation(chosen)))
    try:
        yield
    finally:
        _speaking.reset(token)
