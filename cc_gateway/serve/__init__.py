"""`cc-gateway serve`: LiteLLM's proxy in this process, safe by default.

The only module that imports `litellm.proxy` and uvicorn. `preflight()` checks everything that
can be checked without LiteLLM (fast, clear errors); `run()` starts the proxy.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import gc
import ipaddress
import logging
import os
import re
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import uvicorn

from cc_gateway.core.envfile import apply_to_environ, is_placeholder
from cc_gateway.core.errors import ConfigError, GatewayError, PortInUse, UsageError
from cc_gateway.gateway.folder import Gateway, load_gateway

WEAK_KEYS = {"sk-1234", "sk-12345", "sk-123456", "sk-test", "sk-admin", "sk-password"}
DEFAULT_BODY_LIMIT = 32 << 20
LOG_LEVELS = ("debug", "info", "warning", "error")
log = logging.getLogger("cc_gateway.serve")


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

    @property
    def client_lines(self) -> list[str]:
        """The environment lines Claude Code needs to use this gateway."""
        if self.open_auth:
            return [f"ANTHROPIC_BASE_URL={self.url}", "ANTHROPIC_AUTH_TOKEN=anything (the gateway is open)"]
        if self.gateway.uses_static_tokens and self.gateway.static_tokens:
            header = "ANTHROPIC_CUSTOM_HEADERS='x-litellm-api-key: <PROXY_STATIC_TOKEN>'"
            return [f"ANTHROPIC_BASE_URL={self.url}", header]
        return [f"ANTHROPIC_BASE_URL={self.url}", "ANTHROPIC_AUTH_TOKEN=<LITELLM_MASTER_KEY from .env>"]


def is_loopback(host: str) -> bool:
    """Tell whether a bind address only accepts local connections."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def preflight(options: ServeOptions) -> Preflight:
    """Check the folder, keys, address and port; export .env into the environment."""
    if options.log_level not in LOG_LEVELS:
        raise UsageError(f"unknown log level {options.log_level!r}", hint=f"use one of: {', '.join(LOG_LEVELS)}")
    if options.workers is not None and options.workers < 1:
        raise UsageError("--workers must be at least 1")
    gateway = load_gateway(options.folder, options.config)
    apply_to_environ(gateway.env_file)
    gateway.env = dict(os.environ)
    port = options.port or gateway.port
    if not 1 <= port <= 65535:
        raise UsageError(f"port {port} is out of range", hint="use a port between 1 and 65535")
    shown_host = f"[{options.host}]" if ":" in options.host else options.host
    result = Preflight(gateway, options, port, f"http://{shown_host}:{port}")
    _check_auth(result)
    _without_master_key(gateway)
    _check_routes(result)
    _check_pool(result)
    result.warnings += _runtime_warnings(gateway)
    result.workers, result.workers_reason = choose_workers(gateway, options.workers)
    check_port_free(options.host, port)
    return result


def _runtime_warnings(gateway: Gateway) -> list[str]:
    """Start-up warnings from the runtime pieces a config uses (the oauth-bridge's terms notice)."""
    from cc_gateway.runtime.bridge.checks import startup_warnings

    return startup_warnings(gateway.config, gateway.env)


def _check_auth(result: Preflight) -> None:
    gateway, options = result.gateway, result.options
    master = gateway.master_key
    if master and (is_placeholder(master) or master in WEAK_KEYS or not master.startswith("sk-") or len(master) < 20):
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
    """Name the routes whose key variable is empty; they are served as unavailable (503)."""
    for route in result.gateway.routes:
        if route.key_env and not result.gateway.env.get(route.key_env, "").strip():
            result.unavailable[route.name] = route.key_env
    if result.unavailable and len(result.unavailable) == len(result.gateway.routes):
        first = next(iter(result.unavailable.values()))
        raise ConfigError(
            f"{result.gateway.env_path}: every route needs a key that is not set (first: {first})",
            hint=f"set {first} in .env (or in the environment) and start again",
        )


