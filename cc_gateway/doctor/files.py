"""doctor's checks of the gateway folder (config.yaml, .env, keys, hook modules) and of known traps.

They read files only: no network, no LiteLLM import (a structural check of the config instead of
LiteLLM's own config types, which take seconds to import).
"""

from __future__ import annotations

import ast
import fnmatch
import importlib.util
import re
import stat
import sys
from pathlib import Path
from typing import Any

from cc_gateway.core.secrets import MIN_KEY_LENGTH, is_placeholder, is_weak_key, is_well_known_key
from cc_gateway.doctor.base import (
    FAIL,
    FILES,
    OK,
    TRAPS,
    WARN,
    CheckResult,
    Context,
    Row,
    api_base,
    check,
    split_list,
)
from cc_gateway.doctor.gateway import apply_hint
from cc_gateway.doctor.routes import would_use_responses_api
from cc_gateway.gateway.folder import CHAT_FLAG, Gateway, env_ref
from cc_gateway.gateway.providers import load_providers, provider_for_variable
from cc_gateway.gateway.validate import config_problems, located_problem

_KEY_SHAPE = re.compile(
    r"^(sk-[A-Za-z0-9_\-]{8,}|AIza[A-Za-z0-9_\-]{20,}|gsk_[A-Za-z0-9]{16,}|(AKIA|ASIA)[A-Z0-9]{16})$"
)


# =========================================================================== Files


@check(FILES, "config.yaml")
def check_config(ctx: Context, row: Row) -> CheckResult:
    """config.yaml parses and has the structure LiteLLM needs (problems name file:line)."""
    if ctx.load_error is not None:
        return row(FAIL, str(ctx.load_error), ctx.load_error.hint or "")
    gw = ctx.gateway
    problems = config_problems(gw.config)
    if not problems:
        return row(OK, f"{gw.config_path}: {len(gw.routes)} routes, valid LiteLLM config")
    more = f" (+{len(problems) - 1} more)" if len(problems) > 1 else ""
    status = FAIL if any(p[0] == FAIL for p in problems) else WARN
    detail, hint = located_problem(gw, problems[0])
    return row(status, detail + more, hint)


@check(FILES, ".env", needs_config=True)
def check_env_file(ctx: Context, row: Row) -> CheckResult:
    """.env exists next to config.yaml and only its owner can read it."""
    path = ctx.gateway.env_path
    if ctx.env_error is not None:
        return row(FAIL, str(ctx.env_error), ctx.env_error.hint or "")
    if not path.exists():
        return row(FAIL, f"{path}: missing", "run `cc-gateway init` in that folder (it keeps config.yaml)"
        )
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        return row(FAIL, f"{path}: mode {mode:04o}, other users can read the keys", f"chmod 600 {path}")
    return row(OK, f"{path}: mode 0600")


@check(FILES, "variables", needs_config=True)
def check_variables(ctx: Context, row: Row) -> CheckResult:
    """Every variable the routes and the gateway's auth use is set, and none is still a placeholder."""
    gw = ctx.gateway
    used, required = gw.referenced_variables(), required_variables(gw)
    missing = [v for v in used if v in required and not gw.env.get(v, "").strip()]
    placeholders = [v for v in used if gw.env.get(v, "").strip() and is_placeholder(gw.env[v])]
    if gw.uses_static_tokens and "LITELLM_MASTER_KEY" in missing:
        missing.remove("LITELLM_MASTER_KEY")
    if not missing and not placeholders:
        optional = [v for v in used if v not in required and not gw.env.get(v, "").strip()]
        note = f" ({', '.join(optional)} empty: optional)" if optional else ""
        count = len(used) - len(optional)
        what = "the variable the config needs is set" if count == 1 else f"the {count} variables the config needs are set"
        return row(OK, f"{what}{note}")
    first = (missing or placeholders)[0]
    state = "is not set" if first in missing else "is still a placeholder"
    others = [v for v in missing + placeholders if v != first]
    extra = f"; also {', '.join(others)}" if others else ""
    detail = f"{first} {state}{_effect(gw, first) if first in missing else ''}{extra}"
    return row(FAIL, detail, f"set {first} in {gw.env_path}; {apply_hint(ctx, '.env')}")


def required_variables(gw: Gateway) -> set[str]:
    """Variables a route's parameters or general_settings (the master key) read: they must be set."""
    values = list((gw.config.get("general_settings") or {}).values())
    for entry in gw.config.get("model_list") or []:
        values += list((entry.get("litellm_params") or {}).values())
    return {name for value in values if (name := env_ref(value))}


