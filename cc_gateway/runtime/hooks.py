"""LiteLLM callbacks cc-gateway adds to every preset (loaded via `litellm_settings.callbacks`).

- record the model and the deployment for the access log;
- clamp `max_tokens` to the route's `model_info.max_output_tokens` (Claude Code asks for 32000);
- answer 424 naming the variable when a route's key variable is empty (x-should-retry: false);
- decide what a failed request tells the client (runtime.failures);
- keep an upstream's Retry-After so the client sees it on a 429;
- log once when a Claude model id is served by a catch-all route.
"""

from __future__ import annotations

import fnmatch
import functools
import logging
import math
import os
from pathlib import Path
from typing import Any

from litellm.integrations.custom_logger import CustomLogger

from cc_gateway.core.secrets import is_placeholder
from cc_gateway.runtime import context, failures, rules, team

log = logging.getLogger("cc_gateway.hooks")

ENV_PREFIX = "os.environ/"


def current_router() -> Any:
    """LiteLLM's live router (the runtime's one read of `proxy_server.llm_router`; see serve/litellm)."""
    from litellm.proxy import proxy_server

    return proxy_server.llm_router


def deployments_for(model: str) -> list[dict[str, Any]]:
    """Return the deployments a model name resolves to: exact name, alias, then wildcard routes."""
    router = current_router()
    if router is None or not model:
        return []
    model = (router.model_group_alias or {}).get(model, model)
    if isinstance(model, dict):
        model = model.get("model", "")
    exact = [d for d in router.model_list if d.get("model_name") == model]
    if exact:
        return exact
    return [d for d in router.model_list if "*" in d.get("model_name", "") and fnmatch.fnmatch(model, d["model_name"])]


@functools.cache
def _configured_key_variables() -> dict[tuple[str, str], str]:
    """(model_name, model) -> the key variable the config names, read once from config.yaml.

    LiteLLM replaces `os.environ/NAME` by its value when it loads the routes, so the name is
    only in the file.
    """
    path = os.environ.get("CONFIG_FILE_PATH")
    if not path:
        return {}
    try:
        from cc_gateway.core.files import load_yaml

        entries = (load_yaml(Path(path)) or {}).get("model_list") or []
    except Exception:  # the proxy already loaded this file; never fail a request over it
        log.warning("could not re-read %s for the route key variables", path)
        return {}
    found = {}
    for entry in entries:
        params = entry.get("litellm_params") or {}
        raw = params.get("api_key")
        if isinstance(raw, str) and raw.startswith(ENV_PREFIX):
            found[(str(entry.get("model_name")), str(params.get("model")))] = raw[len(ENV_PREFIX) :]
    return found


def missing_key_variable(deployment: dict[str, Any]) -> str | None:
    """Return the name of the deployment's key variable when it is empty or a placeholder, else None."""
    name = key_variable(deployment)
    return name if name and is_placeholder(os.environ.get(name)) else None


#: Larger max_tokens values are refused (400); smaller ones are clamped to the route's max_output_tokens.
MAX_TOKENS_CEILING = 2**31 - 1


def _bad_request(message: str) -> Exception:
    from fastapi import HTTPException

    return HTTPException(status_code=400, detail=message)


def _reject_bad_input(model: str, data: dict, deployments: list[dict[str, Any]]) -> None:
    """Refuse, with a 400 naming the field, what LiteLLM would pass on or answer with a 500."""
    if "messages" in data and data["messages"] == []:
        raise _bad_request("messages: at least one message is required")
    for key in ("max_tokens", "max_completion_tokens"):
        value = data.get(key)
        if isinstance(value, int) and not isinstance(value, bool) and not 1 <= value <= MAX_TOKENS_CEILING:
            raise _bad_request(f"{key}: {value} is out of range (1 to {MAX_TOKENS_CEILING})")
    router = current_router()
    if model and not deployments and router is not None and not _router_knows(router, model):
        routes = list(dict.fromkeys(str(d.get("model_name")) for d in router.model_list))
        aliases = list(router.model_group_alias or {})
        listed = ", ".join(routes) + (f"; aliases: {', '.join(aliases)}" if aliases else "")
        raise _bad_request(f"model {model!r} is not routed by this gateway; its routes: {listed}")


