"""Claude Code settings files: minimal key merges (core/jsonedit) with undo snapshots.

The first time a file is changed, its original bytes go to a 0600 snapshot under cc-gateway's state
folder so that `--undo` can put it back (or remove the file when cc-gateway created it). The snapshot
also records, key by key, what cc-gateway set and what was there before: when someone else (Claude
Code's own first-run setup, the user) changed the file since, undo takes back only cc-gateway's keys
that still hold what it wrote, restores the values they replaced, and keeps everything else.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cc_gateway.core.errors import ConfigError, GatewayError
from cc_gateway.core.jsonedit import Document, merge, parse


@dataclass
class Snapshot:
    """What a settings file held before cc-gateway first changed it."""

    target: str  # resolved path of the file
    original: str | None  # None: the file did not exist
    mode: int | None
    created_dirs: list[str]
    written_sha: str  # sha256 of what cc-gateway last wrote
    #: One record per key cc-gateway set or removed: {section, key, had, before, set, value}.
    keys: list[dict[str, Any]] = field(default_factory=list)


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


def write_with_snapshot(
    state_dir: Path,
    target: Path,
    new: str,
    *,
    private: bool = False,
    updates: Mapping[str, Any] | None = None,
    section: str | None = None,
    more: tuple[tuple[str | None, Mapping[str, Any]], ...] = (),
) -> Path | None:
    """Write `new` to `target` atomically, snapshotting the original before the first change.

    `updates` (the keys of `section` this write sets, None meaning removed) are recorded for a
    key-by-key undo, and so is each (section, updates) pair in `more`. A file cc-gateway creates gets mode 0600 when `private` (it holds a key).
    Returns the snapshot's path when this call created it (the first change), else None.
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
    before = real.read_bytes().decode("utf-8") if real.exists() else None
    for where_, keys in ((section, updates), *more):
        if keys:
            record_keys(snap, before, keys, where_)
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
    """Put `target` back as it was before cc-gateway changed it; return what was done ('nothing' if nothing).

    Untouched since cc-gateway wrote it: the original bytes come back (or the file goes, if cc-gateway
    created it). Changed since: only cc-gateway's keys are taken back (see `undo_keys`); `force` restores
    the original bytes anyway.

    Raises:
        GatewayError: the file changed since and the snapshot has no key records (an older cc-gateway's).
    """
    from cc_gateway.core.files import atomic_write

    snap = load_snapshot(state_dir, target)
    if snap is None:
        return "nothing"
    real = Path(snap.target)
    current = real.read_bytes().decode("utf-8", "replace") if real.exists() else None
    if current is not None and _sha(current) != snap.written_sha and snap.keys and not force:
        outcome = _undo_keys_in_file(snap, real, current)
        snapshot_file(state_dir, target).unlink()
        return outcome
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


MISSING: Any = object()  # a key absent from a file


def _current(data: Any, section: str | None, key: str) -> Any:
    """The value of `key` (in `section`) in parsed settings, or MISSING."""
    holder = data.get(section) if section and isinstance(data, dict) else data
    if not isinstance(holder, dict) or key not in holder:
        return MISSING
    return holder[key]


def _parsed(text: str | None) -> Any:
    return parse(text).value if text and text.strip() else {}


def record_keys(snap: Snapshot, old_text: str | None, updates: Mapping[str, Any], section: str | None) -> None:
    """Remember, per key a write sets or removes, what the file held before cc-gateway first touched that
    key and what cc-gateway put there, so that undo can take back exactly its own changes."""
    old = _parsed(old_text)
    known = {(r["section"], r["key"]): r for r in snap.keys}
    for key, value in updates.items():
        record = known.get((section, key))
        if record is None:
            before = _current(old, section, key)
            if before is MISSING and value is None:
                continue  # removing what is not there: nothing to take back
            record = {"section": section, "key": key, "had": before is not MISSING}
            record["before"] = None if before is MISSING else before
            snap.keys.append(record)
            known[(section, key)] = record
        record["set"] = value is not None
        record["value"] = value


def undo_keys(snap: Snapshot, text: str, path: Path | str = "") -> str:
    """Return `text` with cc-gateway's own changes taken back, key by key.

    A key still holding what cc-gateway wrote gets its previous value back (or goes, if it was not
    there); a key someone changed since keeps their value; every other key stays. A section that
    cc-gateway created and that is now empty goes too.
    """
    data = parse(text, path).value
    by_section: dict[str | None, dict[str, Any]] = {}
    for record in snap.keys:
        ours = record["value"] if record["set"] else MISSING
        current = _current(data, record["section"], record["key"])
        unchanged = current is ours or (
            current is not MISSING and ours is not MISSING and current == ours and type(current) is type(ours)
        )
        if unchanged:
            by_section.setdefault(record["section"], {})[record["key"]] = record["before"] if record["had"] else None
    original = _parsed(snap.original)
    for section, updates in by_section.items():
        text = merge(text, updates, section=section, path=path)
        if section and parse(text, path).value.get(section) == {} and section not in original:
            text = merge(text, {section: None}, path=path)
    return text


def _undo_keys_in_file(snap: Snapshot, real: Path, current: str) -> str:
    """Take back cc-gateway's keys from a file someone changed since; delete it if only ours were left."""
    from cc_gateway.core.files import atomic_write

    text = undo_keys(snap, current, real)
    if snap.original is None and _parsed(text) == {}:
        real.unlink()
        for folder in snap.created_dirs:
            _rmdir_if_empty(Path(folder))
        return "removed (nothing but cc-gateway's settings was left in it)"
    if text != current:
        atomic_write(real, text)
    return "undone: cc-gateway's settings taken back, other changes since kept"


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
