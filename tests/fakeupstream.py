"""A scriptable fake LLM provider speaking OpenAI chat, OpenAI Responses and Anthropic messages.

Start it in-process (``FakeUpstream().start()``) or as a separate process
(``python tests/fakeupstream.py --port 9999 --chunks 64 --chunk-delay-ms 20``).
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import socket
import struct
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

GENERATION_APIS = ("chat", "responses", "messages")

_ROUTES = (
    ("POST", "/chat/completions", "chat"),
    ("POST", "/responses", "responses"),
    ("POST", "/messages/count_tokens", "count_tokens"),
    ("POST", "/messages", "messages"),
    ("GET", "/models", "models"),
)

_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    529: "overloaded_error",
}

_IN_PROGRESS = {
    "message": {"content": [], "status": "in_progress"},
    "reasoning": {"summary": [], "status": "in_progress"},
    "function_call": {"arguments": "", "status": "in_progress"},
}

_EMPTY = {"text": {"text": ""}, "thinking": {"thinking": "", "signature": ""}, "tool_use": {"input": {}}}

Event = tuple[bytes, bool]  # (bytes to send, whether it carries generated content)


@dataclass(frozen=True)
class Received:
    """One request as the fake upstream received it."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes
    json: Any
    api: str | None

    def get(self, key: str, default: Any = None) -> Any:
        """Return a top-level field of the JSON body, or `default`."""
        return self.json.get(key, default) if isinstance(self.json, dict) else default

    @property
    def model(self) -> str:
        """The requested model name ("" if none)."""
        return self.get("model") or ""

    @property
    def stream(self) -> bool:
        """Whether the client asked for a streamed (SSE) response."""
        return bool(self.get("stream"))

    @property
    def tool_names(self) -> list[str]:
        """Names of the tools the request offers, in any of the three API formats."""
        tools = self.get("tools") or []
        return [tool.get("name") or tool.get("function", {}).get("name") for tool in tools]

    def tool_result(self) -> str | None:
        """Text of the tool result in the request's last message, or None if it has none."""
        items = self.get("messages") or self.get("input")
        if not isinstance(items, list) or not items or not isinstance(items[-1], dict):
            return None
        last = items[-1]
        if last.get("role") == "tool":
            return _text_of(last.get("content"))
        if last.get("type") == "function_call_output":
            return _text_of(last.get("output"))
        content = last.get("content") if last.get("role") == "user" else None
        if not isinstance(content, list):
            return None
        results = [block for block in content if isinstance(block, dict) and block.get("type") == "tool_result"]
        return _text_of(results[-1].get("content")) if results else None


@dataclass(frozen=True)
class Reply:
    """A successful response: thinking, text and/or one tool call, optionally chunked and glitched."""

    text: str = ""
    tool: str | None = None
    input: dict = field(default_factory=dict)
    tool_id: str | None = None
    thinking: str | None = None
    signature: str = "fake-signature"
    chunks: int = 1
    chunk_delay: float = 0.0
    delay: float = 0.0
    mid_stream: str | None = None  # "reset" | "stall" | "malformed", applied after the first content chunk
    stall: float | None = None  # seconds a "stall" lasts before the stream resumes; None = until stop()
    cache_read: int = 0  # Anthropic usage: cache_read_input_tokens reported
    cache_write: int = 0  # Anthropic usage: cache_creation_input_tokens reported

    @property
    def has_text(self) -> bool:
        """Whether the reply has a text block (always, unless it is a bare tool call)."""
        return bool(self.text) or not self.tool

    @property
    def arguments(self) -> str:
        """The tool input as the JSON string sent over the wire."""
        return json.dumps(self.input)

    @property
    def output_tokens(self) -> int:
        """A rough output token count."""
        return _tokens((self.thinking or "") + self.text + (self.arguments if self.tool else ""))

    @staticmethod
    def tool_then_text(tool: str, input: dict, final: str = "{result}", **options: Any) -> Callable[[Received], Reply]:
        """A script calling `tool`, then answering `final` with "{result}" replaced by the tool result."""

        def respond(received: Received) -> Reply:
            result = received.tool_result()
            if result is not None:
                return Reply(text=final.replace("{result}", result), **options)
            if tool in received.tool_names:
                return Reply(tool=tool, input=input, **options)
            return Echo(options.get("chunks", 1), options.get("chunk_delay", 0.0))(received)

        return respond


