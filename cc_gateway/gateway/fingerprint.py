"""What a running gateway loaded, compared with its folder's files (config.yaml and .env).

`cc-gateway serve` answers `GET /cc-gateway/loaded` (any key the gateway accepts) with the SHA-256
of the config.yaml and .env bytes each worker started from, and, when it watches the folder, what
it could not apply (a refused edit, a change that needs a restart). `doctor`, `models`,
`add-model` and `remove-model` read it here and say what the user must do, if anything.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

LOADED_PATH = "/cc-gateway/loaded"
ENV_NAME = ".env"


@dataclass(frozen=True)
class Fingerprint:
    """SHA-256 of a gateway's config.yaml and .env ('' for a file that is missing)."""

    config: str
    env: str

    def changed(self, other: Fingerprint) -> list[str]:
        """Name the files that differ from `other` (config first)."""
        return [name for name, a, b in (("config", self.config, other.config), ("env", self.env, other.env)) if a != b]


def digest(path: Path) -> str:
    """SHA-256 of a file's bytes, '' when it cannot be read."""
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return ""


def of_files(config_path: Path) -> Fingerprint:
    """Fingerprint the config file and the .env next to it as they are on disk now."""
    return Fingerprint(digest(config_path), digest(config_path.parent / ENV_NAME))


def loaded_fingerprint(loaded: Mapping[str, Any]) -> Fingerprint:
    """The fingerprint a /cc-gateway/loaded answer reports."""
    return Fingerprint(str(loaded.get("config", {}).get("sha256", "")), str(loaded.get("env", {}).get("sha256", "")))


def fetch_loaded(url: str, headers: Mapping[str, str], timeout: float = 2.0) -> dict[str, Any] | None:
    """Ask a gateway what it loaded; None when nothing (or no cc-gateway that reports it) answers."""
    import httpx

    try:
        response = httpx.get(url.rstrip("/") + LOADED_PATH, headers=dict(headers), timeout=timeout)
    except httpx.HTTPError:
        return None
    if response.status_code != 200:
        return None
    try:
        data = response.json()
    except ValueError:
        return None
    return data if isinstance(data, dict) and "config" in data else None


@dataclass(frozen=True)
class Staleness:
    """How a running gateway's loaded config compares with the folder."""

    state: str  # "current", "reloading", "refused", "restart" or "other-folder"
    message: str = ""

    @property
    def current(self) -> bool:
        """Whether the gateway serves exactly what the files say."""
        return self.state == "current"


def _names(kinds: list[str], config_path: Path) -> str:
    return " and ".join(config_path.name if k == "config" else ENV_NAME for k in kinds)


def compare(config_path: Path, loaded: Mapping[str, Any]) -> Staleness:
    """Compare the folder's files with what the gateway loaded; say what to do about a difference."""
    served = Path(str(loaded.get("config", {}).get("path", "")))
    if served != config_path.absolute():
        return Staleness("other-folder", f"the gateway on this port serves {served}, not {config_path}")
    files, have = of_files(config_path), loaded_fingerprint(loaded)
    changed = files.changed(have)
    status = loaded.get("status") or {}
    restart = [str(x) for x in status.get("restart_needed") or []]
    if not changed:
        if restart:
            return Staleness("restart", f"restart `cc-gateway serve` to apply: {'; '.join(restart)}")
        return Staleness("current")
    names = _names(changed, config_path)
    if loaded.get("reload") != "watch":
        return Staleness("restart", f"{names} changed since the gateway loaded it: restart `cc-gateway serve` to apply")
    refused = status.get("refused") or {}
    if refused and Fingerprint(refused.get("config", ""), refused.get("env", "")) == files:
        return Staleness(
            "refused",
            f"the gateway refused the edited {names}: {refused.get('reason')}; it still serves the previous one",
        )
    if restart and Fingerprint(*(status.get("restart_for") or ["", ""])) == files:
        return Staleness("restart", f"restart `cc-gateway serve` to apply: {'; '.join(restart)}")
    return Staleness("reloading", f"the gateway is applying the edited {names}")


def wait_until_applied(
    config_path: Path, url: str, headers: Mapping[str, str], timeout: float = 30.0
) -> Staleness | None:
    """After an edit: wait (bounded) for a watching gateway to apply it; None when no gateway of this folder runs."""
    deadline = time.monotonic() + timeout
    state: Staleness | None = None
    while True:
        loaded = fetch_loaded(url, headers, timeout=5.0)
        if loaded is None and state is None:
            return None  # no gateway of this folder answers
        if loaded is not None:
            state = compare(config_path, loaded)
            if state.state != "reloading":
                return state
        if time.monotonic() >= deadline:
            return state
        time.sleep(0.25)


def folder_client(config_path: Path) -> tuple[str, dict[str, str]] | None:
    """The loopback URL and key headers of the gateway a folder's .env describes (None: .env unreadable)."""
    from cc_gateway.core.envfile import layered, load_env_file
    from cc_gateway.core.errors import GatewayError

    try:
        env = layered(load_env_file(config_path.parent / ENV_NAME))
    except GatewayError:
        return None
    port = env.get("CC_GATEWAY_PORT", "4000").strip()
    url = f"http://127.0.0.1:{port if port.isdigit() else 4000}"
    master = env.get("LITELLM_MASTER_KEY", "").strip()
    tokens = [t.strip() for t in env.get("PROXY_STATIC_TOKEN", "").split(",") if t.strip()]
    if master:
        return url, {"Authorization": f"Bearer {master}"}
    return url, ({"x-litellm-api-key": tokens[0]} if tokens else {})


def running_state(config_path: Path, *, wait: float = 0.0) -> Staleness | None:
    """How the folder's running gateway (if any) compares with its files; wait (bounded) while it reloads."""
    client = folder_client(config_path)
    if client is None:
        return None
    url, headers = client
    if not wait:
        loaded = fetch_loaded(url, headers, timeout=1.0)
        return None if loaded is None else compare(config_path, loaded)
    return wait_until_applied(config_path, url, headers, timeout=wait)
