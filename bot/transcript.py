"""A readable, coloured transcript of a group: time, who, what. The bot's messages are shown
whole, line by line, with every name it @-mentions; a line wider than the terminal wraps under
the text, never under the time, so the times stay a column."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from rich.cells import cell_len
from rich.console import Console
from rich.markup import escape
from rich.text import Text

from bot import i18n
from bot.plan import Calendar
from bot.scenario import Scenario, TimedEvent
from bot.transports.simulated import Sent

STAMP = 8  # "HH:MM:SS"
MEMBER_TEXT_SHOWN = 100  # a member's message longer than this is cut, with its length
JOINERS = {"\ufe0f", "\u200d"}  # an emoji's variation selector, zero-width joiner
CLOSING = set("，。、；：！？）」』】》〉”’…,.;:!?)]}")  # not at the start of a line


def wrap_offsets(plain: str, width: int) -> list[int]:
    """Where to break ``plain`` so no piece is wider than ``width`` cells: anywhere in
    Chinese text, but not inside a Latin word, a link or an @name (they move to the next
    line whole), nor before a closing mark such as ，or 」."""
    offsets: list[int] = []
    col, start, space = 0, 0, -1
    for i, ch in enumerate(plain):
        # With the character before, so that ☀ + U+FE0F (emoji presentation) counts as 2.
        w = cell_len(plain[i - 1 : i + 1]) - cell_len(plain[i - 1]) if i > start else cell_len(ch)
        if col + w > width and i > start:
            word = plain[space:i] if start < space else ""
            if ch.isspace():
                cut = i + 1  # the space ends this line (and is dropped)
            elif word and (
                (word.isascii() and ch.isascii() and len(word) < 24)
                or (word.startswith("@") and cell_len(word) <= 20)
            ):
                cut = space
            elif (ch in CLOSING or ch in JOINERS) and i - 1 > start:
                cut = i - 1  # with the character before it
            else:
                cut = i
            offsets.append(cut)
            start, space = cut, -1
            col = cell_len(plain[cut:i])
            if cut > i:
                continue
        col += w
        if ch == " ":
            space = i + 1
    return offsets


class Transcript:
    def __init__(
        self,
        console: Console,
        cal: Calendar,
        name_of: Callable[[str], str],
        bot_name: str = "CohortBot",
        fold: bool = False,
    ) -> None:
        self.console = console
        self.cal = cal
        self.name_of = name_of
        self.bot_name = bot_name
        self._last_day: int | None = None
        # `demo`: private messages that differ only by the name (a questionnaire's first
        # question to 60 members) are shown once, with the others' names.
        self.fold = fold
        self._folding: tuple[str, tuple[str, ...], list[str]] | None = None  # text, kinds, names

    def flush(self) -> None:
        """Say whom the folded private message also went to."""
        folding, self._folding = self._folding, None
        if folding is None or not folding[2]:
            return
        names = folding[2]
        said = i18n.ngettext(
            "… the same private message also went to {n} member: {names}",
            "… the same private message also went to {n} members: {names}",
            len(names),
        ).format(n=len(names), names=i18n._(", ").join(names))
        line = Text(said, style="dim magenta")
        self._print(" " * STAMP, line)

    def _stamp(self, at: datetime) -> str:
        day = self.cal.date_day(at)
        if day != self._last_day:
            self._last_day = day
            local = self.cal.local(at)
            heading = i18n._("day {day} · {date} {weekday}").format(
                day=day, date=f"{local:%Y-%m-%d}", weekday=i18n.weekday(local.date())
            )
            self.console.rule(f"[bold]{escape(heading)}")
        return f"{self.cal.local(at):%H:%M:%S}"

    def _print(self, stamp: str, body: Text) -> None:
        """The time, then the body line by line; wrapped lines indented under the text."""
        width = max(self.console.width - STAMP - 1, 20)
        first = True
        for line in body.split("\n", allow_blank=True):
            pieces = line.divide(wrap_offsets(line.plain, width)) if line.plain else [line]
            for piece in pieces:
                piece.rstrip()
                if first or piece.plain:
                    head = Text(stamp if first else " " * STAMP, style="dim")
                    self.console.print(head + " " + piece, soft_wrap=True)
                else:
                    self.console.print()
                first = False

    def member(self, at: datetime, who: str, text: str, dm: bool = False) -> None:
        self.flush()
        where = i18n._(" → private") if dm else ""
        body = Text(f"{who}{where}: ", style="green")
        if len(text) > MEMBER_TEXT_SHOWN:
            text = text[:MEMBER_TEXT_SHOWN] + i18n._("…({n} characters in all)").format(n=len(text))
        body.append(text)
        self._print(self._stamp(at), body)

    def event(self, at: datetime, text: str) -> None:
        self.flush()
        self._print(self._stamp(at), Text(f"· {text}", style="yellow"))

    def bot(self, sent: Sent) -> None:
        if self.fold and sent.chat.startswith("dm:"):
            name = self.name_of(sent.chat[3:])
            shape = sent.text.replace(name, "{name}") if name else sent.text
            if self._folding is not None and self._folding[:2] == (shape, sent.kinds):
                self._folding[2].append(name)
                return
            self.flush()
            self._folding = (shape, sent.kinds, [])
        else:
            self.flush()
        if sent.chat.startswith("dm:"):
            to = i18n._("→ private {name}").format(name=self.name_of(sent.chat[3:]))
            body = Text(f"{self.bot_name} {to}: ", style="bold magenta")
        else:
            body = Text(f"{self.bot_name}: ", style="bold cyan")
        if sent.mentions:
            body.append(" ".join("@" + self.name_of(m) for m in sent.mentions) + " ", style="blue")
        body.append(sent.text.rstrip("\n"))
        self._print(self._stamp(sent.at), body)

    def on_event(self, ev: TimedEvent) -> None:
        """A scenario event (bot/simulate.py's on_event)."""
        if ev.kind in ("say", "dm"):
            self.member(ev.at, ev.member.shown, ev.text, dm=ev.kind == "dm")
        else:
            said = i18n._("{name} joined the group") if ev.kind == "join" else i18n._("{name} left the group")
            self.event(ev.at, said.format(name=ev.member.shown))


def for_scenario(console: Console, cal: Calendar, sc: Scenario, fold: bool = False) -> Transcript:
    """A transcript of ``sc``'s group: members by their group alias, else their name."""
    names = {m.id: m.alias or m.name for m in sc.members}
    names.update({e.join.id: e.join.alias or e.join.name for e in sc.events if e.join})
    return Transcript(console, cal, lambda mid: names.get(mid, mid), sc.bot, fold)
