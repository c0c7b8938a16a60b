"""doctor's checks of the running gateway (reachable, ready, auth, exposure) and the compliance check."""

from __future__ import annotations

import contextlib
import ipaddress
import json
import socket
from urllib.parse import urlsplit

from cc_gateway.core.secrets import is_loopback
from cc_gateway.doctor.base import (
    COMPLIANCE,
    FAIL,
    GATEWAY,
    OK,
    SKIP,
    WARN,
    WRONG_KEY,
    CheckResult,
    Context,
    Row,
    check,
    gateway_up,
    liveliness,
    split_list,
)

# =========================================================================== Gateway


def _start_hint(ctx: Context) -> str:
    if ctx.options.url:
        return "check --url, or start the gateway"
    folder = f" --dir {ctx.gateway.folder}" if ctx.gateway and ctx.gateway.folder != ctx.cwd else ""
    return f"start it: cc-gateway serve{folder}"


@check(GATEWAY, "reachable")
def check_reachable(ctx: Context, row: Row) -> CheckResult:
    """The gateway answers its liveliness check at the configured URL."""
    if ctx.url is None:
        return row(SKIP, "no URL: config.yaml did not load and no --url was given")
    probe = liveliness(ctx)
    if gateway_up(ctx):
        return row(OK, f"{ctx.url} is alive", latency_ms=probe.elapsed_ms)
    port = urlsplit(ctx.url).port
    if probe.status is None and probe.error == "connection refused":
        return row(FAIL, f"nothing listens at {ctx.url}", _start_hint(ctx))
    if probe.status is None:
        return row(FAIL, f"{ctx.url}: {probe.error}", "check that the gateway is running")
    return row(FAIL,
        f"port {port} is held by something that isn't the gateway (liveliness answered {probe.status})",
        f"stop it (`ss -ltnp 'sport = :{port}'` shows what it is) or change CC_GATEWAY_PORT",
    )


@check(GATEWAY, "readiness")
def check_readiness(ctx: Context, row: Row) -> CheckResult:
    """The gateway is ready to take requests (not starting or draining)."""
    if not gateway_up(ctx):
        return row(SKIP, "the gateway is not reachable")
    probe = ctx.request("GET", "/health/readiness", timeout=5.0)
    if probe.status == 200:
        return row(OK, "ready", latency_ms=probe.elapsed_ms)
    return row(FAIL,
        f"readiness answered {probe.status or probe.error}: it is shutting down",
        "wait for it to stop and start it again",
    )


@check(GATEWAY, "auth")
def check_auth(ctx: Context, row: Row) -> CheckResult:
    """A wrong key is refused with 401 and this folder's key is accepted."""
    if not gateway_up(ctx):
        return row(SKIP, "the gateway is not reachable")
    if ctx.gateway is None:
        return row(SKIP, "config.yaml did not load: no key to test")
    wrong = ctx.request("GET", "/v1/models", headers={"Authorization": f"Bearer {WRONG_KEY}"}, timeout=5.0)
    right = ctx.request("GET", "/v1/models", headers=ctx.auth_headers(), timeout=5.0)
    if not ctx.auth_headers():
        if wrong.status == 200:
            return row(WARN,
                "the gateway is open: it takes any key",
                "set LITELLM_MASTER_KEY in .env (cc-gateway init generates one)",
            )
        return row(FAIL,
            "this folder has no key, but the gateway wants one",
            "the running gateway belongs to another folder or an older .env; restart it",
        )
    if wrong.status != 401:
        return row(FAIL,
            f"a wrong key got {wrong.status}, not 401: the gateway is not checking keys",
            "restart it with `cc-gateway serve`, which always sets custom_auth",
        )
    if right.status != 200:
        return row(FAIL,
            f"the key in {ctx.gateway.env_path.name} is refused ({right.status}): the running gateway uses another",
            "restart the gateway so it reads the current .env, or stop the other one on this port",
        )
    stale = _stale_routes(ctx, right.text)
    if stale:
        return row(WARN,
            f"keys work, but the gateway does not serve {', '.join(stale)} from config.yaml",
            apply_hint(ctx),
        )
    return row(OK, "wrong key refused (401), the folder's key accepted")


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
        if not is_loopback(host):
            return host
        port = urlsplit(ctx.url or "").port or (ctx.gateway.port if ctx.gateway else 4000)
        for address in _local_addresses():
            with contextlib.suppress(OSError), socket.create_connection((address, port), timeout=0.5):
                return address
        return None

    return ctx.once("exposure", compute)


