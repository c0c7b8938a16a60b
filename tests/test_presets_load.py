"""Every preset's rendered config loads in the real LiteLLM proxy (through `cc-gateway serve`)."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from conftest import init_gateway

from cc_gateway.gateway.presets import load_preset

pytestmark = pytest.mark.e2e

ANTHROPIC_KEY = "sk-ant-api03-" + "a" * 40


def preset_flags(preset: str, upstream_url: str) -> list[str]:
    """init flags that give a preset every key it needs, pointed at the fake upstream."""
    flags = {
        "demo": [],
        "anthropic": ["--key", f"ANTHROPIC_API_KEY={ANTHROPIC_KEY}", "--api-base", f"anthropic={upstream_url}"],
        "openai-backed": ["--key", "OPENAI_API_KEY=sk-proj-" + "b" * 40, "--api-base", f"openai={upstream_url}/v1"],
        "multi-provider": [
            "--key",
            "PROXY_STATIC_TOKEN=static-token-" + "c" * 20,
            "--key",
            "ZAI_API_KEY=" + "z" * 32,
            "--key",
            "KIMI_API_KEY=sk-" + "k" * 32,
            "--key",
            "OPENROUTER_API_KEY=sk-or-" + "o" * 32,
            "--api-base",
            f"zai={upstream_url}",
            "--api-base",
            f"kimi={upstream_url}",
            "--api-base",
            f"openrouter={upstream_url}/v1",
            "--api-base",
            f"anthropic={upstream_url}",
        ],
        "oauth-bridge": ["--key", f"ANTHROPIC_API_KEY={ANTHROPIC_KEY}"],
    }
    return flags[preset]


@pytest.mark.parametrize("preset", ["demo", "anthropic", "openai-backed", "multi-provider", "oauth-bridge"])
def test_preset_loads_in_litellm(preset: str, tmp_path: Path, upstream: object, gateway_factory: object) -> None:
    folder = init_gateway(tmp_path / preset, preset, *preset_flags(preset, upstream.url))
    gateway = gateway_factory(folder)
    assert httpx.get(f"{gateway.url}/health/liveliness", timeout=10).status_code == 200
    models = httpx.get(f"{gateway.url}/v1/models?return_wildcard_routes=true", headers=gateway.headers(), timeout=30)
    assert models.status_code == 200, models.text
    listed = {m["id"] for m in models.json()["data"]}
    loaded = load_preset(preset)
    routes = {r.name for r in loaded.routes} | set(loaded.aliases)
    assert routes <= listed, f"missing from /v1/models: {routes - listed}"


def test_demo_answers_without_any_key(tmp_path: Path, gateway_factory: object) -> None:
    """The README's first command: a fresh machine, no keys, a working gateway."""
    gateway = gateway_factory(init_gateway(tmp_path / "demo", "demo"))
    reply = httpx.post(
        f"{gateway.url}/v1/messages",
        headers=gateway.headers(),
        json={"model": "claude-sonnet-4-5-20250929", "max_tokens": 64, "messages": [{"role": "user", "content": "hi"}]},
        timeout=30,
    )
    assert reply.status_code == 200, reply.text
    assert "cc-gateway demo" in reply.json()["content"][0]["text"]
