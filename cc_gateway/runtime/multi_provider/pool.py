"""The Claude credential pool: round-robin, rests after a 429, removal after a 401.

CLAUDE_OAUTH_TOKENS holds the pool (OAuth tokens `sk-ant-oat…` or API keys, comma-separated).
A credential that gets a 429 rests for the upstream's Retry-After (else
CLAUDE_POOL_COOLDOWN_SECONDS, 60 by default); one that gets a 401 leaves the pool and is
named in the log by its fingerprint only. When every credential rests, the request fails
with 429 and a Retry-After of the soonest rest end (LiteLLM then tries the route's fallback).

State lives in memory, or in Redis when REDIS_URL is set, so that every replica sees the
same rests. Rotation happens inside one upstream attempt (`PoolClient.post`): LiteLLM's
router only sees a failure when the pool as a whole cannot serve the request.

Importing this module is cheap; LiteLLM and redis are imported where they are used.
"""

from __future__ import annotations

import asyncio
import email.utils
import hashlib
import itertools
import logging
import math
import os
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from cc_gateway.core.errors import ConfigError

log = logging.getLogger("cc_gateway.pool")

TOKENS_ENV = "CLAUDE_OAUTH_TOKENS"
MODE_ENV = "CLAUDE_TOKEN_MODE"
COOLDOWN_ENV = "CLAUDE_POOL_COOLDOWN_SECONDS"
REDIS_ENV = "REDIS_URL"
MODE_HEADER = "x-claude-token-mode"
MODES = ("rotate", "passthrough")
DEFAULT_COOLDOWN = 60.0
OAUTH_PREFIX = "sk-ant-oat"
OAUTH_BETA = "oauth-2025-04-20"
REMOVED_TTL = 7 * 24 * 3600
KEY_PREFIX = "cc-gateway:pool:"
_TOKEN_SHAPE = re.compile(r"^[A-Za-z0-9._~+/=\-]{16,}$")
CREDENTIAL_HEADERS = ("authorization", "x-api-key")


