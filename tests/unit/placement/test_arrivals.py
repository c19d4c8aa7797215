"""The bursty arrival generators: rates, burstiness and silences come out as asked."""

from __future__ import annotations

import numpy as np
import pytest

from placement.sim.arrivals import SERVERLESS_IAT_CV, burstiness, gamma_renewal, on_off
from placement.sim.outcomes import build_invocations, outcome_continuum


@pytest.mark.parametrize("cv", [1.0, 3.0])
def test_gamma_renewal_has_the_asked_rate_and_burstiness(cv):
    times = gamma_renewal(rate_per_s=200, cv=cv, duration_s=200, seed=7)
    assert times.min() >= 0 and times.max() < 200 and (np.diff(times) >= 0).all()
    assert len(times) / 200 == pytest.approx(200, rel=0.1)
    assert burstiness(times) == pytest.approx(cv, rel=0.1)


def test_same_seed_same_trace_other_seed_other_trace():
    a = gamma_renewal(rate_per_s=10, cv=2, duration_s=30, seed=1)
    assert np.array_equal(a, gamma_renewal(rate_per_s=10, cv=2, duration_s=30, seed=1))
    assert not np.array_equal(a, gamma_renewal(rate_per_s=10, cv=2, duration_s=30, seed=2))


def test_on_off_keeps_silences_and_the_long_run_rate():
    times = on_off(rate_per_s=100, cv=1.5, mean_on_s=2, mean_off_s=8, duration_s=2000, seed=3)
    assert (np.diff(times) >= 0).all() and times.max() < 2000
    # Long-run rate: 100/s for a fifth of the time.
    assert len(times) / 2000 == pytest.approx(20, rel=0.15)
    # The silences between bursts are far longer than the gaps inside a burst: about 200 OFF
    # periods (mean 8 s), of which some 150 last over 2 s, while the median gap is 10 ms.
    gaps = np.diff(times)
    assert np.median(gaps) < 0.05 and 100 < (gaps > 2).sum() < 250
    assert burstiness(times) > 5


@pytest.mark.parametrize("kwargs, field", [
    ({"rate_per_s": 0, "cv": 1, "duration_s": 1}, "rate_per_s"),
    ({"rate_per_s": 1, "cv": float("nan"), "duration_s": 1}, "cv"),
    ({"rate_per_s": 1, "cv": 1, "duration_s": True}, "duration_s"),
])
def test_bad_parameters_name_the_field(kwargs, field):
    with pytest.raises(ValueError, match=field):
        gamma_renewal(**kwargs)


def test_outcome_traces_have_the_published_burstiness():
    """The simulator's arrivals have the median inter-arrival CV of Azure Functions applications
    without timers (Shahrad et al., ATC 2020, Figure 6), not Poisson's 1."""
    c = outcome_continuum(seed=0)
    trace = build_invocations(c, load=0.6, requests=4000, seed=1)
    times = np.array([inv.arrival_s for inv in trace.invocations])
    assert SERVERLESS_IAT_CV == 1.8
    assert burstiness(times) == pytest.approx(SERVERLESS_IAT_CV, rel=0.15)