@dataclass(frozen=True)
class Fault:
    """An HTTP error response; without `body`, an error object in the API's own format."""

    status: int = 500
    message: str | None = None
    body: str | bytes | dict | None = None
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0


@dataclass(frozen=True)
class Hang:
    """Accept the request, send nothing for `seconds` (None = until stop()), then drop the connection."""

    seconds: float | None = None


@dataclass(frozen=True)
class Echo:
    """The default script: a deterministic reply naming the model and API that answered."""

    chunks: int = 1
    chunk_delay: float = 0.0

    def __call__(self, received: Received) -> Reply:
        """Reply "fake reply from MODEL via API", padded so it splits into `chunks` pieces."""
        text = f"fake reply from {received.model} via {received.api}".ljust(self.chunks, ".")
        return Reply(text=text, chunks=self.chunks, chunk_delay=self.chunk_delay)


Behaviour = Reply | Fault | Hang | Callable[[Received], Reply | Fault | Hang]


@dataclass
class _Script:
    """A queued behaviour with its matching rules and remaining uses."""

    behaviour: Behaviour
    times: int | None
    model: str | None
    api: str | None

    def matches(self, received: Received) -> bool:
        """Whether this script applies to `received`."""
        api_ok = received.api == self.api if self.api else received.api in GENERATION_APIS
        return api_ok and self.model in (None, received.model)


class FakeUpstream:
    """A fake provider on a background ThreadingHTTPServer, answering from scripts."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host, self.port = host, port
        self.default: Behaviour = Echo()
        self.models = ["fake-model"]
        self._lock = threading.Lock()
        self._scripts: list[_Script] = []
        self._requests: list[Received] = []
        self._connections: set[socket.socket] = set()
        self._stopping = threading.Event()
        self._server: _Server | None = None

    @property
    def url(self) -> str:
        """Base URL, e.g. http://127.0.0.1:PORT (append /v1 for the OpenAI SDK)."""
        return f"http://{self.host}:{self.port}"

    @property
    def requests(self) -> list[Received]:
        """A snapshot of every request received so far, oldest first."""
        with self._lock:
            return list(self._requests)

    def start(self) -> FakeUpstream:
        """Bind and serve in a daemon thread; returns self."""
        self._stopping.clear()
        self._server = _Server((self.host, self.port), self)
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return self

    def stop(self) -> None:
        """Stop serving, wake sleeping handlers and close open connections."""
        self._stopping.set()
        self._server.shutdown()
        self._server.server_close()
        with self._lock:
            for connection in self._connections:
                with contextlib.suppress(OSError):
                    connection.shutdown(socket.SHUT_RDWR)

    def script(
        self, behaviour: Behaviour, times: int | None = 1, model: str | None = None, api: str | None = None
    ) -> None:
        """Answer the next `times` (None: all) matching requests; `api` None means any generation API."""
        with self._lock:
            self._scripts.append(_Script(behaviour, times, model, api))

    def reset(self) -> None:
        """Forget scripts and received requests, and restore the default Echo and model list."""
        with self._lock:
            self._scripts.clear()
            self._requests.clear()
        self.default = Echo()
        self.models = ["fake-model"]

    def __enter__(self) -> FakeUpstream:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _record(self, received: Received) -> Behaviour | None:
        """Log `received` and consume the behaviour that answers it (None: answer normally)."""
        with self._lock:
            self._requests.append(received)
            script = next((s for s in self._scripts if s.matches(received)), None)
            if script is None:
                return self.default if received.api in GENERATION_APIS else None
            if script.times is not None:
                script.times -= 1
                if script.times <= 0:
                    self._scripts.remove(script)
            return script.behaviour

    def _track(self, connection: socket.socket, open_: bool) -> None:
        """Remember or forget a client connection so stop() can close it."""
        with self._lock:
            (self._connections.add if open_ else self._connections.discard)(connection)

    def _sleep(self, seconds: float | None) -> None:
        """Sleep, waking early when the server stops."""
        self._stopping.wait(seconds)


