"""`cc-gateway doctor`: checks that find what is wrong with a gateway set-up and say how to fix it.

Each check is `check_x(ctx) -> CheckResult`; `run_checks()` runs them concurrently in a thread pool
(each with its own timeout) and returns the results in a fixed order. Nothing here prints.

Facts several checks need (the gateway's liveliness answer, whether it listens beyond loopback,
Claude Code's settings) are computed once per run through `Context.once()`.
"""

from __future__ import annotations

import ast
import concurrent.futures
import contextlib
import fnmatch
import importlib.util
import ipaddress
import json
import os
import re
import socket
import stat
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from cc_gateway.envfile import is_placeholder
from cc_gateway.errors import GatewayError, UsageError
from cc_gateway.gateway import Gateway, RouteInfo, env_ref, load_gateway
from cc_gateway.providers import load_providers, provider_for_variable

OK, WARN, FAIL, SKIP = "ok", "warn", "fail", "skip"
STATUSES = (OK, WARN, FAIL, SKIP)
JSON_VERSION = 1
WRONG_KEY = "sk-cc-gateway-doctor-not-a-key"
PROBE_TOOL = {
    "name": "get_time",
    "description": "Return the current time.",
    "input_schema": {"type": "object", "properties": {}},
}
PROBE_PROMPT = "Reply with the single word: ok"
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
}
CHAT_FLAG = "use_chat_completions_url_for_anthropic_messages"
SHORT_CLAUDE_IDS = ("claude-sonnet-4-5", "claude-haiku-4-5", "claude-opus-4-5", "claude-opus-4-1")
_KEY_SHAPE = re.compile(
    r"^(sk-[A-Za-z0-9_\-]{8,}|AIza[A-Za-z0-9_\-]{20,}|gsk_[A-Za-z0-9]{16,}|(AKIA|ASIA)[A-Z0-9]{16})$"
)
_WEAK = re.compile(r"^sk-(\d{1,8}|test|admin|password|secret|changeme|master|litellm)$", re.I)
_CONNECT = re.compile(r"Cannot connect to host|Connection refused|Connect call failed|ConnectError|APIConnectionError")


@dataclass(frozen=True)
class CheckResult:
    """One row of the report: a check's status, a one-line finding and how to fix it."""

    name: str
    status: str
    detail: str
    hint: str = ""
    group: str = ""
    latency_ms: int | None = None

    def as_dict(self) -> dict[str, Any]:
        """The row as JSON-ready data (the README documents these keys)."""
        return asdict(self)


@dataclass
class DoctorOptions:
    """What doctor was asked to check."""

    folder: Path | None = None
    url: str | None = None
    routes: tuple[str, ...] = ()
    network: bool = True
    check_timeout: float = 10.0
    probe_timeout: float = 30.0
    cwd: Path | None = None
    home: Path | None = None
    environ: Mapping[str, str] | None = None


@dataclass
class Report:
    """Every result of a run, with its wall time."""

    results: list[CheckResult]
    elapsed_ms: int
    url: str | None
    folder: Path | None

    @property
    def failed(self) -> bool:
        """Whether any check failed."""
        return any(r.status == FAIL for r in self.results)

    def as_dict(self) -> dict[str, Any]:
        """The whole report as JSON-ready data (stable shape, see README)."""
        counts = {s: sum(r.status == s for r in self.results) for s in STATUSES}
        return {
            "version": JSON_VERSION,
            "ok": not self.failed,
            "folder": str(self.folder) if self.folder else None,
            "url": self.url,
            "elapsed_ms": self.elapsed_ms,
            "summary": counts,
            "checks": [r.as_dict() for r in self.results],
        }


@dataclass
class Probe:
    """An HTTP answer (or the failure to get one)."""

    status: int | None
    text: str = ""
    error: str | None = None
    elapsed_ms: int = 0
    headers: dict[str, str] = field(default_factory=dict)


