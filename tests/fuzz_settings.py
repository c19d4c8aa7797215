"""Hypothesis settings shared by the fuzz tests: few examples, a deadline, no example database.

Every input boundary must answer within a second, so the per-example deadline is one second; the
examples are kept modest so that all the fuzz tests together run in seconds. No database is kept:
a failure prints the falsifying example, which then becomes an example-based regression test.
"""

from __future__ import annotations

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

FUZZ = settings(max_examples=120, deadline=1000, database=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
"""Settings of one fuzz test: derandomised so that a run is repeatable and CI never flakes."""

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=20), st.binary(max_size=10),
)
"""Python scalars, odd ones included (NaN, infinities, huge ints, bytes, control characters)."""

values = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.tuples(inner, inner),
                            st.dictionaries(st.one_of(st.text(max_size=8), st.integers()), inner, max_size=4)),
    max_leaves=12,
)
"""Arbitrary nested Python values built from :data:`scalars`."""

json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False, allow_infinity=False),
              st.text(max_size=20)),
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)),
    max_leaves=20,
)
"""Values JSON can carry."""
