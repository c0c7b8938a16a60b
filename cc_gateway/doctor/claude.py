"""doctor's Claude Code checks: the CLI, its settings layers, shell variables, models, onboarding, timeout.

Settings precedence is `cc_gateway.claude.versions`'s (managed > local > project > user, and a settings
file's env block beats the shell); this module only reads its answers.
"""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from cc_gateway.claude import versions as claude_code
from cc_gateway.doctor.base import (
    CLAUDE,
    FAIL,
    OK,
    SKIP,
    WARN,
    CheckResult,
    Context,
    Row,
    check,
)

if TYPE_CHECKING:
    pass

GROUP = CLAUDE
TIMEOUT_VAR = "API_TIMEOUT_MS"
DEFAULT_TIMEOUT_MS = 600_000  # Claude Code's own default (10 minutes)
NAMES = (*claude_code.CONNECTION_VARS, *claude_code.MODEL_VARS, "ANTHROPIC_SMALL_FAST_MODEL", TIMEOUT_VAR)
#: role -> (variables that choose its model, highest first; claude_code.yaml's default id for it)
ROLES = {
    "main": (("ANTHROPIC_MODEL",), "main"),
    "sonnet": (("ANTHROPIC_DEFAULT_SONNET_MODEL",), "sonnet"),
    "haiku": (("ANTHROPIC_DEFAULT_HAIKU_MODEL", "ANTHROPIC_SMALL_FAST_MODEL"), "haiku"),
    "opus": (("ANTHROPIC_DEFAULT_OPUS_MODEL",), "opus"),
    "fable": (("ANTHROPIC_DEFAULT_FABLE_MODEL",), "fable"),
    "subagent": (("CLAUDE_CODE_SUBAGENT_MODEL",), None),
}
SETUP = "cc-gateway setup-claude"


def _setup_hint(ctx: Context) -> str:
    folder = ctx.gateway.folder if ctx.gateway else None
    return f"{SETUP} --dir {folder}" if folder and folder != ctx.cwd else SETUP


def _view(ctx: Context) -> tuple[list[claude_code.Layer], dict[str, claude_code.Decision]]:
    """Claude Code's settings layers (highest first) and which source decides each variable."""

    def compute() -> tuple[list[claude_code.Layer], dict[str, claude_code.Decision]]:
        layers = claude_code.settings_layers(ctx.cwd, ctx.home)
        return layers, claude_code.effective_env(layers, ctx.environ, NAMES)

    return ctx.once("claude-settings", compute)


def _source(ctx: Context, decision: claude_code.Decision) -> str:
    """Say where a value comes from: the shell, or a settings file with its scope."""
    if decision.source == "shell":
        return "the shell"
    layers, _ = _view(ctx)
    scope = next((la.scope for la in layers if str(la.path) == decision.source), "")
    return f"{decision.source} ({scope})" if scope else decision.source


@check(GROUP, "CLI")
def check_claude_cli(ctx: Context, row: Row) -> CheckResult:
    """The Claude Code CLI is installed, and not older than supported; newer than the data matters only
    where some model family has no route."""
    binary = claude_code.find_claude(ctx.environ, ctx.home)
    if binary is None:
        return row(WARN,
            "claude is not on PATH (nor in ~/.local/bin or ~/.claude/local)",
            "npm install -g @anthropic-ai/claude-code",
        )
    version = claude_code.claude_version(binary, timeout=min(8.0, ctx.options.check_timeout))
    if version is None:
        return row(WARN, f"{binary} does not run (`claude --version` failed)", "reinstall Claude Code")
    status, detail, hint = claude_code.version_verdict(version, _unrouted_families(ctx))
    return row(status, f"claude {version} at {binary}{detail}", hint or "")


def _unrouted_families(ctx: Context) -> list[str] | None:
    """Claude model families (opus, sonnet, ...) whose future ids no route catches (None: no gateway)."""
    if ctx.gateway is None:
        return None
    return [f for f in claude_code.families() if ctx.gateway.resolve(f"claude-{f}-0") is None]


