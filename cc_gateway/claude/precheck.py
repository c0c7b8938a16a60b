"""`cc-gateway claude`'s check before it starts Claude Code: the key Claude Code will actually send
(after settings precedence) gets a 200 from the gateway's `/v1/models`.

Claude Code reads ANTHROPIC_AUTH_TOKEN / ANTHROPIC_CUSTOM_HEADERS from the highest settings layer that
sets them (managed > local > project > user), then from the environment `cc-gateway claude` passes; so
a key left in a settings file beats the gateway's own. A port answered by another service (another
gateway, an older one started with another .env, something that is no gateway at all) refuses the key
or does not speak /v1/models. Either way Claude Code would retry for minutes: say why in one line instead.

Only reads files and makes one HTTP request; never prints.
"""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from cc_gateway.core.errors import GatewayError

KEY_VARS = ("ANTHROPIC_AUTH_TOKEN", "ANTHROPIC_CUSTOM_HEADERS", "ANTHROPIC_API_KEY")
TIMEOUT = 1.5  # seconds for the whole check (the budget is 2 s)


@dataclass(frozen=True)
class SentKey:
    """The credential headers Claude Code will send, and where each value comes from."""

    headers: dict[str, str]
    sources: dict[str, str]  # variable -> settings file path, or "cc-gateway" (the values it passes)

    def foreign(self) -> dict[str, str]:
        """The variables a settings file decides (not the values cc-gateway passes)."""
        return {name: src for name, src in self.sources.items() if src != "cc-gateway"}


def custom_headers(value: str) -> dict[str, str]:
    """Parse ANTHROPIC_CUSTOM_HEADERS ("Name: value" lines) into a dict."""
    found = {}
    for line in re.split(r"[\r\n]+", value):
        if ":" in line:
            name, _, rest = line.partition(":")
            if name.strip():
                found[name.strip()] = rest.strip()
    return found


def sent_key(passed: Mapping[str, str], decisions: Mapping[str, tuple[str, str]]) -> SentKey:
    """Combine what cc-gateway passes with the settings-file values that beat it.

    `decisions`: variable -> (value, settings file) for the key variables some settings layer sets.
    """
    values: dict[str, str] = {}
    sources: dict[str, str] = {}
    for name in KEY_VARS:
        if name in decisions:
            values[name], sources[name] = decisions[name]
        elif passed.get(name):
            values[name], sources[name] = passed[name], "cc-gateway"
    headers: dict[str, str] = {}
    if values.get("ANTHROPIC_API_KEY"):
        headers["x-api-key"] = values["ANTHROPIC_API_KEY"]
    if values.get("ANTHROPIC_AUTH_TOKEN"):
        headers["Authorization"] = f"Bearer {values['ANTHROPIC_AUTH_TOKEN']}"
    headers.update(custom_headers(values.get("ANTHROPIC_CUSTOM_HEADERS", "")))
    return SentKey(headers, sources)


def _get(url: str, headers: Mapping[str, str], timeout: float) -> tuple[int, bytes]:
    request = urllib.request.Request(url, headers={"accept": "application/json", **headers})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as reply:
            return reply.status, reply.read(65536)
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read(65536) if exc.fp else b""


def _is_model_list(body: bytes) -> bool:
    try:
        data = json.loads(body)
    except ValueError:
        return False
    return isinstance(data, dict) and isinstance(data.get("data"), list)


def check_key(root: str, key: SentKey, *, env_path: Path, timeout: float = TIMEOUT) -> None:
    """Raise one GatewayError line unless `root`/v1/models answers 200 to the key Claude Code will send."""
    root = re.sub(r"/anthropic$", "", root.rstrip("/"))
    hint = "start it with `cc-gateway serve` (in its folder)"
    try:
        status, body = _get(f"{root}/v1/models", key.headers, timeout)
    except (urllib.error.URLError, OSError, ValueError):
        raise GatewayError(f"the gateway is not reachable at {root}", hint=hint) from None
    if status == 200 and _is_model_list(body):
        return
    foreign = key.foreign()
    if status in (401, 403):
        if foreign:
            name, source = next(iter(foreign.items()))
            raise GatewayError(
                f"{name} in {source} wins over cc-gateway's key, and the gateway at {root} refuses it ({status})",
                hint=f"remove {name} from {source} (or set it to the gateway's key), then run again",
            )
        raise GatewayError(
            f"the service at {root} refuses this gateway's key from {env_path} ({status}): it is another "
            "gateway, or this one was started with another .env",
            hint="stop the other service or set another CC_GATEWAY_PORT in .env, then restart `cc-gateway serve`",
        )
    raise GatewayError(
        f"the service at {root} is not a cc-gateway: GET /v1/models answered {status} without a model list",
        hint="stop it or set another CC_GATEWAY_PORT in .env, then restart `cc-gateway serve`",
    )
