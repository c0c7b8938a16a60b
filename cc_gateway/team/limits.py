"""Spend limits in the store: per person (`user` scope) or for the whole team (`organization` scope).

Stored in cents, keyed on (scope, person, period) like Anthropic's Admin API spend limits (setting
one that exists replaces it). An amount of NULL is an explicit "no limit" for that scope and period.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass

from cc_gateway.core.errors import UsageError
from cc_gateway.team.periods import Limit
from cc_gateway.team.store import Store

USER, ORGANIZATION = "user", "organization"
SCOPES = (USER, ORGANIZATION)


@dataclass(frozen=True)
class LimitRecord:
    """One stored limit."""

    id: str
    scope: str
    person: str  # '' for the organization scope
    period: str
    amount_cents: int | None
    created_at: float
    updated_at: float

    @property
    def limit(self) -> Limit | None:
        """The cap, or None for an explicit no-limit."""
        return None if self.amount_cents is None else Limit(self.period, int(self.amount_cents))


_COLUMNS = "id, scope, person, period, amount_cents, created_at, updated_at"


def all_limits(store: Store) -> list[LimitRecord]:
    """Every limit: the team's first, then by person and period."""
    rows = store.query(f"SELECT {_COLUMNS} FROM ccg_limits ORDER BY scope DESC, person, period")
    return [LimitRecord(*r) for r in rows]


def get(store: Store, limit_id: str) -> LimitRecord | None:
    """A limit by id."""
    rows = store.query(f"SELECT {_COLUMNS} FROM ccg_limits WHERE id = ?", (limit_id,))
    return LimitRecord(*rows[0]) if rows else None


def set_limit(store: Store, scope: str, person: str, period: str, amount_cents: int | None) -> LimitRecord:
    """Create or replace the limit for (scope, person, period); return it."""
    if scope not in SCOPES:
        raise UsageError(f"unknown scope {scope!r}", hint="use user or organization")
    if amount_cents is not None and amount_cents < 0:
        raise UsageError(f"amount {amount_cents} is negative", hint="a limit is 0 or more cents")
    person = person if scope == USER else ""
    now = time.time()
    with store.transaction():
        rows = store.query("SELECT id FROM ccg_limits WHERE scope = ? AND person = ? AND period = ?",
                           (scope, person, period))
        if rows:
            limit_id = rows[0][0]
            store.execute("UPDATE ccg_limits SET amount_cents = ?, updated_at = ? WHERE id = ?",
                          (amount_cents, now, limit_id))
        else:
            limit_id = "spl_" + secrets.token_hex(12)
            store.execute(f"INSERT INTO ccg_limits ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)",
                          (limit_id, scope, person, period, amount_cents, now, now))
    record = get(store, limit_id)
    assert record is not None
    return record


def delete(store: Store, limit_id: str) -> bool:
    """Delete a limit by id; return whether it existed."""
    return store.execute("DELETE FROM ccg_limits WHERE id = ?", (limit_id,)) > 0


def delete_for(store: Store, scope: str, person: str, period: str) -> bool:
    """Delete the limit for (scope, person, period); return whether it existed."""
    person = person if scope == USER else ""
    return store.execute("DELETE FROM ccg_limits WHERE scope = ? AND person = ? AND period = ?",
                         (scope, person, period)) > 0
