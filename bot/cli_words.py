"""The command line's own words (usage lines, the help option, usage errors) in the
operator's language.

Typer ships its own copy of click whose texts are plain English f-strings, and a few of its
own through ``gettext`` with the default domain; neither reaches our catalog by itself. The
texts below are our msgids for them, translated in bot/locale like every other; usage errors
are re-told from the exception's fields rather than its English sentence.
"""

from __future__ import annotations

import re
import sys
from typing import Any

import typer.core
from rich.cells import cell_len
from typer import _click

from bot import i18n
from bot.i18n import N_, _

USAGE = N_("Usage: ")
OPTIONS_METAVAR = N_("[OPTIONS]")
SUBCOMMAND_METAVAR = N_("COMMAND [ARGS]...")
HELP_OPTION = N_("Show this message and exit.")
TRY_HELP = N_("Try '{command} {option}' for help.")
ERROR = N_("Error: {message}")
MISSING_ARGUMENT = N_("missing argument {name}.")
MISSING_OPTION = N_("missing option {name}.")
NO_SUCH_OPTION = N_("no such option: {name}")
DID_YOU_MEAN = N_("(did you mean: {names}?)")
NO_SUCH_COMMAND = N_("no such command: {name}. The commands are: {names}")
EXTRA_ARGUMENTS = N_("unexpected extra arguments: {args}")
BAD_VALUE = N_("invalid value for {name}: {message}")
NEEDS_VALUE = N_("option {name} needs a value.")
ABORTED = N_("Aborted!")
# Typer's own texts, asked for through gettext's default domain (typer/core.py).
TYPER_TEXTS = (
    N_("Arguments"),
    N_("Options"),
    N_("Commands"),
    N_("default: {default}"),
    N_("required"),
    N_("env var: {var}"),
    N_("(dynamic)"),
)


class _Formatter(_click.formatting.HelpFormatter):
    def write_usage(self, prog: str, args: str = "", prefix: str | None = None) -> None:
        super().write_usage(prog, args, _(USAGE) if prefix is None else prefix)


class _Context(typer.Context):
    formatter_class = _Formatter


def localize(command: Any) -> None:
    """The help texts (English msgids) of ``command``, its options and its subcommands, and
    the usage line and help option click adds, in the operator's language."""
    # typer.core asks gettext for "Options", "[default: …]", …: ask our catalog instead.
    typer.core._ = i18n._  # type: ignore[attr-defined]
    command.context_class = _Context
    command.options_metavar = _(OPTIONS_METAVAR)
    if hasattr(command, "subcommand_metavar"):
        command.subcommand_metavar = _(SUBCOMMAND_METAVAR)
    if command.help:
        command.help = _(command.help)
    if command.short_help:
        command.short_help = _(command.short_help)
    elif command.help:
        command.short_help = first_sentence(command.help)
    for param in command.params:
        if getattr(param, "help", None):
            param.help = _(param.help)
    helper = command.get_help_option(_Context(command))
    if helper is not None:
        helper.help = _(HELP_OPTION)
    for sub in getattr(command, "commands", {}).values():
        localize(sub)


def first_sentence(text: str, width: int = 56) -> str:
    """The command list's line: click cuts at spaces, and Chinese has none (a whole
    paragraph became "...")."""
    sentence = re.split(r"(?<=[。！？])|(?<=[.!?])\s", text.strip(), maxsplit=1)[0].strip()
    if cell_len(sentence) <= width:
        return sentence
    while cell_len(sentence) > width - 1:
        sentence = sentence[:-1]
    if " " in sentence and sentence.isascii():
        sentence = sentence.rsplit(" ", 1)[0]  # English: at a word's end
    return sentence.rstrip("，,；; ") + "…"


def _names(param: Any) -> str:
    if param is None:
        return ""
    if param.param_type_name == "argument":
        return (param.metavar or param.name or "").strip("{}").upper()
    return " / ".join(param.opts)


def explain(e: _click.exceptions.UsageError) -> str:
    """A usage error said in the operator's language, from its fields."""
    exc = _click.exceptions
    if isinstance(e, exc.MissingParameter):
        name = _names(e.param)
        said = MISSING_OPTION if getattr(e.param, "param_type_name", "") == "option" else MISSING_ARGUMENT
        return _(said).format(name=name)
    if isinstance(e, exc.NoSuchOption):
        text = _(NO_SUCH_OPTION).format(name=e.option_name)
        if e.possibilities:
            text += " " + _(DID_YOU_MEAN).format(names=", ".join(sorted(e.possibilities)))
        return text
    if isinstance(e, exc.BadOptionUsage) and e.message.endswith("requires an argument."):
        return _(NEEDS_VALUE).format(name=e.option_name)
    if isinstance(e, exc.BadParameter):
        return _(BAD_VALUE).format(name=_names(e.param) or e.param_hint or "", message=e.message)
    if e.message.startswith("No such command") and e.ctx is not None:
        commands = getattr(e.ctx.command, "commands", {})
        name = e.message.split("'")[1] if "'" in e.message else "?"
        return _(NO_SUCH_COMMAND).format(name=name, names=", ".join(commands))
    if e.message.startswith("Got unexpected extra argument"):
        found = re.search(r"\(([^()]*)\)$", e.message)
        return _(EXTRA_ARGUMENTS).format(args=found.group(1) if found else e.message)
    return e.message


def show(e: _click.exceptions.ClickException) -> None:
    """What click's ``show`` prints, in the operator's language (to stderr)."""
    out = sys.stderr
    if isinstance(e, _click.exceptions.NoArgsIsHelpError):
        print(e.format_message(), file=out)
        return
    if isinstance(e, _click.exceptions.UsageError) and e.ctx is not None:
        print(e.ctx.get_usage(), file=out)
        if e.ctx.command.get_help_option(e.ctx) is not None:
            hint = _(TRY_HELP).format(command=e.ctx.command_path, option=e.ctx.help_option_names[0])
            print(hint, file=out)
        print(file=out)
        print(_(ERROR).format(message=explain(e)), file=out)
        return
    message = explain(e) if isinstance(e, _click.exceptions.UsageError) else e.format_message()
    print(_(ERROR).format(message=message), file=out)
