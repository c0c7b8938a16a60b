"""Spend limits: `AMOUNT/PERIOD` parsing, period boundaries (UTC) and the message a client sees."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation

from cc_gateway.core.errors import UsageError

#: The CLI's period names and the Admin API's (Anthropic's spend-limits wire shape).
PERIODS = ("day", "week", "month")
API_PERIODS = {"day": "daily", "week": "weekly", "month": "monthly"}
FROM_API = {v: k for k, v in API_PERIODS.items()}
_LIMIT = re.compile(r"^\s*\$?\s*(?P<amount>[^/\s]+)\s*/\s*(?P<period>[A-Za-z]+)\s*$")
MAX_CENTS = 10**12  # ten billion dollars: anything above is a typo


@dataclass(frozen=True)
class Limit:
    """A cap on spend in one period: `amount_cents` per `period` (day, week or month)."""

    period: str
    amount_cents: int

    @property
    def dollars(self) -> str:
        """The amount as `$20.00`."""
        return f"${self.amount_cents / 100:,.2f}"

    def __str__(self) -> str:
        return f"{self.dollars}/{self.period}"


def parse_period(text: str) -> str:
    """Return `day`, `week` or `month` for a CLI or API period name; UsageError otherwise."""
    name = text.strip().lower()
    name = FROM_API.get(name, name)
    if name.endswith("s") and name[:-1] in PERIODS:
        name = name[:-1]
    if name not in PERIODS:
        raise UsageError(
            f"unknown period {text!r}", hint="use day, week or month (daily, weekly, monthly), e.g. 20/day"
        )
    return name


def parse_amount_cents(text: str) -> int:
    """Parse a dollar amount (`20`, `$20.50`) into cents; UsageError for a negative or bad one."""
    raw = text.strip().lstrip("$").replace(",", "")
    try:
        value = Decimal(raw)
    except InvalidOperation:
        raise UsageError(f"amount {text!r} is not a number", hint="write dollars, e.g. 20 or 12.50") from None
    if not value.is_finite() or value < 0:
        raise UsageError(f"amount {text!r} is negative or not finite", hint="a limit is 0 or more dollars")
    cents = int((value * 100).to_integral_value())
    if cents > MAX_CENTS:
        raise UsageError(f"amount {text!r} is too large", hint="a limit is at most $10,000,000,000")
    return cents


def parse_limit(text: str) -> Limit:
    """Parse `AMOUNT/PERIOD` (`20/day`, `$150/month`, `12.50/week`)."""
    match = _LIMIT.match(text or "")
    if not match:
        raise UsageError(f"limit {text!r} is not AMOUNT/PERIOD", hint="e.g. --limit 20/day or --limit 150/month")
    period = parse_period(match["period"])
    return Limit(period, parse_amount_cents(match["amount"]))


def period_start(period: str, now: datetime) -> datetime:
    """The UTC start of the period holding `now` (weeks start on Monday)."""
    now = now.astimezone(UTC)
    day = now.replace(hour=0, minute=0, second=0, microsecond=0)
    if period == "day":
        return day
    if period == "week":
        return day - timedelta(days=day.weekday())
    if period == "month":
        return day.replace(day=1)
    raise ValueError(period)


def period_end(period: str, now: datetime) -> datetime:
    """The UTC end of the period holding `now` (the start of the next one)."""
    start = period_start(period, now)
    if period == "day":
        return start + timedelta(days=1)
    if period == "week":
        return start + timedelta(days=7)
    return (start + timedelta(days=32)).replace(day=1)


def format_reset(moment: datetime) -> str:
    """`2026-12-05 00:00 UTC`."""
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def limit_message(who: str, limit: Limit, spent: float, resets: datetime) -> str:
    """The message a client shows as is when a limit is reached."""
    return f"spend limit {limit} reached for {who} (spent ${spent:,.2f}); resets {format_reset(resets)}"


def parse_since(text: str, now: datetime) -> datetime:
    """`7d`, `12h`, `2w` back from now, or a date `2026-12-01` (UTC midnight)."""
    raw = text.strip().lower()
    match = re.fullmatch(r"(\d+)\s*([hdw])", raw)
    if match:
        hours = {"h": 1, "d": 24, "w": 24 * 7}[match[2]] * int(match[1])
        return now - timedelta(hours=hours)
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise UsageError(f"--since {text!r} is neither a duration nor a date", hint="e.g. 7d, 24h, 2w or 2026-12-01") from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


def parse_duration(text: str) -> timedelta:
    """`30d`, `12h`, `2w`, `90m` for --expires."""
    match = re.fullmatch(r"\s*(\d+)\s*([mhdw])\s*", text or "")
    if not match or int(match[1]) <= 0:
        raise UsageError(f"duration {text!r} is not understood", hint="e.g. 30d, 12h, 2w or 90m")
    minutes = {"m": 1, "h": 60, "d": 60 * 24, "w": 60 * 24 * 7}[match[2]]
    return timedelta(minutes=minutes * int(match[1]))
