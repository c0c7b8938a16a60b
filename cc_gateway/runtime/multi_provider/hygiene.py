"""LiteLLM callbacks of the multi-provider preset: credentials and thinking blocks per upstream.

Per upstream attempt (LiteLLM's `async_pre_call_deployment_hook`, so fallbacks are covered):
- a non-Anthropic upstream gets no Claude credential: Authorization, x-api-key and any
  `sk-ant-` value the client sent are removed, and thinking blocks too where the provider
  catalogue says the provider rejects them;
- an Anthropic route gets one credential: the next from the pool (`rotate`) or the client's
  own (`passthrough`), never the gateway's static token; thinking blocks whose signature the
  gateway did not see come from Anthropic are removed.

On the way back, reasoning from non-Anthropic upstreams (thinking blocks, `reasoning_content`)
is removed, streamed or not, so Claude Code's history stays valid for a later Anthropic turn.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import logging
from collections import OrderedDict
from collections.abc import AsyncIterator, Mapping
from typing import Any

from litellm.integrations.custom_logger import CustomLogger

from cc_gateway.runtime import auth, context
from cc_gateway.runtime.multi_provider import pool

log = logging.getLogger("cc_gateway.hygiene")

THINKING_TYPES = ("thinking", "redacted_thinking")
REASONING_FIELDS = ("reasoning_content", "thinking_blocks", "reasoning", "reasoning_details")
SIGNATURE_TTL = 7 * 24 * 3600
_SERVED_SIZE = 4096


class _Served:
    """Which provider served each request (by LiteLLM call id): the last attempt wins."""

    def __init__(self) -> None:
        self._by_call: OrderedDict[str, str] = OrderedDict()

    def set(self, call_id: Any, provider: str) -> None:
        if not call_id:
            return
        self._by_call[str(call_id)] = provider
        self._by_call.move_to_end(str(call_id))
        while len(self._by_call) > _SERVED_SIZE:
            self._by_call.popitem(last=False)

    def get(self, data: Any) -> str | None:
        call_id = data.get("litellm_call_id") if isinstance(data, Mapping) else None
        return self._by_call.get(str(call_id)) if call_id else None


_served = _Served()


def _thinking_catalogue() -> dict[str, bool]:
    from cc_gateway.gateway.providers import load_providers

    return {name: p.thinking for name, p in load_providers().items()}


def provider_of(kwargs: Mapping[str, Any]) -> str:
    """The cc-gateway provider name of the deployment being called ('anthropic' only when sure)."""
    info = kwargs.get("model_info") or {}
    named = info.get("cc_gateway_provider")
    if named:
        return str(named)
    base = str(kwargs.get("api_base") or "")
    if kwargs.get("custom_llm_provider") == "anthropic" and (not base or "api.anthropic.com" in base):
        return "anthropic"
    return str(kwargs.get("custom_llm_provider") or "unknown")


# --------------------------------------------------------------------------- credentials


def _is_claude_credential(name: str, value: Any) -> bool:
    return name.lower() in pool.CREDENTIAL_HEADERS or (isinstance(value, str) and "sk-ant-" in value)


def scrub_headers(headers: Any) -> Any:
    """Return headers without Authorization, x-api-key, any sk-ant- value or the OAuth beta."""
    if not isinstance(headers, Mapping):
        return headers
    out = {k: v for k, v in headers.items() if not _is_claude_credential(k, v)}
    for key in [k for k in out if k.lower() == "anthropic-beta"]:
        merged = pool.merge_beta(out.pop(key), drop=pool.OAUTH_BETA)
        if merged:
            out[key] = merged
    return out


def _scrub_provider_specific(value: Any) -> Any:
    if isinstance(value, list):
        return [_scrub_provider_specific(v) for v in value]
    if isinstance(value, Mapping) and isinstance(value.get("extra_headers"), Mapping):
        return {**value, "extra_headers": scrub_headers(value["extra_headers"])}
    return value


def strip_client_credentials(kwargs: dict[str, Any]) -> None:
    """Remove every client-sent Claude credential from what LiteLLM will send upstream."""
    for key in ("headers", "extra_headers"):
        if key in kwargs:
            kwargs[key] = scrub_headers(kwargs[key])
    if "provider_specific_header" in kwargs:
        kwargs["provider_specific_header"] = _scrub_provider_specific(kwargs["provider_specific_header"])


def raw_headers(kwargs: Mapping[str, Any]) -> Mapping[str, str]:
    """The client's request headers (LiteLLM keeps them out of its logs in secret_fields)."""
    secret = kwargs.get("secret_fields") or {}
    raw = secret.get("raw_headers") if isinstance(secret, Mapping) else getattr(secret, "raw_headers", None)
    return {str(k).lower(): str(v) for k, v in (raw or {}).items()}


