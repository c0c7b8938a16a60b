"""`cc-gateway doctor`: checks that find what is wrong with a gateway set-up and say how to fix it.

`run_checks()` runs every registered check concurrently in a thread pool (each with its own timeout)
and returns the results in report order. Nothing here prints. The checks live by what they look at:
`files` (the folder and the known traps), `gateway` (the running gateway, compliance), `routes` (one
probe per route), `claude` (Claude Code). Facts several checks need are computed once per run through
`Context.once()` (see `base`).
"""

from __future__ import annotations

import concurrent.futures
import importlib
import time

from cc_gateway.doctor.base import (
    FAIL,
    GROUP_ORDER,
    REGISTRY,
    Check,
    CheckResult,
    Context,
    DoctorOptions,
    Report,
    elapsed_ms,
)

__all__ = ["CheckResult", "DoctorOptions", "Report", "run_checks"]

#: The check modules, in report order within each group (each registers its checks when imported).
CHECK_MODULES = ("files", "routing", "gateway", "claude")


def run_checks(options: DoctorOptions) -> Report:
    """Run every check (concurrently, each with a timeout) and return the results in report order.

    Two waves: everything at once, then the checks that compare against the route latencies.
    """
    from cc_gateway.doctor import routes

    for module in CHECK_MODULES:
        importlib.import_module(f"cc_gateway.doctor.{module}")
    start = time.perf_counter()
    ctx = Context(options)
    first = [*REGISTRY, *routes.probe_checks(ctx)]
    later = [c for c in first if c.after_probes]
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=16, thread_name_prefix="doctor")
    try:
        results = _gather(ctx, pool, [c for c in first if not c.after_probes]) + _gather(ctx, pool, later)
    finally:
        pool.shutdown(wait=False, cancel_futures=True)
        ctx.close()
    results.sort(key=lambda r: GROUP_ORDER.index(r.group) if r.group in GROUP_ORDER else len(GROUP_ORDER))
    return Report(results, elapsed_ms(start), ctx.url, ctx.gateway.folder if ctx.gateway else None)


def _gather(ctx: Context, pool: concurrent.futures.Executor, checks: list[Check]) -> list[CheckResult]:
    """Run checks in the pool; a check past its deadline, or one that raises, becomes a failed row."""
    futures = [(c.row, pool.submit(c.run, ctx)) for c in checks]
    deadline = time.monotonic() + max(ctx.options.check_timeout, ctx.options.probe_timeout + 5)
    rows = []
    for row, future in futures:
        try:
            rows.append(future.result(timeout=max(0.1, deadline - time.monotonic())))
        except concurrent.futures.TimeoutError:
            rows.append(row(FAIL, "the check did not finish in time", "run doctor again"))
        except Exception as exc:  # a crashing check becomes a row; the others still run
            detail = f"the check crashed: {type(exc).__name__}: {ctx.scrub(str(exc))}"
            rows.append(row(FAIL, detail, "please report this with `cc-gateway doctor --json`"))
    return rows
