"""Workers load the config.yaml bytes `serve` validated, not whatever the file holds when they start.

A reload validates config.yaml in the supervisor, then forks workers whose LiteLLM start-up reads
the file again (`ProxyConfig._get_config_from_file`). Between the two the file may change (an
editor still saving, a broken edit made during the swap), and a worker respawned after a crash
would read an edit that was refused. `pin(path, text)`, called in the supervisor before it forks,
makes that read parse `text` instead; any other path reads the file as LiteLLM does.
Checked against LiteLLM 1.106.2 (`_get_config_from_file(self, config_file_path)`, which sets the
module's `user_config_file_path` and then runs `_process_includes`).
"""

from __future__ import annotations

import inspect
import os
from pathlib import Path
from typing import Any

_PINNED: dict[str, str] = {}


def pin(path: Path, text: str) -> None:
    """Make LiteLLM's next config reads of `path` (in workers forked from now on) parse `text`."""
    _PINNED.clear()
    _PINNED[os.path.abspath(path)] = text


def pinned(path: Path) -> str:
    """The text pinned for `path` ('' if none)."""
    return _PINNED.get(os.path.abspath(path), "")


def install(app: Any = None) -> bool:
    """Wrap ProxyConfig._get_config_from_file; return whether it engaged."""
    import yaml
    from litellm.proxy import proxy_server

    cls = getattr(proxy_server, "ProxyConfig", None)
    original = getattr(cls, "_get_config_from_file", None)
    if original is None or not hasattr(cls, "_process_includes"):
        return False
    if getattr(original, "cc_gateway_pinned", False):
        return True
    if list(inspect.signature(original).parameters) != ["self", "config_file_path"]:
        return False

    async def pinned(self: Any, config_file_path: str | None = None) -> dict:
        text = _PINNED.get(os.path.abspath(config_file_path)) if config_file_path else None
        if text is None:
            return await original(self, config_file_path)
        proxy_server.user_config_file_path = config_file_path
        config = yaml.safe_load(text)
        if config is None:
            raise Exception("Config cannot be None or Empty.")  # LiteLLM's own wording
        return await self._process_includes(config=config, config_file_path=os.path.abspath(config_file_path))

    pinned.cc_gateway_pinned = True  # type: ignore[attr-defined]
    cls._get_config_from_file = pinned
    return True
