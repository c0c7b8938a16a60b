"""Today's Claude Code (the suite's newest pinned CLI, 2.1.332) through `cc-gateway serve`, end to end.

What the real CLI sends and shows, read from the fake upstream's log and the CLI's own output:
its default and `--model opus|haiku|fable` ids reach the family's route (no id table involved),
configuration errors upstream end `claude -p` in seconds with the cause, a 128k route is known to
the client (no "doesn't recognize the model", compaction window 128k), and `/model` lists the
gateway's routes. A small subset runs on the oldest supported CLI (2.1.197) too.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import ROOT, Gateway, cli_env, free_port, init_gateway, run_cli, start_gateway, wait_until
from fakeupstream import FakeUpstream, Fault

pytestmark = [pytest.mark.e2e, pytest.mark.claude]

PROVIDER_KEY = "sk-provider-" + "Qm4Lx9Tb" * 4
UNKNOWN = "doesn't recognize the model"


def newest_claude() -> str | None:
    """The newest pinned CLI: $CC_GATEWAY_CLAUDE_BIN, else .cache/npm-new/bin/claude."""
    path = os.environ.get("CC_GATEWAY_CLAUDE_BIN") or str(ROOT / ".cache" / "npm-new" / "bin" / "claude")
    return path if Path(path).exists() else None


def oldest_claude() -> str | None:
    """The oldest supported CLI (2.1.197): .cache/npm/bin/claude."""
    path = ROOT / ".cache" / "npm" / "bin" / "claude"
    return str(path) if path.exists() else None


@pytest.fixture(scope="module")
def claude() -> str:
    path = newest_claude()
    if path is None:
        pytest.skip("the newest Claude Code CLI is not installed (.cache/npm-new, see scripts/test.sh)")
    return path


@pytest.fixture(scope="module")
def claude_old() -> str:
    path = oldest_claude()
    if path is None:
        pytest.skip("Claude Code 2.1.197 is not installed (.cache/npm, see scripts/test.sh)")
    return path


@pytest.fixture(scope="module")
def own_upstream() -> Iterator[FakeUpstream]:
    """A fake upstream of this module's own (scripts here must not leak into other modules)."""
    up = FakeUpstream().start()
    yield up
    up.stop()


def user_home(tmp_path: Path, name: str = "home") -> Path:
    """A fresh HOME for Claude Code with onboarding done."""
    home = tmp_path / name
    (home / ".claude").mkdir(parents=True)
    (home / ".claude.json").write_text(json.dumps({"hasCompletedOnboarding": True}))
    return home


def setup_claude(gateway: Gateway, home: Path, *flags: str) -> None:
    """`cc-gateway setup-claude` into HOME's user settings (the URL the test gateway listens on)."""
    result = run_cli("setup-claude", "--dir", str(gateway.folder), "--url", gateway.url, *flags, env=cli_env(home))
    assert result.returncode == 0, result.stderr


def run_claude(binary: str, home: Path, *args: str, timeout: float = 120, env: dict | None = None):
    """`claude -p` with only the settings file pointing it at the gateway; returns (result, seconds)."""
    base = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": str(home), "DISABLE_AUTOUPDATER": "1"}
    started = time.monotonic()
    result = subprocess.run(
        [binary, "-p", *args], cwd=home, env={**base, **(env or {})}, capture_output=True, text=True,
        timeout=timeout,
    )
    return result, time.monotonic() - started


def generation_models(upstream: FakeUpstream) -> list[str]:
    return [r.model for r in upstream.requests if r.api in ("messages", "chat", "responses")]


# --------------------------------------------------------------------------- anthropic preset


@pytest.fixture(scope="module")
def anthropic_gw(tmp_path_factory: pytest.TempPathFactory, own_upstream: FakeUpstream) -> Iterator[Gateway]:
    folder = tmp_path_factory.mktemp("anthropic") / "gw"
    flags = ["--api-base", f"anthropic={own_upstream.url}", "--key", f"ANTHROPIC_API_KEY={PROVIDER_KEY}"]
    gateway = start_gateway(init_gateway(folder, "anthropic", *flags))
    yield gateway
    gateway.stop()