def _effect(gw: Gateway, variable: str) -> str:
    """What an unusable variable does to the routes."""
    keyed = [r.name for r in gw.routes if r.key_env == variable]
    based = [r.name for r in gw.routes if r.base_env == variable]
    if keyed:
        return f" (route{'s' * (len(keyed) > 1)} {', '.join(keyed)} answer{'s' * (len(keyed) == 1)} 424)"
    if based:
        return f" (route{'s' * (len(based) > 1)} {', '.join(based)} go{'es' * (len(based) == 1)} to the provider's default URL)"
    return ""


@check(FILES, "key shapes", needs_config=True)
def check_key_shapes(ctx: Context, row: Row) -> CheckResult:
    """Keys have their usual shapes: sk- master key, sk-ant-oat01- OAuth tokens, provider keys."""
    problems = _shape_problems(ctx.gateway)
    if not problems:
        return row(OK, "the keys that are set have their usual shapes")
    status = FAIL if any(p[0] == FAIL for p in problems) else WARN
    problems.sort(key=lambda p: p[0] != FAIL)
    more = f" (+{len(problems) - 1} more)" if len(problems) > 1 else ""
    return row(status, problems[0][1] + more, problems[0][2])


def _shape_problems(gw: Gateway) -> list[tuple[str, str, str]]:
    env, found = gw.env, []
    master = env.get("LITELLM_MASTER_KEY", "").strip()
    if master and not is_placeholder(master) and is_weak_key(master) and not is_well_known_key(master):
        found.append(
            (
                FAIL,
                f"LITELLM_MASTER_KEY is not sk- and at least {MIN_KEY_LENGTH} characters (serve refuses it)",
                "run `cc-gateway init` again to generate one",
            )
        )
    oauth = env.get("CLAUDE_CODE_OAUTH_TOKEN", "").strip()
    if oauth and not oauth.startswith("sk-ant-oat01-"):
        found.append(
            (
                FAIL,
                "CLAUDE_CODE_OAUTH_TOKEN is not an OAuth token (sk-ant-oat01-...)",
                "run `claude setup-token` and paste the token it prints",
            )
        )
    for token in split_list(env.get("CLAUDE_OAUTH_TOKENS", "")):
        if not token.startswith(("sk-ant-oat01-", "sk-ant-api")):
            found.append(
                (
                    FAIL,
                    "CLAUDE_OAUTH_TOKENS holds a value that is neither sk-ant-oat01- nor sk-ant-api...",
                    "list OAuth tokens from `claude setup-token` or Anthropic API keys, comma-separated",
                )
            )
            break
    found += _provider_key_problems(gw)
    return found


def _provider_key_problems(gw: Gateway) -> list[tuple[str, str, str]]:
    found, seen, providers = [], set(), load_providers()
    for route in gw.routes:
        value = gw.env.get(route.key_env or "", "").strip()
        if not route.key_env or route.key_env in seen or not value or is_placeholder(value):
            continue
        seen.add(route.key_env)
        provider = providers.get(str(route.model_info.get("cc_gateway_provider"))) or provider_for_variable(
            route.key_env
        )
        if provider is None:
            continue
        if provider.name == "openai" and "api.openai.com" in (api_base(gw, route) or "api.openai.com"):
            if not value.startswith("sk-"):
                found.append(
                    (
                        FAIL,
                        f"{route.key_env} is not an OpenAI key (sk-...) and OpenAI is the upstream",
                        f"paste an API key from platform.openai.com into {route.key_env}",
                    )
                )
        elif not provider.key_looks_valid(value) and provider.name != "openai":
            found.append(
                (WARN, f"{route.key_env} does not look like a {provider.label} key", "check it was pasted whole")
            )
    return found


@check(FILES, "hook modules", needs_config=True)
def check_hooks(ctx: Context, row: Row) -> CheckResult:
    """The modules the config names (custom_auth, callbacks, custom handlers) import and resolve."""
    refs = hook_references(ctx.gateway.config)
    if not refs:
        return row(OK, "the config names no hook modules")
    for ref in refs:
        problem = _resolve_hook(ctx.gateway.folder, ref)
        if problem:
            return row(FAIL, f"{ref}: {problem[0]}", problem[1])
    return row(OK, f"{', '.join(refs)} resolve")


