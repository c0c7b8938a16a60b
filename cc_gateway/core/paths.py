"""Where cc-gateway keeps its own state; CC_GATEWAY_HOME overrides everything."""

from __future__ import annotations

import os
from pathlib import Path


def home() -> Path:
    """Return cc-gateway's state folder (not created here: writers create it)."""
    override = os.environ.get("CC_GATEWAY_HOME")
    if override:
        return Path(override).expanduser()
    from platformdirs import user_config_path

    return user_config_path("cc-gateway", appauthor=False)


def user_home() -> Path:
    """Return the user's home folder as Claude Code sees it ($HOME first)."""
    return Path(os.environ.get("HOME") or Path.home())