class Context:
    """Shared state of one doctor run: options, the gateway folder, memoised facts, route latencies."""

    def __init__(self, options: DoctorOptions) -> None:
        if options.url:
            normalise_url(options.url)  # a bad --url is a usage error, before any check runs
        self.options = options
        self.environ = dict(os.environ if options.environ is None else options.environ)
        self.home = options.home or Path(self.environ.get("HOME") or Path.home())
        self.cwd = options.cwd or Path.cwd()
        self.gateway: Gateway | None = None
        self.load_error: GatewayError | None = None
        try:
            self.gateway = load_gateway(options.folder)
        except GatewayError as exc:
            self.load_error = exc
        self.latencies: dict[str, int] = {}
        self._memo: dict[str, Any] = {}
        self._locks: dict[str, threading.Lock] = {}
        self._lock = threading.Lock()
        self._client: Any = None

    def once(self, key: str, compute: Callable[[], Any]) -> Any:
        """Compute a shared fact once per run, even when several checks ask at the same time."""
        with self._lock:
            lock = self._locks.setdefault(key, threading.Lock())
        with lock:
            if key not in self._memo:
                self._memo[key] = compute()
            return self._memo[key]

    @property
    def url(self) -> str | None:
        """The gateway URL (from --url, else 127.0.0.1 and CC_GATEWAY_PORT)."""
        if self.options.url:
            return normalise_url(self.options.url)
        return f"http://127.0.0.1:{self.gateway.port}" if self.gateway else None

    def client(self) -> Any:
        """A shared httpx client (thread-safe)."""
        import httpx

        with self._lock:
            if self._client is None:
                self._client = httpx.Client(timeout=httpx.Timeout(self.options.probe_timeout, connect=3.0))
            return self._client

    def close(self) -> None:
        """Close the HTTP client."""
        if self._client is not None:
            self._client.close()

    def auth_headers(self) -> dict[str, str]:
        """Headers carrying this folder's gateway key (master key, else a static token)."""
        gw = self.gateway
        if gw is None:
            return {}
        if gw.master_key:
            return {"Authorization": f"Bearer {gw.master_key}"}
        if gw.static_tokens:
            return {"x-litellm-api-key": gw.static_tokens[0]}
        return {}

    def request(self, method: str, path: str, **kwargs: Any) -> Probe:
        """Send one request to the gateway; connection failures become a Probe with `error`."""
        import httpx

        start = time.perf_counter()
        try:
            response = self.client().request(method, f"{self.url}{path}", **kwargs)
        except httpx.HTTPError as exc:
            return Probe(None, error=_http_error(exc), elapsed_ms=_ms(start))
        return Probe(response.status_code, response.text, elapsed_ms=_ms(start), headers=dict(response.headers))

    def scrub(self, text: str) -> str:
        """Remove every configured secret from a message shown to the user."""
        from cc_gateway.serve import RedactingFilter, secret_values

        env = dict(self.gateway.env) if self.gateway else dict(self.environ)
        return RedactingFilter(secret_values(env)).scrub(text)


def normalise_url(url: str) -> str:
    """The gateway's root URL from --url: `/v1` or `/anthropic` and trailing slashes dropped."""
    root = re.sub(r"/(v1|anthropic)/*$", "", url.strip().rstrip("/"))
    parts = urlsplit(root)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UsageError(f"--url {url!r}: expected http(s)://host:port", hint="e.g. --url http://127.0.0.1:4000")
    return root


def _ms(start: float) -> int:
    return int((time.perf_counter() - start) * 1000)


def _http_error(exc: Exception) -> str:
    import httpx

    if isinstance(exc, httpx.ConnectError):
        return "connection refused"
    if isinstance(exc, httpx.TimeoutException):
        return "timed out"
    return f"{type(exc).__name__}: {exc}"


def result(
    group: str, name: str, status: str, detail: str, hint: str = "", latency_ms: int | None = None
) -> CheckResult:
    """Build a CheckResult (one line of detail, one line of hint)."""
    return CheckResult(name, status, " ".join(detail.split()), " ".join(hint.split()), group, latency_ms)


def _needs_config(group: str, name: str, ctx: Context) -> CheckResult | None:
    if ctx.gateway is None:
        return result(group, name, SKIP, "config.yaml did not load (see the config row)")
    return None


# =========================================================================== Files

FILES = "Files"


def check_config(ctx: Context) -> CheckResult:
    """config.yaml parses and has the structure LiteLLM needs (problems name file:line)."""
    if ctx.load_error is not None:
        return result(FILES, "config.yaml", FAIL, str(ctx.load_error), ctx.load_error.hint or "")
    gw = ctx.gateway
    problems = config_problems(gw.config)
    if not problems:
        return result(FILES, "config.yaml", OK, f"{gw.config_path}: {len(gw.routes)} routes, valid LiteLLM config")
    from cc_gateway.yamledit import Doc

    doc = Doc(gw.config_path.read_text(encoding="utf-8"), gw.config_path)
    _, where, message, hint = problems[0]
    line = doc.line_of(where)
    more = f" (+{len(problems) - 1} more)" if len(problems) > 1 else ""
    status = FAIL if any(p[0] == FAIL for p in problems) else WARN
    location = f"{gw.config_path}:{line}" if line else str(gw.config_path)
    return result(FILES, "config.yaml", status, f"{location}: {_dotted(where)}: {message}{more}", hint)


def _dotted(path: tuple[Any, ...]) -> str:
    return "".join(f"[{p}]" if isinstance(p, int) else (f".{p}" if i else str(p)) for i, p in enumerate(path))


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


def check_env_file(ctx: Context) -> CheckResult:
    """.env exists next to config.yaml and only its owner can read it."""
    name = ".env"
    if skip := _needs_config(FILES, name, ctx):
        return skip
    path = ctx.gateway.env_path
    if not path.exists():
        return result(
            FILES, name, FAIL, f"{path}: missing", "run `cc-gateway init` in that folder (it keeps config.yaml)"
        )
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        return result(FILES, name, FAIL, f"{path}: mode {mode:04o}, other users can read the keys", f"chmod 600 {path}")
    return result(FILES, name, OK, f"{path}: mode 0600")


