"""Decide, per failed request, what the client is told: a status, a message naming the cause, and
whether a retry can help (`x-should-retry: false` when it cannot).

Claude Code 2.1.197 to 2.1.332 (checked against a logging server, see README "Errors Claude Code shows"):
- without `x-should-retry: false` it retries 401, 429, 5xx up to 11 times over ~200 s before it prints
  anything; with the header it prints the error after one attempt, on every status;
- 401/403 print "Failed to authenticate. API Error: ..." (reads as a bad *gateway* key), 404 and 413 hide
  the message behind its own text, 5xx add "a server-side issue, usually temporary"; any other 4xx
  (400, 424, ...) is printed verbatim as "API Error: N <message>";
- a 400 `invalid_request_error` whose message starts "prompt is too long: N tokens > M maximum"
  makes it compact the conversation and try again.

So: a configuration failure upstream (key refused, key variable unset, model unknown there) answers
424 Failed Dependency; an api_base nobody answers at answers 502; a request the upstream refuses as
invalid answers 400; each with `x-should-retry: false`. Transient failures (429, 529, timeouts, 5xx)
are left as LiteLLM answers them, so the client keeps its retries.

No LiteLLM import: exceptions are told apart by class name and status.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

DOCTOR = "run `cc-gateway doctor` in the gateway folder"
#: The status a failed dependency (the upstream, as configured) answers with: printed verbatim by Claude Code.
CONFIG_STATUS = 424
UNREACHABLE_STATUS = 502

_CONTEXT_WORDS = re.compile(
    r"prompt is too long|context length|context window|context_length_exceeded|maximum context|too many tokens"
    r"|input length .{0,40}exceed|reduce the length of the messages",
    re.I,
)
_CONNECT_WORDS = re.compile(
    r"connection refused|connect call failed|cannot connect|all connection attempts failed|name or service not known"
    r"|nodename nor servname|getaddrinfo failed|temporary failure in name resolution|no address associated",
    re.I,
)
_CONNECT_CLASSES = {
    "ConnectError",
    "ClientConnectorError",
    "ConnectionRefusedError",
    "gaierror",
    "ClientConnectorDNSError",
}
_TRANSIENT_CLASSES = {"Timeout", "APITimeoutError", "TimeoutError", "ReadTimeout", "RateLimitError"}
#: Phrases Claude Code replaces with its own text wherever they appear in an error ("Not logged in ·
#: Please run /login", "Credit balance is too low"), hiding the route and the fix: reworded in ours.
_TRIGGERS = [
    (re.compile(r"x-api-key", re.I), "api-key header"),
    (re.compile(r"credit balance is too low", re.I), "credit balance too low"),
]
_NUMBERS = [
    re.compile(r"(\d[\d,]*)\s*tokens?\s*>\s*(\d[\d,]*)", re.I),  # Anthropic: 210000 tokens > 200000 maximum
    re.compile(r"maximum context length is (\d[\d,]*).{0,80}?(?:resulted in|requested|have) (\d[\d,]*)", re.I | re.S),
]


@dataclass(frozen=True)
class Route:
    """What the gateway knows about the route a request went to (for the message)."""

    name: str = ""
    upstream: str = ""  # provider/model
    api_base: str = ""
    key_env: str = ""  # the variable the route's key comes from
    max_input_tokens: int | None = None


@dataclass(frozen=True)
class Failure:
    """What the client gets for one failed request."""

    status: int
    message: str
    retry: bool = False  # False: send x-should-retry: false
    etype: str | None = None  # Anthropic error type; None: the status's usual one


def _classes(exc: BaseException) -> list[str]:
    return [c.__name__ for c in type(exc).__mro__]


def _chain(exc: BaseException, depth: int = 6) -> list[BaseException]:
    found: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and len(found) < depth and current not in found:
        found.append(current)
        current = current.__cause__ or current.__context__
    return found


def status_of(exc: BaseException) -> int | None:
    """The HTTP status LiteLLM gives an exception (None when it has none)."""
    for name in ("status_code", "code"):
        value = getattr(exc, name, None)
        if isinstance(value, int):
            return value
        if isinstance(value, str) and value.isdigit():
            return int(value)
    return None


def upstream_text(exc: BaseException) -> str:
    """The upstream's own words, without LiteLLM's `litellm.XError: ProviderException -` prefixes."""
    text = str(getattr(exc, "message", None) or exc)
    text = re.split(r"\s*LiteLLM: model group|\s*Received Model Group=", text)[0]
    text = re.sub(r"^((litellm\.)?\w+Error:\s*)+", "", text.strip())
    text = re.sub(r"^\w+Exception\s*-\s*", "", text)
    match = re.search(r'"message"\s*:\s*"((?:[^"\\]|\\.)*)"', text)
    if match:
        text = match.group(1).encode().decode("unicode_escape", "replace")
    text = text.split("Received Model Group=")[0].split("\nTraceback")[0]
    for pattern, words in _TRIGGERS:
        text = pattern.sub(words, text)
    for secret in _secrets():  # before shortening: a cut key would escape the response's own scrubbing
        text = text.replace(secret, "[redacted]")
    return " ".join(text.split())[:300].rstrip(" .")


def _secrets() -> list[str]:
    from cc_gateway.core.secrets import secret_values

    return sorted((s for s in secret_values(dict(os.environ)) if len(s) >= 6), key=len, reverse=True)


def where(route: Route) -> str:
    """`route NAME (provider/model at URL)` for a message."""
    parts = [p for p in (route.upstream, f"at {route.api_base}" if route.api_base else "") if p]
    return f"route {route.name!r}" + (f" ({' '.join(parts)})" if parts else "")


def prompt_too_long(text: str, route: Route) -> Failure:
    """The wording Claude Code compacts on: `prompt is too long: N tokens > M maximum`."""
    got = limit = None
    for pattern in _NUMBERS:
        match = pattern.search(text)
        if match:
            a, b = (int(g.replace(",", "")) for g in match.groups())
            got, limit = (a, b) if pattern is _NUMBERS[0] else (b, a)
            break
    limit = limit or route.max_input_tokens
    if got and limit:
        head = f"prompt is too long: {got} tokens > {limit} maximum"
    elif limit:
        head = f"prompt is too long: more than {limit} tokens > {limit} maximum"
    else:
        head = "prompt is too long"
    return Failure(400, f"{head} ({where(route)}: {text})", retry=True, etype="invalid_request_error")


def is_context_error(exc: BaseException, text: str) -> bool:
    """Whether the upstream refused the request for its length."""
    return "ContextWindowExceededError" in _classes(exc) or bool(_CONTEXT_WORDS.search(text))


def is_connect_error(exc: BaseException) -> bool:
    """Whether nothing answered at the upstream's address (refused, or its name does not resolve)."""
    for item in _chain(exc):
        names = set(_classes(item))
        if names & _TRANSIENT_CLASSES:
            return False
        if names & _CONNECT_CLASSES or _CONNECT_WORDS.search(str(item)):
            return True
    return False


