"""init, setup-claude and add-model write atomically, refuse files that won't parse, and rerun identically.

tests/test_files.py kills a bare `files.atomic_write`; here each command runs whole in a child
process whose `os.replace` (or `os.fsync`, i.e. mid-write, before the data is even flushed) kills
the process with SIGKILL when the command reaches the file under test. Nothing in the product
knows about it: the child patches the standard library before it imports the CLI.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import cli_env, free_port, init_gateway, read_env, run_cli

CHILD = r"""
import os, signal, sys
target, point, *args = sys.argv[1:]

def dies(path):
    if os.path.basename(str(path)) == target or os.path.basename(str(path)).startswith("." + target + "."):
        os.kill(os.getpid(), signal.SIGKILL)

if point == "replace":
    real_replace = os.replace
    def replace(src, dst, *a, **k):
        dies(dst)
        return real_replace(src, dst, *a, **k)
    os.replace = replace
else:  # fsync: the temp file is written but not flushed to disk nor renamed
    real_fsync = os.fsync
    def fsync(fd):
        dies(os.readlink(f"/proc/self/fd/{fd}"))
        return real_fsync(fd)
    os.fsync = fsync

from cc_gateway.cli import app
sys.argv = ["cc-gateway", *args]
app()
"""


def killed_at(target: str, point: str, *args: str, env: dict) -> subprocess.CompletedProcess[str]:
    """Run `cc-gateway ARGS` in a child that SIGKILLs itself when it writes `target`."""
    command = [sys.executable, "-c", CHILD, target, point, *args]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every regular file under folder (temp files left by a killed writer excluded)."""
    return {
        str(p.relative_to(folder)): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and not p.name.endswith(".tmp")
    }


@pytest.fixture
def gateway(tmp_path: Path) -> Path:
    """An openai-backed gateway folder."""
    return init_gateway(tmp_path / "gw", "openai-backed", "--key", "OPENAI_API_KEY=sk-proj-atomic-0123456789abcdef")


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """A HOME whose ~/.claude/settings.json holds the user's own settings."""
    home = tmp_path / "home"
    (home / ".claude").mkdir(parents=True)
    user = {"theme": "dark", "env": {"MY_VAR": "1"}, "permissions": {"allow": ["Bash(ls:*)"]}}
    (home / ".claude" / "settings.json").write_text(json.dumps(user, indent=2) + "\n")
    return home


def commands(gateway: Path) -> dict[str, tuple[str, list[str]]]:
    """Per command: the file it must write atomically, and arguments that change it."""
    return {
        "init": (".env", ["init", "--preset", "openai-backed", "--dir", str(gateway), "--yes", "--force",
                          "--port", str(free_port())]),
        "setup-claude": ("settings.json", ["setup-claude", "--dir", str(gateway), "--scope", "user"]),
        "add-model": ("config.yaml", ["add-model", "extra", "--provider", "openai", "--model", "gpt-extra",
                                      "--dir", str(gateway)]),
    }  # fmt: skip


@pytest.mark.parametrize("point", ["fsync", "replace"], ids=["mid-write", "at-rename"])
@pytest.mark.parametrize("command", ["init", "setup-claude", "add-model"])
def test_a_command_killed_at_the_write_leaves_the_old_file_whole(
    gateway: Path, home: Path, command: str, point: str
) -> None:
    target, args = commands(gateway)[command]
    env = cli_env(home)
    watched = home / ".claude" if command == "setup-claude" else gateway
    before = snapshot(watched)
    result = killed_at(target, point, *args, env=env)
    assert result.returncode == -signal.SIGKILL, result.stderr
    after = snapshot(watched)
    name = next(k for k in before if Path(k).name == target)
    assert after[name] == before[name], f"{name} changed although the write was killed"
    assert set(after) <= set(before) | {f"{name}.bak"}, set(after) - set(before)
    left = [p for p in watched.rglob(f".{target}.*.tmp")]
    assert len(left) <= 1  # the killed writer's temp file: hidden, never the real file
    finished = run_cli(*args, env=env)  # the same command, not killed, then completes normally
    assert finished.returncode == 0, finished.stderr
    assert snapshot(watched)[name] != before[name]


@pytest.mark.parametrize("command", ["init", "setup-claude", "add-model"])
def test_every_rerun_with_the_same_input_is_byte_identical(gateway: Path, home: Path, command: str) -> None:
    _, args = commands(gateway)[command]
    if command == "init":  # the input it was made with
        port = read_env(gateway)["CC_GATEWAY_PORT"]
        args = ["init", "--preset", "openai-backed", "--dir", str(gateway), "--yes", "--port", port]
        args += ["--key", "OPENAI_API_KEY=sk-proj-atomic-0123456789abcdef"]
    env = cli_env(home)
    first = run_cli(*args, env=env)
    assert first.returncode == 0, first.stderr
    after_first = {**snapshot(gateway), **{f"~/{k}": v for k, v in snapshot(home).items()}}
    for _ in range(2):
        again = run_cli(*args, env=env)
        if command == "add-model":  # the route exists now: refused, nothing written
            assert again.returncode != 0 and "already exists" in again.stderr, again.stderr
        else:
            assert again.returncode == 0, again.stderr
        assert {**snapshot(gateway), **{f"~/{k}": v for k, v in snapshot(home).items()}} == after_first


BROKEN = {
    "init": (".env", "LITELLM_MASTER_KEY=sk-aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\nthis is not a variable\n"),
    "setup-claude": ("settings.json", '{"theme": "dark",\n  "env": {not json}\n}\n'),
    "add-model": ("config.yaml", "model_list:\n  - model_name: [unclosed\n"),
}


@pytest.mark.parametrize("command", BROKEN)
def test_a_file_that_wont_parse_is_never_replaced(gateway: Path, home: Path, command: str) -> None:
    _, args = commands(gateway)[command]
    name, text = BROKEN[command]
    path = (home / ".claude" if command == "setup-claude" else gateway) / name
    path.write_text(text)
    before = {**snapshot(gateway), **{f"~/{k}": v for k, v in snapshot(home).items()}}
    result = run_cli(*args, env=cli_env(home))
    assert result.returncode == 1, result.stdout + result.stderr
    assert f"{path}:" in result.stderr and "Traceback" not in result.stderr  # names the file and line
    assert {**snapshot(gateway), **{f"~/{k}": v for k, v in snapshot(home).items()}} == before
    assert path.read_text() == text


def test_init_without_force_never_replaces_a_config_that_wont_parse(gateway: Path) -> None:
    config = gateway / "config.yaml"
    config.write_text("model_list: [\n")
    result = run_cli("init", "--preset", "openai-backed", "--dir", str(gateway), "--yes")
    assert result.returncode == 1
    assert config.read_text() == "model_list: [\n"
    assert not (gateway / "config.yaml.bak").exists()


def test_env_is_created_0600_and_stays_0600_after_a_rewrite(gateway: Path) -> None:
    assert os.stat(gateway / ".env").st_mode & 0o777 == 0o600
    result = run_cli("init", "--preset", "openai-backed", "--dir", str(gateway), "--yes", "--force", "--port", "4999")
    assert result.returncode == 0, result.stderr
    assert os.stat(gateway / ".env").st_mode & 0o777 == 0o600
