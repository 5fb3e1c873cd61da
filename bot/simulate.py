"""Run the real bot (engine, scheduler, outbox, storage) against a simulated group on a
virtual clock, from 00:00 of day 1 to the end of the last day, in seconds."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime

from bot.app import Bot
from bot.clock import VirtualClock, run_virtual
from bot.cohort import CohortRun
from bot.engine import Settings
from bot.noise import Noise, measure
from bot.outbox import Pacing
from bot.plan import Calendar, calendar
from bot.playbook import Playbook
from bot.scenario import BOT_ID, Scenario, TimedEvent, timeline
from bot.transports.base import Member
from bot.transports.simulated import Sent, SimulatedGroup
from bot.yamlfile import Source
from storage.db import open_db

COHORT_ID = "simulated"


@dataclass
class Result:
    sent: list[Sent]
    bot: Bot
    cal: Calendar
    said: list[datetime] = field(default_factory=list)  # when members spoke in the group
    events: list[TimedEvent] = field(default_factory=list)  # the scenario's, in time order

    def noise(self) -> Noise:
        return measure(self.bot.db, COHORT_ID, self.cal, self.sent, self.said)


def to_json(sent: Sent, cal: Calendar) -> str:
    return json.dumps(
        {
            "at": cal.local(sent.at).isoformat(timespec="seconds"),
            "chat": sent.chat,
            "text": sent.text,
            "mentions": list(sent.mentions),
        },
        ensure_ascii=False,
    )


async def play(
    group: SimulatedGroup,
    events: list[TimedEvent],
    clock: VirtualClock,
    on_event: Callable[[TimedEvent], None] | None = None,
) -> None:
    for ev in events:
        delay = (ev.at - clock.now()).total_seconds()
        if delay > 0:
            await asyncio.sleep(delay)
        if on_event:
            on_event(ev)
        if ev.kind == "say":
            await group.say(ev.member.id, ev.text)
        elif ev.kind == "dm":
            await group.dm(ev.member.id, ev.text)
        elif ev.kind == "join":
            await group.join(ev.member)
        else:
            await group.leave(ev.member.id)


def simulate(
    playbook: Playbook,
    scenario: Scenario,
    *,
    source: Source | None = None,
    db_url: str = "sqlite://",
    pacing: Pacing | None = None,
    settings: Settings | None = None,
    on_send: Callable[[Sent], None] | None = None,
    on_event: Callable[[TimedEvent], None] | None = None,
    default_zone: str = "Asia/Shanghai",
) -> Result:
    """Play the whole cohort; returns every message the bot sent, in order. ``settings``
    (a config's: pacing, quiet hours) replaces the defaults; the scenario's operators and
    bot name are used all the same."""
    cal = calendar(playbook, scenario.start, default_zone)
    events = timeline(scenario, cal, source)  # rejects a bad scenario before anything runs

    async def main(clock: VirtualClock) -> Result:
        members = [Member(m.id, m.name, m.alias) for m in scenario.members]
        group = SimulatedGroup(
            clock,
            rooms={"room": scenario.room},
            members=members,
            bot=Member(BOT_ID, scenario.bot),
            on_send=on_send,
        )
        joiners = [e.join for e in scenario.events if e.join is not None]
        group.strangers = {m.id for m in [*scenario.members, *joiners] if not m.friend}
        base = settings if settings is not None else Settings(pacing=pacing or Pacing())
        chosen = replace(base, operators=frozenset(scenario.operators), bot_name=scenario.bot)
        run = CohortRun.create(COHORT_ID, playbook, cal, scenario.room)
        bot = Bot(open_db(db_url), group, clock, chosen, [run], reconcile_minutes=0)
        await bot.start()
        try:
            await play(group, events, clock, on_event)
            await asyncio.sleep(max((cal.end_utc() - clock.now()).total_seconds(), 0))
            await bot.drain()
        finally:
            await bot.stop()
        said = [ev.at for ev in events if ev.kind == "say"]
        return Result(group.sent, bot, cal, said, events)

    return run_virtual(cal.start_utc(), main)
