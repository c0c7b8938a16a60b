"""The init wizard on a real terminal (pexpect): questions answered, and Ctrl-C writes nothing."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from cc_gateway.core.envfile import load_env_file

pexpect = pytest.importorskip("pexpect")

ANTHROPIC_KEY = "sk-ant-api03-" + "k" * 40


def spawn(cwd: Path, *args: str) -> object:
    """Start `cc-gateway init` on a pseudo-terminal."""
    child = pexpect.spawn(
        sys.executable,
        ["-m", "cc_gateway", "init", *args],
        cwd=str(cwd),
        encoding="utf-8",
        timeout=30,
        dimensions=(40, 200),
    )
    return child


def test_wizard_asks_and_renders(tmp_path: Path) -> None:
    child = spawn(tmp_path, "--preset", "anthropic")
    child.expect("ANTHROPIC_API_KEY")
    child.sendline(ANTHROPIC_KEY)
    child.expect("Port:")
    child.send("\x7f" * 4 + "4711\r")
    child.expect("Target folder:")
    child.send("\x7f" + "gw\r")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0, child.before
    assert ANTHROPIC_KEY not in child.before  # the hidden input is never echoed
    env = load_env_file(tmp_path / "gw" / ".env")
    assert env["ANTHROPIC_API_KEY"] == ANTHROPIC_KEY
    assert env["CC_GATEWAY_PORT"] == "4711"


def test_wizard_preset_choice(tmp_path: Path) -> None:
    child = spawn(tmp_path, "--port", "4000", "--dir", str(tmp_path / "gw"))
    child.expect("Preset:")
    child.send("\r")  # first entry: demo
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0, child.before
    assert "(preset demo)" in (tmp_path / "gw" / "config.yaml").read_text()


def test_ctrl_c_in_the_wizard_exits_130_and_writes_nothing(tmp_path: Path) -> None:
    child = spawn(tmp_path, "--preset", "anthropic", "--dir", str(tmp_path / "gw"))
    child.expect("ANTHROPIC_API_KEY")
    child.sendintr()
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 130
    assert "Traceback" not in child.before
    assert not (tmp_path / "gw").exists()