def client_credential(headers: Mapping[str, str]) -> pool.Credential | None:
    """The client's own Claude credential (Authorization or x-api-key), never a gateway key."""
    gateway = {auth.master_key(), *auth.static_tokens()} - {""}
    for name in ("authorization", "x-api-key"):
        value = auth.strip_bearer(headers.get(name, ""))
        if value and value not in gateway:
            return pool.Credential(value)
    return None


# --------------------------------------------------------------------------- thinking blocks


def _without_thinking(messages: list[Any], keep: Any = None) -> tuple[list[Any], bool]:
    """Return messages minus thinking blocks (except those `keep(block)` accepts), and whether the last turn lost one."""
    out, last_lost = [], False
    assistant_turns = [i for i, m in enumerate(messages) if isinstance(m, dict) and m.get("role") == "assistant"]
    for index, message in enumerate(messages):
        content = message.get("content") if isinstance(message, dict) else None
        if not isinstance(content, list):
            out.append(message)
            continue
        kept = [b for b in content if not _is_thinking(b) or (keep is not None and keep(b))]
        if len(kept) != len(content):
            last_lost = last_lost or (bool(assistant_turns) and index == assistant_turns[-1])
            if not kept:
                continue
            message = {**message, "content": kept}
        out.append(message)
    return out, last_lost


def _is_thinking(block: Any) -> bool:
    return isinstance(block, dict) and block.get("type") in THINKING_TYPES


def block_mark(block: Mapping[str, Any]) -> str | None:
    """A hash naming a thinking block's signature (or redacted data); None when it has none."""
    secret = block.get("signature") or block.get("data")
    return hashlib.sha256(secret.encode()).hexdigest()[:32] if isinstance(secret, str) and secret else None


class SignatureBook:
    """The thinking-block signatures this gateway saw come from Anthropic (Redis-shared when set)."""

    def __init__(self, redis_url: str = "", size: int = 50_000) -> None:
        self.size = size
        self._seen: OrderedDict[str, None] = OrderedDict()
        self._redis = pool.RedisState(redis_url) if redis_url else None

    async def add(self, marks: list[str]) -> None:
        """Remember signatures Anthropic returned."""
        for mark in marks:
            self._seen[mark] = None
            self._seen.move_to_end(mark)
        while len(self._seen) > self.size:
            self._seen.popitem(last=False)
        if self._redis is not None and marks:
            try:
                async with self._redis._client().pipeline(transaction=False) as pipe:
                    for mark in marks:
                        pipe.set(f"cc-gateway:sig:{mark}", "1", ex=SIGNATURE_TTL)
                    await pipe.execute()
            except Exception as exc:  # Redis down: this process still remembers them
                self._redis._degraded(exc)

    async def known(self, marks: list[str]) -> set[str]:
        """Return which of `marks` came from Anthropic."""
        found = {m for m in marks if m in self._seen}
        missing = [m for m in marks if m not in found]
        if self._redis is not None and missing:
            try:
                values = await self._redis._client().mget([f"cc-gateway:sig:{m}" for m in missing])
            except Exception as exc:
                self._redis._degraded(exc)
                return found
            found |= {m for m, v in zip(missing, values, strict=True) if v}
        return found


# --------------------------------------------------------------------------- responses