class PoolError(Exception):
    """The pool cannot serve a request right now."""

    def __init__(self, message: str, retry_after: int | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


def fingerprint(value: str) -> str:
    """Return a short, stable name for a credential that reveals nothing of it."""
    return "fp-" + hashlib.sha256(value.encode()).hexdigest()[:12]


def is_oauth(value: str) -> bool:
    """Tell whether a Claude credential is a subscription OAuth token (not an API key)."""
    return value.startswith(OAUTH_PREFIX)


@dataclass(frozen=True)
class Credential:
    """One Claude credential of the pool (or a client's own, in passthrough)."""

    value: str = field(repr=False)

    @property
    def fingerprint(self) -> str:
        """Short sha256-based name, safe to log."""
        return fingerprint(self.value)

    @property
    def oauth(self) -> bool:
        """Whether this is an OAuth token (Bearer + OAuth beta) rather than an API key."""
        return is_oauth(self.value)


def merge_beta(existing: str | None, add: str | None = None, drop: str | None = None) -> str:
    """Return an anthropic-beta value with `add` present and `drop` absent, order kept."""
    items = [b.strip() for b in (existing or "").split(",") if b.strip() and b.strip() != drop]
    if add and add not in items:
        items.append(add)
    return ",".join(items)


def with_credential(headers: Mapping[str, str] | None, credential: Credential) -> dict[str, str]:
    """Return upstream headers carrying `credential` and no other Claude credential.

    OAuth tokens go as `Authorization: Bearer` with the OAuth beta and no x-api-key;
    API keys as `x-api-key`, without the OAuth beta.
    """
    out = {k: v for k, v in (headers or {}).items() if k.lower() not in CREDENTIAL_HEADERS}
    beta_key = next((k for k in out if k.lower() == "anthropic-beta"), "anthropic-beta")
    beta = out.pop(beta_key, None)
    if credential.oauth:
        out["authorization"] = f"Bearer {credential.value}"
        out["anthropic-beta"] = merge_beta(beta, add=OAUTH_BETA)
    else:
        out["x-api-key"] = credential.value
        merged = merge_beta(beta, drop=OAUTH_BETA)
        if merged:
            out["anthropic-beta"] = merged
    return out


# --------------------------------------------------------------------------- configuration


def parse_tokens(raw: str | None) -> list[Credential]:
    """Parse CLAUDE_OAUTH_TOKENS; '' means no pool. Raises ConfigError naming the variable."""
    if raw is None or not raw.strip():
        return []
    hint = f"set {TOKENS_ENV} to comma-separated sk-ant-oat… tokens or sk-ant-api… keys, or leave it empty"
    entries = [part.strip() for part in raw.split(",")]
    if not any(entries):
        raise ConfigError(f"{TOKENS_ENV} holds no credential, only separators", hint=hint)
    seen: set[str] = set()
    result = []
    for number, entry in enumerate(entries, 1):
        if not entry:
            raise ConfigError(f"{TOKENS_ENV}: entry {number} is empty (two commas in a row?)", hint=hint)
        if not _TOKEN_SHAPE.match(entry):
            raise ConfigError(
                f"{TOKENS_ENV}: entry {number} ({fingerprint(entry)}) is not a credential "
                "(too short, or contains spaces, quotes or other characters a token never has)",
                hint=hint,
            )
        if entry not in seen:
            seen.add(entry)
            result.append(Credential(entry))
    return result


def parse_mode(raw: str | None, source: str = MODE_ENV) -> str | None:
    """Return 'rotate', 'passthrough' or None (not set); raise ConfigError for anything else."""
    value = (raw or "").strip().lower()
    if not value:
        return None
    if value not in MODES:
        raise ConfigError(
            f"{source}={raw!r} is not a token mode", hint=f"use one of: {', '.join(MODES)} (or leave it empty)"
        )
    return value


def parse_cooldown(raw: str | None) -> float:
    """Return CLAUDE_POOL_COOLDOWN_SECONDS as seconds (60 when not set)."""
    if raw is None or not raw.strip():
        return DEFAULT_COOLDOWN
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not 0 < value <= 86400 or math.isnan(value):
        raise ConfigError(f"{COOLDOWN_ENV}={raw!r} is not a number of seconds", hint="use e.g. 60 (1 to 86400)")
    return value


def parse_retry_after(value: str | None, default: float) -> float:
    """Seconds to rest from a Retry-After value (seconds or an HTTP date); `default` when absent/unusable."""
    if not value:
        return default
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            seconds = email.utils.parsedate_to_datetime(value).timestamp() - time.time()
        except (TypeError, ValueError, IndexError):
            return default
    if math.isnan(seconds) or seconds <= 0:
        return default
    return min(seconds, 86400.0)


def check_redis(url: str, timeout: float = 3.0) -> None:
    """Connect to REDIS_URL and PING it; raise ConfigError naming the variable when that fails."""
    try:
        import redis
    except ImportError:
        raise ConfigError(
            f"{REDIS_ENV} is set but the redis client is not installed", hint="pip install 'redis>=5'"
        ) from None
    shown = re.sub(r"//[^@/]*@", "//***@", url)
    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=timeout, socket_timeout=timeout)
        client.ping()
        client.close()
    except ValueError as exc:
        raise ConfigError(f"{REDIS_ENV}={shown!r} is not a Redis URL: {exc}", hint="use redis://HOST:PORT/DB") from None
    except redis.RedisError as exc:
        raise ConfigError(
            f"{REDIS_ENV}={shown}: cannot reach Redis ({type(exc).__name__}: {exc})",
            hint=f"start Redis, fix {REDIS_ENV}, or leave it empty to keep the state in this process",
        ) from None


def validate_environment(environ: Mapping[str, str] | None = None) -> list[str]:
    """Check the pool's variables before LiteLLM loads; return warnings, raise ConfigError.

    Called by `serve`'s preflight for gateways whose config has a credential-pool route.
    """
    env = os.environ if environ is None else environ
    credentials = parse_tokens(env.get(TOKENS_ENV))
    mode = parse_mode(env.get(MODE_ENV))
    parse_cooldown(env.get(COOLDOWN_ENV))
    redis_url = (env.get(REDIS_ENV) or "").strip()
    if redis_url:
        check_redis(redis_url)
    warnings = []
    if any(c.oauth for c in credentials):
        count = sum(c.oauth for c in credentials)
        warnings.append(
            f"{TOKENS_ENV} holds {count} subscription OAuth token(s): Anthropic's terms reserve them for "
            "Claude Code and Claude.ai, and pooling several people's subscriptions on a shared gateway may "
            "breach them. For subscriptions prefer passthrough (each person's own Claude Code login); pool API keys."
        )
    if mode == "rotate" and not credentials:
        warnings.append(f"{MODE_ENV}=rotate but {TOKENS_ENV} is empty: Claude requests use the client's own token")
    return warnings


# --------------------------------------------------------------------------- state backends


class MemoryState:
    """Rests and removals in this process only."""

    def __init__(self) -> None:
        self._rests: dict[str, float] = {}
        self._removed: set[str] = set()

    async def load(self, fps: list[str]) -> tuple[dict[str, float], set[str]]:
        """Return (rest end per resting fingerprint, removed fingerprints)."""
        now = time.time()
        rests = {fp: until for fp in fps if (until := self._rests.get(fp, 0.0)) > now}
        return rests, {fp for fp in fps if fp in self._removed}

    async def rest(self, fp: str, until: float) -> None:
        """Rest a credential until `until` (epoch seconds); a longer rest already set wins."""
        self._rests[fp] = max(until, self._rests.get(fp, 0.0))

    async def remove(self, fp: str) -> None:
        """Take a credential out of the pool."""
        self._removed.add(fp)


