import asyncio
from datetime import UTC, datetime

from bot.clock import VirtualTimeLoop


def pytest_asyncio_loop_factories(config, item):
    # Async tests run on virtual time: a cohort's days pass in milliseconds, and the times
    # the bot sends at are exactly those a real group would see. Tests that talk to real
    # processes (the gateway) mark themselves `realtime`.
    if item.get_closest_marker("realtime") or item.get_closest_marker("gateway"):
        return {"real": asyncio.new_event_loop}
    return {"virtual": lambda: VirtualTimeLoop(datetime(2026, 1, 1, tzinfo=UTC))}
