"""Local servers that alerts are sent to in the tests: an HTTP server (stdlib http.server in
a thread) that records every POST and answers as told (WeCom's {"errcode": 0}, a 500, or
never), and an SMTP server (aiosmtpd) that keeps every e-mail."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Posted:
    path: str
    headers: dict[str, str]
    body: Any  # the JSON body


@dataclass
class HookServer:
    """``answer``: "ok" (WeCom's {"errcode": 0, "errmsg": "ok"}), "errcode" (WeCom refusing:
    {"errcode": 93000}), "500", or "hang" (reads the request, never answers until closed)."""

    answer: str = "ok"
    posts: list[Posted] = field(default_factory=list)
    port: int = 0
    _release: threading.Event = field(default_factory=threading.Event)

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def wait(self, predicate: Callable[[Posted], bool] = lambda p: True, timeout: float = 20) -> Posted:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for p in list(self.posts):
                if predicate(p):
                    return p
            time.sleep(0.05)
        raise AssertionError(f"no matching POST within {timeout} s; got {[p.body for p in self.posts]}")


@contextmanager
def hook_server(answer: str = "ok") -> Iterator[HookServer]:
    hook = HookServer(answer)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length)
            try:
                body = json.loads(raw)
            except ValueError:
                body = raw.decode(errors="replace")
            hook.posts.append(Posted(self.path, dict(self.headers.items()), body))
            if hook.answer == "hang":
                hook._release.wait(30)
                return
            if hook.answer == "500":
                self.send_response(500)
                self.end_headers()
                self.wfile.write(b"internal error")
                return
            reply = {"errcode": 93000, "errmsg": "invalid webhook url"} if hook.answer == "errcode" else {}
            reply = reply or {"errcode": 0, "errmsg": "ok"}
            data = json.dumps(reply).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    hook.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True, name="hook-server")
    thread.start()
    try:
        yield hook
    finally:
        hook._release.set()
        server.shutdown()
        server.server_close()


@dataclass
class MailServer:
    port: int
    mails: list[EmailMessage]
    envelopes: list[tuple[str, list[str]]]

    def wait(self, count: int = 1, timeout: float = 20) -> list[EmailMessage]:
        deadline = time.monotonic() + timeout
        while len(self.mails) < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"{len(self.mails)} e-mails within {timeout} s, wanted {count}")
            time.sleep(0.05)
        return self.mails


@contextmanager
def mail_server(user: str | None = None, password: str | None = None) -> Iterator[MailServer]:
    """aiosmtpd on a free port; with ``user``, it asks for that login (over plain SMTP: a
    local test)."""
    from aiosmtpd.controller import Controller
    from aiosmtpd.smtp import AuthResult, LoginPassword

    from tests.gateway.driver import free_port

    mails: list[EmailMessage] = []
    envelopes: list[tuple[str, list[str]]] = []

    class Handler:
        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
            mails.append(message_from_bytes(envelope.content, policy=policy.default))  # type: ignore[arg-type]
            envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
            return "250 OK"

    def authenticator(server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> AuthResult:
        ok = (
            isinstance(data, LoginPassword)
            and data.login.decode() == user
            and data.password.decode() == password
        )
        return AuthResult(success=ok, handled=False)  # handled=False: it answers 535 itself

    port = free_port()
    options: dict[str, Any] = {}
    if user is not None:
        options = {"authenticator": authenticator, "auth_required": True, "auth_require_tls": False}
    controller = Controller(Handler(), hostname="127.0.0.1", port=port, **options)
    controller.start()
    try:
        yield MailServer(port, mails, envelopes)
    finally:
        controller.stop()
