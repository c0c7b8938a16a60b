"""What `setup-claude`, `env` and `claude` compute: Claude Code's variables for a gateway, and the file changes.

Nothing here prints; the CLI shows the plan (secrets masked) and applies it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from cc_gateway.claude import picker, settings
from cc_gateway.claude import versions as claude_code
from cc_gateway.core import jsonedit
from cc_gateway.core.errors import ConfigError, GatewayError, UsageError, located
from cc_gateway.core.secrets import is_placeholder
from cc_gateway.gateway.folder import Gateway

ROLE_VARS = {
    "main": "ANTHROPIC_MODEL",
    "sonnet": "ANTHROPIC_DEFAULT_SONNET_MODEL",
    "opus": "ANTHROPIC_DEFAULT_OPUS_MODEL",
    "haiku": "ANTHROPIC_DEFAULT_HAIKU_MODEL",
    "fable": "ANTHROPIC_DEFAULT_FABLE_MODEL",
    "subagent": "CLAUDE_CODE_SUBAGENT_MODEL",
}
WINDOW_VAR = "CLAUDE_CODE_AUTO_COMPACT_WINDOW"
SECRET_VARS = ("ANTHROPIC_AUTH_TOKEN", "ANTHROPIC_CUSTOM_HEADERS")
#: Every key cc-gateway may set in a settings file's env block (and so may remove again).
OWNED_VARS = (
    "ANTHROPIC_BASE_URL",
    "ANTHROPIC_AUTH_TOKEN",
    "ANTHROPIC_CUSTOM_HEADERS",
    *ROLE_VARS.values(),
    "API_TIMEOUT_MS",
    "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC",
    WINDOW_VAR,
)
OPEN_TOKEN = "cc-gateway-open"  # not a secret: Claude Code needs some token


@dataclass(frozen=True)
class ClientRequest:
    """What the user asked for (flags)."""

    url: str | None = None
    endpoint: str = "unified"  # unified | passthrough
    models: dict[str, str] = field(default_factory=dict)  # role -> model (flags)
    picker: bool | None = None  # whether the Claude Code in use reads modelPicker (None: unknown, assume so)
    key: str | None = None  # a person's team key (`keys add`) instead of the gateway's master key


@dataclass
class ClientEnv:
    """Claude Code's variables for one gateway, in the order they are written."""

    values: dict[str, str]
    url: str
    notes: list[str] = field(default_factory=list)
    settings: dict[str, object] = field(default_factory=dict)  # modelPicker / modelSettings (top level)

    @property
    def secrets(self) -> dict[str, str]:
        """The variables that carry the gateway key."""
        return {k: v for k, v in self.values.items() if k in SECRET_VARS and v != OPEN_TOKEN}

    @property
    def public(self) -> dict[str, str]:
        """The variables without the key."""
        return {k: v for k, v in self.values.items() if k not in SECRET_VARS}

    def secret_strings(self) -> list[str]:
        """Raw secret values, for masking."""
        tokens = [v.split(":", 1)[1].strip() if k == "ANTHROPIC_CUSTOM_HEADERS" else v for k, v in self.secrets.items()]
        return [t for t in tokens if t]


def base_url(gateway: Gateway, url: str | None, endpoint: str) -> str:
    """Return ANTHROPIC_BASE_URL: the gateway's root (never /v1), plus /anthropic for the pass-through."""
    root = (url or f"http://127.0.0.1:{gateway.port}").strip().rstrip("/")
    if not re.match(r"^https?://[^/\s]+", root):
        raise UsageError(f"--url {url!r}: expected http(s)://host:port", hint="e.g. --url http://127.0.0.1:4000")
    root = re.sub(r"/v1$", "", root)
    if endpoint == "passthrough":
        if gateway.preset != "anthropic":
            raise UsageError(
                f"--endpoint passthrough needs the anthropic preset (this gateway is {gateway.preset or 'unknown'})",
                hint="leave --endpoint out to use the unified endpoint",
            )
        return root + "/anthropic"
    if endpoint != "unified":
        raise UsageError(f"unknown --endpoint {endpoint!r}", hint="use unified or passthrough")
    return root


