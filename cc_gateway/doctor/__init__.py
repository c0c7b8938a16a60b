"""`cc-gateway doctor`: checks that find what is wrong with a gateway set-up and say how to fix it.

Each check is `check_x(ctx) -> CheckResult`; `run_checks()` runs them concurrently in a thread pool
(each with its own timeout) and returns the results in report order. Nothing here prints.

This module holds the machinery, the checks of the running gateway and the compliance check;
`doctor_files` checks the folder and the known traps, `doctor_routes` probes each route and
`doctor_claude` checks Claude Code. Facts several checks need (the gateway's liveliness answer,
whether it listens beyond loopback, Claude Code's settings) are computed once per run through
`Context.once()`.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import ipaddress
import json
import os
import re
import socket
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from cc_gateway.core.errors import GatewayError, UsageError
from cc_gateway.gateway.folder import Gateway, RouteInfo, load_gateway

OK, WARN, FAIL, SKIP = "ok", "warn", "fail", "skip"
FILES = "Files"
GATEWAY = "Gateway"
ROUTES = "Routes"
CLAUDE = "Claude Code"
TRAPS = "Known traps"
COMPLIANCE = "Compliance"
GROUP_ORDER = (FILES, GATEWAY, ROUTES, CLAUDE, TRAPS, COMPLIANCE)
STATUSES = (OK, WARN, FAIL, SKIP)
JSON_VERSION = 1
WRONG_KEY = "sk-cc-gateway-doctor-not-a-key"


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
            return Probe(None, error=http_error(exc), elapsed_ms=elapsed_ms(start))
        return Probe(response.status_code, response.text, elapsed_ms=elapsed_ms(start), headers=dict(response.headers))

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


def elapsed_ms(start: float) -> int:
    return int((time.perf_counter() - start) * 1000)


def http_error(exc: Exception) -> str:
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


def needs_config(group: str, name: str, ctx: Context) -> CheckResult | None:
    if ctx.gateway is None:
        return result(group, name, SKIP, "config.yaml did not load (see the config row)")
    return None


def split_list(value: str) -> list[str]:
    return [v.strip() for v in value.split(",") if v.strip()]


def api_base(gw: Gateway, route: RouteInfo) -> str | None:
    """The route's upstream base URL as the gateway will use it."""
    if route.base_env:
        return gw.env.get(route.base_env) or None
    return route.api_base


# =========================================================================== Gateway


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
        if not is_loopback_host(host):
            return host
        port = urlsplit(ctx.url or "").port or (ctx.gateway.port if ctx.gateway else 4000)
        for address in _local_addresses():
            with contextlib.suppress(OSError), socket.create_connection((address, port), timeout=0.5):
                return address
        return None

    return ctx.once("exposure", compute)


def is_loopback_host(host: str) -> bool:
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


# =========================================================================== Compliance


def check_oauth_pooling(ctx: Context) -> CheckResult:
    """Subscription OAuth tokens are not pooled or served beyond loopback."""
    name = "subscription tokens"
    if skip := needs_config(COMPLIANCE, name, ctx):
        return skip
    env = ctx.gateway.env
    tokens = [t for t in split_list(env.get("CLAUDE_OAUTH_TOKENS", "")) if t.startswith("sk-ant-oat")]
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

CHECKS: list[Entry] = [
    (GATEWAY, "reachable", check_reachable),
    (GATEWAY, "readiness", check_readiness),
    (GATEWAY, "auth", check_auth),
    (GATEWAY, "listen address", check_listen_address),
    (COMPLIANCE, "subscription tokens", check_oauth_pooling),
]


def run_checks(options: DoctorOptions) -> Report:
    """Run every check (concurrently, each with a timeout) and return the results in report order.

    Two waves: everything at once, then the checks that compare against the route latencies.
    """
    from cc_gateway.doctor import claude as doctor_claude
    from cc_gateway.doctor import files as doctor_files
    from cc_gateway.doctor import routes as doctor_routes

    start = time.perf_counter()
    ctx = Context(options)
    first = doctor_files.CHECKS + CHECKS + doctor_routes.probe_checks(ctx) + doctor_claude.CHECKS
    later = [entry for entry in first if entry[2] in doctor_claude.AFTER_PROBES]
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=16, thread_name_prefix="doctor")
    try:
        results = _gather(ctx, pool, [e for e in first if e not in later]) + _gather(ctx, pool, later)
    finally:
        pool.shutdown(wait=False, cancel_futures=True)
        ctx.close()
    results.sort(key=lambda r: GROUP_ORDER.index(r.group) if r.group in GROUP_ORDER else len(GROUP_ORDER))
    return Report(results, elapsed_ms(start), ctx.url, ctx.gateway.folder if ctx.gateway else None)


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