def strip_response(response: Any) -> Any:
    """Remove thinking blocks and reasoning fields from a non-streamed response (dict or object)."""
    if isinstance(response, dict):
        if isinstance(response.get("content"), list):
            response["content"] = [b for b in response["content"] if not _is_thinking(b)]
        for choice in response.get("choices") or []:
            _drop_reasoning(choice.get("message") if isinstance(choice, dict) else getattr(choice, "message", None))
        return response
    for choice in getattr(response, "choices", None) or []:
        _drop_reasoning(getattr(choice, "message", None) or getattr(choice, "delta", None))
    content = getattr(response, "content", None)
    if isinstance(content, list):
        response.content = [b for b in content if not _is_thinking(b if isinstance(b, dict) else vars(b))]
    return response


def _drop_reasoning(message: Any) -> None:
    if message is None:
        return
    for name in REASONING_FIELDS:
        if isinstance(message, dict):
            message.pop(name, None)
        elif getattr(message, name, None) is not None:
            try:
                delattr(message, name)
            except AttributeError:
                setattr(message, name, None)
    extra = message.get("provider_specific_fields") if isinstance(message, dict) else None
    if isinstance(extra, dict):
        for name in REASONING_FIELDS:
            extra.pop(name, None)


def signatures_in(response: Any) -> list[str]:
    """The marks of the thinking blocks in a non-streamed Anthropic response."""
    content = response.get("content") if isinstance(response, dict) else getattr(response, "content", None)
    blocks = [b if isinstance(b, dict) else getattr(b, "__dict__", {}) for b in content or []]
    return [m for b in blocks if _is_thinking(b) and (m := block_mark(b))]


class SseThinkingFilter:
    """Rewrite an Anthropic SSE stream: drop thinking blocks (renumbering the rest) or collect their signatures."""

    def __init__(self, drop: bool) -> None:
        self.drop = drop
        self.buffer = b""
        self.dropped: set[int] = set()
        self.marks: list[str] = []
        self._signatures: dict[int, str] = {}

    def feed(self, data: bytes) -> bytes:
        """Return the complete events of `data` (plus what was buffered), rewritten."""
        self.buffer += data.replace(b"\r\n", b"\n")
        *events, self.buffer = self.buffer.split(b"\n\n")
        return b"".join(self._event(e) for e in events)

    def flush(self) -> bytes:
        """Return whatever is left at the end of the stream."""
        rest, self.buffer = self.buffer, b""
        return self._event(rest) if rest.strip() else rest

    def _event(self, raw: bytes) -> bytes:
        lines = raw.split(b"\n")
        data_lines = [ln[5:].strip() for ln in lines if ln.startswith(b"data:")]
        try:
            payload = json.loads(b"".join(data_lines)) if data_lines else None
        except ValueError:
            payload = None
        if not isinstance(payload, dict) or "index" not in payload:
            return raw + b"\n\n"
        index = payload["index"]
        if not self.drop:
            self._collect(payload)
            return raw + b"\n\n"
        block = payload.get("content_block") or {}
        if payload.get("type") == "content_block_start" and block.get("type") in THINKING_TYPES:
            self.dropped.add(index)
        if index in self.dropped:
            return b""
        shift = sum(1 for i in self.dropped if i < index)
        if not shift:
            return raw + b"\n\n"
        payload["index"] = index - shift
        kept = [ln for ln in lines if not ln.startswith(b"data:")]
        return b"\n".join([*kept, b"data: " + json.dumps(payload).encode()]) + b"\n\n"

    def _collect(self, payload: dict) -> None:
        block = payload.get("content_block") or {}
        delta = payload.get("delta") or {}
        starts_redacted = payload.get("type") == "content_block_start" and block.get("type") == "redacted_thinking"
        if starts_redacted and (mark := block_mark(block)):
            self.marks.append(mark)
        if delta.get("type") == "signature_delta":
            self._signatures[payload["index"]] = self._signatures.get(payload["index"], "") + delta.get("signature", "")
        stops_signed = payload.get("type") == "content_block_stop" and payload["index"] in self._signatures
        if stops_signed and (mark := block_mark({"signature": self._signatures.pop(payload["index"])})):
            self.marks.append(mark)


