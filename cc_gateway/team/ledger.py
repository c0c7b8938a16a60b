"""The usage ledger: one record per request, merged in memory and written in batches off the request path.

The request path only merges a dict into `pending` (under a lock held for microseconds). A serving
process's background thread (`team.live`) takes the pending records every flush interval and writes
them in one transaction with an upsert keyed on the request id, so a record can be completed by a
later update (LiteLLM's logging callback may run after the response went out): a field that is
NULL in the update keeps the stored value.

What a crash (`kill -9`) loses: the records of requests that finished in the last flush interval
(0.5 s by default) and of the requests in flight at that moment; nothing written is damaged
(SQLite WAL / PostgreSQL transactions).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from typing import Any

from cc_gateway.team import keys, pricing
from cc_gateway.team.store import Store

COLUMNS = (
    "request_id",
    "ts",
    "person",
    "session_id",
    "agent_id",
    "path",
    "model",
    "route",
    "upstream",
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "cost",
    "latency_ms",
    "status",
    "stream",
)
TOKENS = ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens")
#: Records kept in memory while the store cannot be written; beyond this the oldest are dropped (and logged).
MAX_PENDING = 100_000
_UPSERT = (
    f"INSERT INTO ccg_usage ({', '.join(COLUMNS)}) VALUES ({', '.join('?' for _ in COLUMNS)}) "
    "ON CONFLICT (request_id) DO UPDATE SET "
    + ", ".join(f"{c} = COALESCE(excluded.{c}, ccg_usage.{c})" for c in COLUMNS[2:])
)  # ts: the first write's (an update carries its own time only in case it arrives first)


class Ledger:
    """Records waiting to be written, and the spend they add that the store does not show yet."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.pending: dict[str, dict[str, Any]] = {}
        self.prices: dict[str, dict[str, float] | None] = {}
        self.pending_cost: dict[str, float] = {}
        self.flushing_cost: dict[str, float] = {}
        self.dropped = 0

    def add(self, request_id: str, fields: dict[str, Any], prices: dict[str, float] | None = None) -> None:
        """Merge fields into a request's record (None never replaces a value); recompute its cost."""
        with self.lock:
            record = self.pending.get(request_id)
            if record is None:
                if len(self.pending) >= MAX_PENDING:
                    self.pending.pop(next(iter(self.pending)))
                    self.dropped += 1
                record = self.pending[request_id] = {"request_id": request_id}
            before = record.get("cost") or 0.0
            for name, value in fields.items():
                if value is not None:
                    record[name] = value
            if prices is not None:
                self.prices[request_id] = prices
            price = self.prices.get(request_id)
            if price is not None and any(record.get(t) is not None for t in TOKENS):
                record["cost"] = pricing.cost(price, *(record.get(t) for t in TOKENS))
            person = record.get("person")
            if person and record.get("cost") is not None:
                delta = record["cost"] - before
                self.pending_cost[person] = self.pending_cost.get(person, 0.0) + delta

    def take(self) -> list[dict[str, Any]]:
        """Move the pending records out to be written (their cost stays counted until `written`)."""
        with self.lock:
            batch = list(self.pending.values())
            self.pending = {}
            self.prices = {}
            for person, amount in self.pending_cost.items():
                self.flushing_cost[person] = self.flushing_cost.get(person, 0.0) + amount
            self.pending_cost = {}
        return batch

    def written(self) -> None:
        """The taken batch is in the store and the spend snapshot was re-read: stop counting it here."""
        with self.lock:
            self.flushing_cost = {}

    def put_back(self, batch: Iterable[dict[str, Any]]) -> None:
        """A write failed: keep the records for the next attempt (newer fields win)."""
        with self.lock:
            for record in batch:
                newer = self.pending.get(record["request_id"])
                self.pending[record["request_id"]] = {**record, **(newer or {})}
            for person, amount in self.flushing_cost.items():
                self.pending_cost[person] = self.pending_cost.get(person, 0.0) + amount
            self.flushing_cost = {}

    def unwritten_cost(self, person: str | None = None) -> float:
        """Spend recorded here that the last store snapshot does not include (one person, or everyone)."""
        with self.lock:
            if person is None:
                return sum(self.pending_cost.values()) + sum(self.flushing_cost.values())
            return self.pending_cost.get(person, 0.0) + self.flushing_cost.get(person, 0.0)

    def __len__(self) -> int:
        return len(self.pending)


def write(store: Store, batch: list[dict[str, Any]]) -> None:
    """Write a batch in one transaction (upsert by request id) and note when each person last used their key."""
    if not batch:
        return
    rows = [tuple(_value(r, c) for c in COLUMNS) for r in batch]
    last_used: dict[str, float] = {}
    for record in batch:
        person, ts = record.get("person"), record.get("ts")
        if person and ts and not person.startswith("("):
            last_used[person] = max(ts, last_used.get(person, 0.0))
    with store.transaction():
        store.executemany(_UPSERT, rows)
        keys.touch(store, last_used)


def _value(record: dict[str, Any], column: str) -> Any:
    value = record.get(column)
    if column == "stream" and value is not None:
        return int(bool(value))
    return value
