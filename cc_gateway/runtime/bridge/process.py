"""One Claude Code CLI process for the oauth-bridge, in its own throwaway folder.

The process gets a temp HOME and working directory (mode 0700), no tools, one turn, no setting
sources and thinking off; prior turns are written as a session file it resumes. Closing it kills
the process and deletes the folder; at exit, whatever is left is killed and deleted too.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import json
import logging
import os
import re
import shutil
import signal
import tempfile
import uuid
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from claude_agent_sdk import ClaudeAgentOptions, ClaudeSDKClient

from cc_gateway.core.secrets import is_secret_name
from cc_gateway.runtime.bridge.checks import LOGIN, BridgeSettings
from cc_gateway.runtime.bridge.messages import Conversation, transcript

log = logging.getLogger("cc_gateway.bridge")


@dataclass(frozen=True)
class Launch:
    """Everything a CLI process is started with; equal launches can share a warm spare."""

    model: str
    conversation: Conversation
    max_tokens: int | None

    @property
    def key(self) -> tuple[str, str, int | None]:
        """Identity for the warm pool."""
        return (self.model, self.conversation.key(), self.max_tokens)


def _cli_env(settings: BridgeSettings, home: Path, max_tokens: int | None) -> dict[str, str]:
    """The CLI's environment: a throwaway HOME, our upstream and credential, the gateway's secrets blanked."""
    env = {name: "" for name in os.environ if is_secret_name(name) or name.startswith(("ANTHROPIC_", "CLAUDE_"))}
    env.update(
        HOME=str(home),
        XDG_CONFIG_HOME=str(home / ".config"),
        CLAUDE_CONFIG_DIR=str(home / ".claude"),
        ANTHROPIC_BASE_URL=settings.base_url,
        CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC="1",
        # Claude Code retries upstream errors 10 times with backoff (minutes); fewer lets `default`
        # fall back to sonnet in seconds.
        CLAUDE_CODE_MAX_RETRIES=str(settings.max_retries),
        DISABLE_AUTOUPDATER="1",
        DISABLE_TELEMETRY="1",
    )
    if settings.credential_name == LOGIN:
        _copy_login(Path(settings.credential), home / ".claude" / ".credentials.json")
    elif settings.credential_name:
        env[settings.credential_name] = settings.credential
    if max_tokens:
        env["CLAUDE_CODE_MAX_OUTPUT_TOKENS"] = str(max_tokens)
    return env


def _copy_login(source: Path, target: Path) -> None:
    """Give a throwaway folder the access token of a `claude /login`, without its refresh token.

    The CLI would refresh an expired token and rotate the refresh token inside the throwaway copy,
    which invalidates the login it came from (claude-agent-sdk's session resume does the same).
    Once the access token expires, requests answer 401 naming `claude setup-token`.
    """
    try:
        data = json.loads(source.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return
    for entry in data.values() if isinstance(data, dict) else []:
        if isinstance(entry, dict):
            entry.pop("refreshToken", None)
    target.write_text(json.dumps(data), encoding="utf-8")
    target.chmod(0o600)


class CliProcess:
    """One Claude Code CLI process in its own temp folder; answers one prompt, then is closed."""

    def __init__(self, settings: BridgeSettings, launch: Launch) -> None:
        self.launch = launch
        self.root = Path(tempfile.mkdtemp(prefix=f"{_PREFIX}{os.getpid()}-")).resolve()
        _LIVE.add(self)
        self.stderr: deque[str] = deque(maxlen=20)
        self._closed = False
        home, work = self.root / "home", self.root / "work"
        work.mkdir()
        (home / ".claude").mkdir(parents=True)
        options = ClaudeAgentOptions(
            model=launch.model,
            tools=[],
            allowed_tools=[],
            max_turns=1,
            cwd=str(work),
            setting_sources=[],
            strict_mcp_config=True,
            permission_mode="dontAsk",
            include_partial_messages=True,
            thinking={"type": "disabled"},
            env=_cli_env(settings, home, launch.max_tokens),
            stderr=self.stderr.append,
            resume=self._write_history(home, work),
        )
        if launch.conversation.system:
            # A file keeps the system prompt out of the process list (argv is world-readable).
            system_file = self.root / "system-prompt.txt"
            system_file.write_text(launch.conversation.system, encoding="utf-8")
            options.system_prompt = {"type": "file", "path": str(system_file)}
        self.client = ClaudeSDKClient(options)

    def _write_history(self, home: Path, work: Path) -> str | None:
        """Write prior turns as a session the CLI resumes; return its id (None without history)."""
        conversation = self.launch.conversation
        if not conversation.history:
            return None
        session_id = str(uuid.uuid4())
        project = home / ".claude" / "projects" / re.sub(r"[^A-Za-z0-9]", "-", str(work))
        project.mkdir(parents=True)
        text = transcript(conversation, session_id=session_id, cwd=str(work), model=self.launch.model)
        (project / f"{session_id}.jsonl").write_text(text, encoding="utf-8")
        return session_id

    @property
    def pid(self) -> int | None:
        """The CLI's process id while it runs."""
        process = getattr(getattr(self.client, "_transport", None), "_process", None)
        return process.pid if process is not None and process.returncode is None else None

    async def start(self) -> None:
        """Start the CLI and wait until it is ready for a prompt."""
        await self.client.connect()

    async def ask(self, blocks: list[dict[str, Any]]) -> AsyncIterator[Any]:
        """Send the prompt (text and image blocks) and yield the CLI's messages up to the result."""

        async def one_message() -> AsyncIterator[dict[str, Any]]:
            yield {"type": "user", "message": {"role": "user", "content": blocks}, "parent_tool_use_id": None}

        await self.client.query(one_message())
        async for message in self.client.receive_response():
            yield message

    async def close(self) -> None:
        """Kill the CLI if it still runs, reap it and delete its folder (idempotent)."""
        if self._closed:
            return
        self._closed = True
        _LIVE.discard(self)
        pid = self.pid
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        try:
            await asyncio.wait_for(self.client.disconnect(), timeout=15)
        except Exception:  # the process is already killed: nothing more to do than log it
            log.debug("closing the Claude Code process raised", exc_info=True)
        finally:
            await asyncio.to_thread(shutil.rmtree, self.root, True)


_PREFIX = "cc-bridge-"
_LIVE: set[CliProcess] = set()


@atexit.register
def _kill_live_processes() -> None:
    """At gateway exit, kill every CLI still running (warm spares) and delete its folder."""
    for process in list(_LIVE):
        pid = process.pid
        if pid is not None:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        shutil.rmtree(process.root, ignore_errors=True)
    _LIVE.clear()


def sweep_stale_folders() -> int:
    """Delete the temp folders of gateways that died without cleaning up (killed); return how many."""
    removed = 0
    for folder in Path(tempfile.gettempdir()).glob(f"{_PREFIX}*-*"):
        owner = folder.name[len(_PREFIX) :].split("-", 1)[0]
        if owner.isdigit() and int(owner) != os.getpid() and not _alive(int(owner)):
            shutil.rmtree(folder, ignore_errors=True)
            removed += 1
    return removed


def _alive(pid: int) -> bool:
    """Whether a process with this id exists."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
