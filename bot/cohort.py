"""A running cohort: its playbook, calendar, room and the lookups built once from them."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from bot.plan import Calendar, PlannedItem, build_plan
from bot.playbook import Playbook

ARG_COMMANDS = ("makeup", "leave")  # members' commands that may take a day or track


@dataclass
class CohortRun:
    id: str
    playbook: Playbook
    cal: Calendar
    room: str  # as configured (topic or id)
    room_id: str = ""  # as resolved on the transport at start
    plan: list[PlannedItem] = field(default_factory=list)
    # (keyword, track id), longest first, so the longest matching keyword wins.
    keywords: list[tuple[str, str]] = field(default_factory=list)
    command_words: dict[str, str] = field(default_factory=dict)

    @classmethod
    def create(cls, cohort_id: str, playbook: Playbook, cal: Calendar, room: str) -> CohortRun:
        from bot.checkins import normalize  # matched as normalized messages are

        keywords = sorted(
            ((normalize(kw), tid) for tid, t in playbook.tracks.items() for kw in t.keywords),
            key=lambda kt: -len(kt[0]),
        )
        words = {normalize(w): name for name, ws in playbook.commands for w in ws or ()}
        if playbook.commands.makeup is None and any(t.makeup for t in playbook.tracks.values()):
            words.setdefault("补卡", "makeup")
        return cls(
            cohort_id,
            playbook,
            cal,
            room,
            plan=build_plan(playbook, cal),
            keywords=keywords,
            command_words=words,
        )

    def adopt(self, new: CohortRun) -> None:
        """Take a reloaded playbook's version in place (a live edit): whatever holds this run
        (the engine's rooms, a waiting roll call, the scheduler's jobs) sees it at once. The
        room stays the one resolved at start."""
        self.playbook = new.playbook
        self.cal = new.cal
        self.plan = new.plan
        self.keywords = new.keywords
        self.command_words = new.command_words

    def command_with_args(self, text: str) -> tuple[str, tuple[str, ...]] | None:
        """A command that takes arguments ("补卡 2", "请假3") and what follows its word."""
        for word, name in self.command_words.items():
            if name in ARG_COMMANDS and text.startswith(word) and text != word:
                rest = text[len(word) :]
                return name, tuple(rest.split())
        return None

    def day(self, at: datetime) -> int:
        return self.cal.day_of(at)
