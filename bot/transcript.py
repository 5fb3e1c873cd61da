"""A readable, coloured transcript of a group: time, who, what."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from rich.console import Console
from rich.markup import escape
from rich.text import Text

from bot.plan import Calendar
from bot.transports.simulated import Sent

MAX_MENTIONS_SHOWN = 6


class Transcript:
    def __init__(
        self,
        console: Console,
        cal: Calendar,
        name_of: Callable[[str], str],
        bot_name: str = "CohortBot",
        width: int = 160,
    ) -> None:
        self.console = console
        self.cal = cal
        self.name_of = name_of
        self.bot_name = bot_name
        self.width = width
        self._last_day: int | None = None

    def _stamp(self, at: datetime) -> str:
        day = self.cal.date_day(at)
        if day != self._last_day:
            self._last_day = day
            local = self.cal.local(at)
            self.console.rule(f"[bold]第 {day} 天 · {local:%Y-%m-%d %a}")
        return f"{self.cal.local(at):%H:%M:%S}"

    def _short(self, text: str) -> str:
        flat = " ⏎ ".join(line for line in text.splitlines() if line.strip())
        return flat if len(flat) <= self.width else flat[: self.width - 1] + "…"

    def member(self, at: datetime, who: str, text: str, dm: bool = False) -> None:
        t = Text(self._stamp(at) + " ", style="dim")
        t.append(f"{who}{' → 私聊' if dm else ''}: ", style="green")
        t.append(self._short(text))
        self.console.print(t)

    def event(self, at: datetime, text: str) -> None:
        self.console.print(f"[dim]{self._stamp(at)}[/] [yellow]· {escape(text)}[/]")

    def bot(self, sent: Sent) -> None:
        t = Text(self._stamp(sent.at) + " ", style="dim")
        if sent.chat.startswith("dm:"):
            t.append(f"{self.bot_name} → 私聊 {self.name_of(sent.chat[3:])}: ", style="bold magenta")
        else:
            t.append(f"{self.bot_name}: ", style="bold cyan")
        if sent.mentions:
            shown = " ".join("@" + self.name_of(m) for m in sent.mentions[:MAX_MENTIONS_SHOWN])
            more = len(sent.mentions) - MAX_MENTIONS_SHOWN
            t.append(shown + (f" …+{more}" if more > 0 else "") + " ", style="blue")
        t.append(self._short(sent.text))
        self.console.print(t)
