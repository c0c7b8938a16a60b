"""count_tokens from a local estimate when the upstream cannot count.

LiteLLM 1.106 answers `/v1/messages/count_tokens` with its own tokenizer when the provider has no count
API (or it fails); LiteLLM 1.110 forwards the failure instead (a 500 from the demo preset trying
api.anthropic.com, the upstream's 404 on openai-backed). Claude Code calls count_tokens to size its
context, so cc-gateway keeps 1.106's promise whatever LiteLLM does: serve/middleware.py buffers the
count_tokens answer and, when it is one of `UPSTREAM_COULD_NOT_COUNT`, answers `estimate(body)` instead.
"""

from __future__ import annotations

import json
from typing import Any

#: Statuses that mean "the upstream could not count", not "your request is wrong" (400) or "who are
#: you" (401/403): these get the local estimate.
UPSTREAM_COULD_NOT_COUNT = frozenset({404, 405, 500, 501, 502, 503, 504})


def _texts(value: Any) -> list[str]:
    """Every string a request carries in its system, messages and tools (tool inputs as JSON)."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [text for item in value for text in _texts(item)]
    if isinstance(value, dict):
        found = []
        for key, item in value.items():
            if key in ("input", "input_schema", "parameters") and not isinstance(item, str):
                found.append(json.dumps(item, sort_keys=True))
            elif key not in ("type", "id", "tool_use_id", "cache_control", "role"):
                found += _texts(item)
        return found
    return []


def count(text: str) -> int:
    """Tokens in text by LiteLLM's local tokenizer (no network); about four characters a token without it."""
    try:
        import litellm

        return int(litellm.token_counter(text=text))
    except Exception:  # any LiteLLM: an estimate is the promise, not one tokenizer
        return len(text) // 4 + 1


def estimate(body: bytes) -> dict[str, int] | None:
    """`{"input_tokens": N}` for an Anthropic count_tokens request body; None when it is not one."""
    try:
        request = json.loads(body)
    except ValueError:
        return None
    if not isinstance(request, dict) or not request.get("model") or not request.get("messages"):
        return None
    parts = _texts(request.get("system")) + _texts(request.get("messages")) + _texts(request.get("tools"))
    return {"input_tokens": max(1, count("\n".join(parts)))}
