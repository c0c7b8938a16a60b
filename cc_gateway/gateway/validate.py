"""The structural check of a LiteLLM config.yaml, without importing LiteLLM (whose config types take seconds).

doctor shows every problem as a row; `serve` refuses to start on the first "fail" one, before LiteLLM
loads, naming file:line and the key path (`config.yaml:12: model_list[1].litellm_params.model: missing`).
"""

from __future__ import annotations

import fnmatch
from typing import Any

from cc_gateway.gateway.folder import Gateway, env_ref

FAIL, WARN = "fail", "warn"  # the statuses doctor shows (doctor/base.py)

KNOWN_SECTIONS = {
    "model_list",
    "general_settings",
    "litellm_settings",
    "router_settings",
    "environment_variables",
    "include",
    "guardrails",
    "callback_settings",
    "mcp_servers",
    "mcp_tools",
    "credential_list",
    "search_tools",
    "vector_store_registry",
    "files_settings",
    "finetune_settings",
    "assistant_settings",
    "model_group_settings",
    "prompts",
    "policies",
    "routing_rules",  # cc-gateway's own (README "Routing rules"); LiteLLM ignores it
}

Problem = tuple[str, tuple[Any, ...], str, str]  # (status, key path, message, hint)


def config_problems(config: dict[str, Any]) -> list[Problem]:
    """Find what LiteLLM would reject or silently ignore in a config (a structural check, no LiteLLM import)."""
    problems: list[Problem] = []
    for key, value in config.items():
        if key not in KNOWN_SECTIONS:
            problems.append((WARN, (key,), "not a LiteLLM section: it is ignored", "check the spelling"))
        elif key.endswith("_settings") and value is not None and not isinstance(value, dict):
            problems.append((FAIL, (key,), "must be a mapping", "indent its keys under it"))
    names = set()
    for index, entry in enumerate(config.get("model_list") or []):
        problems += _entry_problems(index, entry)
        names.add(str(entry.get("model_name")))
    problems += _reference_problems(config, names)
    return sorted(problems, key=lambda p: p[0] != FAIL)


def _entry_problems(index: int, entry: dict[str, Any]) -> list[Problem]:
    where = ("model_list", index)
    name, params = entry.get("model_name"), entry.get("litellm_params")
    if not isinstance(name, str) or not name.strip():
        return [(FAIL, (*where, "model_name"), "must be a non-empty string", "name the route")]
    if not isinstance(params, dict):
        return [(FAIL, (*where, "litellm_params"), "must be a mapping", "give it at least `model: provider/name`")]
    model = params.get("model")
    if not isinstance(model, str) or not model.strip():
        return [(FAIL, (*where, "litellm_params", "model"), "missing: LiteLLM cannot route it", "set provider/model")]
    found: list[Problem] = []
    for key, value in params.items():
        if isinstance(value, str) and value.startswith("os.environ/") and env_ref(value) is None:
            found.append(
                (
                    FAIL,
                    (*where, "litellm_params", key),
                    f"{value!r} is not a valid variable reference",
                    "use os.environ/NAME with letters, digits and _",
                )
            )
    if "model_info" in entry and not isinstance(entry["model_info"], dict):
        found.append((FAIL, (*where, "model_info"), "must be a mapping", "indent its keys under it"))
    return found


def _reference_problems(config: dict[str, Any], names: set[str]) -> list[Problem]:
    """Aliases must point at routes; fallbacks should."""
    found: list[Problem] = []
    router = config.get("router_settings") or {}
    for alias, target in (router.get("model_group_alias") or {}).items():
        target = target.get("model") if isinstance(target, dict) else target
        if target not in names:
            found.append(
                (
                    FAIL,
                    ("router_settings", "model_group_alias", alias),
                    f"points at {target!r}, no such route",
                    "point it at a model_name from model_list",
                )
            )
    for section in ("router_settings", "litellm_settings"):
        for index, item in enumerate((config.get(section) or {}).get("fallbacks") or []):
            for source, targets in item.items() if isinstance(item, dict) else []:
                for target in targets if isinstance(targets, list) else [targets]:
                    if not _routed(str(target), names):
                        found.append(
                            (
                                WARN,
                                (section, "fallbacks", index),
                                f"{source} falls back to {target!r}, which is not a route",
                                "name an existing route",
                            )
                        )
    return found


def _routed(model: str, names: set[str]) -> bool:
    return model in names or any("*" in n and fnmatch.fnmatch(model, n) for n in names)


def _dotted(path: tuple[Any, ...]) -> str:
    return "".join(f"[{p}]" if isinstance(p, int) else (f".{p}" if i else str(p)) for i, p in enumerate(path))


def located_problem(gw: Gateway, problem: Problem) -> tuple[str, str]:
    """('config.yaml:LINE: model_list[1].litellm_params.model: what', hint) for one problem."""
    from cc_gateway.core.yamledit import Doc

    _, where, message, hint = problem
    doc = Doc(gw.config_path.read_text(encoding="utf-8"), gw.config_path)
    # a missing key has no line: name its parent's
    line = next((n for end in range(len(where), 0, -1) if (n := doc.line_of(where[:end]))), None)
    location = f"{gw.config_path}:{line}" if line else str(gw.config_path)
    return f"{location}: {_dotted(where)}: {message}", hint


def config_failure(gw: Gateway) -> tuple[str, str] | None:
    """The first problem of config.yaml that LiteLLM would fail on, located (see `located_problem`), or None.

    `serve` asks this before loading LiteLLM, so a broken config fails in a moment with file:line.
    """
    failures = [p for p in config_problems(gw.config) if p[0] == FAIL]
    return located_problem(gw, failures[0]) if failures else None
