"""ASGI middleware `cc-gateway serve` puts in front of LiteLLM's app.

It holds the guarantees LiteLLM's proxy does not give by itself:
- errors in the caller's API format (Anthropic-shaped on /v1/messages, OpenAI-shaped elsewhere);
- an upstream's Retry-After kept on a 429;
- a stream never ends silently: a stream that stops without its terminator gets an error event;
- a body size limit (413), a drain on shutdown (readiness 503, new work 503);
- one access-log line per request (method, path, model, route, status, latency), never a key.
"""

from __future__ import annotations

import asyncio
import enum
import json
import logging
import time
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from typing import Any

from cc_gateway.runtime import auth, context, exposure, team
from cc_gateway.serve.litellm import tokens
from cc_gateway.serve.notice import StreamNotice, add_to_message
from cc_gateway.serve.responses import (
    decoded,
    error_body,
    error_message,
    is_anthropic_path,
    reshape_error,
    scrub_secrets,
    send_error,
    send_json,
)
from cc_gateway.serve.streams import StreamGuard, send_as_events, send_guarded
from cc_gateway.team import admin as team_admin

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

log = logging.getLogger("cc_gateway.access")

READINESS = ("/health/readiness",)
HEALTH = ("/health/liveliness", "/health/liveness", "/health/readiness")
#: Claude Code's connectivity check (HEAD, or GET, on ANTHROPIC_BASE_URL + /api/hello, with no key unless
#: CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC is set): answered 200 without a key, as Anthropic's API does.
HELLO = "/api/hello"
HELLO_BODY = b'{"message":"hello"}'
COUNT_TOKENS = "/v1/messages/count_tokens"


@dataclass
class DrainState:
    """Shared by the middleware and serve's shutdown: in-flight count and the draining flag."""

    draining: bool = False
    inflight: int = 0
    idle: asyncio.Event = field(default_factory=asyncio.Event)
    streams: set[asyncio.Task] = field(default_factory=set)  # requests streaming a response right now

    def abort_streams(self) -> int:
        """Cut the streams still running when the drain ends: each gets an error event, not a bare close."""
        for task in list(self.streams):
            task.cancel()
        return len(self.streams)

    def enter(self) -> None:
        """Count a request in."""
        self.inflight += 1
        self.idle.clear()

    def leave(self) -> None:
        """Count a request out."""
        self.inflight -= 1
        if self.streams:
            self.streams.discard(asyncio.current_task())
        if self.inflight == 0:
            self.idle.set()


class GatewayMiddleware:
    """Wrap LiteLLM's ASGI app with cc-gateway's guarantees."""

    def __init__(self, app: Any, *, drain: DrainState, body_limit: int) -> None:
        self.app = app
        self.drain = drain
        self.body_limit = body_limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        anthropic = is_anthropic_path(path)
        if (self.drain.draining and path not in HEALTH) or (path in READINESS and self.drain.draining):
            await send_error(send, anthropic, 503, "the gateway is shutting down", [(b"retry-after", b"1")])
            return
        info = context.RequestInfo(method=scope["method"], path=path)
        token = context.current.set(info)
        started = time.perf_counter()
        exchange = Exchange(self, scope, send, anthropic, info)
        self.drain.enter()
        try:
            if path == HELLO and scope["method"] in ("GET", "HEAD"):
                await exchange.hello()
                return
            team.begin(info, scope["method"], scope["headers"])
            if team_admin.is_admin_path(path) and team.active() is not None:
                await self._team_admin(scope, receive, exchange)
                return
            refused = exposure.refusal(scope["method"], path, scope["headers"])
            if refused is not None:  # an admin/unused LiteLLM route without the master key, or not JSON
                await exchange.error(*refused)
                return
            receive = await self._limit_body(scope, receive, exchange)
            if receive is not None:
                await exchange.serve(receive)
        finally:
            self.drain.leave()
            context.current.reset(token)
            if path not in HEALTH:
                elapsed = (time.perf_counter() - started) * 1000
                if info.request_id:
                    guard = exchange.guard
                    cancelled = guard is not None and not guard.done
                    team.finish(info, exchange.status, elapsed, cancelled, guard is not None and guard.broken)
                log.info(
                    "%s %s model=%s route=%s rule=%s upstream=%s status=%s %.0fms%s",
                    info.method,
                    path,
                    info.model or "-",
                    info.route or "-",
                    info.rule or "-",
                    info.upstream or "-",
                    exchange.status,
                    elapsed,
                    f" error={json.dumps(info.error)}" if info.error and exchange.status >= 400 else "",
                )

    async def _team_admin(self, scope: Scope, receive: Receive, exchange: Exchange) -> None:
        """The team admin API (team/admin.py): the master key, or a person's key for their own usage."""
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        who = auth.identify(headers)
        if who is None or who == "open":
            message = f"{scope['path']} needs the gateway's master key (or your own key for {team_admin.USAGE})"
            await exchange.error(401, message)
            return
        person = team.identify(auth.presented_keys(headers)) if who == "person" else None
        caller = team_admin.Caller(master=who == "master", person=person.name if person else None)
        chunks, size, more = [], 0, True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                return
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            if size > 1 << 20:
                await exchange.error(413, "admin request bodies are limited to 1 MiB")
                return
            more = message.get("more_body", False)
        store = team.active()
        query = scope.get("query_string", b"").decode("latin-1")
        status, data = await asyncio.to_thread(
            team_admin.handle, store.url, caller, scope["method"], scope["path"], query, b"".join(chunks)
        )
        body = json.dumps(data).encode()
        exchange.status = status
        start_headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        await exchange.downstream({"type": "http.response.start", "status": status, "headers": start_headers})
        await exchange.downstream({"type": "http.response.body", "body": body, "more_body": False})

    async def _limit_body(self, scope: Scope, receive: Receive, exchange: Exchange) -> Receive | None:
        """Answer 413 for a body over the limit; return the receive callable to use (None: answered)."""
        length = dict(scope["headers"]).get(b"content-length")
        too_big = f"request body is larger than the gateway's limit of {self.body_limit // (1 << 20)} MiB"
        if length is not None and length.isdigit():
            if int(length) > self.body_limit:
                await exchange.error(413, too_big)
                return None
            return receive
        if scope["method"] not in ("POST", "PUT", "PATCH"):
            return receive
        chunks, size, more = [], 0, True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                return receive
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            more = message.get("more_body", False)
            if size > self.body_limit:
                await exchange.error(413, too_big)
                return None
        replay = [{"type": "http.request", "body": b"".join(chunks), "more_body": False}]

        async def replayed() -> Message:
            return replay.pop() if replay else await receive()

        return replayed