def classify(exc: BaseException, route: Route) -> Failure | None:
    """Return what to answer for `exc`, or None to leave LiteLLM's answer (and the client's retries) alone."""
    names = set(_classes(exc))
    status = status_of(exc)
    text = upstream_text(exc)
    if names & _TRANSIENT_CLASSES or status in (408, 429, 529) or "overloaded" in text.lower():
        return None
    if is_context_error(exc, text) and (status in (None, 400, 413, 422) or "BadRequestError" in names):
        return prompt_too_long(text, route)
    key = f"the key in {route.key_env}" if route.key_env else "the route's key"
    if "AuthenticationError" in names or "PermissionDeniedError" in names or status in (401, 403):
        return Failure(
            CONFIG_STATUS,
            f"{where(route)}: the upstream refused {key} ({status or 401}: {text}). Fix "
            f"{route.key_env or 'the key'} in the gateway's .env and restart it; {DOCTOR}",
        )
    if "NotFoundError" in names or status == 404:
        return Failure(
            CONFIG_STATUS,
            f"{where(route)}: the upstream has no such model or endpoint (404: {text}). Fix the route's model "
            f"or api_base in config.yaml; {DOCTOR}",
        )
    if is_connect_error(exc):  # LiteLLM may wrap it as a 500 "Connection error."
        target = route.api_base or "the upstream"
        return Failure(
            UNREACHABLE_STATUS,
            f"{where(route)}: nothing answers at {target} ({text}). Start that server or fix the route's "
            f"api_base; {DOCTOR}",
        )
    if "BadRequestError" in names or status in (400, 422):
        return Failure(400, f"{where(route)}: the upstream refused the request ({status or 400}: {text})")
    return None


def missing_key(route: Route) -> Failure:
    """A route whose key variable is empty in the gateway's environment."""
    return Failure(
        CONFIG_STATUS,
        f"{where(route)} is unavailable: {route.key_env} is not set in the gateway's .env. Set it and restart "
        f"the gateway; {DOCTOR}",
    )
