"""Golden files: each preset's rendered output, byte for byte (UPDATE_GOLDEN=1 rewrites them)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from cc_gateway.gateway.presets import load_preset, preset_names
from cc_gateway.gateway.render import Answers, render

GOLDEN = Path(__file__).parent / "golden"
ANSWERS = Answers(
    port=4000, master_key="sk-golden-master-key-000000000000000000000000", salt_key="sk-golden-salt-000000"
)


@pytest.mark.parametrize("preset", preset_names())
def test_rendered_files_match_golden(preset: str) -> None:
    files = render(load_preset(preset), ANSWERS)
    folder = GOLDEN / preset
    if os.environ.get("UPDATE_GOLDEN"):
        folder.mkdir(parents=True, exist_ok=True)
        for name, (text, _mode) in files.items():
            (folder / name).write_text(text)
    assert sorted(files) == sorted(p.name for p in folder.iterdir())
    for name, (text, _mode) in files.items():
        assert text == (folder / name).read_text(), f"{preset}/{name} differs from its golden file"


@pytest.mark.parametrize("preset", preset_names())
def test_config_is_a_litellm_config_without_literal_keys(preset: str) -> None:
    text, _ = render(load_preset(preset), ANSWERS)["config.yaml"]
    config = yaml.safe_load(text)
    assert config["general_settings"]["master_key"] == "os.environ/LITELLM_MASTER_KEY"
    assert config["general_settings"]["custom_auth"] == "cc_gateway_runtime.auth"
    assert "master_key" not in config["litellm_settings"]  # LiteLLM ignores it there
    for entry in config["model_list"]:
        key = entry["litellm_params"].get("api_key", "os.environ/")
        assert key.startswith("os.environ/") or key == "demo-no-key-needed", entry
        assert "[1m]" not in entry["model_name"]
    assert ANSWERS.master_key not in text


def test_openai_backed_stays_on_chat_completions() -> None:
    config = yaml.safe_load(render(load_preset("openai-backed"), ANSWERS)["config.yaml"][0])
    assert config["litellm_settings"]["use_chat_completions_url_for_anthropic_messages"] is True
    assert all(e["model_info"]["supports_reasoning"] is False for e in config["model_list"])
    aliases = config["router_settings"]["model_group_alias"]
    assert {"claude-smart", "claude-fast", "claude-code"} <= set(aliases)


def test_env_file_mode_and_placeholders() -> None:
    files = render(load_preset("multi-provider"), ANSWERS)
    text, mode = files[".env"]
    assert mode == 0o600
    assert f"LITELLM_MASTER_KEY={ANSWERS.master_key}" in text
    for name in ("ZAI_API_KEY", "KIMI_API_KEY", "OPENROUTER_API_KEY", "CLAUDE_OAUTH_TOKENS", "PROXY_STATIC_TOKEN"):
        assert f"# {name}=" in text


def _compose_command() -> list[str] | None:
    """`docker compose` (plugin) where installed, else Debian's `docker-compose`, else None."""
    if shutil.which("docker") and subprocess.run(["docker", "compose", "version"], capture_output=True).returncode == 0:
        return ["docker", "compose"]
    return ["docker-compose"] if shutil.which("docker-compose") else None


@pytest.mark.skipif(_compose_command() is None, reason="no docker compose client installed")
@pytest.mark.parametrize("preset", preset_names())
def test_compose_file_is_valid_for_docker(tmp_path: Path, preset: str) -> None:
    for name, (text, _mode) in render(load_preset(preset), ANSWERS).items():
        (tmp_path / name).write_text(text)
    result = subprocess.run([*_compose_command(), "config"], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    gateway = yaml.safe_load(result.stdout)["services"]["gateway"]
    for port in gateway["ports"]:
        host_ip = port["host_ip"] if isinstance(port, dict) else port.split(":")[0]
        assert host_ip == "127.0.0.1", port
    assert "/health/liveliness" in " ".join(gateway["healthcheck"]["test"])
