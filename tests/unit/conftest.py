"""Unit tests: no Ray cluster. They run in seconds and need nothing but the sources.

The shared-cluster fixtures of ``tests/conftest.py`` are replaced here by ones that fail, so a test
that needs a cluster cannot hide among the unit tests; and every unit test is checked not to have
left a Ray connection behind.
"""

from __future__ import annotations

import pytest


def _refuse(name: str):
    @pytest.fixture(scope="session", name=name)
    def fixture():
        pytest.fail(f"unit tests must not start Ray (the test asked for {name!r}); move it to tests/integration/.")

    return fixture


ray_cluster = _refuse("ray_cluster")
ray_session = _refuse("ray_session")
yr_session = _refuse("yr_session")


def _connected() -> bool:
    import sys

    ray = sys.modules.get("ray")
    return ray is not None and ray.is_initialized()


@pytest.fixture(autouse=True)
def _no_ray_connection():
    before = _connected()
    yield
    if not before and _connected():
        pytest.fail("this unit test connected to Ray; move it to tests/integration/.")
