"""Applying an edited config.yaml/.env to a running gateway, and saying what each worker loaded.

Decided triggers: the supervisor polls the two files (stat every 0.5 s, SHA-256 when the stat
changes, acted on once the content has stayed the same for one more poll: an editor's or
`add-model`'s writes settle first), and SIGHUP asks for a check at once. `serve --no-reload` turns
the watch off (SIGHUP still works). No new dependency.

A reload validates first, in the supervisor, with the checks `serve` runs at start-up (the file's
line on a parse error); a refused edit is logged and the old workers keep serving. Then the
supervisor forks a new generation of workers (same slots, same listening sockets), and only when
every new worker is ready does it retire the old ones: they stop accepting, answer the requests
already on their connections with `Connection: close`, let their streams finish, and exit.
What a reload cannot apply (the port, fewer workers) is reported as "restart needed".
"""

from __future__ import annotations

import contextlib
import json
import logging
import mmap
import os
import struct
import time
from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cc_gateway.gateway.fingerprint import LOADED_PATH, Fingerprint, digest

log = logging.getLogger("cc_gateway.serve")

POLL_SECONDS = 0.5


# --------------------------------------------------------------------------- .env layered under the environment


class EnvLayer:
    """The process environment serve started with, and the names .env added on top of it.

    The environment wins over .env (as at start-up): a reload changes, adds and removes only the
    names .env supplied, never one the user exported.
    """

    def __init__(self, environ: Mapping[str, str], from_file: list[str]) -> None:
        self.base = {k: v for k, v in environ.items() if k not in from_file}
        self.from_file = list(from_file)

    def layered(self, file_values: Mapping[str, str]) -> dict[str, str]:
        """The environment a worker would get with these .env values."""
        merged = dict(self.base)
        for name, value in file_values.items():
            merged.setdefault(name, value)
        return merged

    def apply(self, file_values: Mapping[str, str], environ: MutableMapping[str, str]) -> None:
        """Make `environ` hold the base environment plus these .env values."""
        for name in self.from_file:
            if name not in file_values:
                environ.pop(name, None)
        self.from_file = [k for k in file_values if k not in self.base]
        for name in self.from_file:
            environ[name] = file_values[name]


# --------------------------------------------------------------------------- the supervisor's notes, shared with workers


class SharedStatus:
    """A small JSON document the supervisor writes and every worker reads (anonymous shared memory).

    Created before the first fork, so that every worker maps the same pages. One writer; readers
    retry while a write is in progress (a sequence number, odd while writing).
    """

    SIZE = 1 << 16
    _HEAD = struct.Struct("<II")  # sequence, length

    def __init__(self) -> None:
        self.buffer = mmap.mmap(-1, self.SIZE)
        self.sequence = 0
        self.write({})

    def write(self, data: Mapping[str, Any]) -> None:
        """Replace the document (supervisor only)."""
        body = json.dumps(data).encode()[: self.SIZE - self._HEAD.size]
        self.sequence += 1
        self._HEAD.pack_into(self.buffer, 0, self.sequence, 0)
        self.buffer[self._HEAD.size : self._HEAD.size + len(body)] = body
        self.sequence += 1
        self._HEAD.pack_into(self.buffer, 0, self.sequence, len(body))

    def read(self) -> dict[str, Any]:
        """The current document ({} if it could not be read consistently)."""
        for _ in range(100):
            before, length = self._HEAD.unpack_from(self.buffer, 0)
            body = bytes(self.buffer[self._HEAD.size : self._HEAD.size + length])
            after, _ = self._HEAD.unpack_from(self.buffer, 0)
            if before == after and not before % 2:
                with contextlib.suppress(ValueError):
                    return json.loads(body) if body else {}
            time.sleep(0.001)
        return {}


# --------------------------------------------------------------------------- what this worker loaded


@dataclass
class Loaded:
    """What the workers forked next start from (set in the supervisor before each fork)."""

    config_path: Path
    fingerprint: Fingerprint
    mode: str  # "watch", "signal" (SIGHUP only) or "off" (this platform cannot fork workers)
    generation: int = 0
    shared: SharedStatus | None = None

    def answer(self) -> dict[str, Any]:
        """The /cc-gateway/loaded document."""
        return {
            "pid": os.getpid(),
            "generation": self.generation,
            "config": {"path": str(self.config_path), "sha256": self.fingerprint.config},
            "env": {"path": str(self.config_path.parent / ".env"), "sha256": self.fingerprint.env},
            "reload": self.mode,
            "status": self.shared.read() if self.shared else {},
        }


class LoadedEndpoint:
    """ASGI: answer GET /cc-gateway/loaded (any accepted key); pass everything else on."""

    def __init__(self, app: Any, loaded: Loaded) -> None:
        self.app = app
        self.loaded = loaded

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["path"] != LOADED_PATH:
            await self.app(scope, receive, send)
            return
        from cc_gateway.runtime import auth

        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        if auth.identify(headers) is None:
            status, body = 401, {"error": {"message": f"{LOADED_PATH} needs a gateway key", "type": "auth_error"}}
        else:
            status, body = 200, self.loaded.answer()
        raw = json.dumps(body).encode()
        head = [(b"content-type", b"application/json"), (b"content-length", str(len(raw)).encode())]
        await send({"type": "http.response.start", "status": status, "headers": head})
        await send({"type": "http.response.body", "body": raw, "more_body": False})


# --------------------------------------------------------------------------- watching the files


@dataclass
class FileWatch:
    """Poll config.yaml and .env; report a settled content change (not a half-written file)."""

    config_path: Path
    applied: Fingerprint
    interval: float = POLL_SECONDS
    _stats: tuple = ()
    _candidate: Fingerprint | None = None
    _next: float = 0.0
    ignored: set[Fingerprint] = field(default_factory=set)  # refused contents: retried only once changed again

    def __post_init__(self) -> None:
        self._stats = self._stat()

    def _stat(self) -> tuple:
        found = []
        for path in (self.config_path, self.config_path.parent / ".env"):
            try:
                st = path.stat()
                found.append((st.st_mtime_ns, st.st_size, st.st_ino))
            except OSError:
                found.append(None)
        return tuple(found)

    def poll(self, *, force: bool = False) -> Fingerprint | None:
        """Return the files' new fingerprint once a change has settled (force: check now, skip settling)."""
        now = time.monotonic()
        if not force and now < self._next:
            return None
        self._next = now + self.interval
        stats = self._stat()
        if not force and stats == self._stats and self._candidate is None:
            return None
        self._stats = stats
        current = Fingerprint(digest(self.config_path), digest(self.config_path.parent / ".env"))
        if force:
            self._candidate = None
            return current
        if current == self.applied or current in self.ignored:
            self._candidate = None
            return None
        if current != self._candidate:
            self._candidate = current  # seen once: act when the next poll sees the same bytes
            return None
        self._candidate = None
        return current
