"""Timeouts of yr.get and yr.get_instance: NaN, infinities and non-numbers are refused by name."""

from __future__ import annotations

import pytest

import yuanrong as yr
from yuanrong._private.core import objects


@pytest.mark.parametrize("timeout", [float("nan"), float("inf"), -float("inf"), 2**80, 0, -2, "5", True])
def test_get_refuses_timeouts_ray_cannot_wait_for(timeout):
    # NaN once reached Ray as a raw ValueError, infinity as an OverflowError.
    with pytest.raises(yr.InvalidOptionError, match="timeout=") as info:
        objects._get_timeout(timeout)
    assert info.value.option == "timeout"


@pytest.mark.parametrize("timeout, expect", [(None, None), (-1, None), (0.5, 0.5), (3, 3.0)])
def test_get_accepts_seconds_and_no_limit(timeout, expect):
    assert objects._get_timeout(timeout) == expect
