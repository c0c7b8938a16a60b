"""Turn an OpenAI chat request into what the Claude Code CLI takes: a system prompt, prior turns, a prompt.

Pure functions, no SDK import. Prior turns become a Claude Code session transcript that the CLI
resumes (`--resume`), so the upstream receives them as real user/assistant messages in their
original order, not as text pasted into one prompt.
"""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

_DATA_URL = re.compile(r"^data:(image/[a-z0-9.+-]+);base64,(.*)$", re.I | re.S)
_IMAGE_TYPES = {"image/jpeg", "image/png", "image/gif", "image/webp"}


class MessageError(ValueError):
    """The request's messages can't be answered by the bridge (becomes a 400)."""


@dataclass(frozen=True)
class Turn:
    """One prior message: role ("user" or "assistant") and Anthropic-style content."""

    role: str
    content: list[dict[str, Any]]


@dataclass(frozen=True)
class Conversation:
    """An OpenAI chat request, translated."""

    system: str | None
    history: tuple[Turn, ...]
    prompt: list[dict[str, Any]]  # content blocks of the last user message

    def key(self) -> str:
        """A stable identity of everything the CLI is started with (for the warm pool)."""
        return json.dumps([self.system, [[t.role, t.content] for t in self.history]], sort_keys=True)

    def continued(self, answer: str) -> Conversation:
        """The conversation a client will most likely send next: this one, answered."""
        turns = (*self.history, Turn("user", self.prompt), Turn("assistant", [{"type": "text", "text": answer}]))
        return Conversation(self.system, turns, [])


def translate(messages: list[dict[str, Any]]) -> Conversation:
    """Split OpenAI chat messages into system prompt, prior turns and the final user prompt."""
    system: list[str] = []
    turns: list[Turn] = []
    for index, message in enumerate(messages):
        role = message.get("role")
        where = f"messages[{index}]"
        if role in ("system", "developer"):
            system.append(_text_only(message.get("content"), where))
        elif role == "user":
            turns.append(Turn("user", _user_content(message.get("content"), where)))
        elif role == "assistant":
            if message.get("tool_calls") or message.get("function_call"):
                raise MessageError(f"{where}: tool calls are not supported: the oauth-bridge runs no tools")
            text = _text_only(message.get("content"), where)
            if text:
                turns.append(Turn("assistant", [{"type": "text", "text": text}]))
        elif role in ("tool", "function"):
            raise MessageError(f"{where}: {role} messages are not supported: the oauth-bridge runs no tools")
        else:
            raise MessageError(f"{where}: unknown role {role!r}")
    if not turns or turns[-1].role != "user":
        raise MessageError("the last message must come from the user (role 'user')")
    prompt = turns.pop().content
    return Conversation("\n\n".join(s for s in system if s) or None, tuple(turns), prompt)


def _text_only(content: Any, where: str) -> str:
    """Text of a system/assistant message (a string or a list of text parts)."""
    if content is None or isinstance(content, str):
        return content or ""
    if isinstance(content, list):
        parts = []
        for part in content:
            if not isinstance(part, dict) or part.get("type") != "text":
                kind = part.get("type") if isinstance(part, dict) else type(part).__name__
                raise MessageError(f"{where}: content part {kind!r} is only accepted in user messages")
            parts.append(str(part.get("text", "")))
        return "".join(parts)
    raise MessageError(f"{where}: content must be a string or a list of parts")


def _user_content(content: Any, where: str) -> list[dict[str, Any]]:
    """A user message's content as Anthropic content blocks (text and images)."""
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    if not isinstance(content, list) or not content:
        raise MessageError(f"{where}: content must be a string or a non-empty list of parts")
    blocks = []
    for number, part in enumerate(content):
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text":
            blocks.append({"type": "text", "text": str(part.get("text", ""))})
        elif kind == "image_url":
            blocks.append(_image(part.get("image_url"), f"{where}.content[{number}]"))
        else:
            raise MessageError(
                f"{where}.content[{number}]: part type {kind!r} is not supported (text and image_url are)"
            )
    return blocks


def _image(image_url: Any, where: str) -> dict[str, Any]:
    """An OpenAI image_url part as an Anthropic image block (base64 data URL or http(s) URL)."""
    url = image_url.get("url") if isinstance(image_url, dict) else image_url
    if not isinstance(url, str) or not url:
        raise MessageError(f"{where}: image_url needs a url")
    match = _DATA_URL.match(url)
    if match:
        media_type = match.group(1).lower()
        if media_type not in _IMAGE_TYPES:
            raise MessageError(f"{where}: image type {media_type} is not supported (jpeg, png, gif, webp are)")
        return {"type": "image", "source": {"type": "base64", "media_type": media_type, "data": match.group(2)}}
    if url.startswith(("https://", "http://")):
        return {"type": "image", "source": {"type": "url", "url": url}}
    raise MessageError(f"{where}: image url must be a data:image/...;base64 URL or an http(s) URL")


def transcript(conversation: Conversation, *, session_id: str, cwd: str, model: str) -> str:
    """The prior turns as a Claude Code session file (JSON lines) for `--resume`."""
    lines = []
    parent = None
    stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    for turn in conversation.history:
        entry_id = str(uuid.uuid4())
        if turn.role == "user":
            message: dict[str, Any] = {"role": "user", "content": turn.content}
        else:
            message = {
                "id": f"msg_{uuid.uuid4().hex}",
                "type": "message",
                "role": "assistant",
                "model": model,
                "content": turn.content,
                "stop_reason": "end_turn",
                "stop_sequence": None,
                "usage": {"input_tokens": 0, "output_tokens": 0},
            }
        entry = {
            "parentUuid": parent,
            "isSidechain": False,
            "type": turn.role,
            "message": message,
            "uuid": entry_id,
            "timestamp": stamp,
            "userType": "external",
            "cwd": cwd,
            "sessionId": session_id,
        }
        lines.append(json.dumps(entry, separators=(",", ":")))
        parent = entry_id
    return "".join(line + "\n" for line in lines)