def hook_references(config: dict[str, Any]) -> list[str]:
    """The module.attribute names LiteLLM will load from files next to config.yaml."""
    general, settings = config.get("general_settings") or {}, config.get("litellm_settings") or {}
    refs = [general.get("custom_auth")]
    for key in ("callbacks", "success_callback", "failure_callback"):
        value = settings.get(key) or []
        refs += value if isinstance(value, list) else [value]
    refs += [item.get("custom_handler") for item in settings.get("custom_provider_map") or [] if isinstance(item, dict)]
    found: list[str] = []
    for ref in refs:
        if isinstance(ref, str) and "." in ref and ref not in found:
            found.append(ref)
    return found


def _resolve_hook(folder: Path, ref: str) -> tuple[str, str] | None:
    """Import `module` from the config folder and resolve `attribute`; None when it works."""
    module_name, _, attribute = ref.rpartition(".")
    path = folder / f"{module_name.replace('.', '/')}.py"
    if not path.exists():
        return f"{path.name} is missing next to config.yaml", "run `cc-gateway init` again to write it"
    spec = importlib.util.spec_from_file_location(f"_cc_doctor_{module_name.replace('.', '_')}", path)
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except Exception as exc:  # any import failure is the finding
        return (
            f"{path.name} does not import: {type(exc).__name__}: {exc}",
            "fix that module or re-run `cc-gateway init`",
        )
    if attribute in vars(module):
        return None
    getter = vars(module).get("_get")
    if getter is None:
        try:
            getattr(module, attribute)
        except Exception as exc:
            return f"{path.name} has no {attribute} ({type(exc).__name__})", "define it there or fix the config"
        return None
    return _resolve_runtime_export(attribute)


def _resolve_runtime_export(attribute: str) -> tuple[str, str] | None:
    """Resolve a name of cc-gateway's runtime without importing it (it pulls in LiteLLM: seconds)."""
    from cc_gateway import runtime

    target = runtime._EXPORTS.get(attribute)
    if target is None:
        return f"cc-gateway's runtime has no {attribute!r}", "upgrade cc-gateway or fix the name in config.yaml"
    module_name, member = target
    spec = importlib.util.find_spec(module_name)
    if spec is None or not spec.origin:
        return f"{module_name} is not installed", "upgrade cc-gateway"
    try:
        tree = ast.parse(Path(spec.origin).read_text(encoding="utf-8"), spec.origin)
    except SyntaxError as exc:
        return f"{spec.origin}:{exc.lineno}: syntax error", "reinstall cc-gateway"
    if member not in _top_level_names(tree):
        return f"{module_name} defines no {member}", "upgrade cc-gateway"
    for package in _imported_packages(tree):
        if importlib.util.find_spec(package) is None:
            return f"{module_name} needs {package}, which is not installed", f"pip install {package.replace('_', '-')}"
    return None


def _top_level_names(tree: ast.Module) -> set[str]:
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names |= {t.id for t in targets if isinstance(t, ast.Name)}
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.ImportFrom | ast.Import):
            names |= {(a.asname or a.name).split(".")[0] for a in node.names}
    return names