@check(GROUP, "settings files")
def check_settings_files(ctx: Context, row: Row) -> CheckResult:
    """Which settings files exist, that Claude Code can read them, and which one decides what."""
    layers, decided = _view(ctx)
    broken = [la for la in layers if la.exists and la.problem]
    if broken:
        return row(FAIL, broken[0].problem, f"fix the JSON in {broken[0].path} (no comments, no trailing commas)"
        )
    present = [f"{la.scope} {la.path}" for la in layers if la.exists]
    groups = {
        "base URL": ["ANTHROPIC_BASE_URL"],
        "key": ["ANTHROPIC_AUTH_TOKEN", "ANTHROPIC_CUSTOM_HEADERS", "ANTHROPIC_API_KEY"],
        "models": [*claude_code.MODEL_VARS, "ANTHROPIC_SMALL_FAST_MODEL"],
    }
    deciders = []
    for label, names in groups.items():
        sources = sorted({_scope(ctx, decided[n]) for n in names if n in decided})
        deciders.append(f"{label} ← {'/'.join(sources) or 'unset'}")
    files = "; ".join(present) if present else "no settings file"
    return row(OK, f"{files}; {', '.join(deciders)}")


def _scope(ctx: Context, decision: claude_code.Decision) -> str:
    if decision.source == "shell":
        return "shell"
    layers, _ = _view(ctx)
    return next((la.scope for la in layers if str(la.path) == decision.source), decision.source)


def _same_gateway(url: str, gateway_url: str) -> bool:
    a, b = urlsplit(url.rstrip("/")), urlsplit(gateway_url.rstrip("/"))
    local = {"127.0.0.1", "localhost", "::1"}
    same_host = a.hostname == b.hostname or {a.hostname, b.hostname} <= local
    return same_host and (a.port or 80) == (b.port or 80) and a.path.rstrip("/") in ("", "/anthropic")


@check(GROUP, "base URL")
def check_base_url(ctx: Context, row: Row) -> CheckResult:
    """ANTHROPIC_BASE_URL, as Claude Code will see it, points at this gateway."""
    if ctx.url is None:
        return row(SKIP, "no gateway URL (config.yaml did not load, no --url)")
    _, decided = _view(ctx)
    decision = decided.get("ANTHROPIC_BASE_URL")
    if decision is None:
        return row(WARN,
            "ANTHROPIC_BASE_URL is not set: Claude Code talks to Anthropic directly",
            _setup_hint(ctx),
        )
    if not _same_gateway(decision.value, ctx.url):
        return row(FAIL,
            f"ANTHROPIC_BASE_URL={decision.value} from {_source(ctx, decision)} is not this gateway ({ctx.url})",
            _setup_hint(ctx),
        )
    return row(OK, f"{decision.value} from {_source(ctx, decision)}")


def _presented(decided: dict[str, claude_code.Decision]) -> list[tuple[claude_code.Decision, str]]:
    """The credentials Claude Code will send, with the value the gateway sees."""
    found = []
    for name in ("ANTHROPIC_AUTH_TOKEN", "ANTHROPIC_API_KEY"):
        if name in decided:
            found.append((decided[name], decided[name].value.strip()))
    headers = decided.get("ANTHROPIC_CUSTOM_HEADERS")
    if headers:
        for line in re.split(r"[\n,]", headers.value):
            key, _, value = line.partition(":")
            if key.strip().lower() in ("x-litellm-api-key", "x-api-key", "authorization"):
                found.append((headers, re.sub(r"^(?i:bearer)\s+", "", value.strip())))
    return found