def test_setup_claude_pins_no_model_and_the_clients_own_ids_reach_anthropic(
    claude: str, anthropic_gw: Gateway, own_upstream: FakeUpstream, tmp_path: Path
) -> None:
    home = user_home(tmp_path)
    setup_claude(anthropic_gw, home)
    env_block = json.loads((home / ".claude" / "settings.json").read_text())["env"]
    assert not [k for k in env_block if "MODEL" in k], env_block  # Claude Code's own choice goes through
    seen = {}
    for flag in ("", "opus", "haiku", "fable"):
        own_upstream.reset()
        result, _ = run_claude(claude, home, "hi", *(["--model", flag] if flag else []))
        assert result.returncode == 0, result.stdout + result.stderr
        seen[flag] = generation_models(own_upstream)
    # The ids are the CLI's (read from the upstream's log): each family's own id, unchanged by the gateway.
    assert seen[""] and all(m.startswith("claude-") for m in seen[""]), seen
    assert any(m.startswith("claude-opus-") for m in seen["opus"]), seen
    assert any(m.startswith("claude-haiku-") for m in seen["haiku"]), seen
    assert any(m.startswith("claude-fable-") for m in seen["fable"]), seen
    assert seen[""][0] == seen["opus"][0]  # the default is the CLI's opus today


def test_wrong_upstream_key_ends_claude_in_seconds_naming_the_variable(
    claude: str, anthropic_gw: Gateway, own_upstream: FakeUpstream, tmp_path: Path
) -> None:
    home = user_home(tmp_path)
    setup_claude(anthropic_gw, home)
    own_upstream.reset()
    own_upstream.default = Fault(401, "invalid x-api-key")
    try:
        result, seconds = run_claude(claude, home, "hi", timeout=240)
    finally:
        own_upstream.reset()
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert seconds < 10, (seconds, output)
    assert "ANTHROPIC_API_KEY" in output and "cc-gateway doctor" in output, output
    assert "Failed to authenticate" not in output  # a bad *upstream* key, not the gateway's


def test_stopped_upstream_ends_claude_within_30_s_naming_the_url(
    claude: str, anthropic_gw: Gateway, tmp_path: Path
) -> None:
    folder = anthropic_gw.folder.parent / "stopped"
    closed = f"http://127.0.0.1:{free_port()}"
    flags = ["--api-base", f"anthropic={closed}", "--key", f"ANTHROPIC_API_KEY={PROVIDER_KEY}"]
    gateway = start_gateway(init_gateway(folder, "anthropic", *flags))
    try:
        home = user_home(tmp_path)
        setup_claude(gateway, home)
        result, seconds = run_claude(claude, home, "hi", timeout=240)
    finally:
        gateway.stop()
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert seconds < 30, (seconds, output)
    assert closed in output and "cc-gateway doctor" in output, output


def test_oldest_cli_sends_its_own_default_id_and_fails_fast(
    claude_old: str, anthropic_gw: Gateway, own_upstream: FakeUpstream, tmp_path: Path
) -> None:
    home = user_home(tmp_path)
    setup_claude(anthropic_gw, home)
    own_upstream.reset()
    result, _ = run_claude(claude_old, home, "hi")
    assert result.returncode == 0, result.stdout + result.stderr
    assert any(m.startswith("claude-opus-") for m in generation_models(own_upstream))
    own_upstream.default = Fault(401, "invalid x-api-key")
    try:
        result, seconds = run_claude(claude_old, home, "hi", timeout=240)
    finally:
        own_upstream.reset()
    assert result.returncode != 0 and seconds < 10, (seconds, result.stdout)
    assert "ANTHROPIC_API_KEY" in result.stdout + result.stderr


# --------------------------------------------------------------------------- mapped presets: families


def test_openai_backed_routes_each_family_of_todays_ids(
    claude: str, own_upstream: FakeUpstream, tmp_path: Path
) -> None:
    flags = ["--api-base", f"openai={own_upstream.url}/v1", "--key", f"OPENAI_API_KEY={PROVIDER_KEY}",
             "--option", "strong_model=big-one", "--option", "fast_model=small-one"]
    gateway = start_gateway(init_gateway(tmp_path / "gw", "openai-backed", *flags))
    try:
        home = user_home(tmp_path)
        setup_claude(gateway, home)
        seen = {}
        for flag in ("opus", "haiku", "fable", "sonnet"):
            own_upstream.reset()
            result, _ = run_claude(claude, home, "hi", "--model", flag)
            assert result.returncode == 0, result.stdout + result.stderr
            seen[flag] = generation_models(own_upstream)
        log = gateway.log()
    finally:
        own_upstream.reset()
        gateway.stop()
    assert "big-one" in seen["opus"] and "big-one" in seen["fable"] and "big-one" in seen["sonnet"], seen
    assert seen["haiku"] and set(seen["haiku"]) == {"small-one"}, seen
    assert "route=claude-haiku-*" in log and "route=claude-fable-*" in log