class _Server(ThreadingHTTPServer):
    """ThreadingHTTPServer with daemon handler threads, a deep backlog and a link to its FakeUpstream."""

    daemon_threads = True
    request_queue_size = 512

    def __init__(self, address: tuple[str, int], upstream: FakeUpstream) -> None:
        super().__init__(address, _Handler)
        self.upstream = upstream

    def handle_error(self, request: object, client_address: object) -> None:
        """Report handler errors, except clients that went away."""
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    """Routes each request by path suffix and writes the scripted response."""

    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    server: _Server

    def setup(self) -> None:
        super().setup()
        self.server.upstream._track(self.connection, True)

    def finish(self) -> None:
        self.server.upstream._track(self.connection, False)
        with contextlib.suppress(OSError, ValueError):
            super().finish()

    def log_message(self, format: str, *args: Any) -> None:
        """Keep test output clean."""

    def do_GET(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def _serve(self) -> None:
        """Record the request and answer it."""
        received = self._receive()
        behaviour = self.server.upstream._record(received)
        if callable(behaviour):
            behaviour = behaviour(received)
        if isinstance(behaviour, Hang):
            self.server.upstream._sleep(behaviour.seconds)
            self.close_connection = True
        elif isinstance(behaviour, Fault):
            self._fault(received, behaviour)
        else:
            self._answer(received, behaviour)

    def _receive(self) -> Received:
        """Read the request into a Received."""
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        url = urlsplit(self.path)
        headers = {key.lower(): value for key, value in self.headers.items()}
        api = _route(self.command, url.path)
        return Received(self.command, url.path, dict(parse_qsl(url.query)), headers, body, _parse_json(body), api)

    def _answer(self, received: Received, reply: Reply | None) -> None:
        """Send the successful response for `received`'s endpoint."""
        if received.api is None:
            return self._fault(received, Fault(404, f"fakeupstream has no route {self.command} {received.path}"))
        if received.api == "models":
            return self._send_json(200, _models(self.server.upstream.models))
        if not isinstance(received.json, dict):
            return self._fault(received, Fault(400, "request body is not a JSON object"))
        if received.api == "count_tokens":
            return self._send_json(200, {"input_tokens": _count_tokens(received)})
        self.server.upstream._sleep(reply.delay)
        render = _RENDERERS[received.api]
        if received.stream:
            self._stream(render.events(reply, received), reply, render.malformed)
        else:
            self._body(render.body(reply, received), reply)

    def _fault(self, received: Received, fault: Fault) -> None:
        """Send an HTTP error response."""
        self.server.upstream._sleep(fault.delay)
        body = fault.body if fault.body is not None else _error_body(received.api, fault)
        self._send_json(fault.status, body, fault.headers)

    def _send_json(self, status: int, body: str | bytes | dict | list, headers: dict[str, str] | None = None) -> None:
        """Send a complete JSON (or raw) body with Content-Length."""
        data = _encode(body)
        self._start(status, "application/json", headers or {}, length=len(data))
        self.wfile.write(data)

    def _body(self, payload: dict, reply: Reply) -> None:
        """Send a non-streamed reply in two halves, so mid-stream glitches apply to it too."""
        data = _json_bytes(payload)
        malformed = b"{not json"
        length = len(data) + (len(malformed) if reply.mid_stream == "malformed" else 0)
        self._start(200, "application/json", {}, length=length)
        half = len(data) // 2
        self._write([(data[:half], True), (data[half:], False)], reply, malformed, chunked=False)

    def _stream(self, events: Iterable[Event], reply: Reply, malformed: bytes) -> None:
        """Send an SSE stream, chunked (or delimited by connection close for HTTP/1.0 clients)."""
        chunked = self.request_version != "HTTP/1.0"
        self._start(200, "text/event-stream", {"Cache-Control": "no-cache"}, length=None)
        self._write(events, reply, malformed, chunked)

    def _start(self, status: int, content_type: str, headers: dict[str, str], length: int | None) -> None:
        """Send the status line and headers, framing the body by length, chunks or connection close."""
        self.send_response(status)
        if "content-type" not in {key.lower() for key in headers}:
            self.send_header("Content-Type", content_type)
        for key, value in headers.items():
            self.send_header(key, value)
        if length is not None:
            self.send_header("Content-Length", str(length))
        elif self.request_version != "HTTP/1.0":
            self.send_header("Transfer-Encoding", "chunked")
        else:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()

    def _write(self, events: Iterable[Event], reply: Reply, malformed: bytes, chunked: bool) -> None:
        """Write events, pacing content chunks by `chunk_delay` and glitching after the first one."""
        seen_content = False
        for data, is_content in events:
            if is_content and seen_content:
                self.server.upstream._sleep(reply.chunk_delay)
            self._emit(data, chunked)
            if is_content and not seen_content:
                seen_content = True
                if not self._glitch(reply, malformed, chunked):
                    return
        if chunked:
            self.wfile.write(b"0\r\n\r\n")

    def _glitch(self, reply: Reply, malformed: bytes, chunked: bool) -> bool:
        """Apply the reply's mid-stream fault; returns whether the connection is still usable."""
        if reply.mid_stream == "reset":
            self._reset()
            return False
        if reply.mid_stream == "stall":
            self.server.upstream._sleep(reply.stall)
        if reply.mid_stream == "malformed":
            self._emit(malformed, chunked)
        return True

    def _emit(self, data: bytes, chunked: bool) -> None:
        """Write one piece of body, as an HTTP chunk if `chunked`."""
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data) if chunked else data)

    def _reset(self) -> None:
        """Abort the connection with a TCP RST."""
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.rfile.close()
        self.connection.close()
        self.close_connection = True


