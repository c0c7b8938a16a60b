"""custom_auth: the master key and static tokens (constant time) and a team's person keys, without LiteLLM's database.

LiteLLM's own check answers a wrong key with 400 "No connected db" when no database is
configured; this one answers 401 (the serve middleware puts it in the caller's API format).
Accepted places for the key: `Authorization: Bearer`, `x-api-key`, `x-litellm-api-key`
(with or without `Bearer `).
"""

from __future__ import annotations

import hmac
import os
from typing import Any

from cc_gateway.runtime import context, team

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
    """Return 'master', 'static', 'person' or 'open' for an accepted request, None for a rejected one.

    Every presented value is compared with every configured secret, so the time taken does
    not depend on which one (if any) matched. A team gateway's person keys are looked up by
    hash (runtime/team.py) when no configured secret matched.
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
    if found is None and team.active() is not None:
        person = team.identify(presented_keys(headers))
        if person is not None and person.state == "active":
            found = "person"
    return found


async def user_api_key_auth(request: Any, api_key: str) -> Any:
    """LiteLLM custom_auth entry point: accept the master key or a static token, else 401."""
    from litellm.proxy._types import LitellmUserRoles, ProxyException, UserAPIKeyAuth

    who = identify(request.headers)
    presented = presented_keys(request.headers)
    person = team.identify(presented) if who in (None, "person") else None
    if who is None:
        if person is not None:  # a team key that no longer works
            state = "was revoked" if person.state == "revoked" else "has expired"
            message = f"the key of {person.name} {state}"
            hint = "ask the gateway's admin for a new one (`cc-gateway keys rotate`)"
        else:
            message = "invalid gateway key" if presented else "missing gateway key"
            hint = "send the gateway key as 'Authorization: Bearer <key>', 'x-api-key' or 'x-litellm-api-key'"
        raise ProxyException(message=f"{message}: {hint}", type="authentication_error", param=None, code=401)
    info = context.info()
    if who == "person" and person is not None:
        if info is not None:
            info.person = info.caller = person.name
            info.models = person.models
        return UserAPIKeyAuth(user_id=person.name, key_alias=person.name, user_role=LitellmUserRoles.INTERNAL_USER)
    if info is not None:
        info.caller = f"({who})"
    role = LitellmUserRoles.PROXY_ADMIN if who in ("master", "open") else LitellmUserRoles.INTERNAL_USER
    return UserAPIKeyAuth(user_id=f"cc-gateway-{who}", key_alias=who, user_role=role)
