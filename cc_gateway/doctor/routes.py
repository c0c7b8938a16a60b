"""doctor's route probes: one small real request per route, and a failure turned into a cause and a fix."""

from __future__ import annotations

import contextlib
import json
import re
import time
from functools import partial

from cc_gateway.doctor.base import (
    FAIL,
    OK,
    ROUTES,
    SKIP,
    WARN,
    Check,
    CheckResult,
    Context,
    Probe,
    Row,
    api_base,
    elapsed_ms,
    gateway_up,
    http_error,
    result,
    split_list,
)
from cc_gateway.doctor.gateway import apply_hint
from cc_gateway.gateway.folder import CHAT_FLAG, Gateway, RouteInfo

SHORT_CLAUDE_IDS = ("claude-sonnet-4-5", "claude-haiku-4-5", "claude-opus-4-5", "claude-opus-4-1")
PROBE_TOOL = {
    "name": "get_time",
    "description": "Return the current time.",
    "input_schema": {"type": "object", "properties": {}},
}
PROBE_PROMPT = "Reply with the single word: ok"
# The words of aiohttp, httpx and the OpenAI SDK (LiteLLM passes on its "Connection error.") for a refused
# connection, and the gateway's own (runtime.failures: "nothing answers at URL").
_CONNECT = re.compile(
    r"Cannot connect to host|Connection refused|Connect call failed|ConnectError|APIConnectionError|Connection error\."
    r"|nothing answers at"
)
#: The upstream's own status inside the gateway's 424/400 messages (runtime.failures: "(401: ...)").
_UPSTREAM_STATUS = re.compile(r"\((\d{3}): ")


# =========================================================================== Routes


def probe_checks(ctx: Context) -> list[Check]:
    """One probe per route (model group), limited by --route."""
    gw = ctx.gateway
    if gw is None:
        return []
    names = list(dict.fromkeys(r.name for r in gw.routes))
    wanted = ctx.options.routes or tuple(names)
    checks: list[Check] = []
    for name in wanted:
        row = Row(ROUTES, f"route {name}")
        if name in names:
            route = next(r for r in gw.routes if r.name == name)
            checks.append(Check(row, partial(check_route, route=route)))
        else:
            miss = row(FAIL, f"config.yaml has no route {name!r}", f"routes: {', '.join(names)}")
            checks.append(Check(row, lambda _ctx, found=miss: found))
    return checks


def probe_model(gw: Gateway, route: RouteInfo) -> str | None:
    """A concrete model id the gateway resolves to this route (wildcard routes need one)."""
    if "*" not in route.name:
        return route.name
    from cc_gateway.claude.versions import default_model_ids

    ids = [*default_model_ids().values(), *SHORT_CLAUDE_IDS]
    prefix = route.name.split("*", 1)[0]
    candidates = ids + [prefix + i for i in ids if not i.startswith(prefix)]
    return next((c for c in candidates if gw.resolve(c) == route.name), None)


def _is_bridge(gw: Gateway, route: RouteInfo) -> bool:
    custom = (gw.config.get("litellm_settings") or {}).get("custom_provider_map") or []
    prefixes = {str(item.get("provider")) for item in custom if isinstance(item, dict)}
    return route.model.split("/", 1)[0] in prefixes


def _passthrough(gw: Gateway, route: RouteInfo) -> bool:
    """A credential-pool route with an empty pool forwards each client's own Claude login."""
    if not route.model_info.get("cc_gateway_credential_pool") or route.key_env:
        return False
    mode = gw.env.get("CLAUDE_TOKEN_MODE", "").strip()
    return mode == "passthrough" or (mode != "rotate" and not split_list(gw.env.get("CLAUDE_OAUTH_TOKENS", "")))