# --------------------------------------------------------------------------- the callbacks


class ProviderHygiene(CustomLogger):
    """Credentials and thinking blocks per upstream; the Claude credential pool."""

    def __init__(self) -> None:
        super().__init__()
        self._book: SignatureBook | None = None

    @property
    def book(self) -> SignatureBook:
        """The signature book (built on first use, from REDIS_URL)."""
        if self._book is None:
            import os

            self._book = SignatureBook(os.environ.get(pool.REDIS_ENV, "").strip())
        return self._book

    async def async_pre_call_hook(self, user_api_key_dict: Any, cache: Any, data: dict, call_type: Any) -> Any:
        """Refuse a request early: an unknown token mode, or passthrough without a Claude credential."""
        from fastapi import HTTPException

        from cc_gateway.core.errors import ConfigError
        from cc_gateway.runtime.hooks import deployments_for

        headers = raw_headers(data)
        try:
            mode = pool.choose_mode(headers.get(pool.MODE_HEADER), len(pool.get_pool()))
        except ConfigError as exc:
            raise HTTPException(status_code=400, detail=str(exc)) from None
        info = context.info()
        if info is not None:
            info.token_mode = mode  # the deployment hook (every attempt, fallbacks too) uses this decision
        routes = deployments_for(str(data.get("model") or ""))
        to_anthropic = bool(routes) and _deployment_provider(routes[0]) == "anthropic"
        _add_wildcard_fallbacks(data)
        if to_anthropic and mode == "passthrough" and client_credential(headers) is None:
            raise HTTPException(
                status_code=401,
                detail="passthrough mode: send your own Claude credential (Authorization: Bearer or x-api-key); "
                "the gateway token goes in x-litellm-api-key",
            )
        return data

    async def async_pre_call_deployment_hook(self, kwargs: dict[str, Any], call_type: Any) -> dict | None:
        """Give this upstream attempt the right credential and the history it accepts."""
        provider = provider_of(kwargs)
        _served.set(kwargs.get("litellm_call_id"), provider)
        if provider == "anthropic":
            await self._to_anthropic(kwargs)
        else:
            self._to_third_party(kwargs, provider)
        return kwargs

    def _to_third_party(self, kwargs: dict[str, Any], provider: str) -> None:
        strip_client_credentials(kwargs)
        key = kwargs.get("api_key")
        if isinstance(key, str) and "sk-ant-" in key:
            kwargs.pop("api_key")
            log.error("route for provider %s has a Claude credential as its key: not sent", provider)
        if not _thinking_catalogue().get(provider, False) and isinstance(kwargs.get("messages"), list):
            kwargs["messages"], _ = _without_thinking(kwargs["messages"])

    async def _to_anthropic(self, kwargs: dict[str, Any]) -> None:
        headers = raw_headers(kwargs)
        strip_client_credentials(kwargs)
        if (kwargs.get("model_info") or {}).get("cc_gateway_credential_pool"):
            await self._pool_credential(kwargs, headers)
        # else: an Anthropic route with its own api_key keeps it; no client credential rides along
        await self._filter_signatures(kwargs)

    @staticmethod
    async def _pool_credential(kwargs: dict[str, Any], headers: Mapping[str, str]) -> None:
        """Give a pool route its credential: the pool's next (rotate) or the client's own (passthrough)."""
        credentials = pool.get_pool()
        info = context.info()
        if info is not None and info.token_mode:
            mode = info.token_mode
        else:  # no request context (a direct call): decide here; a bad header was refused before the call
            mode = pool.choose_mode(headers.get(pool.MODE_HEADER), len(credentials))
        if mode == "rotate":
            try:
                first = await credentials.acquire()
            except pool.PoolError as exc:
                _note_retry_after(exc)
                raise _rate_limited(str(exc), kwargs) from None
            kwargs["api_key"] = first.value
            kwargs["client"] = pool.pool_client(credentials, first, _note_retry_after)
            return
        own = client_credential(headers)
        if own is not None:
            kwargs["api_key"] = own.value
            kwargs["client"] = pool.pool_client(None, own, _note_retry_after)

    async def _filter_signatures(self, kwargs: dict[str, Any]) -> None:
        messages = kwargs.get("messages")
        if not isinstance(messages, list):
            return
        marks = [m for msg in messages if isinstance(msg, dict) for b in _blocks(msg) if (m := block_mark(b))]
        if not marks and not any(_is_thinking(b) for msg in messages if isinstance(msg, dict) for b in _blocks(msg)):
            return
        known = await self.book.known(marks) if marks else set()
        kwargs["messages"], last_lost = _without_thinking(messages, keep=lambda b: block_mark(b) in known)
        if last_lost and kwargs.get("thinking"):
            kwargs.pop("thinking", None)
            log.info("dropped thinking blocks Anthropic did not sign from the last turn: thinking off for this request")

    async def async_post_call_success_hook(self, data: dict, user_api_key_dict: Any, response: Any) -> Any:
        """Strip reasoning a non-Anthropic upstream returned; remember Anthropic's signatures."""
        provider = _served.get(data)
        log.debug("response from provider %s (%s)", provider, type(response).__name__)
        if provider == "anthropic":
            await self.book.add(signatures_in(response))
            return response
        return strip_response(response) if provider is not None else response

    async def async_post_call_streaming_iterator_hook(
        self, user_api_key_dict: Any, response: Any, request_data: dict
    ) -> AsyncIterator[Any]:
        """Same as above, for streams (Anthropic SSE bytes or chat chunks)."""
        provider = _served.get(request_data)
        if provider is None:
            async for chunk in response:
                yield chunk
            return
        sse = SseThinkingFilter(drop=provider != "anthropic")
        async for chunk in response:
            if isinstance(chunk, bytes | str):
                out = sse.feed(chunk.encode() if isinstance(chunk, str) else chunk)
                if out:
                    yield out if isinstance(chunk, bytes) else out.decode()
            else:
                yield chunk if provider == "anthropic" else strip_response(chunk)
        tail = sse.flush()
        if tail:
            yield tail
        if sse.marks:
            await self.book.add(sse.marks)


