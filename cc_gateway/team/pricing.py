"""A request's cost from its tokens and a route's prices (USD per token, LiteLLM's field names)."""

from __future__ import annotations

from typing import Any

INPUT, OUTPUT = "input_cost_per_token", "output_cost_per_token"
CACHE_READ, CACHE_WRITE = "cache_read_input_token_cost", "cache_creation_input_token_cost"
PRICE_FIELDS = (INPUT, OUTPUT, CACHE_READ, CACHE_WRITE)


def prices_of(info: dict[str, Any] | None) -> dict[str, float] | None:
    """The price fields of a model_info (or LiteLLM cost-map entry); None when it has no input/output price."""
    if not info:
        return None
    found = {}
    for name in PRICE_FIELDS:
        value = info.get(name)
        if isinstance(value, int | float) and not isinstance(value, bool) and value >= 0:
            found[name] = float(value)
        elif isinstance(value, str):
            try:
                found[name] = float(value)
            except ValueError:
                continue
    if INPUT not in found and OUTPUT not in found:
        return None
    return found


def cost(prices: dict[str, float] | None, input_tokens: Any, output_tokens: Any, cache_read: Any, cache_write: Any) -> float | None:
    """USD for these tokens; None when unpriced or no token count is known.

    Cache tokens without a price of their own are charged at the input price.
    """
    if not prices or all(t is None for t in (input_tokens, output_tokens, cache_read, cache_write)):
        return None
    per_input = prices.get(INPUT, 0.0)
    return (
        (input_tokens or 0) * per_input
        + (output_tokens or 0) * prices.get(OUTPUT, 0.0)
        + (cache_read or 0) * prices.get(CACHE_READ, per_input)
        + (cache_write or 0) * prices.get(CACHE_WRITE, per_input)
    )


def per_million(value: float | None) -> str:
    """`$3.00/M` for a per-token price."""
    return "-" if value is None else f"${value * 1e6:,.2f}/M"


def litellm_price_table() -> dict[str, Any]:
    """LiteLLM's bundled price data, read from its JSON file (without importing LiteLLM, which is slow)."""
    global _TABLE
    if _TABLE is None:
        import importlib.util
        import json
        from pathlib import Path

        _TABLE = {}
        spec = importlib.util.find_spec("litellm")
        for folder in (spec.submodule_search_locations or []) if spec else []:
            path = Path(folder) / "model_prices_and_context_window_backup.json"
            if path.is_file():
                _TABLE = json.loads(path.read_text(encoding="utf-8"))
                break
    return _TABLE


_TABLE: dict[str, Any] | None = None


def route_prices(model_info: dict[str, Any] | None, model: str, table: dict[str, Any]) -> dict[str, float] | None:
    """A route's prices: its model_info's, else the price data's entry for `provider/model` or the bare model."""
    found = prices_of(model_info)
    if found is not None:
        return found
    bare = model.split("/", 1)[1] if "/" in model else model
    for name in (model, bare):
        if name and "*" not in name and name in table:
            return prices_of(table[name])
    return None