# --- OpenAI chat completions ---------------------------------------------------------------


def _chat_usage(reply: Reply, received: Received) -> dict:
    """Chat-completions usage block."""
    prompt, completion = _tokens(received.body), reply.output_tokens
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def _chat_body(reply: Reply, received: Received) -> dict:
    """A non-streamed chat.completion object."""
    content = reply.text if reply.has_text else None
    message: dict[str, Any] = {"role": "assistant", "content": content, "refusal": None}
    if reply.thinking is not None:
        message["reasoning_content"] = reply.thinking
    if reply.tool:
        function = {"name": reply.tool, "arguments": reply.arguments}
        call = {"id": reply.tool_id or _new_id("call_"), "type": "function", "function": function}
        message["tool_calls"] = [call]
    finish_reason = "tool_calls" if reply.tool else "stop"
    choice = {"index": 0, "message": message, "logprobs": None, "finish_reason": finish_reason}
    return {
        "id": _new_id("chatcmpl-"),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": received.model,
        "choices": [choice],
        "usage": _chat_usage(reply, received),
        "system_fingerprint": None,
    }


def _chat_events(reply: Reply, received: Received) -> Iterator[Event]:
    """The chat.completion.chunk stream, ending with an optional usage chunk and [DONE]."""
    head: dict[str, Any] = {"id": _new_id("chatcmpl-"), "object": "chat.completion.chunk"}
    head |= {"created": int(time.time()), "model": received.model, "system_fingerprint": None}
    with_usage = bool((received.get("stream_options") or {}).get("include_usage"))
    if with_usage:
        head["usage"] = None

    def chunk(delta: dict, finish_reason: str | None = None) -> bytes:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
        return _sse({**head, "choices": [choice]})

    yield chunk({"role": "assistant", "content": ""}), False
    if reply.thinking is not None:
        yield from ((chunk({"reasoning_content": p}), True) for p in _split(reply.thinking, reply.chunks))
    if reply.has_text:
        yield from ((chunk({"content": p}), True) for p in _split(reply.text, reply.chunks))
    if reply.tool:
        call = {"index": 0, "id": reply.tool_id or _new_id("call_"), "type": "function"}
        yield chunk({"tool_calls": [{**call, "function": {"name": reply.tool, "arguments": ""}}]}), False
        for piece in _split(reply.arguments, reply.chunks):
            yield chunk({"tool_calls": [{"index": 0, "function": {"arguments": piece}}]}), True
    yield chunk({}, "tool_calls" if reply.tool else "stop"), False
    if with_usage:
        yield _sse({**head, "choices": [], "usage": _chat_usage(reply, received)}), False
    yield b"data: [DONE]\n\n", False


