"""What a request is, as the rules see it: size, images, web search, thinking, subagent, background.

The token estimate is deterministic and cheap (no tokenizer): the characters of what the model reads
divided by 4 (rounded up), plus 1,600 per image. Text is `text`/`thinking` blocks and the system
prompt; `tool_use` input, tools and any other block count as their compact JSON; image data is never
counted as text. On Claude Code requests it is within a few percent of a `len(json)/4` count and
below it where the JSON escapes a lot (newlines in tool results): see README 'Routing rules'.
"""

from __future__ import annotations

import fnmatch
import functools
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

CHARS_PER_TOKEN = 4
#: Anthropic bills an image at (width x height) / 750 tokens, about 1,600 for the largest it keeps.
IMAGE_TOKENS = 1600
AGENT_HEADERS = ("x-claude-code-agent-id", "x-claude-code-parent-agent-id")
WEB_SEARCH_PREFIX = "web_search"

_dumps = functools.partial(json.dumps, separators=(",", ":"), ensure_ascii=False)


def estimate_tokens(body: Mapping[str, Any]) -> int:
    """Estimate the input tokens of an Anthropic messages (or chat completions) body."""
    counter = _Counter()
    counter.content(body.get("system"))
    for message in body.get("messages") or ():
        if isinstance(message, Mapping):
            counter.content(message.get("content"))
    tools = body.get("tools")
    if tools:
        counter.chars += len(_dumps(tools))
    return -(-counter.chars // CHARS_PER_TOKEN) + counter.images * IMAGE_TOKENS


class _Counter:
    __slots__ = ("chars", "images")

    def __init__(self) -> None:
        self.chars = 0
        self.images = 0

    def content(self, content: Any) -> None:
        if isinstance(content, str):
            self.chars += len(content)
            return
        if not isinstance(content, list):
            return
        for block in content:
            if not isinstance(block, Mapping):
                continue
            kind = block.get("type")
            if kind == "text" or kind == "input_text":
                self.chars += len(block.get("text") or "")
            elif kind == "tool_result":
                self.content(block.get("content"))
            elif kind == "thinking":
                self.chars += len(block.get("thinking") or "")
            elif kind in ("image", "image_url", "input_image"):
                self.images += 1
            elif kind == "tool_use":
                self.chars += len(block.get("name") or "") + len(_dumps(block.get("input") or {}))
            elif kind != "redacted_thinking":
                self.chars += len(_dumps(block))


def _has_image(content: Any) -> bool:
    if not isinstance(content, list):
        return False
    for block in content:
        if isinstance(block, Mapping):
            kind = block.get("type")
            if kind in ("image", "image_url", "input_image"):
                return True
            if kind == "tool_result" and _has_image(block.get("content")):
                return True
    return False


def is_web_search_tool(tool: Any) -> bool:
    """Anthropic's server web-search tool (`web_search_20250305`, ...), not a client tool named alike."""
    if not isinstance(tool, Mapping):
        return False
    kind = tool.get("type")
    return isinstance(kind, str) and kind.startswith(WEB_SEARCH_PREFIX)


@dataclass(frozen=True)
class Thinking:
    """The request's thinking settings."""

    on: bool = False
    budget: int | None = None  # `enabled` thinking's budget_tokens
    effort: str | None = None  # `adaptive` thinking's output_config.effort (Claude Code 2.1.3xx)

    def describe(self) -> str:
        """One phrase for `route explain`."""
        if not self.on:
            return "off"
        if self.budget is not None:
            return f"on, budget {self.budget:,}"
        return f"adaptive, effort {self.effort}" if self.effort else "adaptive"


@dataclass
class RequestView:
    """A request body and headers, with the facts rules ask for computed once, on demand."""

    body: Mapping[str, Any]
    headers: Mapping[str, str] = field(default_factory=dict)  # lower-case names
    route: str | None = None  # the route the requested model resolves to (None: not routed)

    @property
    def model(self) -> str:
        """The model the client asked for."""
        return str(self.body.get("model") or "")

    @functools.cached_property
    def tokens(self) -> int:
        """The input token estimate (see the module docstring)."""
        return estimate_tokens(self.body)

    @functools.cached_property
    def images(self) -> bool:
        """Whether any message (or tool result) carries an image."""
        return any(isinstance(m, Mapping) and _has_image(m.get("content")) for m in self.body.get("messages") or ())

    @functools.cached_property
    def web_search(self) -> bool:
        """Whether the request carries Anthropic's web-search server tool."""
        return any(is_web_search_tool(t) for t in self.body.get("tools") or ())

    @functools.cached_property
    def thinking(self) -> Thinking:
        """Thinking on/off, its budget or adaptive effort."""
        raw = self.body.get("thinking")
        if not isinstance(raw, Mapping) or raw.get("type") not in ("enabled", "adaptive"):
            return Thinking()
        budget = raw.get("budget_tokens")
        output = self.body.get("output_config")
        effort = output.get("effort") if isinstance(output, Mapping) else None
        return Thinking(True, budget if isinstance(budget, int) else None, effort if isinstance(effort, str) else None)

    @property
    def agent(self) -> str | None:
        """The header saying this is a Claude Code subagent's request (None: the main conversation)."""
        return next((name for name in AGENT_HEADERS if self.headers.get(name)), None)

    @property
    def has_tools(self) -> bool:
        """Whether the request offers tools (Claude Code's small-model calls offer none)."""
        return bool(self.body.get("tools"))

    def model_matches(self, globs: tuple[str, ...]) -> bool:
        """Whether the requested model matches one of the globs."""
        return any(fnmatch.fnmatchcase(self.model, glob) for glob in globs)

    def describe(self) -> str:
        """One line for `route explain`."""
        routed = f"route {self.route}" if self.route else "not routed"
        return (
            f"model {self.model or '-'} ({routed}), ~{self.tokens:,} tokens, images: {_yes(self.images)}, "
            f"web search: {_yes(self.web_search)}, thinking: {self.thinking.describe()}, "
            f"subagent: {_yes(self.agent is not None)}, tools: {len(self.body.get('tools') or ())}"
        )


def _yes(flag: bool) -> str:
    return "yes" if flag else "no"
