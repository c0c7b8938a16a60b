"""doctor's team checks: the team store (reachable, migrated, writable) and routes without prices."""

from __future__ import annotations

from cc_gateway.doctor.base import FAIL, FILES, GATEWAY, OK, WARN, CheckResult, Context, Row, check


def _team_url(ctx: Context) -> str | None:
    from cc_gateway.team.store import team_url

    gw = ctx.gateway
    return None if gw is None else team_url(gw.folder, gw.env)


@check(GATEWAY, "team store", needs_config=True)
def check_team_store(ctx: Context, row: Row) -> CheckResult:
    """The team store answers, is at this cc-gateway's schema version and takes writes."""
    from cc_gateway.team.store import LATEST, Store, StoreError, display_url

    url = _team_url(ctx)
    if url is None:
        return row(OK, "not a team gateway: no team store to check (`keys add NAME` or `init --team` makes one)")
    try:
        with Store.open(url, create=False, timeout=3) as store:
            version = store.version()
            if version < LATEST:
                return row(WARN, f"{store.where} is at schema version {version} of {LATEST}",
                           "`cc-gateway serve` (or `cc-gateway keys list`) migrates it")
            store.check_writable()
            where = store.where
    except StoreError as exc:
        return row(FAIL, str(exc), exc.hint or f"check DATABASE_URL ({display_url(url)})")
    return row(OK, f"{where}: schema version {LATEST}, writable")


@check(FILES, "route prices", needs_config=True)
def check_route_prices(ctx: Context, row: Row) -> CheckResult:
    """Routes whose requests the usage ledger would record with a null cost."""
    from cc_gateway.team.pricing import litellm_price_table, route_prices

    if _team_url(ctx) is None:
        return row(OK, "not a team gateway: no usage ledger to price")
    routes = ctx.gateway.routes
    table = litellm_price_table()
    # A wildcard route is priced per model asked for, from LiteLLM's data; it is not listed.
    unpriced = [r.name for r in routes if "*" not in r.model and route_prices(r.model_info, r.model, table) is None]
    if not unpriced:
        return row(OK, f"every route has a price ({len(routes)} route(s); wildcard routes per model asked)")
    return row(
        WARN,
        f"no price for {', '.join(unpriced)}: recorded with tokens and a null cost, which no limit counts",
        f"cc-gateway add-model {unpriced[0]} MODEL --price-in USD_PER_MTOK --price-out USD_PER_MTOK",
    )