# --------------------------------------------------------------------------- custom routes: picker and window


@pytest.fixture(scope="module")
def custom_gw(tmp_path_factory: pytest.TempPathFactory, own_upstream: FakeUpstream) -> Iterator[Gateway]:
    """A multi-provider gateway plus a user's 128k route, all answered by the fake upstream."""
    folder = tmp_path_factory.mktemp("custom") / "gw"
    flags = ["--api-base", f"zai={own_upstream.url}", "--api-base", f"kimi={own_upstream.url}",
             "--key", f"ZAI_API_KEY={PROVIDER_KEY}", "--key", f"KIMI_API_KEY={PROVIDER_KEY}"]
    init_gateway(folder, "multi-provider", *flags)
    added = run_cli("add-model", "mylocal", "--provider", "openai", "--model", "local-128k",
                    "--api-base", f"{own_upstream.url}/v1", "--key-env", "MYLOCAL_KEY",
                    "--context-window", "128000", "--label", "My local 128k", "--dir", str(folder))
    assert added.returncode == 0, added.stderr
    env = (folder / ".env").read_text().replace("# MYLOCAL_KEY=", "MYLOCAL_KEY=") + f"\nMYLOCAL_KEY={PROVIDER_KEY}\n"
    (folder / ".env").write_text(env)
    gateway = start_gateway(folder)
    yield gateway
    gateway.stop()


def test_a_128k_route_is_known_to_claude_code(claude: str, custom_gw: Gateway, tmp_path: Path) -> None:
    home = user_home(tmp_path)
    setup_claude(custom_gw, home)
    settings = json.loads((home / ".claude" / "settings.json").read_text())
    assert settings["modelSettings"]["mylocal"] == {"autoCompactWindow": 128000}
    debug = tmp_path / "debug.txt"
    result, _ = run_claude(claude, home, "hi", "--model", "mylocal", "--debug-file", str(debug))
    assert result.returncode == 0, result.stdout + result.stderr
    assert UNKNOWN not in result.stdout + result.stderr
    assert "unrecognized_model" not in result.stdout + result.stderr
    # The compaction window: 128k less the 20k Claude Code keeps for the summary.
    assert "effectiveWindow=108000" in debug.read_text()


def tmux(*args: str) -> str:
    return subprocess.run(["tmux", *args], capture_output=True, text=True, timeout=10).stdout


def _screen_with(session: str, text: str) -> str:
    """The tmux pane's text when it shows `text`, else ""."""
    screen = tmux("capture-pane", "-p", "-t", session)
    return screen if text in screen else ""


def test_model_picker_lists_the_gateway_routes(claude: str, custom_gw: Gateway, tmp_path: Path) -> None:
    if shutil.which("tmux") is None:
        pytest.skip("tmux is not installed")
    home = user_home(tmp_path)
    state = json.loads((home / ".claude.json").read_text())
    state["projects"] = {str(home): {"hasTrustDialogAccepted": True}}
    (home / ".claude.json").write_text(json.dumps(state))
    setup_claude(custom_gw, home)
    session = f"cc13-{os.getpid()}"
    command = f"cd {home} && env -i PATH=/usr/bin:/bin HOME={home} TERM=xterm-256color DISABLE_AUTOUPDATER=1 {claude}"
    tmux("new-session", "-d", "-s", session, "-x", "160", "-y", "50", command)
    try:
        assert wait_until(lambda: "❯" in tmux("capture-pane", "-p", "-t", session), 60)
        tmux("send-keys", "-t", session, "/model")
        time.sleep(1)
        tmux("send-keys", "-t", session, "Enter")
        screen = wait_until(lambda: _screen_with(session, "My local 128k"), 30)
    finally:
        tmux("kill-session", "-t", session)
    assert "My local 128k" in screen, screen
    assert "glm · Z.ai (GLM)" in screen and "kimi · Kimi (Moonshot)" in screen, screen
    assert "128k context" in screen
