"""custom_auth: the master key and static tokens, checked in constant time, without a database.

LiteLLM's own check answers a wrong key with 400 "No connected db" when no database is
configured; this one answers 401 (the serve middleware puts it in the caller's API format).
Accepted places for the key: `Authorization: Bearer`, `x-api-key`, `x-litellm-api-key`
(with or without `Bearer `).
"""

from __future__ import annotations

import hmac
import os
from typing import Any

KEY_HEADERS = ("authorization", "x-api-key", "x-litellm-api-key")
OPEN_ROUTES = ("/health/liveliness", "/health/liveness", "/health/readiness")


def strip_bearer(value: str) -> str:
    """Return a credential without a leading `Bearer ` (any case)."""
    value = value.strip()
    return value[7:].strip() if value[:7].lower() == "bearer " else value


def presented_keys(headers: Any) -> list[str]:
    """Return every credential the client presented, in header order."""
    return [strip_bearer(headers[h]) for h in KEY_HEADERS if headers.get(h)]


def static_tokens() -> list[str]:
    """Return the configured static tokens (PROXY_STATIC_TOKEN, comma-separated)."""
    return [t.strip() for t in os.environ.get("PROXY_STATIC_TOKEN", "").split(",") if t.strip()]


def master_key() -> str:
    """Return the configured master key ('' when none)."""
    return os.environ.get("LITELLM_MASTER_KEY", "").strip()


def is_open() -> bool:
    """Tell whether no credential is configured at all (the gateway accepts anyone)."""
    return not master_key() and not static_tokens()


def _matches(candidate: str, secret: str) -> bool:
    return hmac.compare_digest(candidate.encode(), secret.encode())


def identify(headers: Any) -> str | None:
    """Return 'master', 'static' or 'open' for an accepted request, None for a rejected one.

    Every presented value is compared with every configured secret, so the time taken does
    not depend on which one (if any) matched.
    """
    if is_open():
        return "open"
    master, tokens = master_key(), static_tokens()
    found: str | None = None
    for candidate in presented_keys(headers):
        if master and _matches(candidate, master):
            found = found or "master"
        for token in tokens:
            if _matches(candidate, token):
                found = found or "static"
    return found


async def user_api_key_auth(request: Any, api_key: str) -> Any:
    """LiteLLM custom_auth entry point: accept the master key or a static token, else 401."""
    from litellm.proxy._types import LitellmUserRoles, ProxyException, UserAPIKeyAuth

    who = identify(request.headers)
    if who is None:
        presented = bool(presented_keys(request.headers))
        message = "invalid gateway key" if presented else "missing gateway key"
        raise ProxyException(
            message=f"{message}: send the gateway key as 'Authorization: Bearer <key>', "
            "'x-api-key' or 'x-litellm-api-key'",
            type="authentication_error",
            param=None,
            code=401,
        )
    role = LitellmUserRoles.PROXY_ADMIN if who in ("master", "open") else LitellmUserRoles.INTERNAL_USER
    return UserAPIKeyAuth(user_id=f"cc-gateway-{who}", key_alias=who, user_role=role)
