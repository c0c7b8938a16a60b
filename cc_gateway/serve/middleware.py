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
import functools
import gzip
import json
import logging
import os
import re
import time
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from typing import Any

from cc_gateway.runtime import auth, context, exposure, team
from cc_gateway.serve.litellm import tokens
from cc_gateway.serve.notice import StreamNotice, add_to_message
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
_ANTHROPIC_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    408: "timeout_error",
    413: "request_too_large",
    429: "rate_limit_error",
    529: "overloaded_error",
}
_OPENAI_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    413: "invalid_request_error",
    429: "rate_limit_error",
    503: "service_unavailable",
}


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


def is_anthropic_path(path: str) -> bool:
    """Tell whether a path speaks Anthropic's messages API."""
    return "/messages" in path and "/chat/" not in path


def error_body(anthropic: bool, status: int, message: str, etype: str | None = None) -> bytes:
    """Build an error body in the caller's format."""
    if anthropic:
        kind = etype if etype in _ANTHROPIC_TYPES.values() else _ANTHROPIC_TYPES.get(status, "api_error")
        return json.dumps({"type": "error", "error": {"type": kind, "message": message}}).encode()
    kind = etype or _OPENAI_TYPES.get(status, "api_error")
    return json.dumps({"error": {"message": message, "type": kind, "param": None, "code": str(status)}}).encode()


async def send_json(send: Send, status: int, payload: Any, headers: list | None = None) -> None:
    """Send a complete JSON response."""
    body = json.dumps(payload).encode()
    start = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()), *(headers or [])]
    await send({"type": "http.response.start", "status": status, "headers": start})
    await send({"type": "http.response.body", "body": body, "more_body": False})


async def send_error(send: Send, anthropic: bool, status: int, message: str, headers: list | None = None) -> None:
    """Send a complete JSON error response."""
    body = error_body(anthropic, status, message)
    raw = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": raw + (headers or [])})
    await send({"type": "http.response.body", "body": body, "more_body": False})


def reshape_error(body: bytes, anthropic: bool, status: int) -> bytes:
    """Rewrite LiteLLM's error body into the caller's format (keeps the message)."""
    try:
        data = json.loads(body)
    except ValueError:
        return error_body(anthropic, status, body.decode("utf-8", "replace").strip() or f"HTTP {status}")
    if not isinstance(data, dict):
        return error_body(anthropic, status, str(data))
    if data.get("type") == "error" and anthropic:
        return body
    err = data.get("error", data)
    if isinstance(err, dict):
        message = str(err.get("message") or err.get("detail") or json.dumps(err))
    else:
        message = str(err if "error" in data else data.get("detail", data))
    return error_body(anthropic, status, message)


def _error_message(body: bytes, limit: int = 200) -> str:
    """The message of an error body (either format), on one line and at most `limit` characters."""
    try:
        data = json.loads(body)
        error = data.get("error", data) if isinstance(data, dict) else data
        message = str(error.get("message") or "") if isinstance(error, dict) else str(error)
    except ValueError:
        message = body.decode("utf-8", "replace")
    message = " ".join(message.split())
    return message if len(message) <= limit else message[: limit - 1] + "…"


@functools.cache
def _secret_bytes() -> tuple[bytes, ...]:
    from cc_gateway.core.secrets import secret_values  # the same list serve's log redaction uses

    found = {s.encode() for s in secret_values(dict(os.environ)) if len(s) >= 6}
    return tuple(sorted(found, key=len, reverse=True))


def scrub_secrets(body: bytes) -> bytes:
    """Replace every configured key, token and secret in a response body with [redacted]."""
    for secret in _secret_bytes():
        if secret in body:
            body = body.replace(secret, b"[redacted]")
    return body


def _decoded(body: bytes, headers: list) -> bytes:
    """Undo LiteLLM's gzip (it compresses bodies of 500 bytes or more) so an error can be reshaped."""
    encoding = next((v for k, v in headers if k.lower() == b"content-encoding"), b"")
    if encoding.strip().lower() != b"gzip":
        return body
    try:
        return gzip.decompress(body)
    except (OSError, EOFError):
        return body


_EVENT_END = re.compile(rb"\r?\n\r?\n")
_DONE_EVENT = re.compile(rb"data: \[DONE\]\r?\n(\r?\n)?")