def credential(gateway: Gateway, key: str | None = None) -> tuple[str, str, str | None]:
    """Return (variable, value, note) that authenticates Claude Code to the gateway (a person's key if given)."""
    if key is not None:
        if not re.fullmatch(r"sk-[A-Za-z0-9_\-]{20,}", key.strip()):
            hint = "use the sk-... that `cc-gateway keys add` printed"
            raise UsageError("--key does not look like a gateway key", hint=hint)
        if gateway.uses_static_tokens:  # Claude Code's own login stays in Authorization
            return "ANTHROPIC_CUSTOM_HEADERS", f"x-litellm-api-key: {key.strip()}", None
        return "ANTHROPIC_AUTH_TOKEN", key.strip(), "your own team key (not the gateway's master key)"
    if gateway.uses_static_tokens:
        tokens = [t for t in gateway.static_tokens if not is_placeholder(t)]
        if not tokens:
            raise ConfigError(
                f"{gateway.env_path}: PROXY_STATIC_TOKEN is empty or still a placeholder",
                hint="set it (any long random string) and restart the gateway",
            )
        note = (
            "the gateway key goes in x-litellm-api-key; Claude Code still needs its own login "
            "(`claude /login`), which the gateway forwards to Anthropic in passthrough mode"
        )
        return "ANTHROPIC_CUSTOM_HEADERS", f"x-litellm-api-key: {tokens[0]}", note
    if gateway.master_key and is_placeholder(gateway.master_key):
        raise ConfigError(
            f"{gateway.env_path}: LITELLM_MASTER_KEY is still a placeholder (the gateway refuses to start with it)",
            hint="run `cc-gateway init` in that folder to generate one (it keeps your other values)",
        )
    if gateway.master_key:
        return "ANTHROPIC_AUTH_TOKEN", gateway.master_key, None
    return "ANTHROPIC_AUTH_TOKEN", OPEN_TOKEN, "the gateway has no key (open): Claude Code gets a dummy token"


def route_names(gateway: Gateway) -> list[str]:
    """Return the route names and aliases a client may ask for."""
    return [r.name for r in gateway.routes] + list(gateway.aliases)


def check_model(gateway: Gateway, model: str, flag: str) -> str:
    """Refuse a model the gateway does not route; `NAME[1m]` is checked as NAME and kept as given."""
    name = claude_code.ONE_M.sub("", model.strip())
    if not name or gateway.resolve(name) is None:
        raise UsageError(
            f"{flag} {model!r}: the gateway has no route for it",
            hint=f"routes: {', '.join(route_names(gateway))}",
        )
    return model.strip()


#: Names Claude Code itself resolves to its own ids: a route called like this can't be chosen by name.
CLAUDE_ALIASES = ("default", "sonnet", "opus", "haiku", "opusplan", "best")


def _named_route(gateway: Gateway, model: str) -> str | None:
    """Return the route serving `model` by name or alias (not only by a wildcard), usable as a setting."""
    route = gateway.resolve(model) if model else None
    if route is None or "*" in route or route in CLAUDE_ALIASES:
        return None
    return route


def follows_claude_code(gateway: Gateway, default_route: str | None) -> bool:
    """Whether the gateway serves Claude Code's own ids, whatever the release: its main route is a Claude id
    (or it has none) and every family (claude-opus-*, claude-sonnet-*, ...) has a route. Then no model
    variable is pinned: Claude Code's defaults and `/model` choices reach the gateway and are routed.
    """
    if default_route and not picker.is_claude_id(default_route):
        return False
    return all(gateway.resolve(f"claude-{family}-0") is not None for family in claude_code.families())


def default_models(gateway: Gateway, default_route: str | None) -> dict[str, str]:
    """Pick each role's model: none when the gateway follows Claude Code's own ids; else the route serving
    Claude Code's id or short name for the role, else the default route.

    Values are concrete route names, never Claude Code's aliases (`sonnet`, `opus`, ...), which Claude
    Code would turn into its own ids before asking the gateway.
    """
    if follows_claude_code(gateway, default_route):
        return {}
    ids = claude_code.default_model_ids()
    fallback = _named_route(gateway, default_route or "")
    if fallback is None:
        fallback = next((r.name for r in gateway.routes if _named_route(gateway, r.name)), ids["main"])
    chosen: dict[str, str] = {}
    for role in ("main", "sonnet", "opus", "haiku", "fable"):
        candidates = [ids.get(role, ""), "opus" if role == "main" else role]
        chosen[role] = next((r for c in candidates if (r := _named_route(gateway, c))), fallback)
    chosen["subagent"] = chosen["sonnet"]
    return chosen


