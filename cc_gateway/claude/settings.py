"""Claude Code settings files: minimal key merges (core/jsonedit) with undo snapshots.

The first time a file is changed, its original bytes go to a 0600 snapshot under cc-gateway's state
folder so that `--undo` can put it back (or remove the file when cc-gateway created it).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from cc_gateway.core.errors import ConfigError, GatewayError
from cc_gateway.core.jsonedit import Document, parse


@dataclass
class Snapshot:
    """What a settings file held before cc-gateway first changed it."""

    target: str  # resolved path of the file
    original: str | None  # None: the file did not exist
    mode: int | None
    created_dirs: list[str]
    written_sha: str  # sha256 of what cc-gateway last wrote


def resolved(path: Path) -> Path:
    """The file a settings path really is (symlinks followed), as an absolute path."""
    return path.expanduser().absolute().resolve()


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def snapshot_file(state_dir: Path, target: Path) -> Path:
    """Where the undo snapshot of `target` lives: keyed by the resolved settings path."""
    digest = hashlib.sha256(str(resolved(target)).encode()).hexdigest()[:20]
    return state_dir / "claude-settings-undo" / f"{digest}.json"


def load_snapshot(state_dir: Path, target: Path) -> Snapshot | None:
    """Return the snapshot kept for `target`, or None."""
    where = snapshot_file(state_dir, target)
    if not where.exists():
        return None
    try:
        return Snapshot(**json.loads(where.read_text(encoding="utf-8")))
    except (ValueError, TypeError) as exc:
        raise ConfigError(
            f"{where}: undo snapshot is damaged ({exc})", hint="delete it; undo is then impossible"
        ) from None


def missing_dirs(target: Path) -> list[Path]:
    """Folders above `target` that do not exist yet (deepest first), so undo can remove what we made."""
    result = []
    folder = resolved(target).parent
    while not folder.exists():
        result.append(folder)
        folder = folder.parent
    return result


def write_with_snapshot(state_dir: Path, target: Path, new: str, *, private: bool = False) -> Path | None:
    """Write `new` to `target` atomically, snapshotting the original before the first change.

    A file cc-gateway creates gets mode 0600 when `private` (it holds a key). Returns the snapshot's
    path when this call created it (the first change), else None.
    """
    from cc_gateway.core.files import SECRET_MODE, atomic_write

    real = resolved(target)
    snap = load_snapshot(state_dir, target)
    created: Path | None = None
    if snap is None:
        existed = real.exists()
        snap = Snapshot(
            target=str(real),
            original=real.read_bytes().decode("utf-8") if existed else None,
            mode=(real.stat().st_mode & 0o7777) if existed else None,
            created_dirs=[str(d) for d in missing_dirs(real)],
            written_sha="",
        )
        created = snapshot_file(state_dir, target)
    snap.written_sha = _sha(new)
    where = snapshot_file(state_dir, target)
    where.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    atomic_write(where, json.dumps(snap.__dict__, indent=1) + "\n", mode=SECRET_MODE)
    try:
        atomic_write(real, new, mode=SECRET_MODE if private and not real.exists() else None)
    except PermissionError:
        raise GatewayError(
            f"cannot write {real}: permission denied", hint="fix its permissions or pick another --scope"
        ) from None
    return created


def restore(state_dir: Path, target: Path, *, force: bool = False) -> str:
    """Put `target` back as it was before cc-gateway changed it; return 'restored', 'removed' or 'nothing'.

    Raises:
        GatewayError: the file changed since cc-gateway wrote it (unless `force`).
    """
    from cc_gateway.core.files import atomic_write

    snap = load_snapshot(state_dir, target)
    if snap is None:
        return "nothing"
    real = Path(snap.target)
    current = real.read_bytes().decode("utf-8", "replace") if real.exists() else None
    if current is not None and _sha(current) != snap.written_sha and not force:
        raise GatewayError(
            f"{real} changed since cc-gateway wrote it; undo would lose those changes",
            hint="run again with --force to restore the original anyway",
        )
    if snap.original is None:
        if real.exists():
            real.unlink()
        for folder in snap.created_dirs:
            _rmdir_if_empty(Path(folder))
        outcome = "removed"
    else:
        atomic_write(real, snap.original, mode=snap.mode)
        outcome = "restored"
    snapshot_file(state_dir, target).unlink()
    return outcome


def _rmdir_if_empty(folder: Path) -> None:
    with contextlib.suppress(OSError):
        folder.rmdir()


def changed_since_written(state_dir: Path, target: Path) -> bool:
    """Tell whether `target` differs from what cc-gateway last wrote there (False without a snapshot)."""
    snap = load_snapshot(state_dir, target)
    if snap is None:
        return False
    real = Path(snap.target)
    current = real.read_bytes().decode("utf-8", "replace") if real.exists() else ""
    return _sha(current) != snap.written_sha


def read_settings(path: Path) -> tuple[str | None, Document | None]:
    """Read a settings file: (text, parsed) or (None, None) when it does not exist."""
    from cc_gateway.core.files import read_text

    if not path.exists():
        return None, None
    if path.is_dir():
        raise GatewayError(f"{path} is a folder, expected a settings file", hint="move it away and run again")
    text = read_text(path)
    return text, (parse(text, path) if text.strip() else None)
