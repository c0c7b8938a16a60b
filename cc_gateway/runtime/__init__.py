"""What LiteLLM loads at request time, through the `cc_gateway_runtime.py` shim next to config.yaml.

Each name resolves lazily so that a preset only imports what it uses (the bridge pulls in
claude-agent-sdk; the others must not).
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "auth": ("cc_gateway.runtime.auth", "user_api_key_auth"),
    "hooks": ("cc_gateway.runtime.hooks", "handler"),
    "bridge": ("cc_gateway.runtime.bridge.provider", "provider"),
    "multi_provider": ("cc_gateway.runtime.multi_provider.hygiene", "handler"),
}


def get(name: str) -> Any:
    """Return the runtime object LiteLLM asked for by name."""
    try:
        module, attribute = _EXPORTS[name]
    except KeyError:
        raise AttributeError(name) from None
    return getattr(importlib.import_module(module), attribute)