def _well_formed(event: bytes) -> bool:
    """Whether every `data:` line of an SSE event is JSON (or [DONE])."""
    for line in event.splitlines():
        if line.startswith(b"data:"):
            payload = line[5:].strip()
            if payload and payload != b"[DONE]":
                try:
                    json.loads(payload)
                except ValueError:
                    return False
    return True


class _StreamGuard:
    """Watch an SSE response for its terminator; supply an error event if it ends without one."""

    def __init__(self, anthropic: bool) -> None:
        self.anthropic = anthropic
        self.done = False
        self.tail = b""
        self.pending = b""  # an incomplete trailing event, held until its end arrives (Anthropic streams)
        self.malformed = False
        self.broken = False  # the gateway ended the stream with an error event
        self.errored = False  # an error event was forwarded (OpenAI-format streams)

    def complete_events(self, chunk: bytes, final: bool) -> bytes:
        """Return the complete, well-formed events to forward now (Anthropic streams are checked).

        LiteLLM passes an Anthropic upstream's stream through byte for byte, so a `data:` line that
        is not JSON would reach the client, followed by a normal `message_stop`. The events before
        it are returned and `malformed` is set; the caller ends the stream with an error event.
        """
        if not self.anthropic:
            return chunk
        data = self.pending + chunk
        ends = [m.end() for m in _EVENT_END.finditer(data)]
        cut = len(data) if final else (ends[-1] if ends else 0)
        ready, self.pending = data[:cut], data[cut:]
        start = 0
        for end in [e for e in ends if e <= cut] + ([cut] if final and cut not in ends else []):
            if not _well_formed(ready[start:end]):
                self.malformed = True
                return ready[:start]
            start = end
        return ready

    def drop_done_after_error(self, body: bytes) -> bytes:
        """Remove a `data: [DONE]` that follows an error event: LiteLLM 1.110 sends one after the error
        that ends a cut chat stream, and a client that trusts [DONE] would take the cut answer as whole."""
        if self.anthropic:
            return body
        at = 0 if self.errored else body.find(b'data: {"error"')
        if at < 0:
            return body
        self.errored = True
        return body[:at] + _DONE_EVENT.sub(b"", body[at:])

    def feed(self, chunk: bytes) -> None:
        """Scan a body chunk (keeping a small tail so a marker split across chunks is seen)."""
        window = self.tail + chunk
        markers = (b"message_stop", b"event: error") if self.anthropic else (b"[DONE]", b'{"error"')
        if any(m in window for m in markers):
            self.done = True
        self.tail = window[-32:]

    def closing_event(self, reason: str) -> bytes:
        """The SSE event that tells the client the stream broke."""
        self.broken = True
        if self.anthropic:
            payload = {"type": "error", "error": {"type": "api_error", "message": reason}}
            return b"event: error\ndata: " + json.dumps(payload).encode() + b"\n\n"
        payload = {"error": {"message": reason, "type": "api_error", "code": "502"}}
        return b"data: " + json.dumps(payload).encode() + b"\n\n"


def message_events(message: dict[str, Any]) -> bytes:
    """Render a complete Anthropic message as the SSE events a stream of it would have had."""

    def event(kind: str, **fields: Any) -> bytes:
        return f"event: {kind}\ndata: ".encode() + json.dumps({"type": kind, **fields}).encode() + b"\n\n"

    usage = message.get("usage") or {}
    start = {**message, "content": [], "stop_reason": None, "stop_sequence": None}
    parts = [event("message_start", message={**start, "usage": {**usage, "output_tokens": 0}})]
    for index, block in enumerate(message.get("content") or []):
        kind = block.get("type")
        if kind == "text":
            empty, delta = {"type": "text", "text": ""}, {"type": "text_delta", "text": block.get("text", "")}
        elif kind == "thinking":
            empty = {"type": "thinking", "thinking": "", "signature": ""}
            delta = {"type": "thinking_delta", "thinking": block.get("thinking", "")}
        elif kind == "tool_use":
            empty = {**block, "input": {}}
            delta = {"type": "input_json_delta", "partial_json": json.dumps(block.get("input") or {})}
        else:
            empty, delta = block, None
        parts.append(event("content_block_start", index=index, content_block=empty))
        if delta is not None:
            parts.append(event("content_block_delta", index=index, delta=delta))
        if kind == "thinking" and block.get("signature"):
            signature = {"type": "signature_delta", "signature": block["signature"]}
            parts.append(event("content_block_delta", index=index, delta=signature))
        parts.append(event("content_block_stop", index=index))
    stop = {"stop_reason": message.get("stop_reason") or "end_turn", "stop_sequence": message.get("stop_sequence")}
    parts += [event("message_delta", delta=stop, usage=usage), event("message_stop")]
    return b"".join(parts)