class RedisState:
    """Rests and removals in Redis, shared by every replica using the same REDIS_URL.

    If Redis stops answering, the pool keeps serving from this process's memory (and says so
    in the log) rather than failing requests.
    """

    def __init__(self, url: str) -> None:
        self.url = url
        self._clients: dict[int, Any] = {}
        self._memory = MemoryState()
        self._warned = 0.0

    def _client(self) -> Any:
        import redis.asyncio as aioredis

        loop = id(asyncio.get_running_loop())
        if loop not in self._clients:
            self._clients[loop] = aioredis.Redis.from_url(self.url, socket_connect_timeout=3, socket_timeout=3)
        return self._clients[loop]

    def _degraded(self, exc: Exception) -> None:
        if time.monotonic() - self._warned > 30:
            self._warned = time.monotonic()
            log.warning("Redis (REDIS_URL) failed (%s): the pool uses this process's memory until it is back", exc)

    async def load(self, fps: list[str]) -> tuple[dict[str, float], set[str]]:
        """Return (rest end per resting fingerprint, removed fingerprints)."""
        keys = [f"{KEY_PREFIX}rest:{fp}" for fp in fps] + [f"{KEY_PREFIX}removed:{fp}" for fp in fps]
        try:
            values = await self._client().mget(keys)
        except Exception as exc:  # redis errors and OSError alike: keep serving from memory
            self._degraded(exc)
            return await self._memory.load(fps)
        now = time.time()
        rests = {fp: float(v) for fp, v in zip(fps, values[: len(fps)], strict=True) if v and float(v) > now}
        removed = {fp for fp, v in zip(fps, values[len(fps) :], strict=True) if v}
        memory_rests, memory_removed = await self._memory.load(fps)
        return {**memory_rests, **rests}, removed | memory_removed

    async def rest(self, fp: str, until: float) -> None:
        """Rest a credential until `until`; the key expires when the rest ends."""
        await self._memory.rest(fp, until)
        key = f"{KEY_PREFIX}rest:{fp}"
        ttl_ms = max(1, int((until - time.time()) * 1000))
        try:
            client = self._client()
            current = await client.get(key)
            if current is None or float(current) < until:
                await client.set(key, repr(until), px=ttl_ms)
        except Exception as exc:
            self._degraded(exc)

    async def remove(self, fp: str) -> None:
        """Take a credential out of the pool for every replica (kept a week)."""
        await self._memory.remove(fp)
        try:
            await self._client().set(f"{KEY_PREFIX}removed:{fp}", "1", ex=REMOVED_TTL)
        except Exception as exc:
            self._degraded(exc)


# --------------------------------------------------------------------------- the pool


class CredentialPool:
    """Round-robin over the credentials that neither rest nor were removed."""

    def __init__(self, credentials: list[Credential], state: Any, cooldown: float = DEFAULT_COOLDOWN) -> None:
        self.credentials = credentials
        self.state = state
        self.cooldown = cooldown
        self._counter = itertools.count()

    def __len__(self) -> int:
        return len(self.credentials)

    async def acquire(self, exclude: set[str] | frozenset[str] = frozenset()) -> Credential:
        """Return the next usable credential; raise PoolError (with Retry-After) when none is."""
        fps = [c.fingerprint for c in self.credentials]
        rests, removed = await self.state.load(fps)
        count = len(self.credentials)
        start = next(self._counter)
        for offset in range(count):
            candidate = self.credentials[(start + offset) % count]
            fp = candidate.fingerprint
            if fp not in rests and fp not in removed and fp not in exclude:
                return candidate
        live = [rests[fp] for fp in fps if fp in rests and fp not in removed]
        if not live:
            raise PoolError(f"every credential in {TOKENS_ENV} was rejected by Anthropic (401)")
        wait = max(1, math.ceil(min(live) - time.time()))
        raise PoolError(f"every credential in {TOKENS_ENV} is rate-limited; the first is free in {wait}s", wait)

    async def report(self, credential: Credential, status: int, retry_after: str | None = None) -> None:
        """Record an upstream answer: 429 rests the credential, 401 removes it."""
        if status == 429:
            seconds = parse_retry_after(retry_after, self.cooldown)
            await self.state.rest(credential.fingerprint, time.time() + seconds)
            log.warning("credential %s got 429: resting it for %.0fs", credential.fingerprint, seconds)
        elif status == 401:
            await self.state.remove(credential.fingerprint)
            log.error(
                "credential %s was rejected by Anthropic (401): removed from the pool; replace it in %s",
                credential.fingerprint,
                TOKENS_ENV,
            )


