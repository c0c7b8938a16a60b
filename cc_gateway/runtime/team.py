"""The team gateway inside a serving process: who a key belongs to, limits before the upstream call,
and one ledger record per request.

- `custom_auth` (runtime/auth.py) asks `identify` about a key that is neither the master key nor a
  static token;
- the pre-call hook (runtime/hooks.py) calls `check`: 403 for a model outside the key's allowlist,
  429 when a spend limit is reached;
- the serve middleware calls `begin` / `stream_chunk` / `finish` (status, latency, a stream's usage
  as the client saw it, cut streams included); LiteLLM's logging callback calls `from_litellm` with
  the usage LiteLLM parsed (non-streamed responses, and streams that carried no usage block).
Nothing here waits for the store: see team/live.py.
"""

from __future__ import annotations

import json
import logging
import re
import time
import uuid
from collections.abc import Callable
from typing import Any

from cc_gateway.runtime import context
from cc_gateway.team import keys, live, pricing

log = logging.getLogger("cc_gateway.team")

SESSION_HEADER = b"x-claude-code-session-id"
AGENT_HEADER = b"x-claude-code-agent-id"
#: POST paths whose requests are recorded (generation calls; not token counting or model lists).
RECORDED = frozenset({
    "/v1/messages", "/v1/chat/completions", "/chat/completions", "/v1/completions", "/completions",
    "/v1/responses", "/responses", "/v1/embeddings", "/embeddings",
})
MASTER, STATIC, OPEN = "(master)", "(static)", "(open)"
_USAGE = re.compile(rb'"usage"\s*:\s*\{')
_unpriced_logged: set[str] = set()


def active() -> live.Team | None:
    """The process's team store view, when serve enabled one."""
    return live.current()


def identify(candidates: list[str]) -> live.Identity | None:
    """The person behind the first presented key the team store knows (any state)."""
    team = active()
    if team is None:
        return None
    for candidate in candidates:
        found = team.identify(candidate)
        if found is not None:
            return found
    return None


# --------------------------------------------------------------------------- middleware


def begin(info: context.RequestInfo, method: str, headers: list[tuple[bytes, bytes]]) -> None:
    """Mark a request to be recorded and note the Claude Code session and agent ids it sent."""
    if method != "POST" or info.path.rstrip("/") not in RECORDED or active() is None:
        return
    info.request_id = uuid.uuid4().hex
    info.started_at = time.time()
    for name, value in headers:
        if name == SESSION_HEADER:
            info.session_id = value.decode("latin-1")[:200]
        elif name == AGENT_HEADER:
            info.agent_id = value.decode("latin-1")[:200]


def stream_chunk(info: context.RequestInfo, body: bytes) -> None:
    """Take the usage a stream reports (Anthropic message_start/message_delta, OpenAI's usage chunk)."""
    if not info.request_id or b'"usage"' not in body:
        return
    for match in _USAGE.finditer(body):
        try:
            usage, _ = json.JSONDecoder().raw_decode(body[match.end() - 1 :].decode("utf-8", "replace"))
        except ValueError:
            continue
        if isinstance(usage, dict):
            found = normalise(usage)
            if found:
                info.wire_usage = {**(info.wire_usage or {}), **found}


def response_chunk(info: context.RequestInfo, body: bytes, headers: list[tuple[bytes, bytes]], final: bool) -> None:
    """Take the usage of a whole (not streamed) response, so that its cost counts before the next request.

    LiteLLM's own callback reports it too, but only after the response went out; a client sending its
    next request at once would be checked against a spend that lacks this one.
    """
    if b'"usage"' in body:
        stream_chunk(info, body)
    elif final and body[:2] == b"\x1f\x8b" and any(k.lower() == b"content-encoding" and b"gzip" in v for k, v in headers):
        import gzip
        import zlib

        try:
            stream_chunk(info, gzip.decompress(body))
        except (OSError, EOFError, zlib.error):
            return


def finish(info: context.RequestInfo, status: int, latency_ms: float, cancelled: bool, broken: bool = False) -> None:
    """Write the request's record (usage from the stream, else from LiteLLM's callback if it ran)."""
    team = active()
    if not info.request_id or team is None or (status == 401 and not info.person):
        return
    usage = info.wire_usage or info.litellm_usage or {}
    fields = {
        "ts": info.started_at,
        "person": info.caller or None,
        "session_id": info.session_id,
        "agent_id": info.agent_id,
        "path": info.path,
        "model": info.model or None,
        "route": info.route or None,
        "upstream": info.upstream or None,
        "latency_ms": round(latency_ms, 1),
        "status": 499 if cancelled else (502 if broken else status),
        "stream": info.stream,
        **usage,
    }
    team.record(info.request_id, fields, info.prices)
    info.recorded = True


# --------------------------------------------------------------------------- LiteLLM hooks