def wildcard_fallbacks(model: str, fallbacks: Any) -> list[str] | None:
    """The fallback targets of the first wildcard key (e.g. `claude-haiku-*`) matching `model`.

    LiteLLM matches fallback keys exactly (plus provider prefixes and a bare "*"), so a key
    like `anthropic/*` never matches a request for `anthropic/claude-opus-4`.
    """
    entries = [e for e in fallbacks or [] if isinstance(e, Mapping) and e]
    if any(model in e for e in entries):
        return None
    for entry in entries:
        key, targets = next(iter(entry.items()))
        if key != "*" and "*" in key and fnmatch.fnmatchcase(model, key):
            return list(targets)
    return None


def _add_wildcard_fallbacks(data: dict) -> None:
    from cc_gateway.runtime.hooks import current_router

    router = current_router()
    if router is None or data.get("fallbacks"):
        return
    targets = wildcard_fallbacks(str(data.get("model") or ""), router.fallbacks)
    if targets:
        data["fallbacks"] = targets


def _deployment_provider(deployment: Mapping[str, Any]) -> str:
    params = deployment.get("litellm_params") or {}
    return provider_of(
        {
            "model_info": deployment.get("model_info") or {},
            "api_base": params.get("api_base"),
            "custom_llm_provider": str(params.get("model", "")).split("/", 1)[0],
        }
    )


def _blocks(message: dict) -> list[Any]:
    content = message.get("content")
    return [b for b in content if _is_thinking(b)] if isinstance(content, list) else []


def _note_retry_after(exc: pool.PoolError) -> None:
    info = context.info()
    if info is not None and exc.retry_after:
        info.retry_after = str(exc.retry_after)


def _rate_limited(message: str, kwargs: Mapping[str, Any]) -> Exception:
    import litellm

    return litellm.RateLimitError(message=message, llm_provider="anthropic", model=str(kwargs.get("model") or ""))


handler = ProviderHygiene()
