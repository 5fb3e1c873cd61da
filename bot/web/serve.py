"""The console under uvicorn, in the bot's own process and event loop: started after the bot,
stopped before it. The bot keeps its signal handlers (uvicorn's are not installed)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Iterator

import uvicorn
from starlette.applications import Starlette

from bot.config import split_bind
from bot.i18n import _

log = logging.getLogger(__name__)


class BindError(Exception):
    """The console's address cannot be listened on (taken, not this machine's)."""


class _Server(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, tick: float) -> None:
        super().__init__(config)
        self.tick = tick

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield  # Ctrl-C and SIGTERM are the bot's: it stops the console first

    async def main_loop(self) -> None:
        # uvicorn's own loop wakes every 0.1 s of loop time; on the demo's fast clock that
        # would spin, so the tick is scaled with it.
        counter = 0
        while not await self.on_tick(counter):
            counter = (counter + 1) % 864000
            await asyncio.sleep(self.tick)


class Served:
    """A running console; ``await stop()`` ends it (open live pages are closed)."""

    def __init__(self, app: Starlette, bind: str, *, speed: float = 1.0) -> None:
        host, port = split_bind(bind)
        try:
            family = socket.AF_INET6 if ":" in host else socket.AF_INET
            self.sock = socket.create_server((host, port), family=family, reuse_port=False)
        except (OSError, OverflowError) as exc:  # OverflowError: a port past 65535
            raise BindError(
                _("cannot listen on {bind}: {reason}").format(
                    bind=bind, reason=getattr(exc, "strerror", None) or exc
                )
            ) from None
        self.sock.setblocking(False)
        self.port = self.sock.getsockname()[1]
        self.app = app
        config = uvicorn.Config(
            app,
            lifespan="off",
            log_level="warning",
            access_log=False,
            # Loop seconds: on the demo's fast clock they pass `speed` times faster.
            timeout_keep_alive=max(1, round(5 * speed)),
            timeout_graceful_shutdown=max(1, round(2 * speed)),
        )
        self.server = _Server(config, tick=0.1 * speed)
        self.task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self.task = asyncio.create_task(self.server.serve(sockets=[self.sock]), name="web")
        while not self.server.started and not self.task.done():
            await asyncio.sleep(self.server.tick)
        if self.task.done():
            self.task.result()  # re-raises why it did not start

    async def stop(self) -> None:
        self.app.state.stop_streams.set()  # live pages end, so uvicorn need not wait for them
        self.server.should_exit = True
        if self.task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self.task
        self.sock.close()