class Mode(enum.Enum):
    """How an exchange forwards LiteLLM's response body, decided when the response starts."""

    PASS = "pass"  # as it comes
    ERROR = "error"  # buffered, reshaped into the caller's error format, secrets scrubbed
    TO_EVENTS = "to_events"  # a whole message where a stream was asked for: sent as events
    STREAM = "stream"  # an event stream, guarded: a cut or malformed stream ends with an error event
    NOTICE = "notice"  # a whole message that gets routing's one-line notice put first


class Exchange:
    """One request's way through LiteLLM's app: its response mode, buffered parts and final status."""

    def __init__(
        self, owner: GatewayMiddleware, scope: Scope, send: Send, anthropic: bool, info: context.RequestInfo
    ) -> None:
        self.owner = owner
        self.scope = scope
        self.downstream = send
        self.anthropic = anthropic
        self.info = info
        self.status = 0
        self.mode = Mode.PASS
        self.start: Message | None = None
        self.buffer = bytearray()
        self.guard: StreamGuard | None = None
        self.notice: StreamNotice | None = None
        self.task: asyncio.Task[Any] | None = None
        self.request_body = bytearray()  # kept for count_tokens only (its local estimate)

    async def error(self, status: int, message: str, headers: list | None = None) -> None:
        """Answer with cc-gateway's own error (in the caller's format)."""
        self.status = status
        await send_error(self.downstream, self.anthropic, status, message, headers)

    async def hello(self) -> None:
        """Answer Claude Code's connectivity check."""
        self.status = 200
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(HELLO_BODY)).encode())]
        await self.downstream({"type": "http.response.start", "status": 200, "headers": headers})
        body = b"" if self.scope["method"] == "HEAD" else HELLO_BODY
        await self.downstream({"type": "http.response.body", "body": body, "more_body": False})

    async def serve(self, receive: Receive) -> None:
        """Run LiteLLM's app, reshaping errors and guarding streams on the way out."""
        self.task = asyncio.current_task()
        if self.scope["path"] == COUNT_TOKENS:
            receive = self._recording(receive)
        try:
            await self.owner.app(self.scope, receive, self.send)
        except asyncio.CancelledError:
            guard = self.guard
            if not self.owner.drain.draining or guard is None or guard.done:
                raise
            guard.done = True  # the drain ended with this stream still running: say so, then stop
            event = guard.closing_event("the gateway shut down before the stream was complete")
            await self.downstream({"type": "http.response.body", "body": event, "more_body": False})
        except Exception as exc:
            if self.start is None and self.guard is None:
                log.error("unhandled error serving %s: %s", self.scope["path"], type(exc).__name__)
                await self.error(500, f"gateway error: {type(exc).__name__}")
                return
            if self.guard is not None and not self.guard.done:
                reason = f"upstream stream failed: {type(exc).__name__}"
                body = self.guard.closing_event(reason)
                await self.downstream({"type": "http.response.body", "body": body, "more_body": False})
                return
            raise

    def _recording(self, receive: Receive) -> Receive:
        """receive, keeping a copy of the request body."""

        async def recorded() -> Message:
            message = await receive()
            if message["type"] == "http.request":
                self.request_body += message.get("body", b"")
            return message

        return recorded

    async def send(self, message: Message) -> None:
        """The `send` LiteLLM's app calls."""
        if message["type"] == "http.response.start":
            await self._on_start(message)
        elif message["type"] == "http.response.body":
            await self._on_body(message)
        else:
            await self.downstream(message)

    async def _on_start(self, message: Message) -> None:
        status, info = message["status"], self.info
        self.status = status
        headers = [(k, v) for k, v in message.get("headers", [])]
        names = {k.lower() for k, _ in headers}
        for key, value in headers:  # LiteLLM names the group and deployment that answered
            if key.lower() == b"x-litellm-model-group" and value and not info.route:
                info.route = value.decode("latin-1")
            elif key.lower() == b"x-litellm-model-name" and value and not info.upstream:
                info.upstream = value.decode("latin-1")
        if status == 429 and info.retry_after and b"retry-after" not in names:
            headers.append((b"retry-after", info.retry_after.encode()))
        if status == 429 and info.no_retry and b"x-should-retry" not in names:  # a spend limit: retrying won't help
            headers.append((b"x-should-retry", b"false"))
        content_type = next((v for k, v in headers if k.lower() == b"content-type"), b"")
        self.start = {**message, "headers": headers}
        if status >= 400 and (b"json" in content_type or not content_type):
            self.mode = Mode.ERROR
            return
        if status == 200 and self.anthropic and info.notice:  # routing's one line for the client
            headers.append((b"x-cc-gateway-notice", info.notice.encode("ascii", "replace")))
            if b"text/event-stream" in content_type:
                self.notice = StreamNotice(info.notice)
            elif b"json" in content_type and not info.stream:
                self.mode = Mode.NOTICE
                return
        if status == 200 and self.anthropic and b"json" in content_type and info.stream:
            # A stream was asked for and a whole message came back (LiteLLM's mock_response does this
            # on /v1/messages): send it as the event stream the client expects.
            self.mode = Mode.TO_EVENTS
            return
        if status == 200 and b"text/event-stream" in content_type:
            self.mode = Mode.STREAM
            self.guard = StreamGuard(self.anthropic)
            self.owner.drain.streams.add(self.task)
        await self.downstream(self.start)

    async def _on_body(self, message: Message) -> None:
        more = message.get("more_body", False)
        if self.mode in (Mode.TO_EVENTS, Mode.NOTICE):
            self.buffer += message.get("body", b"")
            if more:
                return
            body = decoded(bytes(self.buffer), self.start["headers"])
            if self.info.notice:
                body = add_to_message(body, self.info.notice)
            if self.mode is Mode.NOTICE:
                await self._send_whole(body)
            else:
                await send_as_events(self.downstream, self.start, body)
        elif self.mode is Mode.ERROR:
            self.buffer += message.get("body", b"")
            if not more:
                await self._send_error_body()
        elif self.mode is Mode.STREAM:
            if self.info.request_id:
                team.stream_chunk(self.info, message.get("body", b""))
            if self.notice is not None:
                message = {**message, "body": self.notice.feed(message.get("body", b""), final=not more)}
            await send_guarded(message, self.guard, self.downstream)
        else:
            if self.info.request_id and self.status == 200:
                team.response_chunk(self.info, message.get("body", b""), self.start["headers"], not more)
            await self.downstream(message)

    async def _send_error_body(self) -> None:
        start = self.start
        if self.scope["path"] == COUNT_TOKENS and start["status"] in tokens.UPSTREAM_COULD_NOT_COUNT:
            counted = tokens.estimate(bytes(self.request_body))
            if counted is not None:  # LiteLLM 1.110 no longer falls back to counting locally: cc-gateway does
                self.status = 200
                await send_json(self.downstream, 200, counted, [(b"x-cc-gateway-token-count", b"estimate")])
                return
        failure = self.info.failure  # runtime.failures decided the status, the words and the retry advice
        extra: list[tuple[bytes, bytes]] = []
        if failure is not None:
            start = {**start, "status": failure.status}
            self.status = failure.status
            body = error_body(self.anthropic, failure.status, failure.message, failure.etype)
            extra = [] if failure.retry else [(b"x-should-retry", b"false")]
        else:
            body = reshape_error(decoded(bytes(self.buffer), start["headers"]), self.anthropic, start["status"])
        body = scrub_secrets(body)  # an upstream may quote the credential it refused
        self.info.error = error_message(body)
        await self._send_whole(body, start, extra)

    async def _send_whole(self, body: bytes, start: Message | None = None, extra: list | tuple = ()) -> None:
        """Send a complete JSON body with the start's status and headers (length and encoding redone)."""
        start = start or self.start
        dropped = (b"content-length", b"content-type", b"content-encoding")
        headers = [(k, v) for k, v in start["headers"] if k.lower() not in dropped]
        headers += [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()), *extra]
        await self.downstream({**start, "headers": headers})
        await self.downstream({"type": "http.response.body", "body": body, "more_body": False})