def check_variables(ctx: Context) -> CheckResult:
    """Every variable the routes and the gateway's auth use is set, and none is still a placeholder."""
    name = "variables"
    if skip := _needs_config(FILES, name, ctx):
        return skip
    gw = ctx.gateway
    used, required = gw.referenced_variables(), required_variables(gw)
    missing = [v for v in used if v in required and not gw.env.get(v, "").strip()]
    placeholders = [v for v in used if gw.env.get(v, "").strip() and is_placeholder(gw.env[v])]
    if gw.uses_static_tokens and "LITELLM_MASTER_KEY" in missing:
        missing.remove("LITELLM_MASTER_KEY")
    if not missing and not placeholders:
        optional = [v for v in used if v not in required and not gw.env.get(v, "").strip()]
        note = f" ({', '.join(optional)} empty: optional)" if optional else ""
        return result(FILES, name, OK, f"the {len(used) - len(optional)} variables the config needs are set{note}")
    first = (missing or placeholders)[0]
    state = "is not set" if first in missing else "is still a placeholder"
    others = [v for v in missing + placeholders if v != first]
    extra = f"; also {', '.join(others)}" if others else ""
    detail = f"{first} {state}{_effect(gw, first) if first in missing else ''}{extra}"
    return result(FILES, name, FAIL, detail, f"set {first} in {gw.env_path}, then restart the gateway")


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
        return f" (route{'s' * (len(keyed) > 1)} {', '.join(keyed)} answer{'s' * (len(keyed) == 1)} 503)"
    if based:
        return f" (route{'s' * (len(based) > 1)} {', '.join(based)} go{'es' * (len(based) == 1)} to the provider's default URL)"
    return ""


def check_key_shapes(ctx: Context) -> CheckResult:
    """Keys have their usual shapes: sk- master key, sk-ant-oat01- OAuth tokens, provider keys."""
    name = "key shapes"
    if skip := _needs_config(FILES, name, ctx):
        return skip
    problems = _shape_problems(ctx.gateway)
    if not problems:
        return result(FILES, name, OK, "the keys that are set have their usual shapes")
    status = FAIL if any(p[0] == FAIL for p in problems) else WARN
    problems.sort(key=lambda p: p[0] != FAIL)
    more = f" (+{len(problems) - 1} more)" if len(problems) > 1 else ""
    return result(FILES, name, status, problems[0][1] + more, problems[0][2])


