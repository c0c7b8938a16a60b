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
import hashlib
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


# --------------------------------------------------------------------------- validating and applying an edit


def snapshot(config_path: Path) -> tuple[Fingerprint, str]:
    """The files' fingerprint and the config text it was taken from (read once: what workers load)."""
    try:
        raw = config_path.read_bytes()
    except OSError:
        raw = b""
    config = hashlib.sha256(raw).hexdigest() if raw else ""
    return Fingerprint(config, digest(config_path.parent / ".env")), raw.decode("utf-8", "replace")


def fingerprint_of(gateway: Any) -> Fingerprint:
    """Pin the config text a gateway's workers will load and return the files' fingerprint."""
    from cc_gateway.serve.litellm import pinned_config

    fingerprint, text = snapshot(gateway.config_path)
    pinned_config.pin(gateway.config_path, text)
    return fingerprint


@dataclass
class Plan:
    """A validated edit, ready to be applied by forking new workers."""

    fingerprint: Fingerprint
    text: str  # the config.yaml text validated (what the new workers load)
    pre: Any  # the new Preflight
    restart_needed: list[str]
    changed: list[str]  # file names


@dataclass
class Reloader:
    """The supervisor's side of a reload: validate an edit, apply it to the environment, or refuse it."""

    pre: Any  # the Preflight the running workers use
    layer: EnvLayer
    loaded: Loaded
    watch: FileWatch
    _previous: tuple | None = None
    status: dict[str, Any] = field(default_factory=lambda: {"refused": None, "restart_needed": []})

    @classmethod
    def start(cls, pre: Any, loaded: Loaded) -> Reloader:
        """The reloader of a gateway that has just passed preflight."""
        layer = EnvLayer(os.environ, pre.env_from_file)
        return cls(pre, layer, loaded, FileWatch(pre.gateway.config_path, loaded.fingerprint))

    def poll(self, *, asked: bool) -> Fingerprint | None:
        """A settled change of the files (the watch), or the files as they are when SIGHUP asked."""
        if asked:
            return self.watch.poll(force=True)
        return self.watch.poll() if self.loaded.mode == "watch" else None

    def prepare(self) -> Plan | None:
        """Validate the files with serve's start-up checks; None (logged, noted for doctor) when refused."""
        from cc_gateway.core.errors import GatewayError
        from cc_gateway.gateway.folder import load_gateway
        from cc_gateway.serve.preflight import Preflight, check

        options = self.pre.options
        fingerprint, text = snapshot(self.pre.gateway.config_path)
        try:
            gateway = load_gateway(config=self.pre.gateway.config_path)
            gateway.env = self.layer.layered(gateway.env_file)
            pre = Preflight(gateway, options, self.pre.port, self.pre.url)
            check(pre)
        except GatewayError as exc:
            self.refuse(fingerprint, f"{exc}" + (f" ({exc.hint})" if exc.hint else ""))
            return None
        restart = []
        if options.port is None and gateway.port != self.pre.port:
            restart.append(f"CC_GATEWAY_PORT={gateway.port} in .env (it listens on {self.pre.port})")
        if pre.workers < self.pre.workers:
            self.refuse(fingerprint, f"{pre.workers_reason}, and {self.pre.workers} run: restart `cc-gateway serve`")
            return None
        if pre.workers > self.pre.workers:
            restart.append(f"{pre.workers_reason} ({self.pre.workers} run now)")
        if snapshot(self.pre.gateway.config_path)[0] != fingerprint:
            return None  # written to while being checked: the watch sees it again once it settles
        pre.workers, pre.workers_reason = self.pre.workers, self.pre.workers_reason
        changed = [
            self.pre.gateway.config_path.name if k == "config" else ".env"
            for k in fingerprint.changed(self.loaded.fingerprint)
        ]
        return Plan(fingerprint, text, pre, restart, changed)

    def refuse(self, fingerprint: Fingerprint, reason: str) -> None:
        """Log a refused edit, remember it (not retried until the files change again) and tell doctor."""
        log.error("reload refused: %s; the old config keeps serving", reason)
        self.watch.ignored.add(fingerprint)
        self.watch.applied = self.loaded.fingerprint
        refused = {"config": fingerprint.config, "env": fingerprint.env, "reason": reason}
        self._note(refused=refused)

    def commit(self, plan: Plan) -> None:
        """Make the environment and the loaded fingerprint the ones the next workers start from."""
        from cc_gateway.serve.litellm import pinned_config
        from cc_gateway.serve.logs import configure_logging
        from cc_gateway.serve.preflight import export

        self._previous = (dict(os.environ), list(self.layer.from_file), self.loaded.fingerprint, self.pre, self._text())
        pinned_config.pin(plan.pre.gateway.config_path, plan.text)
        self.layer.apply(plan.pre.gateway.env_file, os.environ)
        export(plan.pre.gateway)
        configure_logging(plan.pre.options.log_level, dict(os.environ))  # redact the new secrets too
        self.loaded.fingerprint = plan.fingerprint
        self.pre = plan.pre
        self.watch.applied = plan.fingerprint

    def rollback(self, reason: str) -> None:
        """The new workers did not start: back to what the old ones run, the edit refused."""
        if self._previous is None:
            return
        from cc_gateway.serve.litellm import pinned_config

        environ, from_file, fingerprint, pre, text = self._previous
        refused = self.loaded.fingerprint
        os.environ.clear()
        os.environ.update(environ)
        pinned_config.pin(pre.gateway.config_path, text)
        self.layer.from_file, self.loaded.fingerprint, self.pre = from_file, fingerprint, pre
        self._previous = None
        self.refuse(refused, reason)

    def done(self, plan: Plan) -> None:
        """Every new worker serves: record what could not be applied."""
        self._previous = None
        restart_for = [plan.fingerprint.config, plan.fingerprint.env]
        self._note(restart_needed=plan.restart_needed, restart_for=restart_for)
        for note in plan.restart_needed:
            log.warning("restart `cc-gateway serve` to apply: %s", note)

    def _text(self) -> str:
        from cc_gateway.serve.litellm import pinned_config

        return pinned_config.pinned(self.pre.gateway.config_path)

    def _note(self, **fields: Any) -> None:
        self.status.update(fields)
        if "restart_needed" in fields:
            self.status["refused"] = None  # an edit was applied: no refusal stands
        if self.loaded.shared is not None:
            self.loaded.shared.write(self.status)