def check_route(ctx: Context, route: RouteInfo) -> CheckResult:
    """Send the route a small real request of the kind its clients send; explain a failure."""
    name, gw = f"route {route.name}", ctx.gateway
    if not ctx.options.network:
        return result(ROUTES, name, SKIP, "not probed (--no-network)")
    if not gateway_up(ctx):
        return result(ROUTES, name, SKIP, "the gateway is not reachable")
    model = probe_model(gw, route)
    if model is None:
        return result(
            ROUTES,
            name,
            SKIP,
            f"wildcard route: no known model id resolves to {route.name}",
            f"probe it with a concrete id: cc-gateway doctor --route {route.name} after adding one",
        )
    if _passthrough(gw, route):
        return result(ROUTES, name, SKIP, "passthrough: each client's own Claude login is forwarded; doctor has none")
    if _is_bridge(gw, route):
        body = {"model": model, "max_tokens": 16, "messages": [{"role": "user", "content": PROBE_PROMPT}]}
        probe = ctx.request("POST", "/v1/chat/completions", json=body, headers=ctx.auth_headers())
        kind = "chat completions"
    else:
        probe = _messages_probe(ctx, model)
        kind = "/v1/messages stream + tool"
    via = f" as {model}" if model != route.name else ""
    if probe.status == 200 and probe.error is None:
        ctx.latencies[route.name] = probe.elapsed_ms
        return result(ROUTES, name, OK, f"{kind}{via}: answered in {probe.elapsed_ms} ms", latency_ms=probe.elapsed_ms)
    detail, hint, status = diagnose(ctx, route, probe)
    return result(ROUTES, name, status, f"{detail}{via}", hint, latency_ms=probe.elapsed_ms)


def _messages_probe(ctx: Context, model: str) -> Probe:
    """A streamed Anthropic /v1/messages request with one tool, read to the end."""
    import httpx

    body = {
        "model": model,
        "max_tokens": 32,
        "stream": True,
        "tools": [PROBE_TOOL],
        "messages": [{"role": "user", "content": PROBE_PROMPT}],
    }
    headers = {**ctx.auth_headers(), "anthropic-version": "2023-06-01"}
    start = time.perf_counter()
    try:
        with ctx.client().stream("POST", f"{ctx.url}/v1/messages", json=body, headers=headers) as response:
            text = response.read().decode("utf-8", "replace")
    except httpx.HTTPError as exc:
        return Probe(None, error=http_error(exc), elapsed_ms=elapsed_ms(start))
    probe = Probe(response.status_code, text, elapsed_ms=elapsed_ms(start))
    if response.status_code == 200:
        probe.error = _stream_error(text)
    return probe


def _stream_error(text: str) -> str | None:
    """The error carried by an SSE stream, or None when it ended with message_stop."""
    for block in text.split("\n\n"):
        if "event: error" in block:
            data = block.split("data:", 1)[-1].strip()
            return _error_message(data) or "the stream ended with an error event"
    return None if "message_stop" in text else "the stream ended without message_stop"


def _error_message(body: str) -> str:
    """The innermost error message of a gateway error body (LiteLLM wraps the upstream's)."""
    try:
        data = json.loads(body)
    except ValueError:
        return body.strip()
    error = data.get("error", data) if isinstance(data, dict) else data
    message = str(error.get("message", error)) if isinstance(error, dict) else str(error)
    return message.split("\n\nLiteLLM:", 1)[0]


def _upstream_message(message: str) -> str:
    """The upstream's own words inside a LiteLLM message (`XException - {json}`), shortened."""
    inner = message.split("Exception - ", 1)[-1]
    with contextlib.suppress(ValueError, AttributeError):
        inner = _error_message(inner)
    inner = " ".join(inner.split())
    return inner if len(inner) <= 140 else inner[:139] + "…"


Diagnosis = tuple[str, str, str]  # (cause, fix, status)


def diagnose(ctx: Context, route: RouteInfo, probe: Probe) -> Diagnosis:
    """Turn a failed probe into (cause, fix, status): the gateway's own refusals first, then the upstream's."""
    message = ctx.scrub(probe.error if probe.status in (None, 200) else _error_message(probe.text))
    status = probe.status
    found = _UPSTREAM_STATUS.search(message) if status in (400, 424) else None
    if found:  # the gateway answered 424 for an upstream 401/403/404: diagnose the upstream's status
        status = int(found.group(1))
    return _gateway_side(ctx, route, status, message) or _upstream_side(ctx, route, status, message)


