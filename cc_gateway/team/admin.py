"""The team admin API, served by `cc-gateway serve` (the middleware routes these paths here).

- Spend limits in the wire shape of Anthropic's Admin API (`/v1/organizations/spend_limits`: list,
  set = upsert on (scope, period), get, delete; scopes `user` and `organization`; amounts in cents
  as strings; periods daily, weekly, monthly), so a client written for that contract works against
  the gateway by changing its base URL.
- cc-gateway's own: `/cc-gateway/keys` (list, add, revoke, rotate) and `/cc-gateway/usage` (the
  report as JSON).
Master key only, except `GET /cc-gateway/usage`, which a person's own key may call for their own usage.
Answers are (status, JSON-ready body); errors use Anthropic's error shape.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs

from cc_gateway.core.errors import GatewayError
from cc_gateway.team import keys, limits, periods, usage
from cc_gateway.team.store import Store, StoreError

SPEND_LIMITS = "/v1/organizations/spend_limits"
KEYS = "/cc-gateway/keys"
USAGE = "/cc-gateway/usage"
PREFIXES = (SPEND_LIMITS, KEYS, USAGE)


def is_admin_path(path: str) -> bool:
    """Whether the team admin API serves this path."""
    return any(path == p or path.startswith(p + "/") for p in PREFIXES)


@dataclass(frozen=True)
class Caller:
    """Who is calling: the master key, or a person's key (name)."""

    master: bool
    person: str | None = None


Answer = tuple[int, dict[str, Any]]


def error(status: int, message: str) -> Answer:
    """An Anthropic-shaped error."""
    kinds = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
             404: "not_found_error", 405: "invalid_request_error", 503: "api_error"}
    return status, {"type": "error", "error": {"type": kinds.get(status, "api_error"), "message": message}}


def handle(store_url: str, caller: Caller, method: str, path: str, query: str, body: bytes) -> Answer:
    """Serve one admin request (blocking: run it in a thread)."""
    path = path.rstrip("/")
    if not caller.master and not (path == USAGE and method == "GET" and caller.person):
        return error(403, f"{path} needs the gateway's master key")
    try:
        data = json.loads(body) if body.strip() else {}
    except ValueError:
        return error(400, "the request body is not JSON")
    params = {k: v[-1] for k, v in parse_qs(query).items()}
    try:
        with Store.open(store_url) as store:
            if path == USAGE:
                return _usage(store, caller, params, method)
            if path.startswith(KEYS):
                return _keys(store, method, path[len(KEYS):].strip("/"), data)
            return _spend_limits(store, method, path[len(SPEND_LIMITS):].strip("/"), data, params)
    except keys.UnknownPerson as exc:
        return error(404, str(exc))
    except StoreError as exc:
        return error(503, str(exc))
    except GatewayError as exc:
        return error(400, str(exc) + (f" ({exc.hint})" if exc.hint else ""))


def _usage(store: Store, caller: Caller, params: dict[str, str], method: str) -> Answer:
    if method != "GET":
        return error(405, f"use GET on {USAGE}")
    now = datetime.now(UTC)
    since = periods.parse_since(params.get("since", "7d"), now)
    person = params.get("person") or None
    if not caller.master:
        if person and person != caller.person:
            return error(403, "a person's key may read only their own usage")
        person = caller.person
    report = usage.report(store, by=params.get("by", "person"), since=since, person=person, until=now)
    return 200, report.as_dict()


def _key_json(record: keys.KeyRecord) -> dict[str, Any]:
    import time

    return {
        "name": record.name,
        "hint": f"sk-...{record.key_hint}",
        "models": list(record.models),
        "state": record.state(time.time()),
        "created_at": _iso(record.created_at),
        "expires_at": _iso(record.expires_at),
        "revoked_at": _iso(record.revoked_at),
        "last_used_at": _iso(record.last_used_at),
    }