# --- OpenAI Responses ----------------------------------------------------------------------


def _responses_items(reply: Reply) -> list[dict]:
    """The completed output items: reasoning, message, function_call."""
    items = []
    if reply.thinking is not None:
        summary = [{"type": "summary_text", "text": reply.thinking}]
        items.append({"type": "reasoning", "id": _new_id("rs_"), "summary": summary, "status": "completed"})
    if reply.has_text:
        content = [{"type": "output_text", "text": reply.text, "annotations": [], "logprobs": []}]
        message = {"type": "message", "id": _new_id("msg_"), "status": "completed", "role": "assistant"}
        items.append({**message, "content": content})
    if reply.tool:
        call = {"type": "function_call", "id": _new_id("fc_"), "call_id": reply.tool_id or _new_id("call_")}
        items.append({**call, "name": reply.tool, "arguments": reply.arguments, "status": "completed"})
    return items


def _responses_body(reply: Reply, received: Received) -> dict:
    """A completed Response object."""
    prompt, completion = _tokens(received.body), reply.output_tokens
    reasoning = _tokens(reply.thinking) if reply.thinking is not None else 0
    usage = {
        "input_tokens": prompt,
        "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
        "output_tokens": completion,
        "output_tokens_details": {"reasoning_tokens": reasoning},
        "total_tokens": prompt + completion,
    }
    return {
        "id": _new_id("resp_"),
        "object": "response",
        "created_at": int(time.time()),
        "status": "completed",
        "error": None,
        "incomplete_details": None,
        "instructions": received.get("instructions"),
        "max_output_tokens": received.get("max_output_tokens"),
        "model": received.model,
        "output": _responses_items(reply),
        "parallel_tool_calls": True,
        "previous_response_id": received.get("previous_response_id"),
        "reasoning": {"effort": None, "summary": None},
        "store": False,
        "temperature": 1.0,
        "text": {"format": {"type": "text"}},
        "tool_choice": "auto",
        "tools": received.get("tools") or [],
        "top_p": 1.0,
        "truncation": "disabled",
        "usage": usage,
        "user": None,
        "metadata": {},
    }


def _responses_events(reply: Reply, received: Received) -> Iterator[Event]:
    """The Responses SSE stream: created, in_progress, per-item events, completed."""
    sequence = itertools.count()

    def event(kind: str, **fields: Any) -> bytes:
        return _sse({"type": kind, "sequence_number": next(sequence), **fields}, kind)

    final = _responses_body(reply, received)
    pending = {**final, "status": "in_progress", "output": [], "usage": None}
    yield event("response.created", response=pending), False
    yield event("response.in_progress", response=pending), False
    for index, item in enumerate(final["output"]):
        yield from _responses_item_events(event, index, item, reply.chunks)
    yield event("response.completed", response=final), False


def _responses_item_events(event: Callable[..., bytes], index: int, item: dict, chunks: int) -> Iterator[Event]:
    """Events streaming one output item from added to done."""
    kind = item["type"]
    yield event("response.output_item.added", output_index=index, item={**item, **_IN_PROGRESS[kind]}), False
    ids = {"item_id": item["id"], "output_index": index}
    if kind == "message":
        ids["content_index"] = 0
        parts = "response.content_part", "response.output_text"
        yield from _part_events(event, ids, item["content"][0], *parts, chunks)
    elif kind == "reasoning":
        ids["summary_index"] = 0
        parts = "response.reasoning_summary_part", "response.reasoning_summary_text"
        yield from _part_events(event, ids, item["summary"][0], *parts, chunks)
    else:
        for piece in _split(item["arguments"], chunks):
            yield event("response.function_call_arguments.delta", **ids, delta=piece), True
        done = {"name": item["name"], "arguments": item["arguments"]}
        yield event("response.function_call_arguments.done", **ids, **done), False
    yield event("response.output_item.done", output_index=index, item=item), False