def _gateway_side(ctx: Context, route: RouteInfo, status: int | None, message: str) -> Diagnosis | None:
    """Failures the gateway itself produced (no answer, cooldown, unset variable, unknown route)."""
    gw = ctx.gateway
    if status is None:
        return (f"no answer from the gateway: {message}", "check the gateway log (cc-gateway serve)", FAIL)
    if "in cooldown" in message:
        return (
            "LiteLLM put the route in cooldown after an earlier upstream failure; it answers 429 until it ends",
            "wait for router_settings.cooldown_time, or restart the gateway, then run doctor again",
            FAIL,
        )
    if status in (424, 503) and "is not set" in message:
        variable = message.split("unavailable: ", 1)[-1].split(" is not set", 1)[0]
        fix = f"set {variable} in {gw.env_path}; {apply_hint(ctx, '.env')}"
        return (f"{variable} is not set, so the route answers {status}", fix, FAIL)
    if status == 400 and "no healthy deployments" in message.lower():
        return (f"the running gateway has no route {route.name}", apply_hint(ctx), FAIL)
    return None


def _upstream_side(ctx: Context, route: RouteInfo, status: int | None, message: str) -> Diagnosis:
    """Failures the upstream answered, translated into a cause and a fix."""
    gw = ctx.gateway
    where = f"set {route.key_env} in {gw.env_path}" if route.key_env else f"check the route in {gw.config_path}"
    if status == 401 and re.search(r"OAuth token has expired|token.*expired", message, re.I):
        variable = route.key_env or "CLAUDE_OAUTH_TOKENS"
        fix = f"put the new token in {variable}; {apply_hint(ctx, '.env')}"
        return ("OAuth token expired — run claude setup-token", fix, FAIL)
    if status == 401:
        pool = "CLAUDE_OAUTH_TOKENS" if route.model_info.get("cc_gateway_credential_pool") else None
        variable = route.key_env or pool
        cause = f"upstream rejects the key in {variable}" if variable else "upstream rejects the route's credentials"
        return (cause, f"{where} (a valid key from the provider); {apply_hint(ctx, '.env')}", FAIL)
    if status == 403:
        return (f"upstream refuses access (403): {_upstream_message(message)}", f"{where}; check the account", FAIL)
    if _CONNECT.search(message):
        base = api_base(gw, route) or "the provider's default URL"
        return (f"connection refused at {base}", f"is the upstream running? check {route.base_env or 'api_base'}", FAIL)
    if status == 404 and would_use_responses_api(gw, route):
        return (
            "upstream has no Responses API — keep this route on chat completions",
            f"add `{CHAT_FLAG}: true` under litellm_settings",
            FAIL,
        )
    if status == 404:
        return (
            f"model not found upstream ({route.model}): {_upstream_message(message)}",
            f"check litellm_params.model of route {route.name} in {gw.config_path.name}",
            FAIL,
        )
    if status == 429:
        return (f"upstream rate-limits (429): {_upstream_message(message)}", "wait, or check the plan's limits", WARN)
    if status in (408, 504) or "timeout" in message.lower():
        return (f"upstream too slow: {_upstream_message(message)}", "check the upstream's status", FAIL)
    return (f"{status}: {_upstream_message(message)}", "see the gateway log for the full error", FAIL)


def would_use_responses_api(gw: Gateway, route: RouteInfo) -> bool:
    """Whether LiteLLM sends this route's /v1/messages to the upstream's Responses API (openai/ routes)."""
    if not route.model.startswith("openai/"):
        return False
    settings = gw.config.get("litellm_settings") or {}
    if settings.get(CHAT_FLAG) is True or gw.env.get("LITELLM_USE_CHAT_COMPLETIONS_URL_FOR_ANTHROPIC_MESSAGES"):
        return False
    return route.model_info.get("supports_reasoning") is not False
