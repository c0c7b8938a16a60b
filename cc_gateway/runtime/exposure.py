"""Which of LiteLLM's routes `cc-gateway serve` exposes, and to whom.

LiteLLM's proxy app carries hundreds of routes: an admin UI (/ui, /sso, /login), MCP (/mcp,
/v1/mcp, /mcp-rest), prompt and guardrail test endpoints, key/user/team management,
/config/update, an OpenAPI page, ... Some of them answer without any key (/ui/, /, /openapi.json,
/sso/key/generate). cc-gateway uses a few: health, and the LLM APIs Claude Code and the SDKs call.
Everything else is refused unless the caller presents the master key: 401 without a valid key,
403 with a static token (or on an open gateway, which has no master key).
LLM calls must send JSON: another Content-Type is a clear 400 rather than a guess.
"""

from __future__ import annotations

from cc_gateway.runtime import auth

PUBLIC = frozenset({"/health/liveliness", "/health/liveness", "/health/readiness"})
LLM = frozenset(
    {
        "/v1/messages",
        "/v1/messages/count_tokens",
        "/v1/chat/completions",
        "/chat/completions",
        "/v1/completions",
        "/completions",
        "/v1/responses",
        "/responses",
        "/v1/embeddings",
        "/embeddings",
        "/v1/models",
        "/models",
    }
)
#: Prefixes for LLM paths with an id or a provider path in them (responses/<id>, the Anthropic pass-through).
LLM_PREFIXES = ("/v1/responses/", "/responses/", "/v1/models/", "/models/", "/anthropic/")


def is_llm_path(path: str) -> bool:
    """Tell whether a path is one of the LLM APIs every key holder may call."""
    path = path.rstrip("/") or "/"
    return path in LLM or path.startswith(LLM_PREFIXES)


def refusal(method: str, path: str, raw_headers: list[tuple[bytes, bytes]]) -> tuple[int, str] | None:
    """Return (status, message) when the gateway must refuse the request itself, else None."""
    if path in PUBLIC:
        return None
    headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in raw_headers}
    if is_llm_path(path):
        return _content_type_refusal(method, headers.get("content-type"))
    who = auth.identify(headers)
    if who == "master":
        return None
    if who is None:
        return 401, f"{path} needs the gateway's master key (send it as 'Authorization: Bearer <key>')"
    return 403, f"{path} is an admin route: cc-gateway serves it only to the master key"


def _content_type_refusal(method: str, content_type: str | None) -> tuple[int, str] | None:
    if method != "POST" or not content_type:
        return None
    if "json" in content_type.lower():
        return None
    return 400, (
        f"Content-Type must be application/json (got {content_type.split(';')[0].strip()!r}); "
        "send the body as JSON with 'content-type: application/json'"
    )
