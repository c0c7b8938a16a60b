"""What `serve` checks before LiteLLM loads (fast, clear errors): folder, keys, routes, address, port, workers."""

from __future__ import annotations

import errno
import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from cc_gateway.core.envfile import apply_to_environ
from cc_gateway.core.errors import ConfigError, GatewayError, PortInUse, UsageError
from cc_gateway.core.secrets import is_loopback, is_placeholder, is_weak_key
from cc_gateway.gateway.folder import Gateway, load_gateway
from cc_gateway.serve.http import HttpLimits, resolve_limits

DEFAULT_BODY_LIMIT = 32 << 20
LOG_LEVELS = ("debug", "info", "warning", "error")


@dataclass
class ServeOptions:
    """What `serve` was asked to do."""

    folder: Path | None = None
    config: Path | None = None
    host: str = "127.0.0.1"
    port: int | None = None
    workers: int | None = None  # None: default_workers() decides
    log_level: str = "info"
    allow_open: bool = False
    drain_seconds: float = 30.0
    body_limit: int = DEFAULT_BODY_LIMIT
    reload: bool = True  # watch config.yaml/.env and apply edits (SIGHUP works either way)
    http_limits: dict[str, float | int | None] = field(default_factory=dict)  # flags; None: env or default


@dataclass
class Preflight:
    """Everything serve decided before loading LiteLLM."""

    gateway: Gateway
    options: ServeOptions
    port: int
    url: str
    warnings: list[str] = field(default_factory=list)
    unavailable: dict[str, str] = field(default_factory=dict)  # route -> empty variable
    open_auth: bool = False
    workers: int = 1
    workers_reason: str = ""
    env_from_file: list[str] = field(default_factory=list)  # the names .env added to the environment
    limits: HttpLimits = field(default_factory=HttpLimits)

    @property
    def client_lines(self) -> list[str]:
        """The environment lines Claude Code needs to use this gateway."""
        if self.open_auth:
            return [f"ANTHROPIC_BASE_URL={self.url}", "ANTHROPIC_AUTH_TOKEN=anything (the gateway is open)"]
        if self.gateway.uses_static_tokens and self.gateway.static_tokens:
            header = "ANTHROPIC_CUSTOM_HEADERS='x-litellm-api-key: <PROXY_STATIC_TOKEN>'"
            return [f"ANTHROPIC_BASE_URL={self.url}", header]
        return [f"ANTHROPIC_BASE_URL={self.url}", "ANTHROPIC_AUTH_TOKEN=<LITELLM_MASTER_KEY from .env>"]


def preflight(options: ServeOptions) -> Preflight:
    """Check the folder, keys, address and port; export .env into the environment."""
    if options.log_level not in LOG_LEVELS:
        raise UsageError(f"unknown log level {options.log_level!r}", hint=f"use one of: {', '.join(LOG_LEVELS)}")
    if options.workers is not None and options.workers < 1:
        raise UsageError("--workers must be at least 1")
    _check_config_name(options.config)
    gateway = load_gateway(options.folder, options.config)
    from_file = apply_to_environ(gateway.env_file)
    gateway.env = dict(os.environ)
    port = options.port or gateway.port
    if not 1 <= port <= 65535:
        raise UsageError(f"port {port} is out of range", hint="use a port between 1 and 65535")
    shown_host = f"[{options.host}]" if ":" in options.host else options.host
    result = Preflight(gateway, options, port, f"http://{shown_host}:{port}", env_from_file=from_file)
    check(result)
    export(gateway)
    check_port_free(options.host, port)
    return result


def check(result: Preflight) -> None:
    """Check a folder as `serve` would serve it (gateway.env is its environment); also run on a reload.

    Changes nothing outside `result`: export() then applies what the environment needs.
    """
    gateway = result.gateway
    _check_config(gateway)
    _check_rules(result)
    _check_auth(result)
    _check_routes(result)
    _check_pool(result)
    result.warnings += _runtime_warnings(gateway)
    result.workers, result.workers_reason = choose_workers(gateway, result.options.workers, gateway.env)
    result.limits = _limits(result)


