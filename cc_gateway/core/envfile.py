"""Read `.env` files (KEY=VALUE, comments, quotes) and layer them under the process environment."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path

from cc_gateway.core.errors import ConfigError, located
from cc_gateway.core.files import read_text

_LINE = re.compile(r"^\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*?)\s*$")



def parse_env(text: str, path: Path | str = ".env") -> dict[str, str]:
    """Parse dotenv text into a dict; a malformed line names the file and line."""
    values: dict[str, str] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        stripped = raw.strip()
        if not stripped or stripped.startswith("#"):
            continue
        match = _LINE.match(raw)
        if not match:
            raise ConfigError(located(path, number, "expected NAME=value"), hint="fix or comment out that line")
        values[match.group(1)] = _unquote(match.group(2))
    return values


def _unquote(value: str) -> str:
    """Strip matching quotes, or an inline ` #` comment from an unquoted value."""
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
        return value[1:-1]
    return re.split(r"\s+#", value, maxsplit=1)[0]


def load_env_file(path: Path) -> dict[str, str]:
    """Parse a `.env` file; a missing file is an empty mapping."""
    if not path.exists():
        return {}
    return parse_env(read_text(path), path)


def layered(file_values: Mapping[str, str], environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """Combine .env values with the environment: a variable set in the environment wins."""
    env = os.environ if environ is None else environ
    merged = dict(file_values)
    merged.update({k: v for k, v in env.items() if k in file_values or k not in merged})
    return merged


def apply_to_environ(file_values: Mapping[str, str]) -> list[str]:
    """Export .env values into os.environ without overriding what is set; return the names added."""
    added = [k for k in file_values if k not in os.environ]
    for name in added:
        os.environ[name] = file_values[name]
    return added

