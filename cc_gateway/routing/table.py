"""The routes a config has and what each can take, for the rules' fall-through checks.

A route's capabilities come from, first to last:
1. its `model_info` (LiteLLM's own names): `max_input_tokens`, `supports_vision`, `supports_web_search`;
2. the provider catalogue (`cc_gateway/data/providers.yaml`: `context_window`, `images`, `web_search`,
   `thinking`) for the route's provider (`model_info.cc_gateway_provider`, else the model prefix when
   the route has no `api_base` of its own);
3. unknown (None): a rule may still send there, doctor says it cannot tell.
A route with several deployments takes something only if every deployment does.
"""

from __future__ import annotations

import fnmatch
import functools
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

_PREFIX_PROVIDERS = {"vertex_ai": "vertex", "ollama_chat": "ollama", "ollama": "ollama"}


@dataclass(frozen=True)
class RouteCaps:
    """What one route can take (None: not known)."""

    name: str
    provider: str | None = None
    context_window: int | None = None
    images: bool | None = None
    web_search: bool | None = None
    thinking: bool | None = None


@functools.cache
def load_catalogue() -> dict[str, dict[str, Any]]:
    """The provider catalogue's routing fields, by provider name."""
    from importlib import resources

    from cc_gateway.core.files import parse_yaml

    source = resources.files("cc_gateway") / "data" / "providers.yaml"
    data = parse_yaml(source.read_text(encoding="utf-8"), "providers.yaml") or {}
    keep = ("prefix", "context_window", "images", "web_search", "thinking")
    return {name: {k: v for k, v in fields.items() if k in keep} for name, fields in data.items()}


def provider_of(entry: Mapping[str, Any], catalogue: Mapping[str, Any]) -> str | None:
    """The catalogue provider of a model_list entry (None when it cannot be told)."""
    info = entry.get("model_info") or {}
    named = info.get("cc_gateway_provider")
    if isinstance(named, str) and named:
        return named
    params = entry.get("litellm_params") or {}
    prefix = str(params.get("model") or "").split("/", 1)[0]
    if params.get("api_base"):  # someone else's server behind a well-known prefix
        return None
    name = _PREFIX_PROVIDERS.get(prefix, prefix)
    return name if name in catalogue else None


def deployment_caps(entry: Mapping[str, Any], catalogue: Mapping[str, Any]) -> RouteCaps:
    """Capabilities of one model_list entry."""
    info = entry.get("model_info") or {}
    provider = provider_of(entry, catalogue)
    known = catalogue.get(provider or "", {})
    window = info.get("max_input_tokens", known.get("context_window"))
    return RouteCaps(
        name=str(entry.get("model_name") or ""),
        provider=provider,
        context_window=window if isinstance(window, int) and not isinstance(window, bool) and window > 0 else None,
        images=_flag(info.get("supports_vision", known.get("images"))),
        web_search=_flag(info.get("supports_web_search", known.get("web_search"))),
        thinking=_flag(known.get("thinking")),
    )


def _flag(value: Any) -> bool | None:
    return value if isinstance(value, bool) else None


def _all(values: Iterable[bool | None]) -> bool | None:
    values = list(values)
    if any(v is False for v in values):
        return False
    return True if values and all(v is True for v in values) else None


def merge_caps(name: str, parts: list[RouteCaps]) -> RouteCaps:
    """One route's capabilities from its deployments' (each must take it)."""
    windows = [p.context_window for p in parts if p.context_window]
    providers = {p.provider for p in parts}
    return RouteCaps(
        name=name,
        provider=providers.pop() if len(providers) == 1 else None,
        context_window=min(windows) if windows else None,
        images=_all(p.images for p in parts),
        web_search=_all(p.web_search for p in parts),
        thinking=_all(p.thinking for p in parts),
    )


class RouteTable:
    """Route names, aliases and capabilities of a model_list (config.yaml's or LiteLLM's router's)."""

    def __init__(
        self,
        model_list: Iterable[Mapping[str, Any]],
        aliases: Mapping[str, Any] | None = None,
        catalogue: Mapping[str, Any] | None = None,
    ) -> None:
        self._catalogue = load_catalogue() if catalogue is None else catalogue
        self._groups: dict[str, list[Mapping[str, Any]]] = {}
        for entry in model_list:
            if isinstance(entry, Mapping) and entry.get("model_name"):
                self._groups.setdefault(str(entry["model_name"]), []).append(entry)
        self.aliases = {str(k): _alias_target(v) for k, v in (aliases or {}).items()}
        self._wildcards = [name for name in self._groups if "*" in name]
        self._caps: dict[str, RouteCaps] = {}

    @classmethod
    def from_config(cls, config: Mapping[str, Any], catalogue: Mapping[str, Any] | None = None) -> RouteTable:
        """The table of a loaded config.yaml (its model_list and router_settings.model_group_alias)."""
        router = config.get("router_settings") if isinstance(config.get("router_settings"), Mapping) else {}
        return cls(config.get("model_list") or [], router.get("model_group_alias"), catalogue)

    @property
    def names(self) -> list[str]:
        """Route names in config order."""
        return list(self._groups)

    def resolve(self, model: str) -> str | None:
        """The route a model name is served by: exact name, alias, then the first wildcard matching it."""
        if not model:
            return None
        model = self.aliases.get(model, model)
        if model in self._groups:
            return model
        return next((name for name in self._wildcards if fnmatch.fnmatchcase(model, name)), None)

    def caps(self, route: str) -> RouteCaps:
        """What a route (by name) can take."""
        if route not in self._caps:
            parts = [deployment_caps(e, self._catalogue) for e in self._groups.get(route, ())]
            self._caps[route] = merge_caps(route, parts) if parts else RouteCaps(route)
        return self._caps[route]

    def taking(self, accepts: Callable[[RouteCaps], bool | None]) -> list[str]:
        """Routes known to take something, e.g. `table.taking(lambda c: c.images)`."""
        return [name for name in self._groups if accepts(self.caps(name)) is True]


def _alias_target(value: Any) -> str:
    return str(value.get("model", "")) if isinstance(value, Mapping) else str(value)
