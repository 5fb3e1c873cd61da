"""The one place python-wechaty is imported, with the three fixes it needs on Python 3.11
(../shared/wechaty-notes.md). Everything else takes its Wechaty names from here, and
tests/test_wechaty_compat.py fails if an upgrade or a dropped pin breaks the import.

1. pyee 12 moved ``AsyncIOEventEmitter`` out of the top-level module: alias it back (we
   also pin ``pyee<12``).
2. urllib3 2 removed ``urllib3.get_host``, which ``wechaty/user/url_link.py`` imports:
   provide it (we also pin ``urllib3<2``).
3. Python 3.11 rejects the dataclass default ``puppet_options=PuppetOptions()`` in
   ``WechatyOptions`` (unhashable, so "mutable"; python-wechaty issue 422): give
   ``PuppetOptions`` an identity hash before ``wechaty`` is first imported.

Importing ``wechaty`` also creates a ``.wechaty/`` cache folder in the working directory;
it goes to the user's cache folder instead.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pyee
import urllib3

if not hasattr(pyee, "AsyncIOEventEmitter"):  # pyee >= 12
    from pyee.asyncio import AsyncIOEventEmitter as _Emitter

    pyee.AsyncIOEventEmitter = _Emitter  # type: ignore[attr-defined, misc, assignment]

if not hasattr(urllib3, "get_host"):  # urllib3 >= 2

    def _get_host(url: str) -> tuple[str, str | None, int | None]:
        parsed = urllib3.util.parse_url(url)
        return parsed.scheme or "http", parsed.hostname, parsed.port

    urllib3.get_host = _get_host  # type: ignore[attr-defined]

import wechaty_puppet.schemas.puppet as _puppet_schema

if _puppet_schema.PuppetOptions.__hash__ is None:
    _puppet_schema.PuppetOptions.__hash__ = object.__hash__  # type: ignore[method-assign]

os.environ.setdefault("CACHE_DIR", str(Path.home() / ".cache" / "cohortbot" / "wechaty"))

# The whole stack must import (that is what tests/test_wechaty_compat.py checks), even
# though the adapter uses only its puppet-service layer.
import wechaty
from grpclib.client import Channel
from grpclib.exceptions import GRPCError, StreamTerminatedError
from wechaty_grpc.wechaty import PuppetStub
from wechaty_grpc.wechaty.puppet import MessageType
from wechaty_puppet import FileBox, PuppetOptions
from wechaty_puppet_service import PuppetService

TEXT = MessageType.MESSAGE_TYPE_TEXT
# Its INFO/WARNING lines ("there are endpoint and token ...") repeat on every reconnect;
# the adapter logs what matters itself.
logging.getLogger("PuppetService").setLevel(logging.ERROR)
WECHATY_VERSION = getattr(wechaty, "__version__", "?")

__all__ = [
    "TEXT",
    "Channel",
    "FileBox",
    "GRPCError",
    "PuppetOptions",
    "PuppetService",
    "PuppetStub",
    "StreamTerminatedError",
]
