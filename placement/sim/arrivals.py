"""Request arrival times with the burstiness of production serverless and LLM traces.

Two published observations shape the generator (no trace is downloaded):

* The Azure Functions trace (Shahrad et al., "Serverless in the Wild: Characterizing and
  Optimizing the Serverless Workload at a Large Cloud Provider", USENIX ATC 2020, Figure 6) gives,
  per application, the coefficient of variation (CV) of the time between invocations: 1 is
  Poisson, 0 a timer. For applications without timer triggers (HTTP, queue and event triggers, the
  kinds of call the simulator replays) the median CV is about 1.8; about 66 % of them have a CV
  above 1 and about 46 % above 2. These are read off the plot (to about ±0.05), whose curve the
  dataset's analysis notebook reproduces (``analysis/AzureFunctionsDataset2019-Trace_Analysis.md``
  in Azure/AzurePublicDataset). :data:`SERVERLESS_IAT_CV` is that median.
* BurstGPT (Wang et al., "BurstGPT: A Real-World Workload Dataset to Optimize LLM Serving
  Systems", 2024, arXiv 2401.17644) models the request arrivals of Azure OpenAI GPT services with
  Gamma-distributed inter-arrival times. The simulator takes the Gamma *family* from it; the
  paper's fitted shape and scale were not available to the project when this was written, so the
  CV comes from the Azure Functions figure above, not from BurstGPT.

A Gamma renewal process with CV ``cv`` (shape ``1/cv**2``) gives Poisson at ``cv = 1`` and bursts
of closely spaced requests with long gaps between them above it. :func:`on_off` adds explicit
silences (ON periods of Gamma arrivals, OFF periods with none); no publication gives its period
lengths, so the outcome simulator does not use it.

Every function takes a seed (or a ``numpy`` generator) and returns sorted arrival times in seconds.

Example:
    >>> times = on_off(rate_per_s=50, cv=2.0, mean_on_s=2, mean_off_s=5, duration_s=60, seed=1)
    >>> bool((times[1:] >= times[:-1]).all()) and float(times[-1]) < 60
    True
"""

from __future__ import annotations

import math

import numpy as np

SERVERLESS_IAT_CV = 1.8
"""Median CV of the inter-arrival times of Azure Functions applications without timer triggers
(Shahrad et al., USENIX ATC 2020, Figure 6, read off the plot)."""


def _rng(seed: int | np.random.Generator) -> np.random.Generator:
    return seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)


def _check(name: str, value: float, *, low: float = 0.0) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= low:
        raise ValueError(f"{name}={value!r} must be a finite number > {low:g}.")
    return float(value)


def gamma_renewal(*, rate_per_s: float, cv: float, duration_s: float,
                  seed: int | np.random.Generator = 0) -> np.ndarray:
    """Arrivals whose inter-arrival times are Gamma-distributed with mean ``1/rate`` and CV ``cv``.

    Args:
        rate_per_s: Mean arrival rate.
        cv: Coefficient of variation of the gaps: ``1`` is Poisson, larger is burstier.
        duration_s: Arrivals fall in ``[0, duration_s)``.
        seed: Seed or generator.
    """
    rate = _check("rate_per_s", rate_per_s)
    cv = _check("cv", cv)
    duration = _check("duration_s", duration_s)
    rng = _rng(seed)
    shape = 1.0 / cv**2
    scale = 1.0 / (rate * shape)
    out: list[np.ndarray] = []
    t = 0.0
    batch = max(16, int(rate * duration * 1.2))
    while t < duration:
        gaps = rng.gamma(shape, scale, size=batch)
        times = t + np.cumsum(gaps)
        out.append(times[times < duration])
        t = float(times[-1])
    return np.concatenate(out) if out else np.empty(0)


def on_off(*, rate_per_s: float, cv: float, mean_on_s: float, mean_off_s: float, duration_s: float,
           seed: int | np.random.Generator = 0) -> np.ndarray:
    """Bursts of Gamma arrivals (ON, rate ``rate_per_s``) separated by silences (OFF).

    The trace starts in an ON period. ON and OFF lengths are exponential with the given means, so
    the long-run rate is ``rate_per_s * mean_on_s / (mean_on_s + mean_off_s)``.
    """
    rate = _check("rate_per_s", rate_per_s)
    _check("cv", cv)
    on_s = _check("mean_on_s", mean_on_s)
    off_s = _check("mean_off_s", mean_off_s)
    duration = _check("duration_s", duration_s)
    rng = _rng(seed)
    out: list[np.ndarray] = []
    t = 0.0
    while t < duration:
        length = min(float(rng.exponential(on_s)), duration - t)
        if length > 0:
            burst = gamma_renewal(rate_per_s=rate, cv=cv, duration_s=length, seed=rng)
            out.append(t + burst)
        t += length + float(rng.exponential(off_s))
    return np.concatenate(out) if out else np.empty(0)


def burstiness(times: np.ndarray) -> float:
    """The coefficient of variation of the gaps between arrivals (1 for Poisson)."""
    gaps = np.diff(np.asarray(times, dtype=float))
    if len(gaps) < 2 or gaps.mean() == 0:
        return 0.0
    return float(gaps.std() / gaps.mean())
