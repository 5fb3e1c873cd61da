"""Drive the mock Wechaty puppet-service gateway (gateway.mjs) from tests.

    from tests.gateway.driver import Gateway

    gw = Gateway({"bot": {"id": "bot", "name": "CohortBot"},
                  "contacts": [{"id": "alice", "name": "Alice", "alias": "Al"}],
                  "rooms": [{"id": "c7@chatroom", "topic": "Cohort 7", "members": ["alice"]}]})
    gw.start()                      # node gateway.mjs on two free loopback ports
    # point python-wechaty at gw.endpoint with token gw.token, then:
    gw.say("alice", "hello", mentions=["bot"])
    sends = gw.wait_sent(lambda s: s["kind"] == "room" and "welcome" in s["text"])
    gw.not_friend("alice", "refuse")  # private messages to alice fail (or "notice": WeChat's notice)
    gw.befriend("alice")            # and reach her again
    gw.stop()

Needs Node.js and `npm ci` run once in tests/gateway. Standard library only; every
blocking call has an ``a``-prefixed awaitable twin (run in a worker thread) for async tests.
"""

from __future__ import annotations

import asyncio
import atexit
import collections
import contextlib
import json
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

GATEWAY_DIR = Path(__file__).resolve().parent
DEFAULT_TOKEN = "insecure_cohortbot"


class GatewayError(RuntimeError):
    """The gateway failed to start, died, or rejected a control command."""


def free_port() -> int:
    """A currently free TCP port on 127.0.0.1."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def install_node_packages() -> None:
    """`npm ci` from the lock file, once, so the test command works in a fresh clone."""
    npm = shutil.which("npm")
    if npm is None:
        raise GatewayError("npm is not installed: the gateway tests need Node.js 18+ with npm")
    done = subprocess.run(
        [npm, "ci", "--no-audit", "--no-fund"], cwd=GATEWAY_DIR, capture_output=True, text=True, timeout=600
    )
    if done.returncode != 0:
        raise GatewayError(f"`npm ci` in {GATEWAY_DIR} failed:\n{done.stderr[-2000:]}")


def renumber_id(id_: str, suffix: str) -> str:
    """An id renumbered as gateway.mjs does: the suffix before a room id's '@', after a contact id."""
    return id_.replace("@", suffix + "@", 1) if "@" in id_ else id_ + suffix


def renumber_world(world: dict, suffix: str) -> dict:
    """The world with every id renumbered by ``suffix`` (as `gateway.mjs --id-suffix`)."""
    if not suffix:
        return world

    def re(i: str) -> str:
        return renumber_id(i, suffix)

    bot = world.get("bot") or {"id": "bot", "name": "CohortBot"}
    rooms = []
    for r in world.get("rooms", []):
        room = {**r, "id": re(r["id"]), "members": [re(m) for m in r.get("members", [])]}
        if r.get("owner"):
            room["owner"] = re(r["owner"])
        if r.get("aliases"):
            room["aliases"] = {re(k): v for k, v in r["aliases"].items()}
        rooms.append(room)
    return {
        "bot": {**bot, "id": re(bot["id"])},
        "contacts": [{**c, "id": re(c["id"])} for c in world.get("contacts", [])],
        "rooms": rooms,
    }


_LIVE: set[Gateway] = set()


@atexit.register
def _kill_leftovers() -> None:
    # a test that forgot stop() must not leave node processes behind
    for gw in list(_LIVE):
        with contextlib.suppress(Exception):
            gw.kill()


