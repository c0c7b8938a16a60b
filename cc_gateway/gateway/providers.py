"""The provider catalogue (data/providers.yaml): key variables, base URLs, limits, key shapes."""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from importlib import resources
from typing import Any

from cc_gateway.core.files import parse_yaml


@dataclass(frozen=True)
class ExtraVar:
    """A variable a provider's routes read besides the key and base URL (e.g. azure's api_version)."""

    name: str
    param: str
    help: str = ""
    secret: bool = False
    default: str | None = None


@dataclass(frozen=True)
class Provider:
    """What cc-gateway knows about one upstream provider."""

    name: str
    label: str
    prefix: str
    key_env: str | None
    base_env: str | None
    base_url: str | None
    endpoint: str
    max_tokens: int
    thinking: bool
    key_pattern: str | None
    key_param: str = "api_key"
    key_help: str | None = None
    needs_base: bool = False
    context_window: int | None = None  # read by routing (cc_gateway/routing/table.py)
    images: bool | None = None
    web_search: bool | None = None
    extra_env: tuple[ExtraVar, ...] = ()

    def key_looks_valid(self, value: str) -> bool:
        """Tell whether a key has this provider's usual shape (unknown shapes pass)."""
        return self.key_pattern is None or re.match(self.key_pattern, value.strip()) is not None


@functools.cache
def load_providers() -> dict[str, Provider]:
    """Load the packaged provider catalogue."""
    source = resources.files("cc_gateway") / "data" / "providers.yaml"
    data = parse_yaml(source.read_text(encoding="utf-8"), "providers.yaml")
    return {name: _provider(name, fields) for name, fields in data.items()}


def _provider(name: str, fields: dict[str, Any]) -> Provider:
    extra = tuple(ExtraVar(**item) for item in fields.pop("extra_env", None) or ())
    return Provider(name=name, extra_env=extra, **fields)


def provider_for_variable(name: str) -> Provider | None:
    """Return the provider whose conventional key or base variable is `name`."""
    return next((p for p in load_providers().values() if name in (p.key_env, p.base_env)), None)


def picker_model_info(window: int | None, model: str, provider: str, label: str | None) -> dict[str, Any]:
    """add-model's model_info for Claude Code: max_input_tokens (given, else LiteLLM's catalogue) and the label."""
    from cc_gateway.core.errors import UsageError
    from cc_gateway.gateway.windows import catalogue_window

    if window is not None and window < 1024:
        raise UsageError(f"--context-window {window} is not a window in tokens", hint="e.g. --context-window 128000")
    window = window or catalogue_window(model, provider)
    info: dict[str, Any] = {"max_input_tokens": window} if window else {}
    return {**info, **({"cc_gateway_label": label.strip()} if (label or "").strip() else {})}
