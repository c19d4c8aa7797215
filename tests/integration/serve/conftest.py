"""Serve on the shared cluster for one test module at a time."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="module")
def serve_address(yr_session):
    """Serve's HTTP proxy on 127.0.0.1 and a free port; Serve is shut down after the module."""
    from yuanrong.endpoint import shutdown, start

    address = start()
    try:
        yield address
    finally:
        shutdown()
