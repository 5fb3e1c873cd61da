import asyncio
from datetime import UTC, datetime

import pytest

from bot import i18n
from bot.clock import VirtualTimeLoop
from tests.harness import Harness


def pytest_asyncio_loop_factories(config, item):
    # Async tests run on virtual time: a cohort's days pass in milliseconds, and the times
    # the bot sends at are exactly those a real group would see. Tests that talk to real
    # processes (the gateway) mark themselves `realtime`.
    if item.get_closest_marker("realtime") or item.get_closest_marker("gateway"):
        return {"real": asyncio.new_event_loop}
    return {"virtual": lambda: VirtualTimeLoop(datetime(2026, 1, 1, tzinfo=UTC))}


@pytest.fixture(autouse=True)
def operator_language(monkeypatch):
    """Every test runs in English, whatever the machine's locale, unless it asks for another
    language (``i18n.use("zh")``, or LANG / --lang through the CLI): the CLI reads LC_ALL,
    LC_MESSAGES and LANG, so they are set to English here, and restored after."""
    for name in ("LC_ALL", "LC_MESSAGES", "LANG", "LANGUAGE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("LANG", "C.UTF-8")
    i18n.use("en")
    yield
    i18n.use("en")


@pytest.fixture
async def harness():
    """Start bots with ``await harness(...)`` (the arguments of Harness.start); each one is
    stopped when the test ends, passed or failed, so a failing test leaves no task behind."""
    started: list[Harness] = []

    async def start(*args, **kwargs) -> Harness:
        h = await Harness.start(*args, **kwargs)
        started.append(h)
        return h

    yield start
    for h in reversed(started):
        await h.stop()
