"""The usage report's queries: totals per person, model, route, day or session, with a daily series."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from cc_gateway.core.errors import UsageError
from cc_gateway.team.store import Store

GROUPS = {
    "person": "COALESCE(person, '-')",
    "model": "COALESCE(model, '-')",
    "route": "COALESCE(route, '-')",
    "session": "COALESCE(session_id, '-')",
    "day": "{day}",
}
CANCELLED = 499  # the client went away before the response was complete
SPARKS = "▁▂▃▄▅▆▇█"


@dataclass
class Row:
    """Totals for one group (or for everything)."""

    name: str
    requests: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    cost: float = 0.0
    unpriced: int = 0  # answered requests with no cost (their route has no price)
    errors: int = 0
    latency_ms: float = 0.0  # mean
    daily: list[float] = field(default_factory=list)  # cost per day over the report's days

    @property
    def cache_hit_rate(self) -> float | None:
        """Share of input tokens read from the cache."""
        total = self.input_tokens + self.cache_read_tokens + self.cache_write_tokens
        return self.cache_read_tokens / total if total else None

    @property
    def error_rate(self) -> float | None:
        """Share of requests that failed (cancelled ones are not failures)."""
        return self.errors / self.requests if self.requests else None

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready, with the derived rates."""
        data = asdict(self)
        data["cost"] = round(self.cost, 6)
        data["latency_ms"] = round(self.latency_ms, 1)
        data["cache_hit_rate"] = None if self.cache_hit_rate is None else round(self.cache_hit_rate, 4)
        data["error_rate"] = None if self.error_rate is None else round(self.error_rate, 4)
        return data


@dataclass
class Report:
    """A usage report."""

    by: str
    since: datetime
    until: datetime
    person: str | None
    rows: list[Row]
    total: Row
    days: list[str]

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return {
            "by": self.by,
            "since": self.since.isoformat(),
            "until": self.until.isoformat(),
            "person": self.person,
            "days": self.days,
            "rows": [r.as_dict() for r in self.rows],
            "total": self.total.as_dict(),
        }


def report(store: Store, *, by: str = "person", since: datetime, person: str | None = None,
           until: datetime | None = None) -> Report:
    """Sum the ledger from `since` (to `until`, default now), grouped `by`."""
    if by not in GROUPS:
        raise UsageError(f"unknown grouping {by!r}", hint=f"use one of: {', '.join(GROUPS)}")
    until = until or datetime.now(UTC)
    first_day, last_day = int(since.timestamp() // 86400), int(until.timestamp() // 86400)
    days = list(range(first_day, last_day + 1))[-366:]
    where, params = "ts >= ? AND ts <= ?", [since.timestamp(), until.timestamp()]
    if person:
        where += " AND person = ?"
        params.append(person)
    sql = (
        f"SELECT {GROUPS[by]}, {{day}}, COUNT(*), SUM(input_tokens), SUM(output_tokens), SUM(cache_read_tokens),"
        " SUM(cache_write_tokens), SUM(cost),"
        f" SUM(CASE WHEN cost IS NULL AND status < 400 THEN 1 ELSE 0 END),"
        f" SUM(CASE WHEN status >= 400 AND status <> {CANCELLED} THEN 1 ELSE 0 END), SUM(latency_ms)"
        f" FROM ccg_usage WHERE {where} AND request_id NOT LIKE 'ccg-probe-%' GROUP BY 1, 2"
    )
    groups: dict[str, Row] = {}
    total = Row("total", daily=[0.0] * len(days))
    latency: dict[str, float] = {}
    index = {d: i for i, d in enumerate(days)}
    for name, day, count, inp, out, read, write, cost, unpriced, errors, lat in store.query(sql, params):
        key = _day_name(int(name)) if by == "day" else str(name)
        row = groups.setdefault(key, Row(key, daily=[0.0] * len(days)))
        for target in (row, total):
            target.requests += int(count)
            target.input_tokens += int(inp or 0)
            target.output_tokens += int(out or 0)
            target.cache_read_tokens += int(read or 0)
            target.cache_write_tokens += int(write or 0)
            target.cost += float(cost or 0.0)
            target.unpriced += int(unpriced or 0)
            target.errors += int(errors or 0)
            latency[target.name] = latency.get(target.name, 0.0) + float(lat or 0.0)
            if int(day) in index:
                target.daily[index[int(day)]] += float(cost or 0.0)
    for row in [*groups.values(), total]:
        row.latency_ms = latency.get(row.name, 0.0) / row.requests if row.requests else 0.0
    ordered = sorted(groups.values(), key=lambda r: r.name) if by == "day" else sorted(
        groups.values(), key=lambda r: (-r.cost, -r.requests, r.name))
    return Report(by, since, until, person, ordered, total, [_day_name(d) for d in days])


def _day_name(day: int) -> str:
    return (datetime(1970, 1, 1, tzinfo=UTC) + timedelta(days=day)).strftime("%Y-%m-%d")


def sparkline(values: list[float]) -> str:
    """`▁▃█` for a series (empty days are the lowest bar)."""
    top = max(values, default=0.0)
    if top <= 0:
        return SPARKS[0] * len(values)
    return "".join(SPARKS[min(len(SPARKS) - 1, int(v / top * (len(SPARKS) - 1) + 0.5))] for v in values)


def spend_this_period(store: Store, person: str, period_start: float) -> float:
    """A person's spend since a period's start (for `keys list`)."""
    rows = store.query("SELECT SUM(cost) FROM ccg_usage WHERE person = ? AND ts >= ?", (person, period_start))
    return float(rows[0][0] or 0.0)
