"""Tell the client one line in the response itself (e.g. "web search is not available on route glm").

The line becomes the first text block of an Anthropic message: for a whole JSON message it is put
first in `content`; for an event stream three events (block start, delta, stop) are sent right after
`message_start` and every later block index moves up by one. Claude Code shows it, and where the
request was its web-search step, the line is what the main conversation reads as the search result.
"""

from __future__ import annotations

import json
import re
from typing import Any

_EVENT_END = re.compile(rb"\r?\n\r?\n")


def add_to_message(body: bytes, notice: str) -> bytes:
    """Put the notice first in a JSON Anthropic message (anything else is returned unchanged)."""
    try:
        data = json.loads(body)
    except ValueError:
        return body
    if not isinstance(data, dict) or data.get("type") != "message" or not isinstance(data.get("content"), list):
        return body
    data["content"] = [{"type": "text", "text": notice + "\n\n"}, *data["content"]]
    return json.dumps(data).encode()


def message_with_notice(message: dict[str, Any], notice: str) -> dict[str, Any]:
    """The same for a parsed message."""
    return {**message, "content": [{"type": "text", "text": notice + "\n\n"}, *(message.get("content") or [])]}


class StreamNotice:
    """Rewrite an Anthropic event stream so that its first content block is the notice."""

    def __init__(self, notice: str) -> None:
        self.notice = notice
        self.pending = b""
        self.sent = False

    def feed(self, chunk: bytes, final: bool = False) -> bytes:
        """Return the complete events of chunk (plus what was held back), rewritten."""
        data = self.pending + chunk
        ends = [m.end() for m in _EVENT_END.finditer(data)]
        cut = len(data) if final else (ends[-1] if ends else 0)
        ready, self.pending = data[:cut], data[cut:]
        out, start = [], 0
        for end in [e for e in ends if e <= cut] + ([cut] if final and cut not in ends and cut > 0 else []):
            out.append(self._event(ready[start:end]))
            start = end
        return b"".join(out)

    def _event(self, raw: bytes) -> bytes:
        lines = raw.strip(b"\r\n").split(b"\n")
        data_lines = [ln[5:].strip() for ln in lines if ln.startswith(b"data:")]
        try:
            payload = json.loads(b"".join(data_lines)) if data_lines else None
        except ValueError:
            payload = None
        if not isinstance(payload, dict):
            return raw
        if payload.get("type") == "message_start" and not self.sent:
            self.sent = True
            return raw + self._notice_events()
        if self.sent and isinstance(payload.get("index"), int):
            payload["index"] += 1
            kept = [ln for ln in lines if not ln.startswith(b"data:")]
            return b"\n".join([*kept, b"data: " + json.dumps(payload).encode()]) + b"\n\n"
        return raw

    def _notice_events(self) -> bytes:
        def event(kind: str, **fields: Any) -> bytes:
            return f"event: {kind}\ndata: ".encode() + json.dumps({"type": kind, **fields}).encode() + b"\n\n"

        delta = {"type": "text_delta", "text": self.notice + "\n\n"}
        return (
            event("content_block_start", index=0, content_block={"type": "text", "text": ""})
            + event("content_block_delta", index=0, delta=delta)
            + event("content_block_stop", index=0)
        )