def _imported_packages(tree: ast.Module) -> list[str]:
    """Top-level packages a module imports at import time (module level only)."""
    found: list[str] = []
    for node in tree.body:
        if isinstance(node, ast.Import):
            found += [a.name.split(".")[0] for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.append(node.module.split(".")[0])
    return [p for p in dict.fromkeys(found) if p not in sys.stdlib_module_names and p != "__future__"]


# =========================================================================== Known traps


@check(TRAPS, "[1m] route names", needs_config=True)
def check_trap_1m(ctx: Context, row: Row) -> CheckResult:
    """No route name carries Claude Code's `[1m]` suffix (Claude Code strips it before asking)."""
    bad = [r.name for r in ctx.gateway.routes if "[1m]" in r.name]
    if bad:
        return row(FAIL,
            f"route {bad[0]} contains [1m]: Claude Code strips the suffix, so it never matches",
            f"rename it to {bad[0].replace('[1m]', '')}",
        )
    return row(OK, "no route name contains [1m]")


@check(TRAPS, "master_key placement", needs_config=True)
def check_trap_master_key_placement(ctx: Context, row: Row) -> CheckResult:
    """master_key sits under general_settings (LiteLLM ignores it under litellm_settings)."""
    if "master_key" in (ctx.gateway.config.get("litellm_settings") or {}):
        return row(FAIL,
            "master_key is under litellm_settings, where LiteLLM ignores it",
            "move it under general_settings: master_key: os.environ/LITELLM_MASTER_KEY",
        )
    return row(OK, "master_key is under general_settings")


@check(TRAPS, "weak or literal keys", needs_config=True)
def check_trap_weak_keys(ctx: Context, row: Row) -> CheckResult:
    """No well-known key (sk-1234 and friends) and no literal key in config.yaml."""
    gw = ctx.gateway
    for variable, value in [("LITELLM_MASTER_KEY", gw.master_key)] + [
        ("PROXY_STATIC_TOKEN", t) for t in gw.static_tokens
    ]:
        if is_well_known_key(value):
            return row(FAIL,
                f"{variable} is a well-known key ({value[:4]}…): anyone can guess it",
                "run `cc-gateway init` again to generate a strong one",
            )
    literal = _literal_keys(gw.config)
    if literal:
        return row(FAIL,
            f"config.yaml holds a literal key at {literal[0]}",
            "move it to .env and write os.environ/NAME in config.yaml",
        )
    return row(OK, "keys are strong and live in .env only")


def _literal_keys(node: Any, path: str = "") -> list[str]:
    if isinstance(node, dict):
        return [p for k, v in node.items() for p in _literal_keys(v, f"{path}.{k}" if path else str(k))]
    if isinstance(node, list):
        return [p for i, v in enumerate(node) for p in _literal_keys(v, f"{path}[{i}]")]
    return [path] if isinstance(node, str) and _KEY_SHAPE.match(node) else []


@check(TRAPS, "Responses API", needs_config=True)
def check_trap_responses_api(ctx: Context, row: Row) -> CheckResult:
    """No openai/ route sends Claude Code's requests to the Responses API of an upstream without one."""
    gw = ctx.gateway
    risky = [
        r
        for r in gw.routes
        if would_use_responses_api(gw, r) and "api.openai.com" not in (api_base(gw, r) or "api.openai.com")
    ]
    if risky:
        route = risky[0]
        return row(WARN,
            f"route {route.name} ({route.model}) will send /v1/messages to "
            f"{api_base(gw, route)}/responses; OpenAI-compatible servers rarely have one",
            f"add `{CHAT_FLAG}: true` under litellm_settings (or supports_reasoning: false in model_info)",
        )
    return row(OK, "no openai/ route goes to a Responses API its upstream may lack")


@check(TRAPS, "lone-deployment cooldown", needs_config=True)
def check_trap_cooldown(ctx: Context, row: Row) -> CheckResult:
    """No lone deployment can be cooled down (LiteLLM then answers 429 for cooldown_time seconds)."""
    lone = lone_deployments(ctx.gateway.config)
    if not lone:
        return row(OK, "cooldowns are off, or every route has a fallback or a second deployment")
    seconds = (ctx.gateway.config.get("router_settings") or {}).get("cooldown_time", 5)
    return row(WARN,
        f"{', '.join(lone)}: the only deployment, no fallback; one 4xx from the upstream (400/401/404) "
        f"makes LiteLLM answer 429 'in cooldown' for {seconds} s",
        "add `disable_cooldowns: true` under router_settings (there is nothing to fail over to)",
    )


def lone_deployments(config: dict[str, Any]) -> list[str]:
    """Routes LiteLLM 1.106 would cool down although nothing can take over.

    LiteLLM cools a deployment down after a non-retryable status (400, 401, 403, 404) even when it is
    the only one in its model group; mock routes never fail and are left out.
    """
    router = config.get("router_settings") or {}
    if router.get("disable_cooldowns") is True or router.get("cooldown_time") == 0:
        return []
    entries = config.get("model_list") or []
    counts: dict[str, int] = {}
    for entry in entries:
        counts[str(entry.get("model_name"))] = counts.get(str(entry.get("model_name")), 0) + 1
    sources = set()
    for section in (router, config.get("litellm_settings") or {}):
        for item in section.get("fallbacks") or []:
            sources |= set(item) if isinstance(item, dict) else set()
    lone = []
    for entry in entries:
        name, params = str(entry.get("model_name")), entry.get("litellm_params") or {}
        covered = any(fnmatch.fnmatch(name, s) or name == s for s in sources)
        if counts[name] == 1 and not covered and "mock_response" not in params:
            lone.append(name)
    return lone