def _route_names() -> list[str]:
    router = current_router()
    return list(dict.fromkeys(str(d.get("model_name")) for d in router.model_list)) if router is not None else []


def _router_knows(router: Any, model: str) -> bool:
    """Ask LiteLLM's router itself (aliases, wildcards, provider patterns, default deployment)."""
    try:
        return bool(router.get_candidate_model_ids_for_route(model))
    except Exception:  # never refuse a request because this lookup failed
        return True


class GatewayHooks(CustomLogger):
    """The callbacks every cc-gateway preset loads."""

    def __init__(self) -> None:
        super().__init__()
        self._catch_all_logged: set[str] = set()

    async def async_pre_call_hook(self, user_api_key_dict: Any, cache: Any, data: dict, call_type: Any) -> Any:
        """Check and adjust a request before it is routed."""
        info = context.info()
        if info is not None:
            info.model = str(data.get("model") or "")
            info.stream = data.get("stream") is True
        # routing_rules first: what follows (and LiteLLM's router) works on the route they pick
        rules.route(data, current_router())
        model = str(data.get("model") or "")
        deployments = deployments_for(model)
        _reject_bad_input(model, data, deployments)
        team.check(info, model, deployments, _route_names)
        if deployments:
            if info is not None:
                info.route = str(deployments[0].get("model_name", ""))
            self._check_available(model, deployments)
            self._clamp_max_tokens(data, deployments)
            self._note_catch_all(model, deployments)
        return data

    async def async_log_success_event(self, kwargs: dict, response_obj: Any, start_time: Any, end_time: Any) -> None:
        """The team ledger: the usage LiteLLM parsed (a no-op unless the request is being recorded)."""
        team.from_litellm(kwargs, response_obj)

    def _check_available(self, model: str, deployments: list[dict[str, Any]]) -> None:
        missing = [missing_key_variable(d) for d in deployments]
        if all(missing):
            from fastapi import HTTPException

            failure = failures.missing_key(route_facts(deployments[0], key_env=missing[0]))
            info = context.info()
            if info is not None:
                info.failure = failure
            raise HTTPException(status_code=failure.status, detail=failure.message)

    @staticmethod
    def _clamp_max_tokens(data: dict, deployments: list[dict[str, Any]]) -> None:
        limits = [(d.get("model_info") or {}).get("max_output_tokens") for d in deployments]
        limits = [int(x) for x in limits if isinstance(x, int | str) and str(x).isdigit()]
        if not limits:
            return
        cap = min(limits)
        for key in ("max_tokens", "max_completion_tokens"):
            if isinstance(data.get(key), int) and data[key] > cap:
                data[key] = cap
        # Claude Code pairs max_tokens 32000 with a thinking budget of 31999; Anthropic-format
        # upstreams refuse a budget that is not below max_tokens, so lower it with the cap.
        thinking = data.get("thinking")
        budget = thinking.get("budget_tokens") if isinstance(thinking, dict) else None
        if isinstance(budget, int) and budget >= cap:
            if cap - 1 < 1024:  # below Anthropic's smallest budget: no room to think
                data.pop("thinking")
            else:  # the same share as Claude Code's own 31999 of 32000
                data["thinking"] = {**thinking, "budget_tokens": cap - 1}

    def _note_catch_all(self, model: str, deployments: list[dict[str, Any]]) -> None:
        name = deployments[0].get("model_name", "")
        if "*" in name and model not in self._catch_all_logged:
            self._catch_all_logged.add(model)
            log.info("model %s has no route of its own: served by catch-all route %s", model, name)

    def log_pre_api_call(self, model: Any, messages: Any, kwargs: dict) -> None:
        """Record which deployment is being called (for the access log; LiteLLM calls the sync hook)."""
        info = context.info()
        if info is not None:
            params = kwargs.get("litellm_params") or {}
            provider = kwargs.get("custom_llm_provider") or params.get("custom_llm_provider") or ""
            name = str(kwargs.get("model") or model or "")
            info.upstream = f"{provider}/{name}" if provider and not name.startswith(f"{provider}/") else name

    async def async_post_call_failure_hook(
        self,
        request_data: dict,
        original_exception: Exception,
        user_api_key_dict: Any,
        traceback_str: str | None = None,
    ) -> Any:
        """Keep the upstream's Retry-After (LiteLLM drops it); decide what the client is told (failures)."""
        info = context.info()
        if info is None:
            return None
        if info.retry_after is None:
            info.retry_after = retry_after_of(original_exception)
        if info.failure is None and not info.refused_here:  # the team's own 403/429 are not upstream failures
            info.failure = classify_failure(original_exception, info.model)
        return None