def _part_events(
    event: Callable[..., bytes], ids: dict, part: dict, part_event: str, text_event: str, chunks: int
) -> Iterator[Event]:
    """Events streaming one text part: an output_text content part or a reasoning summary part."""
    logprobs = {"logprobs": []} if part["type"] == "output_text" else {}
    yield event(f"{part_event}.added", **ids, part={**part, "text": ""}), False
    for piece in _split(part["text"], chunks):
        yield event(f"{text_event}.delta", **ids, delta=piece, **logprobs), True
    yield event(f"{text_event}.done", **ids, text=part["text"], **logprobs), False
    yield event(f"{part_event}.done", **ids, part=part), False


# --- Anthropic messages --------------------------------------------------------------------


def _messages_body(reply: Reply, received: Received) -> dict:
    """A non-streamed Anthropic Message object."""
    content: list[dict] = []
    if reply.thinking is not None:
        content.append({"type": "thinking", "thinking": reply.thinking, "signature": reply.signature})
    if reply.has_text:
        content.append({"type": "text", "text": reply.text})
    if reply.tool:
        tool_id = reply.tool_id or _new_id("toolu_")
        content.append({"type": "tool_use", "id": tool_id, "name": reply.tool, "input": reply.input})
    usage = {"input_tokens": _tokens(received.body), "cache_creation_input_tokens": reply.cache_write}
    usage["cache_read_input_tokens"] = reply.cache_read
    return {
        "id": _new_id("msg_"),
        "type": "message",
        "role": "assistant",
        "model": received.model,
        "content": content,
        "stop_reason": "tool_use" if reply.tool else "end_turn",
        "stop_sequence": None,
        "usage": usage | {"output_tokens": reply.output_tokens},
    }


def _messages_events(reply: Reply, received: Received) -> Iterator[Event]:
    """The Anthropic SSE stream: message_start, content blocks, message_delta, message_stop."""
    final = _messages_body(reply, received)
    start = {**final, "content": [], "stop_reason": None, "usage": {**final["usage"], "output_tokens": 1}}
    yield _anthropic_event("message_start", message=start), False
    yield _anthropic_event("ping"), False
    for index, block in enumerate(final["content"]):
        yield from _block_events(index, block, reply.chunks)
    delta = {"stop_reason": final["stop_reason"], "stop_sequence": None}
    yield _anthropic_event("message_delta", delta=delta, usage=final["usage"]), False
    yield _anthropic_event("message_stop"), False


def _block_events(index: int, block: dict, chunks: int) -> Iterator[Event]:
    """content_block_start, deltas and content_block_stop for one content block."""
    kind = block["type"]
    yield _anthropic_event("content_block_start", index=index, content_block={**block, **_EMPTY[kind]}), False
    delta_type, key, text = {
        "text": ("text_delta", "text", block.get("text")),
        "thinking": ("thinking_delta", "thinking", block.get("thinking")),
        "tool_use": ("input_json_delta", "partial_json", json.dumps(block.get("input"))),
    }[kind]
    for piece in _split(text, chunks):
        delta = {"type": delta_type, key: piece}
        yield _anthropic_event("content_block_delta", index=index, delta=delta), True
    if kind == "thinking":
        signature = {"type": "signature_delta", "signature": block["signature"]}
        yield _anthropic_event("content_block_delta", index=index, delta=signature), False
    yield _anthropic_event("content_block_stop", index=index), False


def _anthropic_event(kind: str, **fields: Any) -> bytes:
    """One named Anthropic SSE event."""
    return _sse({"type": kind, **fields}, kind)


@dataclass(frozen=True)
class _Renderer:
    """How one generation API renders a Reply."""

    body: Callable[[Reply, Received], dict]
    events: Callable[[Reply, Received], Iterator[Event]]
    delta_event: str | None

    @property
    def malformed(self) -> bytes:
        """A broken SSE event that the API's clients will try to decode."""
        return (f"event: {self.delta_event}\n" if self.delta_event else "").encode() + b"data: {not json\n\n"


