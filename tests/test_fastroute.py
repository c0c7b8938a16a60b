"""The route cache serves hot paths from the route FastAPI's own scan would pick, and follows route changes."""

from __future__ import annotations

import pytest
from fastapi import APIRouter, Depends, FastAPI, HTTPException, Request
from fastapi.testclient import TestClient

from cc_gateway.serve.litellm import fastroute


def _app() -> FastAPI:
    """An app shaped like LiteLLM's: many included routers, the hot path registered late, twice."""
    app = FastAPI()
    for number in range(30):
        filler = APIRouter()
        filler.add_api_route(f"/filler/{number}/{{item}}", lambda item: {"filler": item}, methods=["GET"])
        app.include_router(filler)

    def require_key(request: Request) -> None:
        if request.headers.get("x-api-key") != "good":
            raise HTTPException(status_code=401, detail="bad key")

    first = APIRouter(dependencies=[Depends(require_key)])
    first.add_api_route("/v1/messages", lambda: {"served_by": "first"}, methods=["POST"])
    first.add_api_route("/v1/models", lambda: {"served_by": "models"}, methods=["GET"])
    app.include_router(first)
    second = APIRouter()
    second.add_api_route("/v1/messages", lambda: {"served_by": "shadowed"}, methods=["POST"])
    app.include_router(second)
    return app


def test_hot_paths_reach_the_same_route_with_its_dependencies() -> None:
    """Cached or not, /v1/messages goes to the first registered route, whose router-level auth still runs."""
    app = _app()
    assert fastroute.install(app)
    scanned = []
    filler = app.router.routes[-3]  # the last filler, scanned before /v1/messages is found
    original_matches = filler.matches
    filler.matches = lambda scope: scanned.append(scope["path"]) or original_matches(scope)
    client = TestClient(app)
    for _ in range(3):  # the first request fills the cache, the others use it
        assert client.post("/v1/messages", headers={"x-api-key": "good"}).json() == {"served_by": "first"}
        assert client.post("/v1/messages", headers={"x-api-key": "bad"}).status_code == 401
        assert client.get("/v1/models", headers={"x-api-key": "good"}).json() == {"served_by": "models"}
    assert scanned.count("/v1/messages") == 2  # the first request only: the cache's probe, then FastAPI's scan
    assert client.get("/v1/messages", headers={"x-api-key": "good"}).status_code == 405
    assert client.get("/filler/3/x").json() == {"filler": "x"}
    assert client.get("/nowhere").status_code == 404


def test_a_route_added_in_front_takes_over_after_the_version_check(monkeypatch: pytest.MonkeyPatch) -> None:
    """When the route table changes, the next check of its version drops the remembered route."""
    monkeypatch.setattr(fastroute, "VERSION_CHECK_SECONDS", 0.0)
    app = _app()
    fastroute.install(app)
    client = TestClient(app)
    headers = {"x-api-key": "good"}
    assert client.post("/v1/messages", headers=headers).json() == {"served_by": "first"}
    assert client.post("/v1/messages", headers=headers).json() == {"served_by": "first"}
    front = APIRouter()
    front.add_api_route("/v1/messages", lambda: {"served_by": "front"}, methods=["POST"])
    app.include_router(front)
    app.router.routes.insert(0, app.router.routes.pop())
    app.router._mark_routes_changed()
    assert client.post("/v1/messages", headers=headers).json() == {"served_by": "front"}
    assert client.post("/v1/messages", headers=headers).json() == {"served_by": "front"}


def test_not_installed_over_a_router_with_its_own_middleware() -> None:
    """A router whose stack is not its plain scan is left alone."""
    app = _app()
    app.router.middleware_stack = lambda scope, receive, send: None
    assert not fastroute.install(app)
