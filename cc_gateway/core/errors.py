"""Error hierarchy and exit codes: the CLI turns a GatewayError into one clear line."""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    """Process exit codes, documented in the README."""

    OK = 0
    ERROR = 1
    USAGE = 2
    CHECKS_FAILED = 3
    INTERRUPTED = 130


class GatewayError(Exception):
    """An expected failure: shown as `error: <message>` plus an optional hint, no traceback."""

    exit_code: ExitCode = ExitCode.ERROR

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.hint = hint


class UsageError(GatewayError):
    """Bad flags or arguments."""

    exit_code = ExitCode.USAGE


class ConfigError(GatewayError):
    """A file that does not parse or does not hold what it should; message names file and line."""


class ConflictError(GatewayError):
    """A write would replace a file that differs from what we would write."""


class PortInUse(GatewayError):
    """The port serve was asked to bind is taken."""


def located(path: object, line: int | None, message: str) -> str:
    """Format `path:line: message` (line is 1-based; omitted when unknown)."""
    return f"{path}:{line}: {message}" if line else f"{path}: {message}"