@check(GROUP, "gateway key")
def check_gateway_key(ctx: Context, row: Row) -> CheckResult:
    """The key Claude Code sends is this gateway's key (not a stale one from an earlier init)."""
    if ctx.gateway is None:
        return row(SKIP, "config.yaml did not load: no key to compare")
    gw = ctx.gateway
    accepted = {k for k in [gw.master_key, *gw.static_tokens] if k}
    _, decided = _view(ctx)
    presented = _presented(decided)
    base = decided.get("ANTHROPIC_BASE_URL")
    if ctx.url is None or base is None or not _same_gateway(base.value, ctx.url):
        return row(SKIP, "Claude Code is not pointed at this gateway (see base URL)")
    if not accepted:
        return row(OK, "the gateway is open: any key works")
    if not presented:
        return row(FAIL, "Claude Code has no gateway key (ANTHROPIC_AUTH_TOKEN is not set)", _setup_hint(ctx)
        )
    if any(value in accepted for _, value in presented):
        where = next(_source(ctx, d) for d, v in presented if v in accepted)
        return row(OK, f"{next(d.name for d, v in presented if v in accepted)} from {where} is this gateway's key"
        )
    decision = presented[0][0]
    return row(FAIL,
        f"{decision.name} in {_source(ctx, decision)} is not the gateway key in {gw.env_path} (stale?)",
        f"{_setup_hint(ctx)} (rewrites it)",
    )


def settings_model(ctx: Context) -> tuple[str, str] | None:
    """The `model` setting (not an env variable) of the highest settings layer that has one: (value, path)."""

    def compute() -> tuple[str, str] | None:
        layers, _ = _view(ctx)
        for layer in layers:
            if layer.exists and not layer.problem:
                try:
                    data = json.loads(layer.path.read_text(encoding="utf-8"))
                except (OSError, ValueError):
                    continue
                if isinstance(data, dict) and isinstance(data.get("model"), str) and data["model"].strip():
                    return data["model"].strip(), str(layer.path)
        return None

    return ctx.once("claude-settings-model", compute)


def model_id(value: str) -> str:
    """The id Claude Code sends for a model setting: `[1m]` stripped, its short names expanded."""
    data = claude_code.known_models()
    model = claude_code.ONE_M.sub("", value.strip())
    return (data.get("default_models") or {}).get((data.get("aliases") or {}).get(model, ""), model)


@check(GROUP, "shell variables")
def check_shell_variables(ctx: Context, row: Row) -> CheckResult:
    """Claude Code variables the shell decides (no settings file sets them), and what they override."""
    _, decided = _view(ctx)
    findings = [_shell_finding(ctx, decision) for decision in decided.values() if decision.source == "shell"]
    if findings:
        findings.sort(key=lambda f: {FAIL: 0, WARN: 1}.get(f[0], 2))
        status, detail, hint = findings[0]
        more = f" (+{len(findings) - 1} more)" if len(findings) > 1 else ""
        return row(status, detail + more, hint)
    hidden = [n for n in claude_code.SHELL_VARS if ctx.environ.get(n) and n in decided]
    if hidden:
        return row(OK, f"{', '.join(hidden)} set in the shell, but settings files take precedence")
    return row(OK, "no Claude Code variable decided by the shell")


def _shell_finding(ctx: Context, decision: claude_code.Decision) -> tuple[str, str, str]:
    """(status, detail, hint) for one variable whose value comes from the shell."""
    variable, value = decision.name, decision.value
    unset = f"unset {variable} in the shell that runs claude"
    if variable == "ANTHROPIC_API_KEY":
        return WARN, "ANTHROPIC_API_KEY from the shell is also sent to the gateway (as x-api-key)", unset
    if variable not in (*claude_code.MODEL_VARS, "ANTHROPIC_SMALL_FAST_MODEL"):
        return WARN, f"{variable}={_short(value, variable)} comes from the shell only", f"{unset}, or run {SETUP}"
    overridden = settings_model(ctx) if variable == "ANTHROPIC_MODEL" else None
    what = f"{variable}={value} from the shell"
    if overridden:
        what += f' overrides "model": "{overridden[0]}" in {overridden[1]}'
    if ctx.gateway is not None and ctx.gateway.resolve(model_id(value)) is None:
        return FAIL, f"{what}, and the gateway has no route for it", f"{unset}, or point it at a route"
    return WARN, what, f"{unset} if that is not what you want"


def _short(value: str, name: str) -> str:
    if any(word in name for word in ("TOKEN", "KEY", "HEADERS")):
        return value[:6] + "…"
    return value