def client_env(gateway: Gateway, request: ClientRequest, default_route: str | None = None) -> ClientEnv:
    """Compute every variable Claude Code needs for this gateway, checking models against its routes."""
    url = base_url(gateway, request.url, request.endpoint)
    var, value, note = credential(gateway, request.key)
    values = {"ANTHROPIC_BASE_URL": url, var: value}
    notes = [note] if note else []
    if request.endpoint == "passthrough":
        models = dict(request.models)  # Anthropic itself answers: no gateway route to check against
        notes.append("pass-through: requests go to Anthropic as they are, with the gateway's ANTHROPIC_API_KEY")
    else:
        models = default_models(gateway, default_route)
        for role, model in request.models.items():
            models[role] = check_model(gateway, model, f"--{role}-model" if role != "main" else "--model")
    for role, variable in ROLE_VARS.items():
        if role in models:
            values[variable] = models[role]
    timeout = (gateway.config.get("litellm_settings") or {}).get("request_timeout") or 600
    values["API_TIMEOUT_MS"] = str(int(float(timeout) * 1000))
    values["CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC"] = "1"
    client = ClientEnv(values, url, notes)
    if request.endpoint != "passthrough":
        tell_windows(gateway, client, models.get("main"), request.picker)
    return client


def picker_routes(gateway: Gateway) -> list[picker.PickerRoute]:
    """Every route with what the picker shows of it (label, upstream model, input window)."""
    from cc_gateway.gateway.providers import load_providers
    from cc_gateway.gateway.windows import route_window

    catalogue = load_providers()
    routes = []
    for route in gateway.routes:
        info = route.model_info
        provider = catalogue.get(str(info.get("cc_gateway_provider") or route.model.split("/", 1)[0]))
        routes.append(
            picker.PickerRoute(
                name=route.name,
                model=route.model,
                provider_label=provider.label if provider else "",
                label=str(info.get("cc_gateway_label") or ""),
                max_input_tokens=route_window(route.model, info),
            )
        )
    return routes


def tell_windows(gateway: Gateway, client: ClientEnv, main: str | None, reads_picker: bool | None) -> None:
    """Tell Claude Code each route's window and list the routes in `/model`.

    Routes under Claude ids that all have a smaller window than Claude Code assumes (openai-backed): one
    session-wide CLAUDE_CODE_AUTO_COMPACT_WINDOW (the smallest). Other routes: a modelPicker row each
    (behavesAs, label) and modelSettings.<route>.autoCompactWindow; for a Claude Code that reads no
    picker (`reads_picker` False) the pinned main route's window goes in the variable instead.
    """
    routes = picker_routes(gateway)
    behaves_as = claude_code.behaves_as()
    client.settings = picker.picker_settings(routes, behaves_as)
    claude_routes = [r for r in routes if picker.is_claude_id(r.name)]
    windows = [r.max_input_tokens for r in claude_routes]
    window = None
    if claude_routes and all(w and w < picker.CLIENT_WINDOW for w in windows):
        others = [r.max_input_tokens for r in picker.pickable(routes) if r.max_input_tokens]
        window = max(min([*windows, *others]), picker.MIN_WINDOW)  # type: ignore[type-var]
        client.settings.pop("modelSettings", None)  # the variable beats it anyway
    elif main and reads_picker is False:
        name = gateway.resolve(claude_code.ONE_M.sub("", main)) or main
        window = picker.session_window(next((r for r in routes if r.name == name), None))
    if window:
        client.values[WINDOW_VAR] = str(window)
    for route in picker.too_small(routes):
        client.notes.append(
            f"route {route.name}: its window ({route.max_input_tokens} tokens) is below the smallest Claude Code "
            f"can be told ({picker.MIN_WINDOW}); long sessions may end in 'prompt is too long'"
        )


# --------------------------------------------------------------------------- settings files


@dataclass(frozen=True)
class FileChange:
    """One settings file cc-gateway would write."""

    path: Path
    old: str | None
    new: str
    private: bool  # holds the gateway key
    updates: Mapping[str, object] | None = None  # the keys it sets (None: removes), for a key-by-key undo
    section: str | None = None
    more: tuple[tuple[str | None, Mapping[str, object]], ...] = ()  # other sections' keys (the picker's)

    @property
    def changed(self) -> bool:
        """Whether writing changes anything."""
        return self.old != self.new

    def diff(self) -> str:
        """Unified diff from the current text to the new one (secrets not yet masked)."""
        import difflib

        old = (self.old or "").splitlines(keepends=True)
        new = self.new.splitlines(keepends=True)
        return "".join(
            difflib.unified_diff(old, new, str(self.path) if self.old is not None else "/dev/null", str(self.path))
        )


