"""An interactive terminal group for `run` with `transport.kind: simulated`: the operator
types as the members, and sees what the bot sends, on the real clock."""

from __future__ import annotations

import asyncio
import re
from typing import TextIO

from rich.console import Console
from rich.markup import escape

from bot import i18n
from bot.clock import Clock
from bot.transports.base import Member
from bot.transports.simulated import Sent, SimulatedGroup

HELP = """Type as a member of the group:
  u01: 打卡                 u01 says 打卡 in the group (u01 joins first if new)
  dm u01: 进度              u01 writes to the bot privately
  op: 未打卡                 an operator (the config's first) writes to the bot privately
  join u09 新同学           u09 joins the group
  leave u02                 u02 leaves
  room <topic or id>        talk in another configured group
  members | help | quit"""

_SAY = re.compile(r"^(dm\s+)?(\S+?)\s*[:：]\s?(.*)$", re.S)


class TerminalGroup(SimulatedGroup):
    def __init__(
        self, clock: Clock, console: Console, rooms: dict[str, str], operators: tuple[str, ...] = ()
    ) -> None:
        super().__init__(clock, rooms=rooms, on_send=self._show)
        self.console = console
        self.operators = operators
        self.current = next(iter(self.rooms))

    def _show(self, sent: Sent) -> None:
        if sent.chat.startswith("dm:"):
            where = i18n._("→ private {name}").format(name=sent.chat[3:])
        else:
            where = "→ " + (sent.room_id or "room")
        mentions = " ".join("@" + self.member(m).shown for m in sent.mentions)
        self.console.print(
            f"[dim]{sent.at.astimezone():%H:%M:%S}[/] [bold cyan]{escape(self.bot.name)} "
            f"{escape(where)}[/]: [blue]{escape(mentions)}[/] {escape(sent.text)}"
        )

    async def handle_line(self, line: str) -> bool:
        """Act on one typed line; False to quit."""
        line = line.strip()
        if not line:
            return True
        if line in ("quit", "exit"):
            return False
        if line == "help":
            self.console.print(HELP)
        elif line == "members":
            for m in self._members[self.current].values():
                self.console.print(f"  {m.id}  {m.shown}")
        elif line.startswith("room "):
            target = line[5:].strip()
            try:
                self.current = await self.resolve_room(target)
            except LookupError as exc:
                self.console.print(f"[red]{exc}[/]")
        elif line.startswith("join "):
            parts = line.split(maxsplit=2)
            await self.join(Member(parts[1], parts[2] if len(parts) > 2 else parts[1]), self.current)
        elif line.startswith("leave "):
            await self.leave(line.split()[1], self.current)
        elif (said := _SAY.match(line)) and said[2] == "op" and not said[1]:
            if not self.operators:
                self.console.print("[yellow]no operators in the config (operators: [...])[/]")
            else:
                await self.dm(self.operators[0], said[3])
        elif said := _SAY.match(line):
            dm, who, text = said[1], said[2], said[3]
            if who not in self._members[self.current]:
                await self.join(Member(who, who), self.current)
            if dm:
                await self.dm(who, text)
            else:
                await self.say(who, text, self.current)
        else:
            self.console.print("[yellow]not understood; type help[/]")
        return True

    async def read_stdin(self, stream: TextIO, stop: asyncio.Event) -> None:
        self.console.print(HELP)
        try:
            while True:
                line = await asyncio.to_thread(stream.readline)
                if not line or not await self.handle_line(line):
                    break
        finally:
            stop.set()