def _keys(store: Store, method: str, rest: str, data: dict[str, Any]) -> Answer:
    if method == "GET" and not rest:
        return 200, {"data": [_key_json(k) for k in keys.all_keys(store)]}
    if method == "POST" and not rest:
        name = str(data.get("name") or "")
        models = keys.parse_models(",".join(data.get("models") or []) if isinstance(data.get("models"), list)
                                   else data.get("models"))
        expires = data.get("expires")
        expires_at = None
        if expires:
            expires_at = datetime.now(UTC).timestamp() + periods.parse_duration(str(expires)).total_seconds()
        parsed = [periods.parse_limit(str(text)) for text in data.get("limits") or []]
        key = keys.add(store, name, models=models, expires_at=expires_at)
        for limit in parsed:
            limits.set_limit(store, limits.USER, name, limit.period, limit.amount_cents)
        return 200, {**_key_json(keys.get(store, name)), "key": key}
    name, _, action = rest.partition("/")
    if method == "POST" and action == "revoke":
        keys.revoke(store, name)
        return 200, _key_json(keys.get(store, name))
    if method == "POST" and action == "rotate":
        key = keys.rotate(store, name)
        return 200, {**_key_json(keys.get(store, name)), "key": key}
    if method == "GET" and name and not action:
        return 200, _key_json(keys.get(store, name))
    return error(404, f"no admin route {method} {KEYS}/{rest}")


def spend_limit_json(record: limits.LimitRecord) -> dict[str, Any]:
    """A stored limit in the Admin API's SpendLimit shape."""
    scope = {"type": "organization"} if record.scope == limits.ORGANIZATION else {"type": "user", "user_id": record.person}
    return {
        "type": "spend_limit",
        "id": record.id,
        "amount": None if record.amount_cents is None else str(record.amount_cents),
        "created_at": _iso(record.created_at),
        "currency": "USD",
        "is_enabled": True,
        "period": periods.API_PERIODS[record.period],
        "scope": scope,
    }


def _spend_limits(store: Store, method: str, limit_id: str, data: dict[str, Any], params: dict[str, str]) -> Answer:
    if not limit_id and method == "GET":
        wanted = set(params.get("scope_type", "").split(",")) - {""}
        found = [r for r in limits.all_limits(store) if not wanted or r.scope in wanted]
        size = int(params.get("limit", "20") or 20)
        size = max(1, min(1000, size))
        start = int(params.get("page", "0") or 0) if params.get("page", "0").isdigit() else 0
        page = found[start : start + size]
        more = start + size < len(found)
        return 200, {"data": [spend_limit_json(r) for r in page], "has_more": more,
                     "next_page": str(start + size) if more else None}
    if not limit_id and method == "POST":
        return _set_spend_limit(store, data)
    if limit_id and method in ("GET", "DELETE"):
        record = limits.get(store, limit_id)
        if record is None:
            return error(404, f"no spend limit {limit_id!r}")
        if method == "GET":
            return 200, spend_limit_json(record)
        limits.delete(store, limit_id)
        return 200, {"id": limit_id, "type": "spend_limit_deleted"}
    return error(405, f"{method} is not served on {SPEND_LIMITS}" + (f"/{limit_id}" if limit_id else ""))


def _set_spend_limit(store: Store, data: dict[str, Any]) -> Answer:
    scope = data.get("scope")
    if not isinstance(scope, dict) or scope.get("type") not in limits.SCOPES:
        return error(400, "scope: expected {\"type\": \"user\", \"user_id\": NAME} or {\"type\": \"organization\"}")
    person = ""
    if scope["type"] == limits.USER:
        person = str(scope.get("user_id") or "")
        keys.get(store, person)  # 404 for an unknown person
    period = periods.parse_period(str(data.get("period") or "monthly"))
    amount = data.get("amount")
    if amount is not None and (not isinstance(amount, str) or not amount.isdigit()):
        return error(400, f"amount: expected a non-negative integer string of cents (\"2000\" is $20.00), got {amount!r}")
    record = limits.set_limit(store, scope["type"], person, period, None if amount is None else int(amount))
    return 200, spend_limit_json(record)


def _iso(ts: float | None) -> str | None:
    return None if ts is None else datetime.fromtimestamp(ts, UTC).isoformat().replace("+00:00", "Z")
