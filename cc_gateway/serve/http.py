"""What uvicorn (0.55, httptools) lacks for a gateway listening on a network: uvicorn-only, no LiteLLM.

Measured before this module: 1,000 connections that send half a request line were all still open
after 70 s, and a 200 KB request header was accepted. uvicorn's own knobs don't cover it:
`timeout_keep_alive` only runs *between* requests (a fresh connection has no timer at all),
`limit_concurrency` answers 503 only once a request's headers are complete (so it never sees a
connection that sends half a request line) and logs "Exceeded concurrency limit." per request,
and llhttp (httptools) has no header size limit (`h11_max_incomplete_event_size` is h11's only).

`HardenedProtocol` is uvicorn's HttpToolsProtocol with, per connection:
- a header timeout: from the connection's start (or the first byte of a later request on a
  kept-alive connection) to the end of the request headers; past it the connection is closed
  (408 first if part of a request arrived), and one line per burst is logged;
- a body read timeout: a request body that stops arriving for as long is dropped (closed);
- a header size limit: request line + headers above it get 431 and the connection is closed;
- a connection cap per worker: past it a new connection is answered 503 (Retry-After: 1) as soon
  as its headers arrive, and a line says so (once per burst, with the count);
- a `retiring` switch for a reload: every response then says `Connection: close`, so that clients
  reconnect (to the new worker) after the request in flight.
Checked against uvicorn 0.55.0 / httptools 0.9.0 (it overrides `data_received`, whose body is
uvicorn's plus the checks). `engaged(config)` tells whether uvicorn took the class; serve logs it.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import httptools
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

log = logging.getLogger("cc_gateway.http")

DEFAULT_HEADER_TIMEOUT = 10.0
DEFAULT_IDLE_TIMEOUT = 30
DEFAULT_MAX_HEADER_BYTES = 64 << 10
DEFAULT_MAX_CONNECTIONS = 1000
#: option -> (environment variable, default)
ENV = {
    "header_timeout": ("CC_GATEWAY_HEADER_TIMEOUT", DEFAULT_HEADER_TIMEOUT),
    "idle_timeout": ("CC_GATEWAY_IDLE_TIMEOUT", DEFAULT_IDLE_TIMEOUT),
    "max_header_bytes": ("CC_GATEWAY_MAX_HEADER_BYTES", DEFAULT_MAX_HEADER_BYTES),
    "max_connections": ("CC_GATEWAY_MAX_CONNECTIONS", DEFAULT_MAX_CONNECTIONS),
}
_IN_USE: list[Any] = []  # the protocol classes handed to uvicorn in this process
_REASONS = {408: b"Request Timeout", 431: b"Request Header Fields Too Large", 503: b"Service Unavailable"}


@dataclass(frozen=True)
class HttpLimits:
    """The connection limits one worker enforces."""

    header_timeout: float = DEFAULT_HEADER_TIMEOUT  # seconds to send a request's headers (and between body reads)
    idle_timeout: int = DEFAULT_IDLE_TIMEOUT  # seconds a kept-alive connection may wait for its next request
    max_header_bytes: int = DEFAULT_MAX_HEADER_BYTES  # request line + headers
    max_connections: int = DEFAULT_MAX_CONNECTIONS  # open connections per worker

    def describe(self) -> str:
        """One line for the log: the limits in force."""
        return (
            f"header timeout {self.header_timeout:g} s, idle timeout {self.idle_timeout} s, "
            f"headers up to {self.max_header_bytes // 1024} KiB, {self.max_connections} connections per worker"
        )


def resolve_limits(given: Mapping[str, float | int | None], environ: Mapping[str, str]) -> HttpLimits:
    """Flags win, then CC_GATEWAY_* variables (the process environment or .env), then the defaults.

    Raises:
        ValueError: a value that is not a positive number, naming the flag or variable.
    """
    values: dict[str, Any] = {}
    for name, (variable, default) in ENV.items():
        raw: Any = given.get(name)
        source = f"--{name.replace('_', '-')}"
        if raw is None and environ.get(variable, "").strip():
            raw, source = environ[variable].strip(), variable
        if raw is None:
            values[name] = default
            continue
        kind = float if isinstance(default, float) else int
        try:
            value = kind(raw)
        except ValueError:
            raise ValueError(f"{source}={raw!r}: expected a {'number' if kind is float else 'whole number'}") from None
        if value <= 0:
            raise ValueError(f"{source}={raw!r}: must be greater than 0")
        values[name] = value
    return HttpLimits(**values)


def raise_fd_limit(limits: HttpLimits, workers: int) -> None:
    """Lift the soft open-file limit towards the hard one so the connection cap, not EMFILE, applies first.

    Each proxied request holds a client and an upstream socket; a common soft limit is 1024.
    """
    try:
        import resource
    except ImportError:  # not POSIX
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = limits.max_connections * 2 * workers + 256
    target = wanted if hard == resource.RLIM_INFINITY else min(hard, wanted)
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError) as exc:
            log.warning("could not raise the open-file limit from %d to %d: %s", soft, target, exc)


class _BurstLog:
    """Log a repeated event as one line per window: the first at once, the rest counted into the next line."""

    def __init__(self, window: float = 10.0) -> None:
        self.window = window
        self.count = 0
        self.last = float("-inf")
        self.flush: Any = None

    def hit(self, emit: Any) -> None:
        """Count one event; emit(count) now if the window has passed, else once the window ends."""
        self.count += 1
        now = time.monotonic()
        if now - self.last >= self.window:
            self._emit(emit)
        elif self.flush is None:
            loop = asyncio.get_running_loop()
            self.flush = loop.call_later(self.last + self.window - now, self._emit, emit)

    def _emit(self, emit: Any) -> None:
        if self.flush is not None:
            self.flush.cancel()
            self.flush = None
        if self.count:
            emit(self.count)
        self.count, self.last = 0, time.monotonic()


class _Refuse(Exception):
    """A control-flow signal out of an httptools callback: answer with this status and close."""

    def __init__(self, status: int, message: str, headers: tuple[tuple[bytes, bytes], ...] = ()) -> None:
        super().__init__(message)
        self.status, self.message, self.headers = status, message, headers


def protocol_class(limits: HttpLimits) -> tuple[type, str]:
    """Return the uvicorn `http=` protocol enforcing `limits`, and the line to log about it."""
    made = type("HardenedProtocol", (HardenedHttpTools,), {"limits": limits})
    _IN_USE.append(made)
    return made, f"HTTP limits: {limits.describe()}"


class HardenedHttpTools(HttpToolsProtocol):
    """uvicorn's httptools protocol with a header timeout, a header size limit and a connection cap."""

    limits: ClassVar[HttpLimits] = HttpLimits()
    retiring: ClassVar[bool] = False  # set in a worker being replaced: responses close their connection
    timeouts: ClassVar[_BurstLog] = _BurstLog()
    oversized: ClassVar[_BurstLog] = _BurstLog()
    capped: ClassVar[_BurstLog] = _BurstLog()

    def connection_made(self, transport: Any) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._read_timer: Any = None
        self._partial = 0  # bytes of a request whose headers are not complete yet
        self._awaiting_headers = True
        self._over_cap = len(self.connections) > self.limits.max_connections
        if self._over_cap:
            cap = self.limits.max_connections
            self.capped.hit(
                lambda n: log.warning(
                    "connection cap reached: %d connections open on this worker (limit %d, "
                    "--max-connections / CC_GATEWAY_MAX_CONNECTIONS); %d new connection(s) answered 503",
                    len(self.connections),
                    cap,
                    n,
                )
            )
        self._arm(self._header_timed_out)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _arm(self, callback: Any) -> None:
        self._disarm()
        self._read_timer = self.loop.call_later(self.limits.header_timeout, callback)

    def _disarm(self) -> None:
        if self._read_timer is not None:
            self._read_timer.cancel()
            self._read_timer = None

    def data_received(self, data: bytes) -> None:
        """uvicorn's data_received, plus the header size limit and the refusals raised by callbacks."""
        self._unset_keepalive_if_required()
        began = not self._awaiting_headers
        if self._awaiting_headers:
            self._partial += len(data)
        elif self.cycle is not None and not self.cycle.response_complete and self.cycle.more_body:
            self._arm(self._body_timed_out)  # body bytes arrived: the read timeout restarts
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserCallbackError as exc:
            if isinstance(exc.__context__, _Refuse):
                self._refuse(exc.__context__)
                return
            self._invalid()
            return
        except httptools.HttpParserError:
            self._invalid()
            return
        except httptools.HttpParserUpgrade:
            if self._should_upgrade():
                self.handle_websocket_upgrade()
            else:
                self._unsupported_upgrade_warning()
            return
        if began and self._awaiting_headers:  # a later request began in this chunk
            self._partial += len(data)
        if self._awaiting_headers and self._partial > self.limits.max_header_bytes:
            self._refuse(self._too_large())

    def _invalid(self) -> None:
        message = "Invalid HTTP request received."
        self.logger.warning(message)
        self.send_400_response(message)

    def _too_large(self) -> _Refuse:
        limit = self.limits.max_header_bytes // 1024
        self.oversized.hit(lambda n: log.warning("refused %d request(s) with headers over %d KiB (431)", n, limit))
        return _Refuse(431, f"request headers are larger than the gateway's limit of {limit} KiB")

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if not self._awaiting_headers:  # a later request on a kept-alive connection
            self._awaiting_headers, self._partial = True, 0
            self._arm(self._header_timed_out)

    def on_headers_complete(self) -> None:
        self._awaiting_headers = False
        self._disarm()
        size = len(self.url) + sum(len(k) + len(v) + 4 for k, v in self.headers)
        if size > self.limits.max_header_bytes:
            raise self._too_large()
        if self._over_cap:
            raise _Refuse(503, "the gateway has too many open connections; retry shortly", ((b"retry-after", b"1"),))
        super().on_headers_complete()
        if self.cycle is not None and self.retiring:
            self.cycle.keep_alive = False  # the client reconnects, to a new worker
        if self.cycle is not None and self.cycle.more_body:
            self._arm(self._body_timed_out)

    def on_message_complete(self) -> None:
        self._disarm()
        super().on_message_complete()

    def _refuse(self, refusal: _Refuse) -> None:
        """Answer with a complete error response and close the connection."""
        self._disarm()
        body = refusal.message.encode()
        head = [b"HTTP/1.1 %d %s\r\n" % (refusal.status, _REASONS.get(refusal.status, b"Error"))]
        head += [name + b": " + value + b"\r\n" for name, value in refusal.headers]
        head += [
            b"content-type: text/plain; charset=utf-8\r\n",
            b"content-length: %d\r\n" % len(body),
            b"connection: close\r\n\r\n",
        ]
        if not self.transport.is_closing():
            self.transport.write(b"".join(head) + body)
            self.transport.close()

    def _header_timed_out(self) -> None:
        self._read_timer = None
        if self.transport.is_closing():
            return
        seconds = self.limits.header_timeout
        self.timeouts.hit(
            lambda n: log.info(
                "closed %d connection(s) that sent no complete request header within %g s "
                "(--header-timeout / CC_GATEWAY_HEADER_TIMEOUT)",
                n,
                seconds,
            )
        )
        if self._partial:
            self._refuse(_Refuse(408, "request headers not received in time"))
        else:
            self.transport.close()

    def _body_timed_out(self) -> None:
        self._read_timer = None
        if self.cycle is None or not self.cycle.more_body or self.transport.is_closing():
            return
        log.info("closed a connection whose request body stopped arriving for %g s", self.limits.header_timeout)
        self.transport.close()  # the app sees http.disconnect


def engaged(config: Any) -> bool:
    """Whether a loaded uvicorn Config serves with one of these protocol classes."""
    return getattr(config, "http_protocol_class", None) in _IN_USE


def apply_limits(limits: HttpLimits) -> None:
    """Make the connections of workers forked from now on use `limits` (a reload changed them)."""
    for cls in _IN_USE:
        cls.limits = limits


def retire_connections() -> None:
    """In a worker being replaced: from now on every response closes its connection."""
    for cls in _IN_USE:
        cls.retiring = True


def environ_limits(environ: Mapping[str, str] | None = None) -> HttpLimits:
    """The limits from the environment alone (for code that has no flags)."""
    return resolve_limits({}, os.environ if environ is None else environ)
