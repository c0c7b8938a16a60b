"""doctor's team checks: the team store (reachable, migrated, writable) and routes without prices."""

from __future__ import annotations

from cc_gateway.doctor import FAIL, FILES, OK, SKIP, WARN, CheckResult, Context, Entry, result

TEAM = FILES


def _team_url(ctx: Context) -> str | None:
    from cc_gateway.team.store import team_url

    gw = ctx.gateway
    return None if gw is None else team_url(gw.folder, gw.env)


def check_team_store(ctx: Context) -> CheckResult:
    """The team store answers, is at this cc-gateway's schema version and takes writes."""
    from cc_gateway.team.store import LATEST, Store, StoreError, display_url

    name = "team store"
    url = _team_url(ctx)
    if url is None:
        return result(TEAM, name, SKIP, "not a team gateway (no DATABASE_URL, no team.db)",
                      "`cc-gateway keys add NAME` or `init --team` makes it one")
    try:
        with Store.open(url, create=False, timeout=3) as store:
            version = store.version()
            if version < LATEST:
                return result(TEAM, name, WARN, f"{store.where} is at schema version {version} of {LATEST}",
                              "`cc-gateway serve` (or `keys list`) migrates it")
            store.check_writable()
            where = store.where
    except StoreError as exc:
        return result(TEAM, name, FAIL, str(exc), exc.hint or f"check DATABASE_URL ({display_url(url)})")
    return result(TEAM, name, OK, f"{where}: schema {LATEST}, writable")


def check_route_prices(ctx: Context) -> CheckResult:
    """Routes whose requests the ledger would record with a null cost."""
    from cc_gateway.team.pricing import litellm_price_table, route_prices

    name = "route prices"
    gw = ctx.gateway
    if gw is None or _team_url(ctx) is None:
        return result(TEAM, name, SKIP, "not a team gateway: no usage ledger")
    table = litellm_price_table()
    unpriced = [r.name for r in gw.routes if route_prices(r.model_info, r.model, table) is None]
    if not unpriced:
        return result(TEAM, name, OK, f"every route has a price ({len(gw.routes)} route(s))")
    return result(
        TEAM, name, WARN,
        f"no price for {', '.join(unpriced)}: their usage is recorded with tokens and a null cost (limits ignore it)",
        f"cc-gateway add-model {unpriced[0]} ... --price-in USD_PER_MTOK --price-out USD_PER_MTOK",
    )


CHECKS: list[Entry] = [
    (TEAM, "team store", check_team_store),
    (TEAM, "route prices", check_route_prices),
]