def _check_pool(result: Preflight) -> None:
    """Validate the Claude credential pool's variables (multi-provider); see runtime/pool.py."""
    if not any(r.model_info.get("cc_gateway_credential_pool") for r in result.gateway.routes):
        return
    from cc_gateway.runtime.multi_provider.pool import validate_environment

    try:
        result.warnings += validate_environment(os.environ)
    except ConfigError as exc:
        raise ConfigError(f"{result.gateway.env_path}: {exc}", hint=exc.hint) from None
    if not os.environ.get("REDIS_URL", "").strip():
        os.environ.pop("REDIS_URL", None)  # router_settings.redis_url would resolve to '' and be dialled


MAX_DEFAULT_WORKERS = 4


def cpu_count() -> int:
    """CPUs this process may run on (at least 1)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def per_process_state(gateway: Gateway) -> list[str]:
    """Name the features whose state would be split between workers (empty with REDIS_URL)."""
    if os.environ.get("REDIS_URL", "").strip():
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


def choose_workers(gateway: Gateway, asked: int | None) -> tuple[int, str]:
    """Return the worker count and why (one per CPU, at most 4, unless state must stay in one process)."""
    if not hasattr(os, "fork"):  # workers are forked: elsewhere, one process serves
        return 1, "1 worker (this platform cannot fork workers)"
    split = per_process_state(gateway)
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


# --------------------------------------------------------------------------- logging


class RedactingFilter(logging.Filter):
    """Remove every configured secret (and anything shaped like a key) from log records."""

    _SHAPES = re.compile(r"(sk-[A-Za-z0-9_\-]{2})[A-Za-z0-9_\-]{6,}|((?i:bearer)\s+)[A-Za-z0-9._~+/=\-]{8,}")

    def __init__(self, secrets: list[str]) -> None:
        super().__init__()
        self.secrets = sorted({s for s in secrets if len(s) >= 6}, key=len, reverse=True)

    def scrub(self, text: str) -> str:
        """Return text with secrets masked."""
        for secret in self.secrets:
            if secret in text:
                text = text.replace(secret, "[redacted]")
        return self._SHAPES.sub(lambda m: (m.group(1) or m.group(2)) + "[redacted]", text)

    def filter(self, record: logging.LogRecord) -> bool:
        """Scrub the fully formatted message (args included) and any traceback."""
        message = record.getMessage()
        if record.exc_info:
            import traceback

            message += "\n" + "".join(traceback.format_exception(*record.exc_info))
            record.exc_info = None
            record.exc_text = None
        record.msg = self.scrub(message)
        record.args = None
        return True


def secret_values(environ: dict[str, str]) -> list[str]:
    """Collect every value that must never be logged: keys, tokens, secrets and salts."""
    values: list[str] = []
    for name, value in environ.items():
        if re.search(r"KEY|TOKEN|SECRET|PASSWORD|CREDENTIAL", name) and value:
            values += [v.strip() for v in value.split(",") if v.strip()]
    return values


def configure_logging(level: str, environ: dict[str, str]) -> None:
    """Route every logger (ours, LiteLLM's, uvicorn's) through one redacting stderr handler."""
    import sys

    redactor = RedactingFilter(secret_values(environ))
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s", "%H:%M:%S"))
    handler.addFilter(redactor)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.WARNING)
    numeric = getattr(logging, level.upper())
    for name in ("cc_gateway", "uvicorn.error"):
        logging.getLogger(name).setLevel(numeric)
    server_log = logging.getLogger("uvicorn.error")
    server_log.filters[:] = [f for f in server_log.filters if not isinstance(f, _TracebackFilter)]
    if numeric > logging.DEBUG:
        server_log.addFilter(_TracebackFilter())
    for name in ("LiteLLM", "LiteLLM Proxy", "LiteLLM Router", "LiteLLM Stdout Proxy"):
        lib = logging.getLogger(name)
        lib.handlers[:] = []
        lib.propagate = True
        lib.setLevel(numeric if numeric <= logging.DEBUG else max(numeric, logging.WARNING))
        # On the logger too: LiteLLM attaches a handler of its own while it imports (before the
        # second call), and a logger's filters run whatever handler prints the record.
        lib.filters[:] = [f for f in lib.filters if not isinstance(f, RedactingFilter | _IrrelevantFilter)]
        lib.addFilter(redactor)
        lib.addFilter(_IrrelevantFilter())
    logging.getLogger("uvicorn.access").disabled = True


class _TracebackFilter(logging.Filter):
    """Shorten the traceback uvicorn logs when LiteLLM fails to start to its last line (the cause).

    LiteLLM's start-up errors say what to fix in that line (e.g. "Check 'router_settings.routing_strategy'
    in your config.yaml"); --log-level debug keeps the whole traceback.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        """Replace a traceback message by its final line."""
        message = record.getMessage()
        if message.startswith("Traceback (most recent call last):"):
            last = [line for line in message.strip().splitlines() if line.strip()][-1]
            record.msg, record.args = f"LiteLLM could not start: {last.strip()}", None
        return True


class _IrrelevantFilter(logging.Filter):
    """Drop LiteLLM records that say nothing true about a cc-gateway: its report of our own 401 (the
    access line says 401 already) and start-up warnings about features serve turns off (the admin
    UI's sign-in, database team records that custom_auth would skip)."""

    NOT_FOR_US = (
        "trusted_proxy_ranges is not set",
        "custom_auth is configured but 'custom_auth_run_common_checks' is not set",
    )

    def filter(self, record: logging.LogRecord) -> bool:
        """Keep every other record."""
        text = str(record.msg)
        if text.startswith("litellm.proxy.proxy_server.user_api_key_auth()"):
            return "gateway key:" not in record.getMessage()
        return not text.startswith(self.NOT_FOR_US)


# --------------------------------------------------------------------------- run


def _quiet_environment(config_path: Path) -> None:
    """Make LiteLLM start offline and quiet: local cost map, no telemetry, no admin UI."""
    defaults = {
        # Every remote fetch LiteLLM 1.106 knows about has a local copy: use it.
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",
        "LITELLM_LOCAL_ANTHROPIC_BETA_HEADERS": "True",
        "LITELLM_LOCAL_BLOG_POSTS": "True",
        "LITELLM_LOCAL_POLICY_TEMPLATES": "True",
        "LITELLM_LOCAL_AUTOROUTER_PRESETS": "True",
        "LITELLM_TELEMETRY": "False",
        "LITELLM_DONT_SHOW_FEEDBACK_BOX": "true",
        "DISABLE_ADMIN_UI": "True",
        "DISABLE_SCHEMA_UPDATE": "True",
    }
    for name, value in defaults.items():
        os.environ.setdefault(name, value)
    os.environ["CONFIG_FILE_PATH"] = str(config_path)
    if str(config_path.parent) not in os.sys.path:
        os.sys.path.insert(0, str(config_path.parent))


def build_app(drain: Any, body_limit: int) -> Any:
    """Import LiteLLM's proxy app (slow: ~5 s) and wrap it in cc-gateway's middleware."""
    from litellm.proxy.proxy_server import app, save_worker_config

    from cc_gateway.serve.middleware import GatewayMiddleware

    # request_timeout=None as `litellm --config` does: a number here would override the config's
    # router_settings.timeout on every request.
    save_worker_config(config=os.environ["CONFIG_FILE_PATH"], drop_params=True, request_timeout=None)
    from cc_gateway.serve.litellm import fastroute, streampath

    fastroute.install(app)
    streampath.install()
    return GatewayMiddleware(app, drain=drain, body_limit=body_limit)


# Modules LiteLLM 1.106 imports on the first request (seen with -X importtime), ~2 s of CPU: imported
# before serving (and before forking workers) so that no worker pays for them on a client's request.
REQUEST_MODULES = (
    "openai.resources.chat",
    "litellm.litellm_core_utils.default_encoding",
    "litellm.proxy._experimental.mcp_server.mcp_server_manager",
    "litellm.proxy._experimental.mcp_server.auth.user_api_key_auth_mcp",
    "litellm.integrations.shadow_eval_logger",
    "litellm.integrations.otel.logger",
    "litellm.llms.anthropic.pass_through.messages.streaming_iterator",
    "litellm.proxy.guardrails.anthropic_sse",
    "litellm.types.litellm_core_utils.streaming_chunk_builder_utils",
    "litellm.types.proxy.litellm_pre_call_utils",
    "litellm.llms.custom_httpx.aiohttp_transport",
    "anyio._core._sockets",
)


def preload_request_modules() -> None:
    """Import what the first request would (a missing module only costs that request its import)."""
    import importlib

    for name in REQUEST_MODULES:
        try:
            importlib.import_module(name)
        except Exception as exc:  # an optional part LiteLLM handles itself at request time
            log.debug("preload of %s skipped: %s", name, type(exc).__name__)


def run(pre: Preflight, *, progress: Callable[[str], None], on_ready: Callable[[], None]) -> int:
    """Run the proxy until Ctrl-C/SIGTERM, then drain in-flight requests; return the exit code."""
    configure_logging(pre.options.log_level, dict(os.environ))
    _quiet_environment(pre.gateway.config_path)
    progress("loading LiteLLM")
    from cc_gateway.serve.middleware import DrainState

    drain = DrainState()
    # LiteLLM's proxy leaves ~900k objects behind at import; collecting while they are created
    # is a third of its load time. Collection resumes, with those objects frozen, once serving.
    gc.disable()
    app = build_app(drain, pre.options.body_limit)
    preload_request_modules()
    gc.freeze()  # before any fork: workers then share these pages instead of copying them
    configure_logging(pre.options.log_level, dict(os.environ))  # again: LiteLLM adds handlers at import
    progress("loading the config and routes")
    config = uvicorn.Config(
        app,
        host=pre.options.host,
        port=pre.port,
        log_config=None,
        access_log=False,
        lifespan="on",
        timeout_graceful_shutdown=int(pre.options.drain_seconds) + 5,
        timeout_keep_alive=30,
    )
    if pre.workers > 1:
        return Supervisor(pre, config, drain).run(on_ready)
    server = GatewayServer(config, drain=drain, drain_seconds=pre.options.drain_seconds, on_ready=on_ready)
    server.run()
    if server.startup_failed:
        raise GatewayError("LiteLLM failed to start; see the log lines above", hint="run `cc-gateway doctor`")
    return 0


class GatewayServer(uvicorn.Server):
    """uvicorn.Server with cc-gateway's signal handling: drain first, exit 0, never re-raise."""

    def __init__(self, config: Any, *, drain: Any, drain_seconds: float, on_ready: Callable[[], None]) -> None:
        super().__init__(config)
        self.drain = drain
        self.drain_seconds = drain_seconds
        self.on_ready = on_ready
        self.startup_failed = False
        self._loop: asyncio.AbstractEventLoop | None = None

    async def startup(self, sockets: Any = None) -> None:
        """Start serving, then report readiness (or a failed start)."""
        self._loop = asyncio.get_running_loop()
        await super().startup(sockets)
        if self.should_exit:
            self.startup_failed = not self.drain.draining  # told to stop while starting: not a failure
            return
        gc.freeze()  # what LiteLLM's start-up built lives as long as the process: never scan it again
        gc.enable()
        self.on_ready()

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        """Handle SIGINT/SIGTERM ourselves; unlike uvicorn, don't re-raise them afterwards (exit 0)."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        previous = {s: signal.signal(s, self._on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def _on_signal(self, sig: int, frame: Any) -> None:
        """First signal: drain. A second Ctrl-C: stop now."""
        if self.drain.draining:
            self.force_exit = self.force_exit or sig == signal.SIGINT
            self.should_exit = True
            return
        self.drain.draining = True
        log.warning("shutting down: draining %d request(s) in flight", self.drain.inflight)
        loop = self._loop
        if loop is None:
            self.should_exit = True
            return
        loop.call_soon_threadsafe(lambda: loop.create_task(self._drain_then_exit()))

    async def _drain_then_exit(self) -> None:
        """Wait (bounded) for in-flight requests, then let uvicorn shut down."""
        await self._drain()
        self.should_exit = True

    async def _drain(self) -> None:
        """Wait (bounded) for in-flight requests; end the streams that outlast the drain."""
        if self.drain.inflight:
            try:
                await asyncio.wait_for(self.drain.idle.wait(), timeout=self.drain_seconds)
            except TimeoutError:
                log.warning("drain timed out with %d request(s) still running", self.drain.inflight)
                if self.drain.abort_streams():  # each cut stream ends with an error event
                    await asyncio.sleep(0.2)


# --------------------------------------------------------------------------- workers


class Supervisor:
    """Run N forked workers on one port; forward Ctrl-C/SIGTERM; exit 0 when all drained.

    LiteLLM is imported and the app built once, here, before forking: the workers share those
    pages and only run LiteLLM's start-up (config, router) themselves. Each worker is a
    GatewayServer in a process group of its own, so a terminal's Ctrl-C reaches the supervisor
    only and every worker gets exactly one SIGTERM (a second one would cut the drain short).
    """

    RESPAWN_LIMIT = 5

    def __init__(self, pre: Preflight, config: Any, drain: Any) -> None:
        self.pre = pre
        self.config = config
        self.drain = drain
        self.pids: dict[int, int] = {}  # pid -> worker number
        self.stopping = 0
        self.respawns = 0
        self.failed = False
        self.was_ready = False
        self.released = False  # workers told that every one of them has drained
        self.idle = 0  # workers that reported their drain done
        self.stop_deadline = float("inf")
        self.sockets: list[socket.socket] = []
        self.ready_r, self.ready_w = os.pipe()

    def run(self, on_ready: Callable[[], None]) -> int:
        """Fork the workers and supervise them until they have all exited."""
        try:
            self.sockets = self._listen()
        except OSError as exc:  # taken between the check and now
            raise PortInUse(f"cannot listen on {self.pre.url}: {exc.strerror}", hint="pass --port") from None
        previous = {s: signal.signal(s, self._on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            for number in range(self.pre.workers):
                self._spawn(number)
            self._wait_ready(on_ready)
            while self.pids:
                self._reap(respawn=True, timeout=0.2)
                self._release_when_drained()
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            for sock in self.sockets:
                sock.close()
            os.close(self.ready_r)
            os.close(self.ready_w)
        if self.failed:
            what = "a worker stopped" if self.was_ready else "LiteLLM failed to start"
            raise GatewayError(f"{what}; see the log lines above", hint="run `cc-gateway doctor`")
        return 0

    def _listen(self) -> list[socket.socket]:
        """One listening socket per worker (SO_REUSEPORT), else one shared by all.

        With one shared socket, whichever worker wakes first accepts, and keep-alive connections
        stay where they landed: measured here, one worker often served every connection of a
        burst while the other idled. Separate SO_REUSEPORT sockets let the kernel spread
        connections evenly. Only processes of the same user can join such a group, and the port
        was checked free (without SO_REUSEPORT) just before.
        """
        if not hasattr(socket, "SO_REUSEPORT"):
            return [self.config.bind_socket()]
        family = socket.AF_INET6 if ":" in self.config.host else socket.AF_INET
        sockets = []
        for _ in range(self.pre.workers):
            sock = socket.socket(family, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            sock.bind((self.config.host, self.config.port))
            sock.listen(self.config.backlog)
            sock.set_inheritable(True)
            sockets.append(sock)
        return sockets

    def _spawn(self, number: int) -> None:
        pid = os.fork()
        if pid:
            self.pids[pid] = number
            return
        code = 1
        try:
            code = self._worker(self.sockets[number % len(self.sockets)])
        finally:
            os._exit(code)

    def _worker(self, sock: socket.socket) -> int:
        """Body of a worker process: serve until told to stop, then drain."""
        os.setpgid(0, 0)
        for other in self.sockets:
            if other is not sock:
                other.close()
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, signal.SIG_DFL)
        os.close(self.ready_r)
        threading.Thread(target=_exit_with_parent, args=(os.getppid(),), daemon=True).start()
        server = WorkerServer(
            self.config,
            status_w=self.ready_w,
            drain=self.drain,
            drain_seconds=self.pre.options.drain_seconds,
            on_ready=lambda: os.write(self.ready_w, b"r"),
        )
        signal.signal(signal.SIGUSR1, lambda *_: server.released.set())
        server.run(sockets=[sock])
        return 1 if server.startup_failed else 0

    def _release_when_drained(self) -> None:
        """Once stopping: let the workers exit when every one has drained (or the drain is over)."""
        import select

        if not self.stopping or self.released:
            return
        while select.select([self.ready_r], [], [], 0)[0]:
            self.idle += os.read(self.ready_r, 64).count(b"i")
        if self.idle >= len(self.pids) or time.monotonic() > self.stop_deadline:
            self.released = True
            self._signal_all(signal.SIGUSR1)

    def _wait_ready(self, on_ready: Callable[[], None]) -> None:
        """Show the ready panel once every worker is serving (not if one failed first)."""
        import select

        ready = 0
        while ready < self.pre.workers and not self.stopping and not self.failed and self.pids:
            if select.select([self.ready_r], [], [], 0.2)[0]:
                data = os.read(self.ready_r, 64)
                ready, self.idle = ready + data.count(b"r"), self.idle + data.count(b"i")
            self._reap(respawn=False, timeout=0)
        if ready >= self.pre.workers and not self.stopping and not self.failed:
            self.was_ready = True
            on_ready()

    def _reap(self, *, respawn: bool, timeout: float) -> None:
        """Collect exited workers; replace one that died while serving (respawn), else stop all."""
        deadline = time.monotonic() + timeout
        while self.pids:
            pid, status = os.waitpid(-1, os.WNOHANG)
            if pid == 0:
                if time.monotonic() >= deadline:
                    return
                time.sleep(0.05)
                continue
            number, code = self.pids.pop(pid, -1), os.waitstatus_to_exitcode(status)
            if self.stopping:
                self.failed = self.failed or code not in (0, -signal.SIGTERM)
            elif not respawn or self.respawns >= self.RESPAWN_LIMIT:
                log.error("worker %d exited (code %s): stopping the gateway", number, code)
                self.failed = True
                self._on_signal(signal.SIGTERM, None)
            else:
                log.error("worker %d exited unexpectedly (code %s): starting a new one", number, code)
                self.respawns += 1
                self._spawn(number)

    def _on_signal(self, sig: int, frame: Any) -> None:
        """First signal: every worker drains. Another one: every worker stops now."""
        self.stopping += 1
        if self.stopping == 1:
            log.warning("shutting down: %d worker(s) draining", len(self.pids))
            self.stop_deadline = time.monotonic() + self.pre.options.drain_seconds + 5
        self._signal_all(signal.SIGTERM if self.stopping == 1 else signal.SIGINT)

    def _signal_all(self, sig: int) -> None:
        for pid in list(self.pids):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)


class WorkerServer(GatewayServer):
    """A worker: after its own drain it keeps answering 503 until the supervisor says all have drained.

    Otherwise an idle worker would close its socket at once and a client connecting during the
    drain could land on it and be reset, where one process answers 503 with Retry-After.
    """

    def __init__(self, config: Any, *, status_w: int, **kwargs: Any) -> None:
        super().__init__(config, **kwargs)
        self.status_w = status_w
        self.released = threading.Event()  # set by SIGUSR1 from the supervisor

    async def _drain_then_exit(self) -> None:
        await self._drain()
        try:
            os.write(self.status_w, b"i")
        except OSError:  # the supervisor is gone (killed): nobody will release us, so stop after our own drain
            self.should_exit = True
            return
        deadline = time.monotonic() + self.drain_seconds + 10  # never outlive a lost supervisor for long
        while not self.released.is_set() and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        self.should_exit = True


def _exit_with_parent(parent: int) -> None:
    """In a worker: start draining when the supervisor is gone (killed without a chance to tell us)."""
    while os.getppid() == parent:
        time.sleep(1.0)
    os.kill(os.getpid(), signal.SIGTERM)
