"""Start-up budget: `--help` must not import LiteLLM or the prompt library (deterministic guard)."""

from __future__ import annotations

import subprocess
import sys

import pytest

HEAVY = ("litellm", "questionary", "uvicorn", "fastapi", "jinja2", "httpx", "yaml", "ruamel")

_PROBE = f"""
import sys
sys.argv = ["cc-gateway", *sys.argv[1:]]
from cc_gateway.cli import app
try:
    app()
except SystemExit:
    pass
heavy = sorted({{m.split(".")[0] for m in sys.modules}} & set({HEAVY!r}))
print("HEAVY=" + ",".join(heavy), file=sys.stderr)
"""


COMMANDS = [
    "init",
    "presets",
    "serve",
    "setup-claude",
    "env",
    "claude",
    "add-model",
    "remove-model",
    "models",
    "doctor",
]


@pytest.mark.parametrize("args", [["--help"], ["--version"], *[[name, "--help"] for name in COMMANDS]])
def test_help_imports_no_heavy_module(args: list[str]) -> None:
    result = subprocess.run([sys.executable, "-c", _PROBE, *args], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "Usage" in result.stdout or "cc-gateway" in result.stdout
    assert result.stderr.strip().splitlines()[-1] == "HEAVY="


def test_python_dash_m_works() -> None:
    result = subprocess.run([sys.executable, "-m", "cc_gateway", "--version"], capture_output=True, text=True)
    assert result.returncode == 0 and result.stdout.startswith("cc-gateway ")
