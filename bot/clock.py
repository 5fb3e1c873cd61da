"""Time for the domain: a Clock to ask, and an event loop that can run on virtual time.

Domain code never calls ``datetime.now()``; it asks a Clock. Sleeping is plain
``asyncio.sleep``/``call_later``: on a :class:`VirtualTimeLoop` those skip ahead instead of
waiting, so the same scheduler, outbox and engine that ``run`` uses play an 8-day cohort
in seconds.
"""

from __future__ import annotations

import asyncio
import selectors
import time
from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime:
        """The current time, timezone-aware UTC."""
        ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


class _SkippingSelector(selectors.BaseSelector):
    """Wraps the loop's real selector; when nothing is ready, it jumps the virtual time
    forward to the next timer instead of blocking."""

    def __init__(self, real: selectors.BaseSelector, loop: VirtualTimeLoop) -> None:
        self._real = real
        self._loop = loop

    def register(self, fileobj, events, data=None):  # type: ignore[no-untyped-def]
        return self._real.register(fileobj, events, data)

    def unregister(self, fileobj):  # type: ignore[no-untyped-def]
        return self._real.unregister(fileobj)

    def modify(self, fileobj, events, data=None):  # type: ignore[no-untyped-def]
        return self._real.modify(fileobj, events, data)

    def get_map(self):  # type: ignore[no-untyped-def]
        return self._real.get_map()

    def get_key(self, fileobj):  # type: ignore[no-untyped-def]
        return self._real.get_key(fileobj)

    def close(self) -> None:
        self._real.close()

    def select(self, timeout: float | None = None):  # type: ignore[no-untyped-def]
        ready = self._real.select(0)
        if ready or timeout == 0:
            return ready
        if timeout is None:
            # Nothing scheduled: only another thread can wake us, so really wait for it.
            return self._real.select(None)
        self._loop.advance(timeout)
        return []


class VirtualTimeLoop(asyncio.SelectorEventLoop):
    """An asyncio loop whose clock starts at ``start`` and advances only when every task
    is waiting: timers fire in order, at their exact virtual times, without real waiting."""

    def __init__(self, start: datetime) -> None:
        if start.tzinfo is None:
            raise ValueError("start must be timezone-aware")
        super().__init__()
        self._virtual = 0.0
        self.start_time = start.astimezone(UTC)
        self._selector = _SkippingSelector(self._selector, self)  # type: ignore[has-type]

    def time(self) -> float:
        return self._virtual

    def advance(self, seconds: float) -> None:
        if seconds > 0:
            self._virtual += seconds

    def now(self) -> datetime:
        return self.start_time + timedelta(seconds=self._virtual)

    def busy_now(self) -> bool:
        """True while callbacks are ready to run or timers are due at the current instant:
        what is due "now" has not all run yet."""
        if self._ready:  # type: ignore[attr-defined]
            return True
        scheduled = self._scheduled  # type: ignore[attr-defined]
        return bool(scheduled) and scheduled[0].when() <= self._virtual

    def set_now(self, when: datetime) -> None:
        """Re-anchor the virtual clock so that now() is ``when``; timers already scheduled
        keep their delays."""
        self.start_time = when.astimezone(UTC) - timedelta(seconds=self._virtual)


class _PacedSelector(_SkippingSelector):
    """Waits for real, ``speed`` times shorter than the loop's timers ask, and moves the
    virtual time on by what really passed, ``speed`` times over."""

    def select(self, timeout: float | None = None):  # type: ignore[no-untyped-def]
        if timeout is None:
            return self._real.select(None)
        loop = self._loop
        assert isinstance(loop, PacedLoop)
        began = time.monotonic()
        ready = self._real.select(max(timeout, 0) / loop.speed)
        loop.advance((time.monotonic() - began) * loop.speed)
        return ready


class PacedLoop(VirtualTimeLoop):
    """A virtual-time loop that runs ``speed`` times faster than the wall clock instead of
    skipping ahead: the demo's fast cohort (`demo --web`), which a person watches, and the
    browser tests at speed 1. Everything that reads the loop's clock (the scheduler, a
    VirtualClock) follows it."""

    def __init__(self, start: datetime, speed: float = 1.0) -> None:
        super().__init__(start)
        self.speed = speed
        self._selector = _PacedSelector(self._selector._real, self)  # type: ignore[attr-defined]


class VirtualClock:
    """The clock of a :class:`VirtualTimeLoop`; valid only inside that loop."""

    def __init__(self, loop: VirtualTimeLoop) -> None:
        self._loop = loop

    def now(self) -> datetime:
        return self._loop.now()


def loop_now() -> datetime | None:
    """Virtual now if running on a VirtualTimeLoop, else None (callers use real time)."""
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return None
    return loop.now() if isinstance(loop, VirtualTimeLoop) else None


def run_virtual(start: datetime, main):  # type: ignore[no-untyped-def]
    """Run coroutine function ``main(clock)`` on a fresh virtual-time loop; return its result."""
    loop = VirtualTimeLoop(start)
    try:
        asyncio.set_event_loop(loop)
        return loop.run_until_complete(main(VirtualClock(loop)))
    finally:
        try:
            loop.run_until_complete(loop.shutdown_asyncgens())
        finally:
            asyncio.set_event_loop(None)
            loop.close()


async def within(awaitable, seconds: float):  # type: ignore[no-untyped-def]
    """``asyncio.wait_for`` without its Python 3.11 flaw: there, a cancellation that arrives
    just as the awaited thing finishes is swallowed, and a task asked to stop runs on."""
    async with asyncio.timeout(seconds):
        return await awaitable
