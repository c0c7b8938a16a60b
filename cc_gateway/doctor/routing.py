"""doctor's `routing rules` check: the rules parse, every target exists and can take what it is sent."""

from __future__ import annotations

import importlib.util

from cc_gateway.core.errors import ConfigError
from cc_gateway.doctor.base import FAIL, FILES, OK, WARN, CheckResult, Context, Row, check


@check(FILES, "routing rules", needs_config=True)
def check_routing_rules(ctx: Context, row: Row) -> CheckResult:
    """routing_rules parse; each target is a route that takes what its rule sends; hooks can be found."""
    from cc_gateway.routing import RouteTable, load_rules
    from cc_gateway.routing.checks import rule_problems

    gw = ctx.gateway
    try:
        rules = load_rules(gw.config_path, gw.config)
    except ConfigError as exc:
        return row(FAIL, str(exc), exc.hint or "")
    if not rules:
        return row(OK, "no routing_rules: each request goes to the route its model names")
    problems = rule_problems(rules, RouteTable.from_config(gw.config))
    for rule in rules:
        if rule.hook and not _hook_found(gw.folder, rule.hook):
            return row(FAIL, f"{gw.config_path}:{rule.line}: hook {rule.hook}: no module {rule.hook.rpartition('.')[0]}",
                       "put it next to config.yaml (or install it); `serve` refuses to start without it")  # fmt: skip
    if not problems:
        return row(
            OK, f"{len(rules)} rules ({', '.join(r.label for r in rules)}); every target can take what it is sent"
        )
    first = problems[0]
    more = f" (+{len(problems) - 1} more)" if len(problems) > 1 else ""
    status = FAIL if first.status == "fail" else WARN
    return row(status, f"{gw.config_path}:{first.rule.line}: {first.message}{more}", first.hint)


def _hook_found(folder: object, ref: str) -> bool:
    """Whether a hook's module exists, without importing it (it may import LiteLLM: seconds)."""
    module = ref.rpartition(".")[0]
    if (folder / (module.replace(".", "/") + ".py")).is_file():  # type: ignore[operator]
        return True
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False
