"""The Wechaty adapter's own logic, on virtual time: the reconnection back-off. The same
paths are driven through the real gateway in tests/test_gateway.py."""

from __future__ import annotations

import asyncio
import itertools
from datetime import UTC, datetime

from bot.transports.wechaty import WechatyTransport, retry_delay

NOW = datetime(2026, 1, 1, tzinfo=UTC)


class FixedClock:
    def now(self) -> datetime:
        return NOW


def test_retry_delay_is_a_second_at_first_then_grows_to_the_cap():
    assert [retry_delay(t, 1.0, fast_for=30, max_backoff=60) for t in (0, 5, 29.9)] == [1.0, 1.0, 1.0]
    delays, delay = [], 1.0
    for _ in range(7):
        delay = retry_delay(40, delay, fast_for=30, max_backoff=60)
        delays.append(delay)
    assert delays == [2.0, 4.0, 8.0, 16.0, 32.0, 60.0, 60.0]


async def test_after_a_connection_that_was_up_the_next_attempt_is_a_second_later():
    """Seen: the gateway back after a long outage, the back-off grown to its cap; the next
    stall then waited the old, long delay before the first attempt (offline 11 s after the
    gateway came back)."""
    transport = WechatyTransport("127.0.0.1:1", "t", FixedClock(), fast_retry_for=30, max_backoff=60)
    loop = asyncio.get_running_loop()
    script = ["up"] + ["down"] * 34 + ["up", "down", "down", "up"]
    attempts: list[float] = []
    finished = asyncio.Event()

    async def connect_once() -> str:
        attempts.append(loop.time())
        if not script:
            finished.set()
            await asyncio.Event().wait()
        if script.pop(0) == "up":
            transport._ready.set()
        return "scripted"

    transport._connect_once = connect_once  # type: ignore[method-assign]
    task = asyncio.create_task(transport._supervise())
    await finished.wait()
    task.cancel()
    gaps = [round(b - a, 3) for a, b in itertools.pairwise(attempts)]
    # The first outage: every second for 30 s, then 2, 4, 8 ... up to the cap.
    assert gaps[:35] == [1.0] * 30 + [2.0, 4.0, 8.0, 16.0, 32.0]
    # Up again, then dropped: one second, not the 60 s the back-off had reached; and each
    # new outage starts again at one second.
    assert gaps[35:] == [1.0, 1.0, 1.0, 1.0]
