"""Shared fixtures: an isolated HOME, a fake upstream, and real `cc-gateway serve` processes."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import httpx
import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))

from fakeupstream import FakeUpstream  # noqa: E402
from pg import pg_server, pg_url  # noqa: E402, F401 - a real PostgreSQL server for the team store tests


@pytest.fixture(autouse=True)
def isolated_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point HOME, XDG and CC_GATEWAY_HOME at a temp folder; keep LiteLLM offline."""
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / ".config"))
    monkeypatch.setenv("CC_GATEWAY_HOME", str(home / ".cc-gateway"))
    monkeypatch.setenv("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    for name in ("ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN", "ANTHROPIC_BASE_URL", "ANTHROPIC_MODEL",
                 "OPENAI_API_KEY", "LITELLM_MASTER_KEY", "PROXY_STATIC_TOKEN", "CLAUDE_OAUTH_TOKENS"):
        monkeypatch.delenv(name, raising=False)
    return home


T = TypeVar("T")


def wait_until(condition: Callable[[], T], timeout: float, interval: float = 0.05) -> T:
    """Poll condition until it returns something true or timeout seconds have passed; return its last value."""
    deadline = time.monotonic() + timeout
    while not (value := condition()) and time.monotonic() < deadline:
        time.sleep(interval)
    return value


def free_port() -> int:
    """Return a TCP port that is free on 127.0.0.1 right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def upstream() -> Iterator[FakeUpstream]:
    """One fake LLM provider for the session; tests reset it before use."""
    up = FakeUpstream()
    up.start()
    yield up
    up.stop()


@pytest.fixture
def fresh_upstream(upstream: FakeUpstream) -> FakeUpstream:
    """The session's fake upstream with its scripts and request log cleared."""
    upstream.reset()
    return upstream


def cli_env(home: Path | None = None, **extra: str) -> dict[str, str]:
    """Environment for a cc-gateway subprocess: this venv, offline LiteLLM, no stray keys."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ANTHROPIC_", "OPENAI_", "LITELLM_", "CLAUDE_"))}
    env["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    if home is not None:
        env["HOME"] = str(home)
    env.update(extra)
    return env


def run_cli(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None,
            timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run `python -m cc_gateway ARGS` in a subprocess and capture its output."""
    return subprocess.run(
        [sys.executable, "-m", "cc_gateway", *args], cwd=cwd, env=env or cli_env(), capture_output=True,
        text=True, timeout=timeout,
    )


def init_gateway(folder: Path, preset: str, *flags: str, port: int | None = None) -> Path:
    """Render a preset into `folder` with `init --yes`; return the folder."""
    result = run_cli("init", "--preset", preset, "--dir", str(folder), "--yes",
                     "--port", str(port or free_port()), *flags)
    assert result.returncode == 0, result.stderr
    return folder


def read_env(folder: Path) -> dict[str, str]:
    """Parse a gateway folder's .env."""
    from cc_gateway.core.envfile import load_env_file

    return load_env_file(folder / ".env")


@dataclass
class Gateway:
    """A running `cc-gateway serve` subprocess."""

    folder: Path
    port: int
    process: subprocess.Popen[str]
    log_path: Path
    key: str

    @property
    def url(self) -> str:
        """Base URL (no /v1)."""
        return f"http://127.0.0.1:{self.port}"

    def log(self) -> str:
        """Everything the gateway printed so far."""
        return self.log_path.read_text(errors="replace")

    def headers(self, key: str | None = None) -> dict[str, str]:
        """Auth headers with the master key (or `key`)."""
        return {"Authorization": f"Bearer {key or self.key}"}

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60) -> int:
        """Signal the process and wait for its exit code."""
        if self.process.poll() is None:
            self.process.send_signal(sig)
        return self.process.wait(timeout=timeout)


def start_gateway(folder: Path, *args: str, env: dict[str, str] | None = None, port: int | None = None,
                  ready_timeout: float = 90) -> Gateway:
    """Start `cc-gateway serve` on a gateway folder and wait until liveliness answers."""
    port = port or free_port()
    log_path = folder / f"serve-{port}.log"
    handle = log_path.open("w")
    process = subprocess.Popen(
        [sys.executable, "-m", "cc_gateway", "serve", "--dir", str(folder), "--port", str(port), *args],
        env=env or cli_env(), stdout=handle, stderr=subprocess.STDOUT, text=True, start_new_session=True,
    )
    key = read_env(folder).get("LITELLM_MASTER_KEY", "")
    gateway = Gateway(folder, port, process, log_path, key)
    deadline = time.monotonic() + ready_timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"serve exited with {process.returncode}:\n{gateway.log()}")
        try:
            if httpx.get(f"{gateway.url}/health/liveliness", timeout=1).status_code == 200:
                return gateway
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    process.kill()
    raise RuntimeError(f"serve not ready after {ready_timeout}s:\n{gateway.log()}")


@pytest.fixture
def gateway_factory() -> Iterator[callable]:
    """Start gateways for one test; all are stopped afterwards."""
    started: list[Gateway] = []

    def factory(folder: Path, *args: str, **kwargs: object) -> Gateway:
        gw = start_gateway(folder, *args, **kwargs)
        started.append(gw)
        return gw

    yield factory
    for gw in started:
        if gw.process.poll() is None:
            gw.process.kill()
            gw.process.wait(timeout=10)


def _claude(variable: str, prefix: str) -> str | None:
    if os.environ.get(variable):  # scripts/test.sh sets it: a path that must work, never a skip
        return os.environ[variable]
    candidate = ROOT / ".cache" / prefix / "bin" / "claude"
    return str(candidate) if candidate.exists() else None


def claude_bin() -> str | None:
    """The newest Claude Code CLI the suite is tested with (2.1.332; CC_GATEWAY_CLAUDE_BIN, else .cache/npm-new,
    else `claude` on PATH). The suite's Claude Code tests run on it."""
    return _claude("CC_GATEWAY_CLAUDE_BIN", "npm-new") or shutil.which("claude")


def claude_bin_oldest() -> str | None:
    """The oldest supported Claude Code CLI (2.1.197; CC_GATEWAY_CLAUDE_BIN_OLDEST, else .cache/npm): a small
    end-to-end subset (tests/test_claude_code.py) runs on it too."""
    return _claude("CC_GATEWAY_CLAUDE_BIN_OLDEST", "npm")
