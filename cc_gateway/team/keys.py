"""Keys per person: generated once, stored as a SHA-256 hash, with an optional model allowlist and expiry.

A key is `sk-` + 32 random bytes (URL-safe base64): guessing one is hopeless, so a fast hash is
enough (a slow password hash would only cost every request CPU). The store keeps the hash and the
last four characters (to tell keys apart in `keys list`), never the key.
"""

from __future__ import annotations

import fnmatch
import hashlib
import re
import secrets
import time
from collections.abc import Iterable
from dataclasses import dataclass

from cc_gateway.core.errors import UsageError
from cc_gateway.team.store import Store

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@+-]{0,99}$")


class UnknownPerson(UsageError):
    """A name that has no key in the store."""


@dataclass(frozen=True)
class KeyRecord:
    """One person's key, as stored (no secret)."""

    name: str
    key_hash: str
    key_hint: str
    models: tuple[str, ...]
    created_at: float
    expires_at: float | None
    revoked_at: float | None
    last_used_at: float | None

    def state(self, now: float) -> str:
        """`active`, `revoked` or `expired`."""
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at is not None and self.expires_at <= now:
            return "expired"
        return "active"


def generate_key() -> str:
    """A new person key: `sk-` + 32 random bytes."""
    return "sk-" + secrets.token_urlsafe(32)


def hash_key(key: str) -> str:
    """The stored form of a key."""
    return hashlib.sha256(key.encode()).hexdigest()


def check_name(name: str) -> str:
    """Validate a person's name (letters, digits and . _ @ + -)."""
    if not NAME.match(name or ""):
        raise UsageError(
            f"name {name!r} is not usable for a key",
            hint="use letters, digits and . _ @ + - (e.g. alice or alice@example.com), at most 100 characters",
        )
    return name


def parse_models(text: str | None) -> tuple[str, ...]:
    """`claude-sonnet-*,claude-haiku-*` -> a tuple of globs (empty: every model)."""
    globs = tuple(g.strip() for g in (text or "").split(",") if g.strip())
    for glob in globs:
        if any(c.isspace() for c in glob):
            raise UsageError(f"model pattern {glob!r} has a space", hint="separate patterns with commas, e.g. claude-*,gpt-5")
    return globs


def allows(globs: Iterable[str], *names: str) -> bool:
    """Whether a model allowlist admits any of `names` (the model asked for, the route serving it)."""
    globs = tuple(globs)
    if not globs:
        return True
    return any(name and fnmatch.fnmatchcase(name, glob) for glob in globs for name in names)


_COLUMNS = "name, key_hash, key_hint, models, created_at, expires_at, revoked_at, last_used_at"


def _record(row: tuple) -> KeyRecord:
    name, key_hash, hint, models, created, expires, revoked, used = row
    return KeyRecord(name, key_hash, hint, parse_models(models), created, expires, revoked, used)


def all_keys(store: Store) -> list[KeyRecord]:
    """Every key, active or not, by name."""
    return [_record(r) for r in store.query(f"SELECT {_COLUMNS} FROM ccg_keys ORDER BY name")]


def get(store: Store, name: str) -> KeyRecord:
    """A person's key record; UnknownPerson when there is none."""
    rows = store.query(f"SELECT {_COLUMNS} FROM ccg_keys WHERE name = ?", (name,))
    if not rows:
        known = [r[0] for r in store.query("SELECT name FROM ccg_keys ORDER BY name LIMIT 20")]
        raise UnknownPerson(
            f"no key for {name!r}",
            hint=f"known: {', '.join(known)}" if known else "add one with `cc-gateway keys add NAME`",
        )
    return _record(rows[0])


def add(store: Store, name: str, *, models: tuple[str, ...] = (), expires_at: float | None = None) -> str:
    """Create a person's key and return it (the only time it is seen); a revoked name gets a fresh key."""
    check_name(name)
    key = generate_key()
    now = time.time()
    with store.transaction():
        rows = store.query("SELECT revoked_at FROM ccg_keys WHERE name = ?", (name,))
        if rows and rows[0][0] is None:
            raise UsageError(f"{name!r} already has a key", hint=f"use `cc-gateway keys rotate {name}` for a new one")
        if rows:
            store.execute("DELETE FROM ccg_keys WHERE name = ?", (name,))
        store.execute(
            f"INSERT INTO ccg_keys ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, NULL, NULL)",
            (name, hash_key(key), key[-4:], ",".join(models), now, expires_at),
        )
    return key


def revoke(store: Store, name: str) -> None:
    """Revoke a person's key (it stops working within a second on every replica)."""
    record = get(store, name)
    if record.revoked_at is None:
        store.execute("UPDATE ccg_keys SET revoked_at = ? WHERE name = ?", (time.time(), name))


def rotate(store: Store, name: str, *, expires_at: float | None = None) -> str:
    """Replace a person's key with a new one (the old one stops working); return the new key."""
    record = get(store, name)
    key = generate_key()
    expires = expires_at if expires_at is not None else record.expires_at
    if record.state(time.time()) == "expired" and expires_at is None:
        expires = None  # rotating an expired key without --expires gives a key that does not expire
    store.execute(
        "UPDATE ccg_keys SET key_hash = ?, key_hint = ?, revoked_at = NULL, expires_at = ? WHERE name = ?",
        (hash_key(key), key[-4:], expires, name),
    )
    return key


def set_models(store: Store, name: str, models: tuple[str, ...]) -> None:
    """Replace a person's model allowlist (empty: every model)."""
    get(store, name)
    store.execute("UPDATE ccg_keys SET models = ? WHERE name = ?", (",".join(models), name))


def touch(store: Store, last_used: dict[str, float]) -> None:
    """Record when each person last used their key (called by the ledger's flush, not per request)."""
    store.executemany(
        "UPDATE ccg_keys SET last_used_at = ? WHERE name = ? AND (last_used_at IS NULL OR last_used_at < ?)",
        [(ts, name, ts) for name, ts in last_used.items()],
    )