class Gateway:
    """One gateway process; the ports are chosen once and kept across restart()."""

    def __init__(self, world: dict, token: str = DEFAULT_TOKEN, node: str | None = None):
        self.world = world
        self.token = token
        self.node = node or shutil.which("node") or "node"
        self.grpc_port = free_port()
        self.control_port = free_port()
        while self.control_port == self.grpc_port:
            self.control_port = free_port()
        self.endpoint = f"127.0.0.1:{self.grpc_port}"
        self.ready_info: dict | None = None  # the {"event": "ready", ...} line
        self.startup_seconds: float | None = None  # spawn -> ready, last start
        self.events: collections.deque = collections.deque(maxlen=2000)  # stdout event lines
        self.id_suffix = ""  # every id renumbered with it (relogin_with_new_ids), kept by restart()
        self._proc: subprocess.Popen | None = None
        self._stderr = None
        self._ready = threading.Event()
        self._tmp = tempfile.TemporaryDirectory(prefix="cohortbot-gateway-")
        self._world_path = Path(self._tmp.name) / "world.json"
        self._world_path.write_text(json.dumps(world))

    # ------------------------------------------------------------------ process
    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self, timeout: float = 60) -> None:
        if self.running:
            raise GatewayError("gateway already running")
        if not (GATEWAY_DIR / "node_modules" / "wechaty-puppet-service").is_dir():
            install_node_packages()
        self._stderr = open(Path(self._tmp.name) / "stderr.log", "ab+")  # noqa: SIM115 (kept open for the process)
        self._stderr.write(b"---- start\n")
        self._stderr.flush()
        self._ready.clear()
        self.ready_info = None
        t0 = time.monotonic()
        self._proc = subprocess.Popen(
            [
                self.node,
                "gateway.mjs",
                "--grpc-port",
                str(self.grpc_port),
                "--control-port",
                str(self.control_port),
                "--token",
                self.token,
                "--world",
                str(self._world_path),
                *(["--id-suffix", self.id_suffix] if self.id_suffix else []),
            ],
            cwd=GATEWAY_DIR,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            start_new_session=True,
        )
        _LIVE.add(self)
        threading.Thread(
            target=self._read_stdout, args=(self._proc,), daemon=True, name=f"gateway-stdout-{self._proc.pid}"
        ).start()
        deadline = t0 + timeout
        while not self._ready.wait(0.05):
            if self._proc.poll() is not None:
                self._proc.wait()
                raise GatewayError(
                    f"gateway exited with {self._proc.returncode} before ready:\n{self.stderr_tail()}"
                )
            if time.monotonic() > deadline:
                self.kill()
                raise GatewayError(f"gateway not ready after {timeout}s:\n{self.stderr_tail()}")
        self.startup_seconds = time.monotonic() - t0

    def _read_stdout(self, proc: subprocess.Popen) -> None:
        # Always drain stdout (a full pipe would block the node process).
        with proc.stdout:
            for raw in proc.stdout:
                try:
                    ev = json.loads(raw)
                except ValueError:
                    ev = {"event": "raw", "line": raw.decode(errors="replace").rstrip()}
                self.events.append(ev)
                if ev.get("event") == "ready" and proc is self._proc:
                    self.ready_info = ev
                    self._ready.set()

    def stop(self, timeout: float = 10) -> None:
        """SIGTERM, wait, SIGKILL if it does not exit."""
        proc = self._proc
        if proc is None:
            return
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self._cleanup_proc()

    def kill(self) -> None:
        """SIGKILL, no goodbye to connected clients (for reconnect tests)."""
        proc = self._proc
        if proc is None:
            return
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        self._cleanup_proc()

    def restart(self, timeout: float = 60) -> None:
        """Stop if running (or already killed), then start again on the same ports.

        The new process starts from the initial world: sends, joins and leaves are forgotten
        (its ids renumbered as by the last relogin_with_new_ids, if any).
        """
        self.stop()
        self.start(timeout)

    def _cleanup_proc(self) -> None:
        _LIVE.discard(self)
        if self._stderr is not None:
            self._stderr.close()
            self._stderr = None

    def stderr_tail(self, lines: int = 40) -> str:
        path = Path(self._tmp.name) / "stderr.log"
        if not path.exists():
            return ""
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])

    def close(self) -> None:
        self.stop()
        self._tmp.cleanup()

    def __enter__(self) -> Gateway:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ------------------------------------------------------------------ control
    def call(self, cmd: str, timeout: float = 10, **args: Any) -> dict:
        """Send one control command; returns the reply, raises GatewayError if ok is false."""
        body = json.dumps({"cmd": cmd, **{k: v for k, v in args.items() if v is not None}})
        req = urllib.request.Request(
            f"http://127.0.0.1:{self.control_port}/",
            data=body.encode(),
            headers={"content-type": "application/json"},
            method="POST",
        )
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                reply = json.loads(resp.read())
        except (urllib.error.URLError, ConnectionError) as e:
            raise GatewayError(
                f"control {cmd}: {e}; gateway running={self.running}\n{self.stderr_tail(10)}"
            ) from e
        if not reply.get("ok"):
            raise GatewayError(f"control {cmd} failed: {reply.get('error')}")
        return reply

    def say(self, member: str, text: str, room: str | None = None, mentions: Iterable[str] = ()) -> None:
        self.call("say", member=member, text=text, room=room, mentions=list(mentions))

    def dm(self, member: str, text: str) -> None:
        self.call("dm", member=member, text=text)

    def join(self, member: str, room: str | None = None, inviter: str | None = None) -> list[str]:
        return self.call("join", member=member, room=room, inviter=inviter)["members"]

    def silent_join(self, member: str, room: str | None = None) -> list[str]:
        return self.call("silent_join", member=member, room=room)["members"]

    def leave(self, member: str, room: str | None = None) -> list[str]:
        return self.call("leave", member=member, room=room)["members"]

    def flood(self, member: str, count: int, text: str, room: str | None = None) -> None:
        self.call("flood", member=member, count=count, text=text, room=room)

    def sent(self) -> list[dict]:
        return self.call("sent")["sent"]

    def clear(self) -> None:
        self.call("clear")

    def slow_sends(self, seconds: float) -> None:
        """Sends go out (recorded, echoed back) at once, but their gRPC answer waits
        ``seconds`` (0: off)."""
        self.call("slow_sends", ms=int(seconds * 1000))

    def state(self) -> dict:
        return self.call("state")

    def not_friend(
        self,
        member: str,
        style: str = "notice",
        text: str | None = None,
        notice_type: str | None = None,
        delay: float | None = None,
    ) -> None:
        """The member is not the account's friend from now on: a private message to them is
        refused with an error (``style="refuse"``, ``text`` the error message) or accepted,
        recorded with ``delivered: False``, and followed ``delay`` seconds later (default
        0.1) by WeChat's notice in that chat (``style="notice"``, ``text`` the notice,
        ``notice_type`` "system" as wechat4u and padlocal deliver it, or "text"). As world ``notFriend``."""
        self.call(
            "not_friend",
            member=member,
            style=style,
            text=text,
            type=notice_type,
            delayMs=None if delay is None else int(delay * 1000),
        )

    def befriend(self, member: str) -> None:
        """The member is the account's friend (again): private messages reach them."""
        self.call("befriend", member=member)

    def notice(self, member: str, text: str | None = None, notice_type: str | None = None) -> None:
        """WeChat's not-a-friend notice in the member's private chat now, with no send before it."""
        self.call("notice", member=member, text=text, type=notice_type)

    def refused(self) -> list[dict]:
        """Private sends refused because the member is not a friend:
        ``[{id, conversationId, text, error, ts}, ...]``."""
        return self.call("refused")["refused"]

    def logout(self, reason: str | None = None) -> None:
        """The account logs out (a logout event on the stream) and stays out, new connections
        included, until login()."""
        self.call("logout", reason=reason)

    def scan(self, qrcode: str | None = None, status: int | None = None) -> None:
        """The gateway shows a QR code to scan (a scan event; status 2 waiting by default,
        3 scanned, 4 confirmed, 5 timeout)."""
        self.call("scan", qrcode=qrcode, status=status)

    def login(self) -> None:
        """The account logs in again (after logout())."""
        self.call("login")

    def relogin_with_new_ids(self, suffix: str = "-2", restart: bool = False) -> dict[str, str]:
        """The account logs in afresh and every id changes (the account's, the rooms', the
        members'), names, aliases and topics kept, as some puppets do after a re-login.
        ``restart``: the gateway process is restarted with the renumbered world (connected
        clients see the stream drop); otherwise the running gateway logs the account out
        and in again on the open stream. Returns ``{old id: new id}``; a room id gets the
        suffix before its '@' (cohort@chatroom -> cohort-2@chatroom), a contact id after it."""
        if not restart:
            ids = self.call("relogin", suffix=suffix)["ids"]
            self.id_suffix += suffix
            return ids
        now = renumber_world(self.world, self.id_suffix)
        old = [now["bot"]["id"], *(c["id"] for c in now["contacts"]), *(r["id"] for r in now["rooms"])]
        self.stop()
        self.id_suffix += suffix
        self.start()
        return {i: renumber_id(i, suffix) for i in old}

    def wait_sent(
        self, predicate: Callable[[dict], bool], timeout: float = 30, interval: float = 0.1
    ) -> list[dict]:
        """Poll sent() until at least one send matches; returns all matching sends."""
        deadline = time.monotonic() + timeout
        while True:
            sends = self.sent()
            matches = [s for s in sends if predicate(s)]
            if matches:
                return matches
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"no matching send within {timeout}s; sent so far: "
                    f"{json.dumps(sends, ensure_ascii=False)[:2000]}"
                )
            time.sleep(interval)

    # ------------------------------------------------------------------ async twins
    async def astart(self, timeout: float = 60) -> None:
        await asyncio.to_thread(self.start, timeout)

    async def astop(self) -> None:
        await asyncio.to_thread(self.stop)

    async def akill(self) -> None:
        await asyncio.to_thread(self.kill)

    async def alogout(self, reason: str | None = None) -> None:
        await asyncio.to_thread(self.logout, reason)

    async def ascan(self, qrcode: str | None = None, status: int | None = None) -> None:
        await asyncio.to_thread(self.scan, qrcode, status)

    async def alogin(self) -> None:
        await asyncio.to_thread(self.login)

    async def arelogin_with_new_ids(self, suffix: str = "-2", restart: bool = False) -> dict[str, str]:
        return await asyncio.to_thread(self.relogin_with_new_ids, suffix, restart)

    async def arestart(self, timeout: float = 60) -> None:
        await asyncio.to_thread(self.restart, timeout)

    async def acall(self, cmd: str, **args: Any) -> dict:
        return await asyncio.to_thread(lambda: self.call(cmd, **args))

    async def asay(
        self, member: str, text: str, room: str | None = None, mentions: Iterable[str] = ()
    ) -> None:
        await asyncio.to_thread(self.say, member, text, room, list(mentions))

    async def adm(self, member: str, text: str) -> None:
        await asyncio.to_thread(self.dm, member, text)

    async def ajoin(self, member: str, room: str | None = None, inviter: str | None = None) -> list[str]:
        return await asyncio.to_thread(self.join, member, room, inviter)

    async def asilent_join(self, member: str, room: str | None = None) -> list[str]:
        return await asyncio.to_thread(self.silent_join, member, room)

    async def aleave(self, member: str, room: str | None = None) -> list[str]:
        return await asyncio.to_thread(self.leave, member, room)

    async def aflood(self, member: str, count: int, text: str, room: str | None = None) -> None:
        await asyncio.to_thread(self.flood, member, count, text, room)

    async def asent(self) -> list[dict]:
        return await asyncio.to_thread(self.sent)

    async def aclear(self) -> None:
        await asyncio.to_thread(self.clear)

    async def aslow_sends(self, seconds: float) -> None:
        await asyncio.to_thread(self.slow_sends, seconds)

    async def anot_friend(
        self,
        member: str,
        style: str = "notice",
        text: str | None = None,
        notice_type: str | None = None,
        delay: float | None = None,
    ) -> None:
        await asyncio.to_thread(self.not_friend, member, style, text, notice_type, delay)

    async def abefriend(self, member: str) -> None:
        await asyncio.to_thread(self.befriend, member)

    async def anotice(self, member: str, text: str | None = None, notice_type: str | None = None) -> None:
        await asyncio.to_thread(self.notice, member, text, notice_type)

    async def arefused(self) -> list[dict]:
        return await asyncio.to_thread(self.refused)

    async def await_sent(
        self, predicate: Callable[[dict], bool], timeout: float = 30, interval: float = 0.1
    ) -> list[dict]:
        """Async wait_sent: polls without blocking the event loop (the bot keeps running)."""
        deadline = time.monotonic() + timeout
        while True:
            sends = await self.asent()
            matches = [s for s in sends if predicate(s)]
            if matches:
                return matches
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"no matching send within {timeout}s; sent so far: "
                    f"{json.dumps(sends, ensure_ascii=False)[:2000]}"
                )
            await asyncio.sleep(interval)
