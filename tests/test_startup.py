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


def test_serve_loads_no_litellm_before_it_sets_litellm_offline() -> None:
    """serve's preflight and server modules, and what they import, leave LiteLLM unloaded: LiteLLM
    fetches its price list at import unless serve's offline defaults are set first (boot.quiet_environment)."""
    probe = (
        "import sys\n"
        "import cc_gateway.serve.preflight, cc_gateway.serve.server, cc_gateway.runtime.bridge.checks\n"
        "import cc_gateway.runtime.multi_provider.pool, cc_gateway.doctor\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('litellm', 'claude_agent_sdk')))\n"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
