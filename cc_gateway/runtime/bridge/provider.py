"""The OAuth bridge: a LiteLLM custom provider that answers through Claude Code (claude-agent-sdk).

Each request gets its own Claude Code CLI process in a throwaway folder (HOME and working
directory), with no tools, one turn and no setting sources, so the bridge answers as a model
and touches nothing on the gateway host. Prior turns are handed over as a session transcript the
CLI resumes; the system message becomes the CLI's system prompt.

At most CC_BRIDGE_MAX_CONCURRENCY processes run at once (idle warm spares included, and evicted
first); other requests wait. CC_BRIDGE_TIMEOUT bounds waiting plus answering; past it the
process is killed and the client gets a clear timeout. After an answer, one spare process is
started for the request the same client most likely sends next (CC_BRIDGE_WARM), because
starting the CLI dominates the time to first token.

bridge_messages.py translates the OpenAI messages, bridge_process.py runs one CLI process,
checks.py holds the settings (and what `serve` checks without importing the SDK).
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

import litellm
from claude_agent_sdk._errors import ClaudeSDKError, CLINotFoundError, ProcessError
from claude_agent_sdk.types import AssistantMessage, ResultMessage, StreamEvent, SystemMessage, TextBlock
from litellm.llms.custom_llm import CustomLLM
from litellm.types.utils import Choices, GenericStreamingChunk, Message, ModelResponse, Usage

from cc_gateway.runtime.bridge.checks import LOGIN, NO_CREDENTIAL, BridgeSettings
from cc_gateway.runtime.bridge.messages import MessageError, translate
from cc_gateway.runtime.bridge.process import CliProcess, Launch, sweep_stale_folders

log = logging.getLogger("cc_gateway.bridge")
PROVIDER = "claude-agent"
_STOP_REASONS = {"end_turn": "stop", "stop_sequence": "stop", "max_tokens": "length", "refusal": "content_filter"}
_CLI_ERRORS = {"authentication_failed": 401, "billing_error": 402, "rate_limit": 429, "invalid_request": 400}


class BridgeFailure(Exception):
    """A request the bridge could not answer; `status` picks the HTTP error the client sees."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


# --------------------------------------------------------------------------- the pool


@dataclass
class _Spare:
    """A warm process being started (or ready) for one launch key."""

    process: CliProcess
    ready: asyncio.Task[None]
    expiry: asyncio.TimerHandle | None = None


@dataclass
class ProcessPool:
    """Bounds the CLI processes alive at once and keeps warm spares for likely next requests."""

    settings: BridgeSettings
    slots: asyncio.Semaphore = field(init=False)
    spares: OrderedDict[tuple[Any, ...], _Spare] = field(default_factory=OrderedDict)
    background: set[asyncio.Task[Any]] = field(default_factory=set)
    waiting: int = 0

    def __post_init__(self) -> None:
        self.slots = asyncio.Semaphore(self.settings.max_concurrency)

    async def checkout(self, launch: Launch, deadline: float) -> CliProcess:
        """A started process for `launch`: a warm spare if one matches, else a new one (may wait)."""
        spare = self.spares.pop(launch.key, None)
        if spare is not None:
            if spare.expiry:
                spare.expiry.cancel()
            try:
                async with asyncio.timeout_at(deadline):
                    await asyncio.shield(spare.ready)
                return spare.process
            except TimeoutError:
                self.release(spare.process)
                raise
            except Exception:  # a spare that failed to start: start a fresh one instead
                self.release(spare.process)
        await self._acquire(deadline)
        try:
            process = CliProcess(self.settings, launch)
        except BaseException:
            self.slots.release()
            raise
        try:
            async with asyncio.timeout_at(deadline):
                await process.start()
        except BaseException:
            self.release(process)
            raise
        return process

    async def _acquire(self, deadline: float) -> None:
        """Take a process slot, evicting idle spares first; wait until the deadline at most."""
        self.waiting += 1
        try:
            while self.slots.locked() and self.spares:
                _, spare = self.spares.popitem(last=False)
                await self._discard(spare)
            async with asyncio.timeout_at(deadline):
                await self.slots.acquire()
        finally:
            self.waiting -= 1

    def release(self, process: CliProcess) -> None:
        """Close a process in the background; its slot frees once it is gone."""
        self._spawn(self._close(process))

    async def _close(self, process: CliProcess) -> None:
        try:
            await process.close()
        finally:
            self.slots.release()

    async def _discard(self, spare: _Spare) -> None:
        if spare.expiry:
            spare.expiry.cancel()
        spare.ready.cancel()
        await self._close(spare.process)

    def prewarm(self, launch: Launch) -> None:
        """Start a spare for `launch` if warm spares are enabled and a slot is free right now."""
        if not self.settings.warm or self.waiting or launch.key in self.spares or self.slots.locked():
            return
        # Take the free slot without awaiting: asyncio.Semaphore.acquire() does exactly this when a slot is
        # free and nobody waits (checked above), and a spare must never queue behind real requests.
        self.slots._value -= 1
        try:
            process = CliProcess(self.settings, launch)
        except OSError as exc:
            self.slots.release()
            log.warning("could not prepare a warm Claude Code process: %s", exc)
            return
        spare = _Spare(process, self._spawn(process.start()))
        spare.expiry = asyncio.get_running_loop().call_later(self.settings.warm_ttl, self._expire, launch.key, spare)
        self.spares[launch.key] = spare
        while len(self.spares) > self.settings.warm:
            _, oldest = self.spares.popitem(last=False)
            self._spawn(self._discard(oldest))

    def _expire(self, key: tuple[Any, ...], spare: _Spare) -> None:
        if self.spares.get(key) is spare:
            del self.spares[key]
            self._spawn(self._discard(spare))

    def _spawn(self, coroutine: Any) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coroutine)
        self.background.add(task)
        task.add_done_callback(self.background.discard)
        task.add_done_callback(_log_failure)
        return task