async def _send_as_events(send: Send, start: Message, body: bytes) -> None:
    """Send a whole JSON message as an SSE stream (or unchanged, if it is not a message)."""
    try:
        data = json.loads(body)
    except ValueError:
        data = None
    dropped = (b"content-length", b"content-type", b"content-encoding")
    headers = [(k, v) for k, v in start["headers"] if k.lower() not in dropped]
    if isinstance(data, dict) and data.get("type") == "message":
        body, content_type = message_events(data), b"text/event-stream"
    else:
        content_type = b"application/json"
    headers += [(b"content-type", content_type), (b"content-length", str(len(body)).encode())]
    await send({**start, "headers": headers})
    await send({"type": "http.response.body", "body": body, "more_body": False})


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
        self.guard: _StreamGuard | None = None
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
            self.guard = _StreamGuard(self.anthropic)
            self.owner.drain.streams.add(self.task)
        await self.downstream(self.start)

    async def _on_body(self, message: Message) -> None:
        more = message.get("more_body", False)
        if self.mode in (Mode.TO_EVENTS, Mode.NOTICE):
            self.buffer += message.get("body", b"")
            if more:
                return
            body = _decoded(bytes(self.buffer), self.start["headers"])
            if self.info.notice:
                body = add_to_message(body, self.info.notice)
            if self.mode is Mode.NOTICE:
                await self._send_whole(body)
            else:
                await _send_as_events(self.downstream, self.start, body)
        elif self.mode is Mode.ERROR:
            self.buffer += message.get("body", b"")
            if not more:
                await self._send_error_body()
        elif self.mode is Mode.STREAM:
            if self.info.request_id:
                team.stream_chunk(self.info, message.get("body", b""))
            if self.notice is not None:
                message = {**message, "body": self.notice.feed(message.get("body", b""), final=not more)}
            await _send_guarded(message, self.guard, self.downstream)
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
            body = reshape_error(_decoded(bytes(self.buffer), start["headers"]), self.anthropic, start["status"])
        body = scrub_secrets(body)  # an upstream may quote the credential it refused
        self.info.error = _error_message(body)
        await self._send_whole(body, start, extra)

    async def _send_whole(self, body: bytes, start: Message | None = None, extra: list | tuple = ()) -> None:
        """Send a complete JSON body with the start's status and headers (length and encoding redone)."""
        start = start or self.start
        dropped = (b"content-length", b"content-type", b"content-encoding")
        headers = [(k, v) for k, v in start["headers"] if k.lower() not in dropped]
        headers += [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()), *extra]
        await self.downstream({**start, "headers": headers})
        await self.downstream({"type": "http.response.body", "body": body, "more_body": False})


async def _send_guarded(message: Message, guard: _StreamGuard, send: Send) -> None:
    """Forward a stream's body, ending it with an error event if it breaks or ends unfinished."""
    more = message.get("more_body", False)
    if guard.malformed:
        return  # the stream was already ended: drop what LiteLLM still sends
    body = guard.complete_events(message.get("body", b""), final=not more)
    if b"error" in body or guard.errored:  # a mid-stream error event may quote the upstream's error text
        body = guard.drop_done_after_error(scrub_secrets(body))
    guard.feed(body)
    reason = None
    if guard.malformed:
        reason = "the upstream sent malformed stream data"
    elif not more and not guard.done:
        reason = "the upstream stream ended before it was complete"
    if reason is None:
        await send({**message, "body": body})
        return
    guard.done = True
    await send({"type": "http.response.body", "body": body + guard.closing_event(reason), "more_body": False})