_POOL: CredentialPool | None = None


def get_pool() -> CredentialPool:
    """Return the process's pool, built from the environment on first use."""
    global _POOL
    if _POOL is None:
        redis_url = os.environ.get(REDIS_ENV, "").strip()
        state = RedisState(redis_url) if redis_url else MemoryState()
        _POOL = CredentialPool(
            parse_tokens(os.environ.get(TOKENS_ENV)), state, parse_cooldown(os.environ.get(COOLDOWN_ENV))
        )
    return _POOL


def choose_mode(header_value: str | None, pool_size: int) -> str:
    """Pick the mode for one request: the header, else CLAUDE_TOKEN_MODE, else by pool size.

    `rotate` with an empty pool falls back to passthrough (there is nothing to rotate).
    """
    mode = parse_mode(header_value, MODE_HEADER) or parse_mode(os.environ.get(MODE_ENV))
    mode = mode or ("rotate" if pool_size else "passthrough")
    return "passthrough" if mode == "rotate" and not pool_size else mode


# --------------------------------------------------------------------------- the HTTP client


def _shared_client() -> Any:
    import litellm
    from litellm.llms.custom_httpx.http_handler import get_async_httpx_client

    return get_async_httpx_client(llm_provider=litellm.LlmProviders.ANTHROPIC)


def _http_error(status: int, message: str, url: str) -> Exception:
    """A synthetic upstream error LiteLLM maps like a real one (no Retry-After: no router sleep)."""
    import json

    import httpx

    request = httpx.Request("POST", url)
    body = json.dumps({"type": "error", "error": {"type": "rate_limit_error", "message": message}})
    response = httpx.Response(status, request=request, content=body, headers={"content-type": "application/json"})
    return httpx.HTTPStatusError(message, request=request, response=response)


async def _post(attempt: Any, url: str, args: tuple, headers: dict | None, kwargs: dict) -> Any:
    """POST through LiteLLM's shared client, moving to the next credential on 429/401."""
    import httpx

    credential, tried = attempt.first, set()
    while True:
        try:
            return await _shared_client().post(url, *args, headers=with_credential(headers, credential), **kwargs)
        except httpx.HTTPStatusError as exc:
            if exc.response.status_code not in (401, 429):
                raise
            tried.add(credential.fingerprint)
            credential = await _after_refusal(attempt, exc, credential, tried, url)


async def _after_refusal(attempt: Any, exc: Any, credential: Credential, tried: set[str], url: str) -> Credential:
    """Record a 429/401 and return the credential to try next; raise when there is none."""
    status, retry_after = exc.response.status_code, exc.response.headers.get("retry-after")
    if attempt.pool is None:  # passthrough: the client's own token, nothing to rotate
        if status == 401:
            raise exc
        attempt.exhausted(PoolError("", math.ceil(parse_retry_after(retry_after, DEFAULT_COOLDOWN))))
        raise _http_error(429, "Anthropic rate-limited your own Claude credential", url) from None
    await attempt.pool.report(credential, status, retry_after)
    try:
        return await attempt.pool.acquire(exclude=tried)
    except PoolError as empty:
        attempt.exhausted(empty)
        if status == 401:
            raise exc from None
        raise _http_error(429, str(empty), url) from None


def _make_pool_client() -> type:
    from litellm.llms.custom_httpx.http_handler import AsyncHTTPHandler

    class PoolClient(AsyncHTTPHandler):
        """An AsyncHTTPHandler for one request that rotates pool credentials on 429/401.

        Without a pool (passthrough) it only keeps an upstream 429's Retry-After away from
        LiteLLM's router, which would otherwise sleep that long before its retry.
        """

        def __init__(self, pool: CredentialPool | None, first: Credential, on_exhausted: Any = None) -> None:
            # No super().__init__(): requests go through LiteLLM's shared Anthropic client.
            self.pool = pool
            self.first = first
            self.on_exhausted = on_exhausted

        def __getattr__(self, name: str) -> Any:
            return getattr(_shared_client(), name)

        async def post(self, url: str, *args: Any, headers: dict | None = None, **kwargs: Any) -> Any:
            return await _post(self, url, args, headers, kwargs)

        def exhausted(self, error: PoolError) -> None:
            if self.on_exhausted is not None:
                self.on_exhausted(error)

    return PoolClient


_POOL_CLIENT: type | None = None


def pool_client(pool: CredentialPool | None, first: Credential, on_exhausted: Any = None) -> Any:
    """Return a per-request HTTP client that serves one upstream attempt from the pool."""
    global _POOL_CLIENT
    if _POOL_CLIENT is None:
        _POOL_CLIENT = _make_pool_client()
    return _POOL_CLIENT(pool, first, on_exhausted)
