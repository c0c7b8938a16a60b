"""The gateway's own answers and error bodies, in the caller's API format (Anthropic on /v1/messages, OpenAI
elsewhere), with every configured secret scrubbed from what an upstream said."""

from __future__ import annotations

import functools
import gzip
import json
import os
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Message = MutableMapping[str, Any]
Send = Callable[[Message], Awaitable[None]]


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


def error_message(body: bytes, limit: int = 200) -> str:
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


def decoded(body: bytes, headers: list) -> bytes:
    """Undo LiteLLM's gzip (it compresses bodies of 500 bytes or more) so an error can be reshaped."""
    encoding = next((v for k, v in headers if k.lower() == b"content-encoding"), b"")
    if encoding.strip().lower() != b"gzip":
        return body
    try:
        return gzip.decompress(body)
    except (OSError, EOFError):
        return body
