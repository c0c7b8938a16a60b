"""`cc-gateway serve`: LiteLLM's proxy in this process, safe by default.

- `preflight`: everything checked before LiteLLM loads (fast, clear errors, no LiteLLM import).
- `logs`: one redacting handler for every logger.
- `server`: uvicorn, the worker supervisor and the drain.
- `middleware`: cc-gateway's ASGI layer in front of LiteLLM's app (access log, errors, drain, limits).
- `litellm/`: the only modules that touch LiteLLM or FastAPI internals (boot, speed patches).
"""
