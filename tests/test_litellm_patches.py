"""Every LiteLLM/FastAPI patch in serve/litellm/ engages on the pinned LiteLLM (an upgrade that breaks one fails here)."""

from __future__ import annotations

import logging
import re

import pytest

from cc_gateway.serve import litellm as patches


@pytest.fixture(scope="module")
def proxy_app() -> object:
    """LiteLLM's real proxy app (the import takes a few seconds)."""
    from litellm.proxy.proxy_server import app

    return app


def test_every_patch_engages_on_the_pinned_litellm(proxy_app: object, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG, logger="cc_gateway.serve"):
        engaged = patches.install_patches(proxy_app)
    assert engaged == {patch.name: True for patch in patches.PATCHES}
    for patch in patches.PATCHES:  # serve --log-level debug shows each one's state
        assert f"patch {patch.name}: engaged" in caplog.text


def test_a_patch_that_cannot_engage_is_reported(caplog: pytest.LogCaptureFixture) -> None:
    """A router with its own middleware (not FastAPI's shape) is left alone, and the report says so."""
    from fastapi import FastAPI

    app = FastAPI()
    app.router.middleware_stack = lambda *args: None  # not the router's own app: the route cache must not engage
    with caplog.at_level(logging.DEBUG, logger="cc_gateway.serve"):
        engaged = patches.install_patches(app)
    assert engaged["fastroute"] is False
    assert re.search(r"patch fastroute: NOT engaged", caplog.text)


def test_the_pinned_litellm_is_the_one_the_table_was_checked_against() -> None:
    from importlib.metadata import version

    assert version("litellm") == patches.CHECKED_AGAINST


def test_every_internal_names_its_user() -> None:
    from pathlib import Path

    root = Path(patches.__file__).resolve().parents[2]
    for internal in patches.INTERNALS:
        module = internal.used_by.split()[0]
        assert (root / module).exists(), f"{internal.name}: {module} does not exist"
