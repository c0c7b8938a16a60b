"""doctor's machinery: the result row, the per-run context, and the check registry.

A check is a function `(ctx, row) -> CheckResult` registered with `@check(group, name, ...)`; `row`
builds its result with the group and name filled in, so each check is named once. Check modules
import this module only; `doctor/__init__.py` runs them.
"""

from __future__ import annotations

import functools
import os
import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from cc_gateway.core.errors import GatewayError, UsageError
from cc_gateway.gateway.folder import EnvFileError, Gateway, RouteInfo, load_gateway

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
        self.env_error: GatewayError | None = None  # .env does not parse: its own row says so
        try:
            self.gateway = load_gateway(options.folder)
        except EnvFileError as exc:
            self.env_error = exc
            self.gateway = load_gateway(options.folder, skip_env=True)
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
        from cc_gateway.core.secrets import RedactingFilter, secret_values

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


@dataclass(frozen=True)
class Row:
    """Builds one check's result: its group and name are filled in."""

    group: str
    name: str

    def __call__(self, status: str, detail: str, hint: str = "", latency_ms: int | None = None) -> CheckResult:
        """The check's result row."""
        return result(self.group, self.name, status, detail, hint, latency_ms)


@dataclass(frozen=True)
class Check:
    """A registered check: its row (group and name label it even if it crashes) and how to run it."""

    row: Row
    run: Callable[[Context], CheckResult]
    after_probes: bool = False  # reads the route latencies, so runs once the probes are done


#: Every check, in report order within each group (filled as the check modules are imported).
REGISTRY: list[Check] = []


def check(
    group: str, name: str, *, needs_config: bool = False, after_probes: bool = False
) -> Callable[[Callable[[Context, Row], CheckResult]], Callable[[Context], CheckResult]]:
    """Register a check; with needs_config it is skipped (one row) when config.yaml did not load."""

    def register(fn: Callable[[Context, Row], CheckResult]) -> Callable[[Context], CheckResult]:
        row = Row(group, name)

        @functools.wraps(fn)
        def run(ctx: Context) -> CheckResult:
            if needs_config and ctx.gateway is None:
                return row(SKIP, "config.yaml did not load (see the config row)")
            return fn(ctx, row)

        REGISTRY.append(Check(row, run, after_probes))
        return run

    return register


def split_list(value: str) -> list[str]:
    return [v.strip() for v in value.split(",") if v.strip()]


def api_base(gw: Gateway, route: RouteInfo) -> str | None:
    """The route's upstream base URL as the gateway will use it."""
    if route.base_env:
        return gw.env.get(route.base_env) or None
    return route.api_base


# Facts several check modules need (computed once per run).


def liveliness(ctx: Context) -> Probe:
    return ctx.once("liveliness", lambda: ctx.request("GET", "/health/liveliness", timeout=3.0))


def gateway_up(ctx: Context) -> bool:
    """Whether a cc-gateway (LiteLLM) answers at the URL."""
    probe = liveliness(ctx)
    return probe.status == 200 and "alive" in probe.text.lower()
