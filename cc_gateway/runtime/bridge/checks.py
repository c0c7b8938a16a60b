"""The OAuth bridge's settings and start-up checks, readable without importing claude-agent-sdk.

`serve` calls `startup_warnings()` before loading LiteLLM; the bridge itself reads
`BridgeSettings.from_env()` at request time.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from cc_gateway.core.secrets import is_placeholder

DEFAULT_BASE_URL = "https://api.anthropic.com"
LOGIN = "LOGIN"
PROVIDER_PREFIX = "claude-agent/"
TERMS_NOTICE = (
    "the oauth-bridge runs on a subscription OAuth token (CLAUDE_CODE_OAUTH_TOKEN or a `claude /login`): "
    "Anthropic's terms keep "
    "those tokens for Claude Code and Claude.ai and exclude other products, the Agent SDK included; use it "
    "for your own use at most, and set ANTHROPIC_API_KEY for anything beyond that"
)
NO_CREDENTIAL = (
    "the oauth-bridge has no Anthropic credential: set CLAUDE_CODE_OAUTH_TOKEN (run `claude setup-token`) "
    "or ANTHROPIC_API_KEY in .env"
)


@dataclass(frozen=True)
class BridgeSettings:
    """What the bridge reads from the environment (`.env` is loaded into it by serve)."""

    credential_name: str | None  # ANTHROPIC_API_KEY, CLAUDE_CODE_OAUTH_TOKEN or LOGIN (a `claude /login`)
    credential: str  # the key or token; for LOGIN, the path of the login's .credentials.json
    base_url: str
    max_concurrency: int
    timeout: float
    warm: int
    warm_ttl: float
    max_retries: int

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> BridgeSettings:
        """Read the settings; an API key wins over an OAuth token when both are set."""
        name, value = None, ""
        for candidate in ("ANTHROPIC_API_KEY", "CLAUDE_CODE_OAUTH_TOKEN"):
            found = env.get(candidate, "").strip()
            if found and not is_placeholder(found):
                name, value = candidate, found
                break
        login = Path(env.get("HOME") or Path.home()) / ".claude" / ".credentials.json"
        if name is None and login.is_file():
            name, value = LOGIN, str(login)
        return cls(
            credential_name=name,
            credential=value,
            base_url=env.get("CC_BRIDGE_ANTHROPIC_BASE_URL", "").strip().rstrip("/") or DEFAULT_BASE_URL,
            max_concurrency=max(1, _number(env, "CC_BRIDGE_MAX_CONCURRENCY", 4)),
            timeout=max(1.0, float(_number(env, "CC_BRIDGE_TIMEOUT", 300))),
            warm=max(0, _number(env, "CC_BRIDGE_WARM", 1)),
            warm_ttl=max(1.0, float(_number(env, "CC_BRIDGE_WARM_TTL", 300))),
            max_retries=max(0, _number(env, "CC_BRIDGE_MAX_RETRIES", 2)),
        )

    @property
    def on_oauth_token(self) -> bool:
        """Whether requests go out on a subscription OAuth token."""
        return self.credential_name in ("CLAUDE_CODE_OAUTH_TOKEN", LOGIN)


def _number(env: Mapping[str, str], name: str, default: int) -> int:
    """An integer setting; a missing or malformed value falls back to the default."""
    raw = env.get(name, "").strip()
    try:
        return int(float(raw)) if raw else default
    except ValueError:
        return default


def uses_bridge(config: Mapping[str, object]) -> bool:
    """Whether a gateway config routes any model through the bridge."""
    for entry in config.get("model_list") or []:
        params = entry.get("litellm_params") or {} if isinstance(entry, dict) else {}
        if str(params.get("model", "")).startswith(PROVIDER_PREFIX):
            return True
    return False


def startup_warnings(config: Mapping[str, object], env: Mapping[str, str]) -> list[str]:
    """Warnings `serve` prints at start when the config uses the bridge (none otherwise)."""
    if not uses_bridge(config):
        return []
    settings = BridgeSettings.from_env(env)
    if settings.credential_name is None:
        return [NO_CREDENTIAL + "; bridge requests answer 401 until then"]
    return [TERMS_NOTICE] if settings.on_oauth_token else []
