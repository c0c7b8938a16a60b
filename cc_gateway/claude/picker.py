"""What Claude Code is told about a gateway's routes: `/model` rows and each route's context window.

Checked on Claude Code 2.1.332 (README, "Claude Code's model picker and context windows"):
- `modelPicker.options` rows `{model, label, description, behavesAs}` are listed in `/model` after the
  built-in rows; `behavesAs` (a Claude id the client knows) silences "Claude Code doesn't recognize the
  model" and gives the route that model's client-side handling;
- `modelSettings.<route>.autoCompactWindow` (100000 or more) is that route's compaction window: `/context`
  shows it; smaller values are ignored by the client;
- `CLAUDE_CODE_AUTO_COMPACT_WINDOW` is session-wide and beats modelSettings, so it is only used for a
  Claude Code without the picker (2.1.197 ignores modelPicker/modelSettings and reads the variable).

Pure: route data in, settings data out; never prints.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

#: Claude Code's own short names: a route called like this is never what the client sends.
CLAUDE_ALIASES = ("default", "sonnet", "opus", "haiku", "fable", "opusplan", "best")
#: Claude Code's smallest autoCompactWindow; a smaller window can't be told to the client.
MIN_WINDOW = 100_000
#: Claude Code's window for its current models (a route at least this large needs no setting).
CLIENT_WINDOW = 1_000_000
#: Marks the picker rows cc-gateway wrote, so a rerun replaces them and keeps the user's own rows.
OURS = "cc-gateway route"


@dataclass(frozen=True)
class PickerRoute:
    """One route as the picker needs it."""

    name: str
    model: str = ""  # provider/model upstream
    provider_label: str = ""
    label: str = ""  # model_info.cc_gateway_label (add-model --label)
    max_input_tokens: int | None = None


def is_claude_id(name: str) -> bool:
    """Whether a route name is a Claude model id or pattern (Claude Code lists those itself)."""
    lowered = name.lower()
    return lowered.startswith(("claude-", "claude_", "anthropic/", "anthropic.")) or lowered == "claude"


def window_of(model_info: Mapping[str, Any] | None) -> int | None:
    """A route's input window from its model_info (max_input_tokens), or None."""
    from cc_gateway.gateway.windows import positive

    return positive((model_info or {}).get("max_input_tokens"))


def pickable(routes: Iterable[PickerRoute]) -> list[PickerRoute]:
    """The routes a user picks by name: named (no wildcard), not a Claude id, not a Claude Code alias."""
    seen: set[str] = set()
    chosen = []
    for route in routes:
        name = route.name
        if "*" in name or is_claude_id(name) or name in CLAUDE_ALIASES or name in seen:
            continue
        seen.add(name)
        chosen.append(route)
    return chosen


def tokens_text(value: int) -> str:
    """128000 -> 128k, 1000000 -> 1M."""
    if value >= 1_000_000 and value % 1_000_000 == 0:
        return f"{value // 1_000_000}M"
    return f"{round(value / 1000)}k"


def row(route: PickerRoute, behaves_as: str) -> dict[str, str]:
    """One `/model` row for a route."""
    upstream = route.model.split("/", 1)[-1] if route.model else route.name
    label = route.label or (f"{route.name} · {route.provider_label}" if route.provider_label else route.name)
    parts = [f"{OURS} → {upstream}"]
    if route.max_input_tokens:
        parts.append(f"{tokens_text(route.max_input_tokens)} context")
    return {"model": route.name, "label": label, "description": " · ".join(parts), "behavesAs": behaves_as}


def picker_settings(routes: Iterable[PickerRoute], behaves_as: str) -> dict[str, Any]:
    """`modelPicker` and `modelSettings` for a settings file ({} when no route needs a row)."""
    chosen = pickable(routes)
    if not chosen:
        return {}
    settings: dict[str, Any] = {"modelPicker": {"options": [row(r, behaves_as) for r in chosen]}}
    windows = {
        r.name: {"autoCompactWindow": r.max_input_tokens}
        for r in chosen
        if r.max_input_tokens and MIN_WINDOW <= r.max_input_tokens < CLIENT_WINDOW
    }
    if windows:
        settings["modelSettings"] = windows
    return settings


def session_window(route: PickerRoute | None) -> int | None:
    """CLAUDE_CODE_AUTO_COMPACT_WINDOW for a session pinned to `route` (a client without modelSettings)."""
    if route is None or not route.max_input_tokens or route.max_input_tokens >= CLIENT_WINDOW:
        return None
    return max(route.max_input_tokens, MIN_WINDOW)


def too_small(routes: Iterable[PickerRoute]) -> list[PickerRoute]:
    """Routes whose window is below what Claude Code can be told (it compacts later than they need)."""
    return [r for r in pickable(routes) if r.max_input_tokens and r.max_input_tokens < MIN_WINDOW]


def merged(existing: Mapping[str, Any] | None, ours: Mapping[str, Any]) -> dict[str, Any]:
    """The modelPicker/modelSettings values to write over a settings file's `existing` top level.

    Rows cc-gateway wrote before are replaced; the user's own rows, `replaceBuiltInOptions` and other
    per-model settings stay. A key that ends up empty is removed (None).
    """
    existing = existing or {}
    old_picker = existing.get("modelPicker") if isinstance(existing.get("modelPicker"), dict) else {}
    old_rows = [r for r in old_picker.get("options") or [] if isinstance(r, dict)]
    new_rows = list((ours.get("modelPicker") or {}).get("options") or [])
    names = {r["model"] for r in new_rows}
    theirs = [r for r in old_rows if not str(r.get("description", "")).startswith(OURS) and r.get("model") not in names]
    result: dict[str, Any] = {}
    rows = new_rows + theirs
    if rows:
        result["modelPicker"] = {**{k: v for k, v in old_picker.items() if k != "options"}, "options": rows}
    elif "modelPicker" in existing:
        result["modelPicker"] = None
    old_settings = existing.get("modelSettings") if isinstance(existing.get("modelSettings"), dict) else {}
    windows = dict(ours.get("modelSettings") or {})
    ours_before = {r.get("model") for r in old_rows if str(r.get("description", "")).startswith(OURS)}
    settings = {}
    for model, value in old_settings.items():
        if model in windows or not isinstance(value, dict):
            continue
        if model in ours_before and set(value) <= {"autoCompactWindow"}:
            continue  # a window cc-gateway wrote for a route that is gone
        settings[model] = value
    for model, value in windows.items():
        settings[model] = {**(old_settings.get(model) or {}), **value}
    if settings:
        result["modelSettings"] = settings
    elif "modelSettings" in existing:
        result["modelSettings"] = None
    return result


def version_tuple(version: str | None) -> tuple[int, ...]:
    """'2.1.332' -> (2, 1, 332); () when it can't be read."""
    parts = []
    for piece in (version or "").split("."):
        digits = "".join(ch for ch in piece if ch.isdigit())
        if not digits:
            break
        parts.append(int(digits))
    return tuple(parts)