def export(gateway: Gateway) -> None:
    """Adjust the process environment for LiteLLM (after check() passed)."""
    _without_master_key(gateway)
    pooled = any(r.model_info.get("cc_gateway_credential_pool") for r in gateway.routes)
    if pooled and not os.environ.get("REDIS_URL", "").strip():
        os.environ.pop("REDIS_URL", None)  # router_settings.redis_url would resolve to '' and be dialled


def _limits(result: Preflight) -> HttpLimits:
    """The HTTP limits from the flags, else CC_GATEWAY_* in the environment or .env, else the defaults."""
    try:
        return resolve_limits(result.options.http_limits, result.gateway.env)
    except ValueError as exc:
        if str(exc).startswith("--"):
            raise UsageError(str(exc)) from None
        raise ConfigError(f"{result.gateway.env_path}: {exc}", hint="use a number of seconds or bytes") from None


def _check_config_name(config: Path | None) -> None:
    """LiteLLM loads a config file only when its name ends in .yaml or .yml: refuse any other (it would
    start with no routes at all)."""
    if config is not None and config.suffix.lower() not in (".yaml", ".yml"):
        raise UsageError(
            f"--config {config}: LiteLLM loads only files whose name ends in .yaml or .yml",
            hint=f"rename it (e.g. {config.with_suffix('.yaml').name}) or pass --dir with its folder",
        )


def _check_config(gateway: Gateway) -> None:
    """doctor's structural checks of config.yaml, before LiteLLM loads (seconds) and fails on it."""
    from cc_gateway.gateway.validate import config_failure

    failure = config_failure(gateway)
    if failure is not None:
        raise ConfigError(failure[0], hint=failure[1])


def _runtime_warnings(gateway: Gateway) -> list[str]:
    """Start-up warnings from the runtime pieces a config uses (the oauth-bridge's terms notice)."""
    from cc_gateway.runtime.bridge.checks import startup_warnings

    return startup_warnings(gateway.config, gateway.env)


def _check_auth(result: Preflight) -> None:
    gateway, options = result.gateway, result.options
    master = gateway.master_key
    if master and is_weak_key(master):
        raise ConfigError(
            f"{gateway.env_path}: LITELLM_MASTER_KEY is a placeholder or a well-known weak key",
            hint="run `cc-gateway init` again to generate one (it keeps your other values), or set sk- + 32 random bytes",
        )
    if master or gateway.static_tokens:
        if not is_loopback(options.host):
            result.warnings.append(
                f"listening on {options.host}: the gateway is reachable from other machines; keep its key secret"
            )
        return
    if not gateway.uses_static_tokens and not options.allow_open:
        raise ConfigError(
            f"{gateway.env_path}: LITELLM_MASTER_KEY is not set",
            hint="run `cc-gateway init` in that folder to generate one (or --allow-open to run without auth)",
        )
    if not is_loopback(options.host) and not options.allow_open:
        raise GatewayError(
            f"refusing to listen on {options.host} with no master key and no PROXY_STATIC_TOKEN: anyone could use it",
            hint="set PROXY_STATIC_TOKEN or LITELLM_MASTER_KEY in .env, or pass --allow-open if you mean it",
        )
    result.open_auth = True
    result.warnings.append("no master key and no static token: the gateway is OPEN to anyone who can reach it")
    if not is_loopback(options.host):
        result.warnings.append(f"OPEN gateway listening on {options.host}: reachable from other machines")


def _without_master_key(gateway: Gateway) -> None:
    """No master key (static tokens only, or open, as _check_auth allowed): custom_auth checks requests.

    LiteLLM refuses to boot with an empty master key; that refusal guards LiteLLM's own key
    check, which cc-gateway's custom_auth replaces, so say it is intended and pass None, not ''.
    """
    if gateway.master_key:
        return
    os.environ.pop("LITELLM_MASTER_KEY", None)
    os.environ["LITELLM_DANGEROUSLY_PERMIT_WEAK_OR_UNSET_MASTER_KEY"] = "true"


def _check_routes(result: Preflight) -> None:
    """Name the routes whose key variable is empty or a placeholder; they are served as unavailable (424, not
    retried)."""
    for route in result.gateway.routes:
        if route.key_env and is_placeholder(result.gateway.env.get(route.key_env)):
            result.unavailable[route.name] = route.key_env
    if result.unavailable and len(result.unavailable) == len(result.gateway.routes):
        first = next(iter(result.unavailable.values()))
        raise ConfigError(
            f"{result.gateway.env_path}: every route needs a key that is not set or still a placeholder "
            f"(first: {first})",
            hint=f"set {first} in .env (or in the environment) and start again",
        )