def _local_addresses() -> list[str]:
    """This machine's non-loopback IPv4 addresses (a UDP connect sends no packet)."""
    found: set[str] = set()
    with contextlib.suppress(OSError):
        found |= {info[4][0] for info in socket.getaddrinfo(socket.gethostname(), None, socket.AF_INET)}
    with contextlib.suppress(OSError), socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        udp.connect(("192.0.2.1", 9))
        found.add(udp.getsockname()[0])
    return sorted(a for a in found if not ipaddress.ip_address(a).is_loopback and a != "0.0.0.0")


@check(GATEWAY, "listen address")
def check_listen_address(ctx: Context, row: Row) -> CheckResult:
    """Where the gateway can be reached from: loopback only, or other machines too."""
    if not gateway_up(ctx):
        return row(SKIP, "the gateway is not reachable")
    address = exposure(ctx)
    if address is None:
        return row(OK, "loopback only")
    if not ctx.auth_headers():
        return row(WARN,
            f"reachable at {address} beyond loopback with open auth: anyone can use it",
            "set LITELLM_MASTER_KEY in .env, or serve on 127.0.0.1 (the default)",
        )
    return row(OK, f"reachable at {address} beyond loopback; keys required")


# =========================================================================== Compliance


@check(COMPLIANCE, "subscription tokens", needs_config=True)
def check_oauth_pooling(ctx: Context, row: Row) -> CheckResult:
    """Subscription OAuth tokens are not pooled or served beyond loopback."""
    env = ctx.gateway.env
    tokens = [t for t in split_list(env.get("CLAUDE_OAUTH_TOKENS", "")) if t.startswith("sk-ant-oat")]
    own = env.get("CLAUDE_CODE_OAUTH_TOKEN", "").strip()
    tokens += [own] if own.startswith("sk-ant-oat") else []
    if not tokens:
        return row(OK, "no subscription OAuth token on this gateway")
    address = exposure(ctx) if gateway_up(ctx) else None
    terms = "Anthropic's terms reserve subscription tokens for their owner's own Claude Code use"
    if address:
        return row(FAIL,
            f"{len(tokens)} subscription OAuth token(s) served at {address}, beyond loopback: {terms}",
            "serve on 127.0.0.1 (the default), or use Anthropic API keys (sk-ant-api...) instead",
        )
    if len(tokens) > 1:
        return row(WARN,
            f"{len(tokens)} subscription OAuth tokens pooled: {terms}",
            "pool API keys instead; for subscriptions use passthrough (empty CLAUDE_OAUTH_TOKENS)",
        )
    return row(OK, "one subscription OAuth token, loopback only")


def loaded(ctx: Context) -> dict | None:
    """What the running gateway says it loaded (/cc-gateway/loaded), once per run; None if it does not say."""
    from cc_gateway.gateway.fingerprint import fetch_loaded

    def compute() -> dict | None:
        return fetch_loaded(ctx.url, ctx.auth_headers(), timeout=5.0) if ctx.url and ctx.gateway else None

    return ctx.once("loaded", compute)


def apply_hint(ctx: Context, what: str = "the current config.yaml") -> str:
    """How an edit reaches the running gateway: on save (it watches the files), else a restart."""
    info = loaded(ctx)
    if info and info.get("reload") == "watch":
        return f"the gateway applies {what} on save: the 'loaded config' row says whether it did"
    return f"restart the gateway (or `kill -HUP` it) to load {what}"


@check(GATEWAY, "loaded config")
def check_loaded_config(ctx: Context, row: Row) -> CheckResult:
    """The running gateway serves the folder's config.yaml and .env as they are now (or says why not)."""
    from cc_gateway.gateway.fingerprint import compare, fetch_loaded, folder_client

    config_path = ctx.gateway.config_path if ctx.gateway else (ctx.options.folder or ctx.cwd) / "config.yaml"
    client = folder_client(config_path)  # from .env alone: it works while config.yaml does not parse
    if ctx.gateway is not None and not gateway_up(ctx):
        return row(SKIP, "the gateway is not reachable")
    url = ctx.url or (client[0] if client else None)
    headers = ctx.auth_headers() or (client[1] if client else {})
    loaded = fetch_loaded(url, headers, timeout=5.0) if url else None
    if loaded is None:
        return row(SKIP, "no gateway here says what it loaded (not running, or an older cc-gateway)")
    state = compare(config_path, loaded)
    if state.current:
        how = "edits apply on save" if loaded.get("reload") == "watch" else "edits apply on restart or SIGHUP"
        return row(OK, f"serves the current config.yaml and .env ({how})")
    if state.state == "refused":
        return row(FAIL, state.message, "fix the file: the gateway applies it as soon as it passes the checks")
    if state.state == "reloading":
        return row(WARN, state.message, "run doctor again in a few seconds")
    if state.state == "other-folder":
        return row(WARN, state.message, "stop that gateway, or set another CC_GATEWAY_PORT in this folder's .env")
    return row(WARN, state.message, "restart `cc-gateway serve` (Ctrl-C, then start it again)")