def planned_change(path: Path, updates: Mapping[str, object], *, section: str | None, private: bool) -> FileChange:
    """Merge `updates` into one settings file; refuse a file Claude Code could not read, naming file and line."""
    text, doc = settings.read_settings(path)
    issue = doc.strict_json_issue if doc is not None else None
    if issue:
        raise ConfigError(
            located(path, issue[0], f"{issue[1]}: Claude Code ignores a settings file with comments or trailing ")
            + "commas entirely, so the gateway settings would have no effect",
            hint='remove the comments/trailing commas (keep notes in a "//" key if you like), then run again',
        )
    new = jsonedit.merge(text, updates, section=section, path=path)
    return FileChange(path, text, new, private, dict(updates), section)


def _env_block(path: Path) -> dict[str, object]:
    """The env block of a settings file ({} when the file or the block is missing)."""
    _, doc = settings.read_settings(path)
    env = doc.value.get("env") if doc is not None and isinstance(doc.value, dict) else None
    return env if isinstance(env, dict) else {}


def env_updates(values: Mapping[str, str]) -> dict[str, str | None]:
    """The owned keys to set, in cc-gateway's order; model and window variables not set are removed
    (a pin an older setup-claude wrote would keep Claude Code on last season's models)."""
    updates: dict[str, str | None] = {name: values[name] for name in OWNED_VARS if name in values}
    for name in (*ROLE_VARS.values(), WINDOW_VAR):
        updates.setdefault(name, None)
    return updates


@dataclass
class SetupPlan:
    """Files to write and what to tell the user."""

    changes: list[FileChange]
    notes: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def plan_setup(
    client: ClientEnv, scope: str, cwd: Path, home: Path, *, allow_secret_in_project: bool, skip_onboarding: bool
) -> SetupPlan:
    """Plan the settings changes for a scope; at project scope the key goes to settings.local.json."""
    target = claude_code.settings_path(scope, cwd, home)
    plan = SetupPlan([], notes=list(client.notes))
    if scope == "project" and client.secrets and not allow_secret_in_project:
        local = claude_code.settings_path("local", cwd, home)
        public = env_updates(client.public)
        public.update(dict.fromkeys(SECRET_VARS))  # a key we wrote there before would be removed
        plan.changes.append(planned_change(target, public, section="env", private=False))
        # Only the key: the local file beats the shared one, so a copy of the URL or models there would
        # silently hide a teammate's later edit of the shared file.
        # Copies an older cc-gateway left there (the same values the shared file now gets) go.
        local_env = _env_block(local)
        stale = {k: None for k, v in client.public.items() if k in OWNED_VARS and local_env.get(k) == v}
        plan.changes.append(planned_change(local, {**env_updates(client.secrets), **stale}, section="env", private=True))
        plan.warnings.append(
            f"the gateway key goes to {local} (personal, not committed), not to {target}, which is usually "
            "committed; pass --allow-secret-in-project to put it there anyway"
        )
    else:
        plan.changes.append(
            planned_change(target, env_updates(client.values), section="env", private=bool(client.secrets))
        )
    add_picker(plan, client, target)
    if skip_onboarding:
        state = claude_code.global_config_path(home)
        plan.changes.append(planned_change(state, {"hasCompletedOnboarding": True}, section=None, private=True))
    return plan


def add_picker(plan: SetupPlan, client: ClientEnv, target: Path) -> None:
    """Merge the routes' modelPicker rows and windows into the target file's planned text."""
    import json

    index = next(i for i, c in enumerate(plan.changes) if c.path == target)
    change = plan.changes[index]
    try:
        current = json.loads(change.new)
    except ValueError:
        current = {}
    updates = picker.merged(current if isinstance(current, dict) else {}, client.settings)
    if updates:
        new = jsonedit.merge(change.new, updates, section=None, path=target)
        # Recorded key by key too, so that an undo after someone else edited the file takes the picker back.
        plan.changes[index] = FileChange(
            change.path, change.old, new, change.private, change.updates, change.section, ((None, updates),)
        )


def apply_setup(plan: SetupPlan, state_dir: Path) -> list[Path]:
    """Write each changed file (snapshotting originals first); return the paths written."""
    written = []
    for change in plan.changes:
        if change.changed:
            settings.write_with_snapshot(
                state_dir, change.path, change.new, private=change.private, updates=change.updates,
                section=change.section, more=change.more,
            )
            written.append(change.path)
    return written


def undo_targets(scope: str, cwd: Path, home: Path) -> list[Path]:
    """Files an undo of `scope` restores: the scope's file (plus local for project) and ~/.claude.json."""
    paths = [claude_code.settings_path(scope, cwd, home)]
    if scope == "project":
        paths.append(claude_code.settings_path("local", cwd, home))
    return [*paths, claude_code.global_config_path(home)]