def _check_rules(result: Preflight) -> None:
    """Refuse routing_rules that do not parse or name a hook that does not load; warn about unfit targets."""
    from cc_gateway.routing import RouteTable, load_rules
    from cc_gateway.routing.checks import FAIL, rule_problems
    from cc_gateway.routing.engine import HookLoader

    gateway = result.gateway
    rules = load_rules(gateway.config_path, gateway.config)
    HookLoader(gateway.config_path.parent, gateway.config_path).load_all(rules)
    for problem in rule_problems(rules, RouteTable.from_config(gateway.config)):
        if problem.status == FAIL:  # such a rule falls through at run time, so the gateway still serves
            result.warnings.append(f"{gateway.config_path}:{problem.rule.line}: {problem.message}")


def _check_pool(result: Preflight) -> None:
    """Validate the Claude credential pool's variables (multi-provider); see runtime/pool.py."""
    if not any(r.model_info.get("cc_gateway_credential_pool") for r in result.gateway.routes):
        return
    from cc_gateway.runtime.multi_provider.pool import validate_environment

    try:
        result.warnings += validate_environment(result.gateway.env)
    except ConfigError as exc:
        raise ConfigError(f"{result.gateway.env_path}: {exc}", hint=exc.hint) from None


MAX_DEFAULT_WORKERS = 4


def cpu_count() -> int:
    """CPUs this process may run on (at least 1)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def per_process_state(gateway: Gateway, environ: Mapping[str, str] | None = None) -> list[str]:
    """Name the features whose state would be split between workers (empty with REDIS_URL)."""
    if (os.environ if environ is None else environ).get("REDIS_URL", "").strip():
        return []
    found = []
    if any(r.model_info.get("cc_gateway_credential_pool") for r in gateway.routes):
        found.append("the Claude credential pool's rests and removals")
    limits = ("rpm", "tpm", "max_parallel_requests")
    for entry in gateway.config.get("model_list") or []:
        if any(k in (entry.get("litellm_params") or {}) for k in limits):
            found.append("the routes' rpm/tpm/max_parallel_requests limits")
            break
    strategy = str((gateway.config.get("router_settings") or {}).get("routing_strategy") or "")
    if strategy.startswith("usage-based"):
        found.append(f"the {strategy} usage counters")
    return found


def uses_bridge(gateway: Gateway) -> bool:
    """Tell whether a route is served by the oauth-bridge (Claude Code processes kept warm)."""
    return any(r.model.startswith("claude-agent/") for r in gateway.routes)


def choose_workers(gateway: Gateway, asked: int | None, environ: Mapping[str, str] | None = None) -> tuple[int, str]:
    """Return the worker count and why (one per CPU, at most 4, unless state must stay in one process)."""
    if not hasattr(os, "fork"):  # workers are forked: elsewhere, one process serves
        return 1, "1 worker (this platform cannot fork workers)"
    split = per_process_state(gateway, environ)
    if asked is None:
        if split:
            return 1, f"1 worker: {split[0]} live in this process (set REDIS_URL to share them and use the CPUs)"
        if uses_bridge(gateway):
            return 1, "1 worker: the oauth-bridge keeps its Claude Code processes in one worker"
        count = min(MAX_DEFAULT_WORKERS, cpu_count())
        return count, f"{count} worker(s): one per CPU (at most {MAX_DEFAULT_WORKERS}; --workers to change)"
    if asked > 1 and split:
        raise UsageError(
            f"--workers {asked} would split {split[0]} between processes",
            hint="set REDIS_URL in .env so that every worker shares it, or use --workers 1",
        )
    return asked, f"{asked} worker(s)"


def check_port_free(host: str, port: int) -> None:
    """Fail clearly when the port is taken (LiteLLM's own CLI silently picks another)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise PortInUse(
                    f"port {port} on {host} is already in use",
                    hint=f"stop what is using it (e.g. `ss -ltnp 'sport = :{port}'`) or pass --port",
                ) from None
            raise GatewayError(f"cannot listen on {host}:{port}: {exc.strerror}", hint="check --host") from None
