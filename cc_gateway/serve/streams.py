"""Event streams on their way out: only complete, well-formed events are forwarded, and a stream that breaks,
is cut, or ends without its terminator gets an error event in the caller's format (never a silent end)."""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from cc_gateway.serve.responses import scrub_secrets

Message = MutableMapping[str, Any]
Send = Callable[[Message], Awaitable[None]]


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


class StreamGuard:
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


async def send_as_events(send: Send, start: Message, body: bytes) -> None:
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


async def send_guarded(message: Message, guard: StreamGuard, send: Send) -> None:
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
