"""Per-request facts shared between the serve middleware and LiteLLM hooks.

The middleware puts a fresh `RequestInfo` in a context variable; LiteLLM's hooks run in the
same task (or in tasks that copied its context) and fill in what only they can see: the
model asked for, the deployment that served it, an upstream Retry-After.
"""

from __future__ import annotations

import contextvars
from dataclasses import dataclass


@dataclass
class RequestInfo:
    """What one request did, for the access log line and the error shaping."""

    method: str = ""
    path: str = ""
    model: str = ""
    route: str = ""  # the model_list entry (model group) that served it
    upstream: str = ""  # the deployment's provider/model
    stream: bool = False  # the client asked for a streamed response
    retry_after: str | None = None
    unavailable: str | None = None
    error: str = ""  # the error message the client got (status >= 400), for the access line
    failure: object | None = None  # a runtime.failures.Failure: what the client is told instead
    token_mode: str | None = None  # the Claude pool's mode (rotate/passthrough), decided once per request
    rule: str = ""  # the routing rule that picked the route (`rule=` in the access log)
    notice: str | None = None  # one line for the client, put first in the answer (routing's web-search guard)
    no_retry: bool = False  # a 429 the client must not retry (a spend limit): x-should-retry: false
    refused_here: bool = False  # the gateway refused it itself (team 403/429, a routing rule's 400)
    # The team gateway (runtime/team.py): who asked, and the ledger record's facts.
    caller: str = ""  # (master), (static), (open), or a person's name
    person: str = ""  # a person's key: their name (limits and the allowlist apply)
    models: tuple[str, ...] = ()  # that key's model allowlist (empty: all)
    request_id: str = ""  # set when the request is recorded in the ledger
    started_at: float = 0.0
    session_id: str | None = None
    agent_id: str | None = None
    wire_usage: dict[str, int] | None = None  # usage the stream carried, as the client saw it
    litellm_usage: dict[str, int] | None = None  # usage LiteLLM's success callback reported
    prices: dict[str, float] | None = None
    recorded: bool = False


current: contextvars.ContextVar[RequestInfo | None] = contextvars.ContextVar("cc_gateway_request", default=None)


def info() -> RequestInfo | None:
    """Return the current request's info, if a request is being served."""
    return current.get()