def check(info: context.RequestInfo | None, model: str, deployments: list[dict[str, Any]],
          route_names: Callable[[], list[str]]) -> None:
    """Before the upstream call: the key's model allowlist (403) and its spend limits (429)."""
    if info is None:
        return
    if deployments and info.request_id:
        info.prices = prices_for(deployments[0], model)
    if not info.person:
        return
    team = active()
    if team is None:
        return
    route = str(deployments[0].get("model_name", "")) if deployments else ""
    if info.models and not keys.allows(info.models, model, route):
        info.refused_here = True
        allowed = [name for name in route_names() if keys.allows(info.models, name)]
        from fastapi import HTTPException

        raise HTTPException(
            status_code=403,
            detail=f"model {model!r} is not allowed for {info.person}; allowed routes: "
            + (", ".join(allowed) if allowed else f"none (patterns {', '.join(info.models)})"),
        )
    hit = team.limit_hit(info.person)
    if hit is not None:
        info.retry_after = str(hit.retry_after)
        info.no_retry = info.refused_here = True
        from fastapi import HTTPException

        raise HTTPException(status_code=429, detail=hit.message)


def from_litellm(kwargs: dict[str, Any], response_obj: Any) -> None:
    """LiteLLM's success callback: keep the usage it parsed (recorded at once if the request is over)."""
    info = context.info()
    if info is None or not info.request_id or info.wire_usage:
        return  # not recorded, or the response carried its own usage (the usual case)
    usage = litellm_usage(kwargs, response_obj)
    if not usage:
        return
    if not info.recorded:
        info.litellm_usage = usage
        return
    team = active()
    if team is not None:
        team.record(info.request_id, {"ts": info.started_at, **usage}, info.prices)


def litellm_usage(kwargs: dict[str, Any], response_obj: Any) -> dict[str, int] | None:
    """Token counts from what LiteLLM hands its callbacks (a Usage object or an Anthropic usage dict)."""
    usage = getattr(response_obj, "usage", None)
    if usage is None and isinstance(response_obj, dict):
        usage = response_obj.get("usage")
    if usage is None:
        slo = kwargs.get("standard_logging_object") or {}
        usage = (slo.get("metadata") or {}).get("usage_object") or (
            {"prompt_tokens": slo.get("prompt_tokens"), "completion_tokens": slo.get("completion_tokens")}
            if slo.get("prompt_tokens") is not None else None
        )
    if usage is None:
        return None
    if not isinstance(usage, dict):
        dump = getattr(usage, "model_dump", None)
        usage = dump() if callable(dump) else dict(getattr(usage, "__dict__", {}))
    return normalise(usage)


def _number(value: Any) -> int | None:
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def normalise(usage: dict[str, Any]) -> dict[str, int]:
    """Anthropic-style counts: input (uncached), output, cache read, cache write.

    Anthropic reports input_tokens without the cached ones; OpenAI's (and LiteLLM's) prompt_tokens
    and the Responses API's input_tokens include them, so they are taken out.
    """
    read = _number(usage.get("cache_read_input_tokens"))
    write = _number(usage.get("cache_creation_input_tokens"))
    if "prompt_tokens" in usage and "input_tokens" not in usage:
        details = usage.get("prompt_tokens_details")
        if read is None and isinstance(details, dict):
            read = _number(details.get("cached_tokens"))
        prompt, output = _number(usage.get("prompt_tokens")), _number(usage.get("completion_tokens"))
        cached = (read or 0) + (write or 0)
    else:
        details = usage.get("input_tokens_details")  # the Responses API
        cached = 0
        if read is None and isinstance(details, dict):
            read = _number(details.get("cached_tokens"))
            cached = read or 0
        prompt, output = _number(usage.get("input_tokens")), _number(usage.get("output_tokens"))
    found = {
        "input_tokens": None if prompt is None else max(0, prompt - cached),
        "output_tokens": output,
        "cache_read_tokens": read,
        "cache_write_tokens": write,
    }
    return {k: v for k, v in found.items() if v is not None}


def prices_for(deployment: dict[str, Any], asked: str = "") -> dict[str, float] | None:
    """The route's `model_info` prices, else LiteLLM's price data for its upstream model; None: unpriced.

    A wildcard route (`anthropic/claude-*`) is priced as the model asked for (`anthropic/claude-x`).
    """
    params = deployment.get("litellm_params") or {}
    model = str(params.get("model") or "")
    found = pricing.prices_of(deployment.get("model_info")) or pricing.prices_of(params)
    if found is None:
        import litellm

        if "*" in model and asked:
            provider = model.split("/", 1)[0] + "/" if "/" in model else ""
            model = provider + (asked.split("/", 1)[1] if "/" in asked else asked)
        found = pricing.route_prices(None, model, litellm.model_cost)
    if found is None and model not in _unpriced_logged:
        _unpriced_logged.add(model)
        log.info("route %s (%s) has no price: its usage is recorded with a null cost",
                 deployment.get("model_name"), model)
    return found