def _log_failure(task: asyncio.Task[Any]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.debug("bridge background task failed: %r", task.exception())


_POOLS: dict[int, ProcessPool] = {}


def pool_for(settings: BridgeSettings) -> ProcessPool:
    """The pool of the running event loop (a new one when the settings changed)."""
    loop_id = id(asyncio.get_running_loop())
    pool = _POOLS.get(loop_id)
    if pool is None or pool.settings != settings:
        if not _POOLS:
            sweep_stale_folders()
        pool = _POOLS[loop_id] = ProcessPool(settings)
    return pool


# --------------------------------------------------------------------------- one request


@dataclass
class Outcome:
    """What the CLI said at the end: usage and why it stopped."""

    text: list[str] = field(default_factory=list)
    usage: dict[str, int] = field(default_factory=dict)
    finish_reason: str = "stop"


def _usage(raw: dict[str, Any] | None) -> dict[str, int]:
    """OpenAI-style usage from the CLI's Anthropic usage."""
    raw = raw or {}
    prompt = sum(
        int(raw.get(k) or 0) for k in ("input_tokens", "cache_read_input_tokens", "cache_creation_input_tokens")
    )
    completion = int(raw.get("output_tokens") or 0)
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def _auth_message(settings: BridgeSettings) -> str:
    name = {LOGIN: "Claude Code login (~/.claude/.credentials.json)", None: "credential"}.get(
        settings.credential_name, settings.credential_name
    )
    return (
        f"Anthropic rejected the bridge's {name}: it is missing, expired or revoked. "
        f"Run `claude setup-token` for a new CLAUDE_CODE_OAUTH_TOKEN (or set a valid ANTHROPIC_API_KEY) in .env, "
        f"then restart the gateway"
    )


class Call:
    """One chat completion through the bridge."""

    def __init__(self, model: str, messages: list[dict[str, Any]], params: dict[str, Any], timeout: Any) -> None:
        self.settings = BridgeSettings.from_env(os.environ)
        try:
            conversation = translate(messages)
        except MessageError as exc:
            raise BridgeFailure(400, str(exc)) from None
        if (params.get("tools") or params.get("functions")) and params.get("tool_choice") != "none":
            raise BridgeFailure(400, "tools are not supported: the oauth-bridge answers as a model and runs no tools")
        max_tokens = params.get("max_completion_tokens") or params.get("max_tokens")
        self.launch = Launch(model, conversation, int(max_tokens) if max_tokens else None)
        self.budget = self.settings.timeout
        if isinstance(timeout, int | float) and 0 < timeout < self.budget:
            self.budget = float(timeout)  # a client may ask for less time, never for more
        self.outcome = Outcome()

    async def deltas(self) -> AsyncIterator[str]:
        """Yield the answer's text as the CLI streams it; fill `self.outcome` at the end."""
        if self.settings.credential_name is None:
            raise BridgeFailure(401, NO_CREDENTIAL)
        pool = pool_for(self.settings)
        deadline = asyncio.get_running_loop().time() + self.budget
        started = time.monotonic()
        process = await self._checkout(pool, deadline)
        answered = False
        try:
            async for text in self._read(process, deadline):
                self.outcome.text.append(text)
                yield text
            answered = True
        except TimeoutError:
            raise BridgeFailure(408, self._timeout_message(started)) from None
        finally:
            pool.release(process)
            if answered:
                for launch in self._likely_next()[: self.settings.warm]:
                    pool.prewarm(launch)

    def _likely_next(self) -> list[Launch]:
        """The launches this client most likely needs next, most likely first.

        A request without history is most often repeated as is by stateless API clients (same system
        prompt, a new question); one with history is most often continued with this answer appended.
        """
        continued = Launch(self.launch.model, self.launch.conversation.continued(self.text), self.launch.max_tokens)
        return [continued] if self.launch.conversation.history else [self.launch, continued]

    async def _checkout(self, pool: ProcessPool, deadline: float) -> CliProcess:
        started = time.monotonic()
        try:
            return await pool.checkout(self.launch, deadline)
        except TimeoutError:
            raise BridgeFailure(408, self._timeout_message(started)) from None
        except CLINotFoundError:
            raise BridgeFailure(500, "Claude Code CLI not found: reinstall claude-agent-sdk") from None
        except ClaudeSDKError as exc:
            log.warning("Claude Code failed to start: %s; stderr: %s", exc, " | ".join(process_tail(exc)))
            raise BridgeFailure(502, f"Claude Code failed to start: {exc}") from None

    def _timeout_message(self, started: float) -> str:
        return (
            f"no answer from Claude Code within {self.budget:.0f}s (CC_BRIDGE_TIMEOUT, waiting for a free process "
            f"included; {time.monotonic() - started:.0f}s spent); the Claude Code process was stopped"
        )

    async def _read(self, process: CliProcess, deadline: float) -> AsyncIterator[str]:
        """Send the prompt and turn the CLI's messages into text deltas; raise on errors."""
        streamed = False
        error: str | None = None
        messages = process.ask(self.launch.conversation.prompt)
        try:
            while True:
                try:
                    async with asyncio.timeout_at(deadline):
                        message = await anext(messages)
                except StopAsyncIteration:
                    break
                if isinstance(message, StreamEvent):
                    text = _text_delta(message.event)
                    if text:
                        streamed = True
                        yield text
                elif isinstance(message, AssistantMessage):
                    error = message.error or error
                    if not streamed and not message.error:
                        text = "".join(b.text for b in message.content if isinstance(b, TextBlock))
                        if text:
                            yield text
                elif isinstance(message, SystemMessage) and message.subtype == "api_retry":
                    self._retrying(message.data)
                elif isinstance(message, ResultMessage):
                    self._finish(message, error)
        except ProcessError as exc:
            log.warning("Claude Code exited with %s; stderr: %s", exc.exit_code, " | ".join(process.stderr))
            raise BridgeFailure(502, f"Claude Code exited with code {exc.exit_code}") from None
        finally:
            await messages.aclose()

    def _retrying(self, data: dict[str, Any]) -> None:
        """Stop at once when the CLI retries a rejected credential (it would back off for minutes)."""
        if data.get("error_status") in (401, 403) or data.get("error") == "authentication_failed":
            raise BridgeFailure(401, _auth_message(self.settings))
        log.info(
            "Claude Code retries after upstream status %s (attempt %s)", data.get("error_status"), data.get("attempt")
        )

    def _finish(self, result: ResultMessage, error: str | None) -> None:
        """Record usage and stop reason, or raise the error the result reports."""
        if result.is_error:
            status = result.api_error_status or _CLI_ERRORS.get(error or "", 502)
            if status == 401 or error == "authentication_failed":
                raise BridgeFailure(401, _auth_message(self.settings))
            detail = result.result or (result.errors or [result.subtype])[0]
            log.warning("Claude Code reported an error (%s): %s", status, detail)
            raise BridgeFailure(status if 400 <= status < 600 else 502, f"Claude Code: {detail}")
        self.outcome.usage = _usage(result.usage)
        self.outcome.finish_reason = _STOP_REASONS.get(result.stop_reason or "end_turn", "stop")

    @property
    def text(self) -> str:
        """The answer so far."""
        return "".join(self.outcome.text)


def process_tail(exc: BaseException) -> list[str]:
    """Stderr lines an SDK error carries, if any."""
    stderr = getattr(exc, "stderr", None)
    return [stderr] if isinstance(stderr, str) and stderr else []


def _text_delta(event: dict[str, Any]) -> str:
    """The text of a content_block_delta event ('' for anything else)."""
    if event.get("type") != "content_block_delta":
        return ""
    delta = event.get("delta") or {}
    return str(delta.get("text") or "") if delta.get("type") == "text_delta" else ""


# --------------------------------------------------------------------------- LiteLLM provider


def _litellm_error(failure: BridgeFailure, model: str) -> Exception:
    """The LiteLLM exception (and so the HTTP status) for a bridge failure."""
    kinds = {
        400: litellm.BadRequestError,
        401: litellm.AuthenticationError,
        404: litellm.NotFoundError,
        408: litellm.Timeout,
        429: litellm.RateLimitError,
        503: litellm.ServiceUnavailableError,
        529: litellm.ServiceUnavailableError,
    }
    kind = kinds.get(failure.status, litellm.APIConnectionError if failure.status >= 500 else litellm.BadRequestError)
    return kind(message=str(failure), llm_provider=PROVIDER, model=model)


class ClaudeAgentProvider(CustomLLM):
    """LiteLLM custom provider `claude-agent/<model id>`."""

    async def acompletion(self, model: str, messages: list, model_response: ModelResponse, **kwargs: Any) -> Any:
        """Answer without streaming; the response carries usage."""
        try:
            call = Call(model, messages, kwargs.get("optional_params") or {}, kwargs.get("timeout"))
            async for _ in call.deltas():
                pass
        except BridgeFailure as failure:
            raise _litellm_error(failure, model) from None
        model_response.choices = [
            Choices(
                index=0, finish_reason=call.outcome.finish_reason, message=Message(role="assistant", content=call.text)
            )
        ]
        model_response.model = model
        model_response.usage = Usage(**call.outcome.usage)  # type: ignore[attr-defined]
        return model_response

    async def astreaming(self, model: str, messages: list, **kwargs: Any) -> AsyncIterator[GenericStreamingChunk]:
        """Stream real text deltas, then one final chunk with finish_reason and usage."""
        try:
            call = Call(model, messages, kwargs.get("optional_params") or {}, kwargs.get("timeout"))
            async for text in call.deltas():
                yield _chunk(text)
        except BridgeFailure as failure:
            raise _litellm_error(failure, model) from None
        yield _chunk("", finish_reason=call.outcome.finish_reason, usage=call.outcome.usage)

    def completion(self, *args: Any, **kwargs: Any) -> Any:
        """Synchronous callers (litellm.completion) run the async path on a private loop."""

        async def run() -> Any:
            try:
                return await self.acompletion(*args, **kwargs)
            finally:
                await _drain_pool()

        return asyncio.run(run())

    def streaming(self, *args: Any, **kwargs: Any) -> Iterator[GenericStreamingChunk]:
        """Synchronous streaming, driven step by step on a private loop."""
        loop = asyncio.new_event_loop()
        chunks = self.astreaming(*args, **kwargs)
        try:
            while True:
                try:
                    yield loop.run_until_complete(anext(chunks))
                except StopAsyncIteration:
                    return
        finally:
            loop.run_until_complete(chunks.aclose())
            loop.run_until_complete(_drain_pool())
            loop.close()


async def _drain_pool() -> None:
    """Close the running loop's spares and wait for every background close (before a private loop ends)."""
    pool = _POOLS.pop(id(asyncio.get_running_loop()), None)
    if pool is None:
        return
    while pool.spares:
        _, spare = pool.spares.popitem()
        await pool._discard(spare)
    if pool.background:
        await asyncio.gather(*pool.background, return_exceptions=True)


def _chunk(text: str, *, finish_reason: str = "", usage: dict[str, int] | None = None) -> GenericStreamingChunk:
    return {
        "text": text,
        "tool_use": None,
        "is_finished": bool(finish_reason),
        "finish_reason": finish_reason,
        "usage": usage,  # type: ignore[typeddict-item]
        "index": 0,
    }


provider = ClaudeAgentProvider()
