"""Logging for `serve`: every logger (ours, LiteLLM's, uvicorn's) through one redacting stderr handler."""

from __future__ import annotations

import logging

from cc_gateway.core.secrets import RedactingFilter, secret_values
from cc_gateway.serve.litellm import LITELLM_LOGGERS


def configure_logging(level: str, environ: dict[str, str]) -> None:
    """Route every logger (ours, LiteLLM's, uvicorn's) through one redacting stderr handler."""
    import sys

    redactor = RedactingFilter(secret_values(environ))
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s", "%H:%M:%S"))
    # On the handler as well as on LiteLLM's loggers: a logger's filters do not see its children's
    # records, and LiteLLM 1.110 reports a 401 on the child `LiteLLM Proxy.stdout`.
    handler.addFilter(_IrrelevantFilter())
    handler.addFilter(redactor)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.WARNING)
    numeric = getattr(logging, level.upper())
    for name in ("cc_gateway", "uvicorn.error"):
        logging.getLogger(name).setLevel(numeric)
    server_log = logging.getLogger("uvicorn.error")
    server_log.filters[:] = [f for f in server_log.filters if not isinstance(f, _TracebackFilter)]
    if numeric > logging.DEBUG:
        server_log.addFilter(_TracebackFilter())
    for name in LITELLM_LOGGERS:
        lib = logging.getLogger(name)
        lib.handlers[:] = []
        lib.propagate = True
        lib.setLevel(numeric if numeric <= logging.DEBUG else max(numeric, logging.WARNING))
        # On the logger too: LiteLLM attaches a handler of its own while it imports (before the
        # second call), and a logger's filters run whatever handler prints the record.
        lib.filters[:] = [
            f for f in lib.filters if not isinstance(f, RedactingFilter | _IrrelevantFilter | _FailedCallFilter)
        ]
        lib.addFilter(redactor)
        lib.addFilter(_IrrelevantFilter())
        if numeric > logging.DEBUG:
            lib.addFilter(_FailedCallFilter())
    logging.getLogger("uvicorn.access").disabled = True


class _TracebackFilter(logging.Filter):
    """Shorten the traceback uvicorn logs when LiteLLM fails to start to its last line (the cause).

    LiteLLM's start-up errors say what to fix in that line (e.g. "Check 'router_settings.routing_strategy'
    in your config.yaml"); --log-level debug keeps the whole traceback.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        """Replace a traceback message by its final line."""
        message = record.getMessage()
        if message.startswith("Traceback (most recent call last):"):
            last = [line for line in message.strip().splitlines() if line.strip()][-1].strip()
            if last.endswith("CancelledError"):
                return False  # start-up cut short by a second Ctrl-C: a stop asked for, not a failure
            record.msg, record.args = f"LiteLLM could not start: {last}", None
        return True


class _FailedCallFilter(logging.Filter):
    """Below debug: drop LiteLLM's report of a failed LLM call (its error, then a ~280-line traceback, per
    request). An upstream that is down is an expected condition: the request's access line carries the
    error the client got, one line per request; --log-level debug keeps LiteLLM's report."""

    PREFIX = "litellm.proxy.proxy_server._handle_llm_api_exception()"

    def filter(self, record: logging.LogRecord) -> bool:
        """Keep every other record."""
        return not str(record.msg).startswith(self.PREFIX)


class _IrrelevantFilter(logging.Filter):
    """Drop LiteLLM records that say nothing true about a cc-gateway: its report of our own 401 (the
    access line says 401 already) and start-up warnings about features serve turns off (the admin
    UI's sign-in, database team records that custom_auth would skip)."""

    NOT_FOR_US = (
        "trusted_proxy_ranges is not set",
        "custom_auth is configured but 'custom_auth_run_common_checks' is not set",
    )

    def filter(self, record: logging.LogRecord) -> bool:
        """Keep every other record."""
        text = str(record.msg)
        if text.startswith("litellm.proxy.proxy_server.user_api_key_auth()"):
            return "gateway key:" not in record.getMessage()
        return not text.startswith(self.NOT_FOR_US)