def key_variable(deployment: dict[str, Any]) -> str | None:
    """The name of the variable a deployment's key comes from (None: no key, or a literal one)."""
    params = deployment.get("litellm_params") or {}
    raw = params.get("api_key")
    name = (deployment.get("model_info") or {}).get("cc_gateway_key_env")
    if not name and isinstance(raw, str) and raw.startswith(ENV_PREFIX):
        name = raw[len(ENV_PREFIX) :]
    if not name:
        name = _configured_key_variables().get((str(deployment.get("model_name")), str(params.get("model"))))
    return name or None


#: Where LiteLLM sends a provider's requests when a route names no api_base.
_DEFAULT_BASES = {"anthropic": "https://api.anthropic.com", "openai": "https://api.openai.com/v1"}


def route_facts(deployment: dict[str, Any], key_env: str | None = None) -> failures.Route:
    """What an error message says about a route: name, upstream model, URL, key variable, window."""
    params = deployment.get("litellm_params") or {}
    info = deployment.get("model_info") or {}
    model = str(params.get("model") or "")
    base = params.get("api_base") or _DEFAULT_BASES.get(model.split("/", 1)[0], "")
    window = info.get("max_input_tokens")
    return failures.Route(
        name=str(deployment.get("model_name") or ""),
        upstream=model,
        api_base=str(base or ""),
        key_env=key_env or key_variable(deployment) or "",
        max_input_tokens=window if isinstance(window, int) else None,
    )


def _custom_providers() -> set[str]:
    import litellm

    return {str(item.get("provider")) for item in litellm.custom_provider_map or [] if isinstance(item, dict)}


def classify_failure(exc: BaseException, model: str) -> failures.Failure | None:
    """What the client gets for a failed request to `model` (None: LiteLLM's answer stands)."""
    deployments = deployments_for(model)
    if not deployments:
        return None
    deployment = deployments[0]
    facts = route_facts(deployment)
    if facts.upstream.split("/", 1)[0] in _custom_providers():
        return None  # cc-gateway's own handlers (the bridge) word their errors themselves
    pooled = (deployment.get("model_info") or {}).get("cc_gateway_credential_pool") and not facts.key_env
    status = failures.status_of(exc)
    if pooled and status in (401, 403):
        return None  # the client's own Claude login (passthrough) or the pool's: the pool reports it
    try:
        return failures.classify(exc, facts)
    except Exception:  # never fail a response over its wording
        log.warning("could not classify a %s", type(exc).__name__)
        return None


def retry_after_of(exc: BaseException) -> str | None:
    """Find a Retry-After value on a LiteLLM exception (or the exceptions it wraps)."""
    seen = 0
    while exc is not None and seen < 5:
        for source in (
            getattr(exc, "litellm_response_headers", None),
            getattr(getattr(exc, "response", None), "headers", None),
            getattr(exc, "headers", None),
        ):
            if source:
                try:
                    value = source.get("retry-after") or source.get("Retry-After")
                except AttributeError:
                    value = None
                if value:
                    return str(value)
        cooldown = getattr(exc, "cooldown_time", None)  # RouterRateLimitError: every deployment resting
        if isinstance(cooldown, int | float) and cooldown > 0:
            return str(math.ceil(cooldown))
        exc = exc.__cause__ or exc.__context__  # type: ignore[assignment]
        seen += 1
    return None


handler = GatewayHooks()
