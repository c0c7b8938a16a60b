"""File machinery shared by every command that writes: parse with locations, plan, atomic apply, backups."""

from __future__ import annotations

import contextlib
import difflib
import os
import stat
import tempfile
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from cc_gateway.core.errors import ConfigError, ConflictError, GatewayError, located

SECRET_MODE = 0o600


# --------------------------------------------------------------------------- parsing


def read_text(path: Path) -> str:
    """Read a UTF-8 file, turning OS errors into one clear line."""
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: file not found") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text ({exc.reason})") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read ({exc.strerror})") from None


def parse_yaml(text: str, path: Path | str) -> Any:
    """Parse YAML safely; a syntax error names the file and line."""
    import yaml

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(
            located(path, line, f"invalid YAML: {problem}"), hint="fix the YAML syntax at that line"
        ) from None


def load_yaml(path: Path) -> Any:
    """Read and parse a YAML file (errors name file and line)."""
    return parse_yaml(read_text(path), path)


def parse_json(text: str, path: Path | str) -> Any:
    """Parse JSON; a syntax error names the file and line."""
    import json

    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(
            located(path, exc.lineno, f"invalid JSON: {exc.msg} (column {exc.colno})"),
            hint="fix the JSON at that line; the file was left untouched",
        ) from None


# --------------------------------------------------------------------------- writing


def _resolve(path: Path) -> Path:
    """Follow symlinks so that a linked dotfile is updated in place, not replaced by a file."""
    return path.resolve() if path.is_symlink() else path


def atomic_write(path: Path, text: str | bytes, *, mode: int | None = None) -> None:
    """Write text (or bytes) so that readers see the old file or the new one, never a torn one.

    A temp file in the same folder is written, fsynced and renamed over the target. The
    target's mode is kept unless `mode` is given; symlinks are followed.
    """
    target = _resolve(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    if mode is None:
        mode = stat.S_IMODE(target.stat().st_mode) if target.exists() else 0o644
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as handle:
            handle.write(text.encode("utf-8") if isinstance(text, str) else text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _fsync_dir(target.parent)


def _fsync_dir(folder: Path) -> None:
    """Persist a rename (best effort: not every filesystem allows opening a folder)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def backup(path: Path) -> Path:
    """Copy a file to NAME.bak (or NAME.bak.N when that exists and differs); return the copy."""
    target = _resolve(path)
    content = target.read_bytes()
    candidate = target.with_name(target.name + ".bak")
    n = 1
    while candidate.exists() and candidate.read_bytes() != content:
        candidate = target.with_name(f"{target.name}.bak.{n}")
        n += 1
    if not candidate.exists():
        fd = os.open(candidate, os.O_WRONLY | os.O_CREAT | os.O_EXCL, stat.S_IMODE(target.stat().st_mode))
        with os.fdopen(fd, "wb") as handle:
            handle.write(content)
    return candidate


# --------------------------------------------------------------------------- plan / apply


class Action(StrEnum):
    """What applying a plan does to one file."""

    CREATE = "create"
    IDENTICAL = "identical"
    UPDATE = "update"  # differs, and we may overwrite it (a file we own, or forced)
    CONFLICT = "conflict"  # differs, and needs --force
    REPLACE = "replace"  # differs, but holds exactly what cc-gateway last wrote: replaced, keeping NAME.bak


@dataclass(frozen=True)
class FileSpec:
    """Desired content and mode of one file."""

    text: str
    mode: int = 0o644


@dataclass(frozen=True)
class Change:
    """One planned file change."""

    path: Path
    action: Action
    new: str
    old: str | None
    mode: int

    def diff(self) -> str:
        """Unified diff from the current content to the planned one (secrets masked by caller)."""
        old = (self.old or "").splitlines(keepends=True)
        new = self.new.splitlines(keepends=True)
        before = str(self.path) if self.old is not None else "/dev/null"
        return "".join(difflib.unified_diff(old, new, before, str(self.path)))


@dataclass
class Plan:
    """A set of planned changes, computed without touching the disk."""

    changes: list[Change] = field(default_factory=list)

    @property
    def conflicts(self) -> list[Change]:
        """Changes that would overwrite a differing file."""
        return [c for c in self.changes if c.action is Action.CONFLICT]

    @property
    def pending(self) -> list[Change]:
        """Changes that write something."""
        return [c for c in self.changes if c.action is not Action.IDENTICAL]


def plan_files(files: dict[Path, FileSpec], *, owned_update: bool = False) -> Plan:
    """Classify each target as create / identical / conflict (or update when `owned_update`)."""
    plan = Plan()
    for path, spec in files.items():
        old = _read_existing(path)
        if old is None:
            action = Action.CREATE
        elif old == spec.text:
            action = Action.IDENTICAL
        else:
            action = Action.UPDATE if owned_update else Action.CONFLICT
        plan.changes.append(Change(path, action, spec.text, old, spec.mode))
    return plan


def _read_existing(path: Path) -> str | None:
    """Return a target's current text, or None when it does not exist."""
    if not path.exists():
        return None
    if path.is_dir():
        raise GatewayError(f"{path} is a folder, expected a file", hint="move it away and run again")
    return read_text(path)


def apply_plan(plan: Plan, *, force: bool = False) -> list[Path]:
    """Write the plan atomically; a conflict needs `force` and then keeps a backup. Return backups."""
    if plan.conflicts and not force:
        names = ", ".join(str(c.path) for c in plan.conflicts)
        raise ConflictError(
            f"would overwrite file(s) changed since cc-gateway wrote them: {names}",
            hint="run again with --dry-run to see the diff, or --force to overwrite (a .bak copy is kept)",
        )
    backups: list[Path] = []
    for change in plan.pending:
        if change.old is not None and change.action in (Action.CONFLICT, Action.REPLACE):
            backups.append(backup(change.path))
        try:
            atomic_write(change.path, change.new, mode=change.mode)
        except PermissionError:
            raise GatewayError(
                f"cannot write {change.path}: permission denied",
                hint="choose a folder you can write to with --dir",
            ) from None
    return backups


def ensure_writable_dir(folder: Path) -> None:
    """Fail early, with one line, when a target folder can't be created or written."""
    probe = folder
    while not probe.exists():
        probe = probe.parent
    if not probe.is_dir():
        raise GatewayError(f"{probe} is not a folder", hint="choose another --dir")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise GatewayError(f"cannot write to {probe}: permission denied", hint="choose another --dir")