def requested_models(ctx: Context) -> dict[str, tuple[str, str]]:
    """role -> (model id Claude Code will request, where that choice comes from)."""
    _, decided = _view(ctx)
    data = claude_code.known_models()
    defaults = data.get("default_models") or {}
    chosen: dict[str, tuple[str, str]] = {}
    for role, (variables, default_role) in ROLES.items():
        decision = next((decided[v] for v in variables if v in decided), None)
        setting = settings_model(ctx) if role == "main" else None
        if decision is not None:
            chosen[role] = (model_id(decision.value), f"{decision.name} from {_source(ctx, decision)}")
        elif setting is not None:
            chosen[role] = (model_id(setting[0]), f'"model" in {setting[1]}')
        elif defaults.get(default_role):
            chosen[role] = (defaults[default_role], f"Claude Code {data.get('version')}'s default")
    return chosen


@check(GROUP, "default models")
def check_default_models(ctx: Context, row: Row) -> CheckResult:
    """Every model id Claude Code will request (its defaults, or the model variables) has a route."""
    if ctx.gateway is None:
        return row(SKIP, "config.yaml did not load")
    chosen = requested_models(ctx)
    missing = [(role, model, why) for role, (model, why) in chosen.items() if ctx.gateway.resolve(model) is None]
    if missing:
        role, model, why = missing[0]
        variable = ROLES[role][0][0]
        more = f" (+{len(missing) - 1} more)" if len(missing) > 1 else ""
        return row(FAIL,
            f"{model} ({role}, {why}) has no route: Claude Code will get 'model not found'{more}",
            f"add a route for it (cc-gateway add-model) or a claude-* catch-all, "
            f"or point {variable} at a routed name ({SETUP})",
        )
    ids = sorted({model for model, _ in chosen.values()})
    return row(OK, f"all routed: {', '.join(ids)}")


@check(GROUP, "onboarding")
def check_onboarding(ctx: Context, row: Row) -> CheckResult:
    """~/.claude.json says onboarding is done (else Claude Code opens its first-run screens)."""
    path = claude_code.global_config_path(ctx.home)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        data = {}
    except (OSError, ValueError) as exc:
        return row(WARN, f"{path}: unreadable ({type(exc).__name__})", "let `claude` rewrite it")
    if isinstance(data, dict) and data.get("hasCompletedOnboarding") is True:
        return row(OK, f"done ({path})")
    return row(WARN,
        f"not done ({path}): Claude Code opens its first-run and login screens",
        f"{_setup_hint(ctx)} --skip-onboarding (sets hasCompletedOnboarding)",
    )


@check(GROUP, TIMEOUT_VAR, after_probes=True)
def check_api_timeout(ctx: Context, row: Row) -> CheckResult:
    """API_TIMEOUT_MS leaves room for the slowest route (runs after the route probes)."""
    _, decided = _view(ctx)
    decision = decided.get(TIMEOUT_VAR)
    raw = decision.value.strip() if decision else str(DEFAULT_TIMEOUT_MS)
    origin = f"from {_source(ctx, decision)}" if decision else "Claude Code's default"
    if not raw.isdigit():
        return row(FAIL, f"{TIMEOUT_VAR}={raw!r} ({origin}) is not a number of milliseconds", _setup_hint(ctx)
        )
    timeout = int(raw)
    if not ctx.latencies:
        return row(OK, f"{timeout} ms ({origin}); no route latency measured to compare")
    route, slowest = max(ctx.latencies.items(), key=lambda item: item[1])
    summary = f"{timeout} ms ({origin}); slowest route {route} answered a tiny probe in {slowest} ms"
    if timeout <= slowest:
        return row(FAIL, f"{summary}: every request will time out", f"raise {TIMEOUT_VAR} ({SETUP})")
    if timeout < max(60_000, 10 * slowest):
        return row(WARN,
            f"{summary}: long answers will time out in Claude Code",
            f"raise {TIMEOUT_VAR} to the gateway's timeout ({SETUP} writes it)",
        )
    return row(OK, summary)