_RENDERERS = {
    "chat": _Renderer(_chat_body, _chat_events, None),
    "responses": _Renderer(_responses_body, _responses_events, "response.output_text.delta"),
    "messages": _Renderer(_messages_body, _messages_events, "content_block_delta"),
}


# --- helpers -------------------------------------------------------------------------------


def _route(method: str, path: str) -> str | None:
    """The API a request path belongs to, matched by suffix so any prefix works."""
    path = path.rstrip("/")
    return next((api for verb, suffix, api in _ROUTES if verb == method and path.endswith(suffix)), None)


def _error_body(api: str | None, fault: Fault) -> dict:
    """An error object shaped like the API's own errors."""
    kind = _ERROR_TYPES.get(fault.status, "api_error")
    message = fault.message or f"fakeupstream fault: HTTP {fault.status}"
    if api in ("messages", "count_tokens"):
        return {"type": "error", "error": {"type": kind, "message": message}}
    return {"error": {"message": message, "type": kind, "param": None, "code": None}}


def _models(names: list[str]) -> dict:
    """A model list readable by both the OpenAI and Anthropic SDKs."""
    data = [
        {"id": name, "object": "model", "created": 0, "owned_by": "fakeupstream"}
        | {"type": "model", "display_name": name, "created_at": "2025-01-01T00:00:00Z"}
        for name in names
    ]
    first, last = (names[0], names[-1]) if names else (None, None)
    return {"object": "list", "data": data, "has_more": False, "first_id": first, "last_id": last}


def _count_tokens(received: Received) -> int:
    """A rough token count of what the model would read."""
    return _tokens(json.dumps([received.get("system"), received.get("messages"), received.get("tools")]))


def _text_of(content: Any) -> str:
    """Flatten message content (a string or a list of blocks) to text."""
    if isinstance(content, list):
        return "".join(block.get("text", "") for block in content if isinstance(block, dict))
    return "" if content is None else str(content)


def _tokens(text: str | bytes) -> int:
    """Roughly four characters per token, at least one."""
    return max(1, len(text) // 4)


def _split(text: str, chunks: int) -> list[str]:
    """Split `text` into `chunks` near-equal non-empty pieces (fewer if it is shorter)."""
    count = max(1, min(chunks, len(text)))
    return [text[i * len(text) // count : (i + 1) * len(text) // count] for i in range(count)]


def _sse(payload: dict, event: str | None = None) -> bytes:
    """Encode one SSE event."""
    return (f"event: {event}\n" if event else "").encode() + b"data: " + _json_bytes(payload) + b"\n\n"


def _encode(body: str | bytes | dict | list) -> bytes:
    """A response body as bytes: raw bytes, text, or data sent as JSON."""
    if isinstance(body, bytes):
        return body
    return body.encode() if isinstance(body, str) else _json_bytes(body)


def _json_bytes(payload: Any) -> bytes:
    """Compact JSON, as providers send it."""
    return json.dumps(payload, separators=(",", ":")).encode()


def _new_id(prefix: str) -> str:
    """A random provider-style id."""
    return prefix + uuid.uuid4().hex[:24]


def _parse_json(body: bytes) -> Any:
    """The decoded JSON body, or None."""
    try:
        return json.loads(body) if body else None
    except ValueError:
        return None


def main() -> None:
    """Serve a FakeUpstream until interrupted."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9999)
    parser.add_argument("--chunks", type=int, default=1, help="content chunks per streamed reply")
    parser.add_argument("--chunk-delay-ms", type=float, default=0.0, help="delay between content chunks")
    args = parser.parse_args()
    upstream = FakeUpstream(args.host, args.port)
    upstream.default = Echo(args.chunks, args.chunk_delay_ms / 1000)
    upstream.start()
    print(f"fakeupstream listening on {upstream.url}", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        upstream.stop()


if __name__ == "__main__":
    main()