def undo(scope: str, cwd: Path, home: Path, state_dir: Path, *, force: bool) -> list[tuple[Path, str]]:
    """Restore every file setup-claude changed for `scope`; return (path, outcome) for each one touched.

    ~/.claude.json is restored only while Claude Code has not rewritten it since (it keeps its own state there).
    """
    done = []
    *files, state = undo_targets(scope, cwd, home)
    for path in [*reversed(files), state]:  # last written first, so the folders we made empty out
        is_state = path == state
        if is_state and settings.changed_since_written(state_dir, path):
            done.append((path, "kept (Claude Code changed it since; hasCompletedOnboarding left as is)"))
            continue
        outcome = settings.restore(state_dir, path, force=force)
        if outcome != "nothing":
            done.append((path, outcome))
    return done


# --------------------------------------------------------------------------- what overrides the result


def overrides(client: ClientEnv, written: list[Path], cwd: Path, home: Path, environ: Mapping[str, str]) -> list[str]:
    """Describe everything that will make Claude Code use other values than the ones just configured."""
    layers = claude_code.settings_layers(cwd, home)
    mine = {settings.resolved(p) for p in written}
    messages = []
    for layer in layers:
        if layer.problem and layer.exists:
            messages.append(layer.problem)
    decided = claude_code.effective_env(layers, environ, tuple(client.values))
    for name, value in client.values.items():
        decision = decided.get(name)
        if (
            decision
            and decision.source != "shell"
            and settings.resolved(Path(decision.source)) not in mine
            and decision.value != value
        ):
            messages.append(f"{name} is set to another value in {decision.source}, which takes precedence")
    shell = claude_code.shell_overrides(environ)
    if "ANTHROPIC_API_KEY" in shell:
        messages.append(
            "ANTHROPIC_API_KEY is set in your shell: Claude Code also sends it (as x-api-key) to the gateway; "
            "unset it when using the gateway"
        )
    if "ANTHROPIC_AUTH_TOKEN" in shell and "ANTHROPIC_AUTH_TOKEN" not in client.values:
        messages.append("ANTHROPIC_AUTH_TOKEN is set in your shell: Claude Code sends it instead of its own login")
    for layer in claude_code.api_key_helpers(layers):
        if "ANTHROPIC_AUTH_TOKEN" not in client.values:
            messages.append(f"apiKeyHelper in {layer.path} replaces Claude Code's own login")
    return messages


def session_conflicts(client: ClientEnv, cwd: Path, home: Path, managed: Path | None = None) -> list[str]:
    """For `cc-gateway claude`: settings that beat a one-session configuration.

    The public values travel in `--settings` (only managed settings beat it); the key travels in the
    environment, which any settings file setting the same variable beats.
    """
    layers = claude_code.settings_layers(cwd, home, managed)
    messages = []
    for name, value in client.values.items():
        candidates = layers if name in SECRET_VARS else [la for la in layers if la.scope == "managed"]
        decision = claude_code.effective_env(candidates, {}, (name,)).get(name)
        if decision and decision.value != value:
            messages.append(f"{name} is set in {decision.source}, which takes precedence for this session")
    return messages


def remote_gateway(url: str | None, key: str, timeout: float = 10.0) -> Gateway:
    """A gateway known only by its URL (a teammate's machine): its routes, read from GET /v1/models with the key."""
    import json
    import urllib.error
    import urllib.request

    if not url:
        raise UsageError("--key without a gateway folder needs --url", hint="e.g. --url http://gateway.example:4000")
    root = base_url(Gateway(Path.cwd(), Path.cwd() / "config.yaml", {}, {}, {}, None), url, "unified")
    request = urllib.request.Request(f"{root}/v1/models", headers={"Authorization": f"Bearer {key.strip()}"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as reply:
            names = [m["id"] for m in json.load(reply).get("data", []) if isinstance(m, dict) and m.get("id")]
    except urllib.error.HTTPError as exc:
        hint = "check the key (`cc-gateway keys list` on the gateway shows whether it is active)"
        raise GatewayError(f"{root} refused the key: HTTP {exc.code}", hint=hint) from None
    except (urllib.error.URLError, OSError, ValueError, AttributeError):
        raise GatewayError(f"the gateway is not reachable at {root}", hint="check --url") from None
    entries = [{"model_name": name, "litellm_params": {"model": name}} for name in names]
    return Gateway(Path.cwd(), Path.cwd() / "config.yaml", {"model_list": entries}, {}, {}, None)