def _shape_problems(gw: Gateway) -> list[tuple[str, str, str]]:
    env, found = gw.env, []
    master = env.get("LITELLM_MASTER_KEY", "").strip()
    if master and not is_placeholder(master) and not master.startswith("sk-"):
        found.append(
            (
                FAIL,
                "LITELLM_MASTER_KEY does not start with sk- (serve refuses it)",
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
    for token in _split(env.get("CLAUDE_OAUTH_TOKENS", "")):
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
        if provider.name == "openai" and "api.openai.com" in (_api_base(gw, route) or "api.openai.com"):
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


def _split(value: str) -> list[str]:
    return [v.strip() for v in value.split(",") if v.strip()]


def _api_base(gw: Gateway, route: RouteInfo) -> str | None:
    """The route's upstream base URL as the gateway will use it."""
    if route.base_env:
        return gw.env.get(route.base_env) or None
    return route.api_base


def check_hooks(ctx: Context) -> CheckResult:
    """The modules the config names (custom_auth, callbacks, custom handlers) import and resolve."""
    name = "hook modules"
    if skip := _needs_config(FILES, name, ctx):
        return skip
    refs = hook_references(ctx.gateway.config)
    if not refs:
        return result(FILES, name, OK, "the config names no hook modules")
    for ref in refs:
        problem = _resolve_hook(ctx.gateway.folder, ref)
        if problem:
            return result(FILES, name, FAIL, f"{ref}: {problem[0]}", problem[1])
    return result(FILES, name, OK, f"{', '.join(refs)} resolve")


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


# =========================================================================== Gateway

GATEWAY = "Gateway"


def _liveliness(ctx: Context) -> Probe:
    return ctx.once("liveliness", lambda: ctx.request("GET", "/health/liveliness", timeout=3.0))


def gateway_up(ctx: Context) -> bool:
    """Whether a cc-gateway (LiteLLM) answers at the URL."""
    probe = _liveliness(ctx)
    return probe.status == 200 and "alive" in probe.text.lower()


def _start_hint(ctx: Context) -> str:
    if ctx.options.url:
        return "check --url, or start the gateway"
    folder = f" --dir {ctx.gateway.folder}" if ctx.gateway and ctx.gateway.folder != ctx.cwd else ""
    return f"start it: cc-gateway serve{folder}"


def check_reachable(ctx: Context) -> CheckResult:
    """The gateway answers its liveliness check at the configured URL."""
    name = "reachable"
    if ctx.url is None:
        return result(GATEWAY, name, SKIP, "no URL: config.yaml did not load and no --url was given")
    probe = _liveliness(ctx)
    if gateway_up(ctx):
        return result(GATEWAY, name, OK, f"{ctx.url} is alive", latency_ms=probe.elapsed_ms)
    port = urlsplit(ctx.url).port
    if probe.status is None and probe.error == "connection refused":
        return result(GATEWAY, name, FAIL, f"nothing listens at {ctx.url}", _start_hint(ctx))
    if probe.status is None:
        return result(GATEWAY, name, FAIL, f"{ctx.url}: {probe.error}", "check that the gateway is running")
    return result(
        GATEWAY,
        name,
        FAIL,
        f"port {port} is held by something that isn't the gateway (liveliness answered {probe.status})",
        f"stop it (`ss -ltnp 'sport = :{port}'` shows what it is) or change CC_GATEWAY_PORT",
    )


def check_readiness(ctx: Context) -> CheckResult:
    """The gateway is ready to take requests (not starting or draining)."""
    name = "readiness"
    if not gateway_up(ctx):
        return result(GATEWAY, name, SKIP, "the gateway is not reachable")
    probe = ctx.request("GET", "/health/readiness", timeout=5.0)
    if probe.status == 200:
        return result(GATEWAY, name, OK, "ready", latency_ms=probe.elapsed_ms)
    return result(
        GATEWAY,
        name,
        FAIL,
        f"readiness answered {probe.status or probe.error}: it is shutting down",
        "wait for it to stop and start it again",
    )


def check_auth(ctx: Context) -> CheckResult:
    """A wrong key is refused with 401 and this folder's key is accepted."""
    name = "auth"
    if not gateway_up(ctx):
        return result(GATEWAY, name, SKIP, "the gateway is not reachable")
    if ctx.gateway is None:
        return result(GATEWAY, name, SKIP, "config.yaml did not load: no key to test")
    wrong = ctx.request("GET", "/v1/models", headers={"Authorization": f"Bearer {WRONG_KEY}"}, timeout=5.0)
    right = ctx.request("GET", "/v1/models", headers=ctx.auth_headers(), timeout=5.0)
    if not ctx.auth_headers():
        if wrong.status == 200:
            return result(
                GATEWAY,
                name,
                WARN,
                "the gateway is open: it takes any key",
                "set LITELLM_MASTER_KEY in .env (cc-gateway init generates one)",
            )
        return result(
            GATEWAY,
            name,
            FAIL,
            "this folder has no key, but the gateway wants one",
            "the running gateway belongs to another folder or an older .env; restart it",
        )
    if wrong.status != 401:
        return result(
            GATEWAY,
            name,
            FAIL,
            f"a wrong key got {wrong.status}, not 401: the gateway is not checking keys",
            "restart it with `cc-gateway serve`, which always sets custom_auth",
        )
    if right.status != 200:
        return result(
            GATEWAY,
            name,
            FAIL,
            f"the key in {ctx.gateway.env_path.name} is refused ({right.status}): the running gateway uses another",
            "restart the gateway so it reads the current .env, or stop the other one on this port",
        )
    stale = _stale_routes(ctx, right.text)
    if stale:
        return result(
            GATEWAY,
            name,
            WARN,
            f"keys work, but the gateway does not serve {', '.join(stale)} from config.yaml",
            "restart the gateway to load the current config.yaml",
        )
    return result(GATEWAY, name, OK, "wrong key refused (401), the folder's key accepted")


def _stale_routes(ctx: Context, models_json: str) -> list[str]:
    try:
        served = {m.get("id") for m in json.loads(models_json).get("data", [])}
    except (ValueError, AttributeError):
        return []
    return [r.name for r in ctx.gateway.routes if "*" not in r.name and r.name not in served]


def exposure(ctx: Context) -> str | None:
    """The non-loopback address the gateway is reachable on, or None for loopback only."""

    def compute() -> str | None:
        host = urlsplit(ctx.url or "").hostname or "127.0.0.1"
        if not _is_loopback(host):
            return host
        port = urlsplit(ctx.url or "").port or (ctx.gateway.port if ctx.gateway else 4000)
        for address in _local_addresses():
            with contextlib.suppress(OSError), socket.create_connection((address, port), timeout=0.5):
                return address
        return None

    return ctx.once("exposure", compute)


def _is_loopback(host: str) -> bool:
    from cc_gateway.serve import is_loopback

    return is_loopback(host)


def _local_addresses() -> list[str]:
    """This machine's non-loopback IPv4 addresses (a UDP connect sends no packet)."""
    found: set[str] = set()
    with contextlib.suppress(OSError):
        found |= {info[4][0] for info in socket.getaddrinfo(socket.gethostname(), None, socket.AF_INET)}
    with contextlib.suppress(OSError), socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        udp.connect(("192.0.2.1", 9))
        found.add(udp.getsockname()[0])
    return sorted(a for a in found if not ipaddress.ip_address(a).is_loopback and a != "0.0.0.0")


def check_listen_address(ctx: Context) -> CheckResult:
    """Where the gateway can be reached from: loopback only, or other machines too."""
    name = "listen address"
    if not gateway_up(ctx):
        return result(GATEWAY, name, SKIP, "the gateway is not reachable")
    address = exposure(ctx)
    if address is None:
        return result(GATEWAY, name, OK, "loopback only")
    if not ctx.auth_headers():
        return result(
            GATEWAY,
            name,
            WARN,
            f"reachable at {address} beyond loopback with open auth: anyone can use it",
            "set LITELLM_MASTER_KEY in .env, or serve on 127.0.0.1 (the default)",
        )
    return result(GATEWAY, name, OK, f"reachable at {address} beyond loopback; keys required")


# =========================================================================== Routes

ROUTES = "Routes"


def probe_targets(ctx: Context) -> list[tuple[str, Callable[[Context], CheckResult]]]:
    """One probe per route (model group), limited by --route."""
    gw = ctx.gateway
    if gw is None:
        return []
    names = list(dict.fromkeys(r.name for r in gw.routes))
    wanted = ctx.options.routes or tuple(names)
    checks: list[tuple[str, Callable[[Context], CheckResult]]] = []
    for name in wanted:
        if name in names:
            route = next(r for r in gw.routes if r.name == name)
            checks.append((f"route {name}", partial(check_route, route=route)))
        else:
            miss = result(
                ROUTES, f"route {name}", FAIL, f"config.yaml has no route {name!r}", f"routes: {', '.join(names)}"
            )
            checks.append((f"route {name}", lambda _ctx, row=miss: row))
    return checks


def probe_model(gw: Gateway, route: RouteInfo) -> str | None:
    """A concrete model id the gateway resolves to this route (wildcard routes need one)."""
    if "*" not in route.name:
        return route.name
    from cc_gateway.claude_code import default_model_ids

    ids = [*default_model_ids().values(), *SHORT_CLAUDE_IDS]
    prefix = route.name.split("*", 1)[0]
    candidates = ids + [prefix + i for i in ids if not i.startswith(prefix)]
    return next((c for c in candidates if gw.resolve(c) == route.name), None)


def _is_bridge(gw: Gateway, route: RouteInfo) -> bool:
    custom = (gw.config.get("litellm_settings") or {}).get("custom_provider_map") or []
    prefixes = {str(item.get("provider")) for item in custom if isinstance(item, dict)}
    return route.model.split("/", 1)[0] in prefixes


def _passthrough(gw: Gateway, route: RouteInfo) -> bool:
    """A credential-pool route with an empty pool forwards each client's own Claude login."""
    if not route.model_info.get("cc_gateway_credential_pool") or route.key_env:
        return False
    mode = gw.env.get("CLAUDE_TOKEN_MODE", "").strip()
    return mode == "passthrough" or (mode != "rotate" and not _split(gw.env.get("CLAUDE_OAUTH_TOKENS", "")))


def check_route(ctx: Context, route: RouteInfo) -> CheckResult:
    """Send the route a small real request of the kind its clients send; explain a failure."""
    name, gw = f"route {route.name}", ctx.gateway
    if not ctx.options.network:
        return result(ROUTES, name, SKIP, "not probed (--no-network)")
    if not gateway_up(ctx):
        return result(ROUTES, name, SKIP, "the gateway is not reachable")
    model = probe_model(gw, route)
    if model is None:
        return result(
            ROUTES,
            name,
            SKIP,
            f"wildcard route: no known model id resolves to {route.name}",
            f"probe it with a concrete id: cc-gateway doctor --route {route.name} after adding one",
        )
    if _passthrough(gw, route):
        return result(ROUTES, name, SKIP, "passthrough: each client's own Claude login is forwarded; doctor has none")
    if _is_bridge(gw, route):
        body = {"model": model, "max_tokens": 16, "messages": [{"role": "user", "content": PROBE_PROMPT}]}
        probe = ctx.request("POST", "/v1/chat/completions", json=body, headers=ctx.auth_headers())
        kind = "chat completions"
    else:
        probe = _messages_probe(ctx, model)
        kind = "/v1/messages stream + tool"
    via = f" as {model}" if model != route.name else ""
    if probe.status == 200 and probe.error is None:
        ctx.latencies[route.name] = probe.elapsed_ms
        return result(ROUTES, name, OK, f"{kind}{via}: answered in {probe.elapsed_ms} ms", latency_ms=probe.elapsed_ms)
    detail, hint, status = diagnose(ctx, route, probe)
    return result(ROUTES, name, status, f"{detail}{via}", hint, latency_ms=probe.elapsed_ms)


def _messages_probe(ctx: Context, model: str) -> Probe:
    """A streamed Anthropic /v1/messages request with one tool, read to the end."""
    import httpx

    body = {
        "model": model,
        "max_tokens": 32,
        "stream": True,
        "tools": [PROBE_TOOL],
        "messages": [{"role": "user", "content": PROBE_PROMPT}],
    }
    headers = {**ctx.auth_headers(), "anthropic-version": "2023-06-01"}
    start = time.perf_counter()
    try:
        with ctx.client().stream("POST", f"{ctx.url}/v1/messages", json=body, headers=headers) as response:
            text = response.read().decode("utf-8", "replace")
    except httpx.HTTPError as exc:
        return Probe(None, error=_http_error(exc), elapsed_ms=_ms(start))
    probe = Probe(response.status_code, text, elapsed_ms=_ms(start))
    if response.status_code == 200:
        probe.error = _stream_error(text)
    return probe


def _stream_error(text: str) -> str | None:
    """The error carried by an SSE stream, or None when it ended with message_stop."""
    for block in text.split("\n\n"):
        if "event: error" in block:
            data = block.split("data:", 1)[-1].strip()
            return _error_message(data) or "the stream ended with an error event"
    return None if "message_stop" in text else "the stream ended without message_stop"


def _error_message(body: str) -> str:
    """The innermost error message of a gateway error body (LiteLLM wraps the upstream's)."""
    try:
        data = json.loads(body)
    except ValueError:
        return body.strip()
    error = data.get("error", data) if isinstance(data, dict) else data
    message = str(error.get("message", error)) if isinstance(error, dict) else str(error)
    return message.split("\n\nLiteLLM:", 1)[0]


def _upstream_message(message: str) -> str:
    """The upstream's own words inside a LiteLLM message (`XException - {json}`), shortened."""
    inner = message.split("Exception - ", 1)[-1]
    with contextlib.suppress(ValueError, AttributeError):
        inner = _error_message(inner)
    inner = " ".join(inner.split())
    return inner if len(inner) <= 140 else inner[:139] + "…"


Diagnosis = tuple[str, str, str]  # (cause, fix, status)


def diagnose(ctx: Context, route: RouteInfo, probe: Probe) -> Diagnosis:
    """Turn a failed probe into (cause, fix, status): the gateway's own refusals first, then the upstream's."""
    message = ctx.scrub(probe.error if probe.status in (None, 200) else _error_message(probe.text))
    return _gateway_side(ctx, route, probe.status, message) or _upstream_side(ctx, route, probe.status, message)


def _gateway_side(ctx: Context, route: RouteInfo, status: int | None, message: str) -> Diagnosis | None:
    """Failures the gateway itself produced (no answer, cooldown, unset variable, unknown route)."""
    gw = ctx.gateway
    if status is None:
        return (f"no answer from the gateway: {message}", "check the gateway log (cc-gateway serve)", FAIL)
    if "in cooldown" in message:
        return (
            "LiteLLM put the route in cooldown after an earlier upstream failure; it answers 429 until it ends",
            "wait for router_settings.cooldown_time, or restart the gateway, then run doctor again",
            FAIL,
        )
    if status == 503 and "is not set" in message:
        variable = message.split(": ", 1)[-1].split(" is not set", 1)[0]
        return (f"{variable} is not set, so the route answers 503", f"set {variable} in {gw.env_path}, restart", FAIL)
    if status == 400 and "no healthy deployments" in message.lower():
        return (f"the running gateway has no route {route.name}", "restart it to load the current config.yaml", FAIL)
    return None


def _upstream_side(ctx: Context, route: RouteInfo, status: int | None, message: str) -> Diagnosis:
    """Failures the upstream answered, translated into a cause and a fix."""
    gw = ctx.gateway
    where = f"set {route.key_env} in {gw.env_path}" if route.key_env else f"check the route in {gw.config_path}"
    if status == 401 and re.search(r"OAuth token has expired|token.*expired", message, re.I):
        variable = route.key_env or "CLAUDE_OAUTH_TOKENS"
        return ("OAuth token expired — run claude setup-token", f"put the new token in {variable}, restart", FAIL)
    if status == 401:
        pool = "CLAUDE_OAUTH_TOKENS" if route.model_info.get("cc_gateway_credential_pool") else None
        variable = route.key_env or pool
        cause = f"upstream rejects the key in {variable}" if variable else "upstream rejects the route's credentials"
        return (cause, f"{where} (a valid key from the provider), then restart the gateway", FAIL)
    if status == 403:
        return (f"upstream refuses access (403): {_upstream_message(message)}", f"{where}; check the account", FAIL)
    if _CONNECT.search(message):
        base = _api_base(gw, route) or "the provider's default URL"
        return (f"connection refused at {base}", f"is the upstream running? check {route.base_env or 'api_base'}", FAIL)
    if status == 404 and would_use_responses_api(gw, route):
        return (
            "upstream has no Responses API — keep this route on chat completions",
            f"add `{CHAT_FLAG}: true` under litellm_settings",
            FAIL,
        )
    if status == 404:
        return (
            f"model not found upstream ({route.model}): {_upstream_message(message)}",
            f"check litellm_params.model of route {route.name} in {gw.config_path.name}",
            FAIL,
        )
    if status == 429:
        return (f"upstream rate-limits (429): {_upstream_message(message)}", "wait, or check the plan's limits", WARN)
    if status in (408, 504) or "timeout" in message.lower():
        return (f"upstream too slow: {_upstream_message(message)}", "check the upstream's status", FAIL)
    return (f"{status}: {_upstream_message(message)}", "see the gateway log for the full error", FAIL)


def would_use_responses_api(gw: Gateway, route: RouteInfo) -> bool:
    """Whether LiteLLM sends this route's /v1/messages to the upstream's Responses API (openai/ routes)."""
    if not route.model.startswith("openai/"):
        return False
    settings = gw.config.get("litellm_settings") or {}
    if settings.get(CHAT_FLAG) is True or gw.env.get("LITELLM_USE_CHAT_COMPLETIONS_URL_FOR_ANTHROPIC_MESSAGES"):
        return False
    return route.model_info.get("supports_reasoning") is not False


# =========================================================================== Known traps

TRAPS = "Known traps"


def check_trap_1m(ctx: Context) -> CheckResult:
    """No route name carries Claude Code's `[1m]` suffix (Claude Code strips it before asking)."""
    name = "[1m] route names"
    if skip := _needs_config(TRAPS, name, ctx):
        return skip
    bad = [r.name for r in ctx.gateway.routes if "[1m]" in r.name]
    if bad:
        return result(
            TRAPS,
            name,
            FAIL,
            f"route {bad[0]} contains [1m]: Claude Code strips the suffix, so it never matches",
            f"rename it to {bad[0].replace('[1m]', '')}",
        )
    return result(TRAPS, name, OK, "no route name contains [1m]")


def check_trap_master_key_placement(ctx: Context) -> CheckResult:
    """master_key sits under general_settings (LiteLLM ignores it under litellm_settings)."""
    name = "master_key placement"
    if skip := _needs_config(TRAPS, name, ctx):
        return skip
    if "master_key" in (ctx.gateway.config.get("litellm_settings") or {}):
        return result(
            TRAPS,
            name,
            FAIL,
            "master_key is under litellm_settings, where LiteLLM ignores it",
            "move it under general_settings: master_key: os.environ/LITELLM_MASTER_KEY",
        )
    return result(TRAPS, name, OK, "master_key is under general_settings")


def check_trap_weak_keys(ctx: Context) -> CheckResult:
    """No well-known key (sk-1234 and friends) and no literal key in config.yaml."""
    name = "weak or literal keys"
    if skip := _needs_config(TRAPS, name, ctx):
        return skip
    from cc_gateway.serve import WEAK_KEYS

    gw = ctx.gateway
    for variable, value in [("LITELLM_MASTER_KEY", gw.master_key)] + [
        ("PROXY_STATIC_TOKEN", t) for t in gw.static_tokens
    ]:
        if value in WEAK_KEYS or _WEAK.match(value):
            return result(
                TRAPS,
                name,
                FAIL,
                f"{variable} is a well-known key ({value[:4]}…): anyone can guess it",
                "run `cc-gateway init` again to generate a strong one",
            )
    literal = _literal_keys(gw.config)
    if literal:
        return result(
            TRAPS,
            name,
            FAIL,
            f"config.yaml holds a literal key at {literal[0]}",
            "move it to .env and write os.environ/NAME in config.yaml",
        )
    return result(TRAPS, name, OK, "keys are strong and live in .env only")


def _literal_keys(node: Any, path: str = "") -> list[str]:
    if isinstance(node, dict):
        return [p for k, v in node.items() for p in _literal_keys(v, f"{path}.{k}" if path else str(k))]
    if isinstance(node, list):
        return [p for i, v in enumerate(node) for p in _literal_keys(v, f"{path}[{i}]")]
    return [path] if isinstance(node, str) and _KEY_SHAPE.match(node) else []


def check_trap_responses_api(ctx: Context) -> CheckResult:
    """No openai/ route sends Claude Code's requests to the Responses API of an upstream without one."""
    name = "Responses API"
    if skip := _needs_config(TRAPS, name, ctx):
        return skip
    gw = ctx.gateway
    risky = [
        r
        for r in gw.routes
        if would_use_responses_api(gw, r) and "api.openai.com" not in (_api_base(gw, r) or "api.openai.com")
    ]
    if risky:
        route = risky[0]
        return result(
            TRAPS,
            name,
            WARN,
            f"route {route.name} ({route.model}) will send /v1/messages to "
            f"{_api_base(gw, route)}/responses; OpenAI-compatible servers rarely have one",
            f"add `{CHAT_FLAG}: true` under litellm_settings (or supports_reasoning: false in model_info)",
        )
    return result(TRAPS, name, OK, "no openai/ route goes to a Responses API its upstream may lack")


def check_trap_cooldown(ctx: Context) -> CheckResult:
    """No lone deployment can be cooled down (LiteLLM then answers 429 for cooldown_time seconds)."""
    name = "lone-deployment cooldown"
    if skip := _needs_config(TRAPS, name, ctx):
        return skip
    lone = lone_deployments(ctx.gateway.config)
    if not lone:
        return result(TRAPS, name, OK, "cooldowns are off, or every route has a fallback or a second deployment")
    seconds = (ctx.gateway.config.get("router_settings") or {}).get("cooldown_time", 5)
    return result(
        TRAPS,
        name,
        WARN,
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


# =========================================================================== Compliance

COMPLIANCE = "Compliance"


def check_oauth_pooling(ctx: Context) -> CheckResult:
    """Subscription OAuth tokens are not pooled or served beyond loopback."""
    name = "subscription tokens"
    if skip := _needs_config(COMPLIANCE, name, ctx):
        return skip
    env = ctx.gateway.env
    tokens = [t for t in _split(env.get("CLAUDE_OAUTH_TOKENS", "")) if t.startswith("sk-ant-oat")]
    own = env.get("CLAUDE_CODE_OAUTH_TOKEN", "").strip()
    tokens += [own] if own.startswith("sk-ant-oat") else []
    if not tokens:
        return result(COMPLIANCE, name, OK, "no subscription OAuth token on this gateway")
    address = exposure(ctx) if gateway_up(ctx) else None
    terms = "Anthropic's terms reserve subscription tokens for their owner's own Claude Code use"
    if address:
        return result(
            COMPLIANCE,
            name,
            FAIL,
            f"{len(tokens)} subscription OAuth token(s) served at {address}, beyond loopback: {terms}",
            "serve on 127.0.0.1 (the default), or use Anthropic API keys (sk-ant-api...) instead",
        )
    if len(tokens) > 1:
        return result(
            COMPLIANCE,
            name,
            WARN,
            f"{len(tokens)} subscription OAuth tokens pooled: {terms}",
            "pool API keys instead; for subscriptions use passthrough (empty CLAUDE_OAUTH_TOKENS)",
        )
    return result(COMPLIANCE, name, OK, "one subscription OAuth token, loopback only")


# =========================================================================== running

Check = Callable[[Context], CheckResult]
Entry = tuple[str, str, Check]  # (group, name, check): group and name label a row the check could not give
GROUP_ORDER = (FILES, GATEWAY, ROUTES, "Claude Code", TRAPS, COMPLIANCE)

BASE_CHECKS: list[Entry] = [
    (FILES, "config.yaml", check_config),
    (FILES, ".env", check_env_file),
    (FILES, "variables", check_variables),
    (FILES, "key shapes", check_key_shapes),
    (FILES, "hook modules", check_hooks),
    (GATEWAY, "reachable", check_reachable),
    (GATEWAY, "readiness", check_readiness),
    (GATEWAY, "auth", check_auth),
    (GATEWAY, "listen address", check_listen_address),
    (TRAPS, "[1m] route names", check_trap_1m),
    (TRAPS, "master_key placement", check_trap_master_key_placement),
    (TRAPS, "weak or literal keys", check_trap_weak_keys),
    (TRAPS, "Responses API", check_trap_responses_api),
    (TRAPS, "lone-deployment cooldown", check_trap_cooldown),
    (COMPLIANCE, "subscription tokens", check_oauth_pooling),
]


def run_checks(options: DoctorOptions) -> Report:
    """Run every check (concurrently, each with a timeout) and return the results in report order.

    Two waves: everything at once, then the checks that compare against the route latencies.
    """
    from cc_gateway import doctor_claude

    start = time.perf_counter()
    ctx = Context(options)
    claude = [("Claude Code", name, check) for name, check in doctor_claude.CHECKS]
    later = [entry for entry in claude if entry[2] in doctor_claude.AFTER_PROBES]
    first = BASE_CHECKS + [(ROUTES, n, c) for n, c in probe_targets(ctx)] + [e for e in claude if e not in later]
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=16, thread_name_prefix="doctor")
    try:
        results = _gather(ctx, pool, first) + _gather(ctx, pool, later)
    finally:
        pool.shutdown(wait=False, cancel_futures=True)
        ctx.close()
    results.sort(key=lambda r: GROUP_ORDER.index(r.group) if r.group in GROUP_ORDER else len(GROUP_ORDER))
    return Report(results, _ms(start), ctx.url, ctx.gateway.folder if ctx.gateway else None)


def _gather(ctx: Context, pool: concurrent.futures.Executor, checks: list[Entry]) -> list[CheckResult]:
    """Run checks in the pool; a check past its deadline, or one that raises, becomes a failed row."""
    futures = [(group, name, pool.submit(check, ctx)) for group, name, check in checks]
    deadline = time.monotonic() + max(ctx.options.check_timeout, ctx.options.probe_timeout + 5)
    rows = []
    for group, name, future in futures:
        try:
            rows.append(future.result(timeout=max(0.1, deadline - time.monotonic())))
        except concurrent.futures.TimeoutError:
            rows.append(result(group, name, FAIL, "the check did not finish in time", "run doctor again"))
        except Exception as exc:  # a crashing check becomes a row; the others still run
            detail = f"the check crashed: {type(exc).__name__}: {ctx.scrub(str(exc))}"
            rows.append(result(group, name, FAIL, detail, "please report this with `cc-gateway doctor --json`"))
    return rows
