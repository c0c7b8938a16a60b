"""Boot LiteLLM's proxy app in this process: offline defaults, the app, its speed patches, warm imports."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

log = logging.getLogger("cc_gateway.serve")


def quiet_environment(config_path: Path) -> None:
    """Make LiteLLM start offline and quiet: local cost map, no telemetry, no admin UI."""
    defaults = {
        # Every remote fetch LiteLLM 1.106 knows about has a local copy: use it.
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",
        "LITELLM_LOCAL_ANTHROPIC_BETA_HEADERS": "True",
        "LITELLM_LOCAL_BLOG_POSTS": "True",
        "LITELLM_LOCAL_POLICY_TEMPLATES": "True",
        "LITELLM_LOCAL_AUTOROUTER_PRESETS": "True",
        "LITELLM_TELEMETRY": "False",
        "LITELLM_DONT_SHOW_FEEDBACK_BOX": "true",
        "DISABLE_ADMIN_UI": "True",
        "DISABLE_SCHEMA_UPDATE": "True",
    }
    for name, value in defaults.items():
        os.environ.setdefault(name, value)
    os.environ["CONFIG_FILE_PATH"] = str(config_path)
    if str(config_path.parent) not in os.sys.path:
        os.sys.path.insert(0, str(config_path.parent))


def build_app(drain: Any, body_limit: int) -> Any:
    """Import LiteLLM's proxy app (slow: ~5 s) and wrap it in cc-gateway's middleware."""
    # The config reaches LiteLLM as CONFIG_FILE_PATH (quiet_environment); LiteLLM reads WORKER_CONFIG only
    # without it, so no save_worker_config call here.
    from litellm.proxy.proxy_server import app

    from cc_gateway.serve.litellm import install_patches
    from cc_gateway.serve.middleware import GatewayMiddleware

    install_patches(app)
    return GatewayMiddleware(app, drain=drain, body_limit=body_limit)


# Modules LiteLLM 1.106 imports on the first request (seen with -X importtime), ~2 s of CPU: imported
# before serving (and before forking workers) so that no worker pays for them on a client's request.
REQUEST_MODULES = (
    "openai.resources.chat",
    "litellm.litellm_core_utils.default_encoding",
    "litellm.proxy._experimental.mcp_server.mcp_server_manager",
    "litellm.proxy._experimental.mcp_server.auth.user_api_key_auth_mcp",
    "litellm.integrations.shadow_eval_logger",
    "litellm.integrations.otel.logger",
    "litellm.llms.anthropic.pass_through.messages.streaming_iterator",
    "litellm.proxy.guardrails.anthropic_sse",
    "litellm.types.litellm_core_utils.streaming_chunk_builder_utils",
    "litellm.types.proxy.litellm_pre_call_utils",
    "litellm.llms.custom_httpx.aiohttp_transport",
    "anyio._core._sockets",
)


def preload_request_modules() -> None:
    """Import what the first request would (a missing module only costs that request its import)."""
    import importlib

    for name in REQUEST_MODULES:
        try:
            importlib.import_module(name)
        except Exception as exc:  # an optional part LiteLLM handles itself at request time
            log.debug("preload of %s skipped: %s", name, type(exc).__name__)
