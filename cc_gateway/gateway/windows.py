"""Each route's input window (max_input_tokens): its model_info, else LiteLLM's own model catalogue.

LiteLLM ships its model catalogue as a JSON file inside the package; it is read here as a file
(30 ms, cached) so the CLI never imports LiteLLM itself.
"""

from __future__ import annotations

import functools
import importlib.util
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

CATALOGUE = "model_prices_and_context_window_backup.json"


@functools.cache
def _catalogue() -> dict[str, Any]:
    spec = importlib.util.find_spec("litellm")  # locates the package without importing it
    folders = list(spec.submodule_search_locations or []) if spec else []
    for folder in folders:
        path = Path(folder) / CATALOGUE
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(data, dict):
            return data
    return {}


def positive(value: Any) -> int | None:
    """A positive whole number given as an int or a string of digits (a window size), else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int) and value > 0:
        return value
    if isinstance(value, str) and value.strip().isdigit() and int(value) > 0:
        return int(value)
    return None


def catalogue_window(model: str, provider: str | None = None) -> int | None:
    """max_input_tokens of `provider/model` in LiteLLM's catalogue (full name, then the bare model id)."""
    if not model or "*" in model or "{" in model:
        return None
    data = _catalogue()
    bare = model.split("/", 1)[1] if "/" in model else model
    names = [model, bare] + ([f"{provider}/{bare}"] if provider else [])
    for name in names:
        entry = data.get(name)
        if isinstance(entry, dict) and (window := positive(entry.get("max_input_tokens"))):
            return window
    return None


def route_window(model: str, model_info: Mapping[str, Any] | None) -> int | None:
    """A route's input window: model_info.max_input_tokens, else the catalogue's for its upstream model."""
    info = model_info or {}
    return positive(info.get("max_input_tokens")) or catalogue_window(model, info.get("cc_gateway_provider"))
