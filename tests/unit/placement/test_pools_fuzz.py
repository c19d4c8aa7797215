"""Fuzzing the pools file: any text or bytes gives a PoolSet or a PoolConfigError, within a second.

A pools file is read by ``yr`` commands and by every driver; a malformed one must say what is wrong
and where, never hang (alias bombs), crash (deep nesting, non-UTF-8) or load numbers the policies
cannot use (NaN and infinities).
"""

from __future__ import annotations

import math
import time

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from placement import PoolConfigError, PoolSet, load_pools, parse_pools
from tests.fuzz_settings import FUZZ

numbers = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-5, 10**6),
                    st.sampled_from([".nan", ".inf", "-.inf", "1e400", "x", "9" * 5000]))
names = st.one_of(st.sampled_from(["edge-1", "cloud", "fog.a"]), st.text(max_size=10))
pool_specs = st.fixed_dictionaries(
    {"tier": names},
    optional={"region": names, "watts_per_cpu": numbers, "bandwidth_mbps": numbers,
              "carbon_intensity": st.one_of(numbers, st.fixed_dictionaries(
                  {"points": st.lists(st.tuples(numbers, numbers), max_size=3)}, optional={"period_h": numbers})),
              "cost_per_hour": st.dictionaries(st.sampled_from(["CPU", "memory", "GPU"]), numbers, max_size=2),
              "latency_ms": st.fixed_dictionaries({}, optional={"regions": st.dictionaries(names, numbers, max_size=2),
                                                                "pools": st.dictionaries(names, numbers, max_size=2)}),
              "labels": st.dictionaries(names, names, max_size=2)})
documents = st.fixed_dictionaries({"version": st.sampled_from([1, 1, 2, "1"]),
                                   "pools": st.dictionaries(names, pool_specs, max_size=3)})


def _load(text: str) -> PoolSet | PoolConfigError:
    started = time.monotonic()
    try:
        return parse_pools(text, source="fuzz.yaml")
    except PoolConfigError as e:
        assert str(e) and "Traceback" not in str(e)
        return e
    finally:
        assert time.monotonic() - started < 1.0


def _finite(pools: PoolSet) -> bool:
    for pool in pools.values():
        numbers_ = [pool.watts_per_cpu, pool.bandwidth_mbps or 0, *pool.cost_per_hour.values(),
                    *pool.latency_to_pools_ms.values(), *pool.latency_to_regions_ms.values()]
        if pool.carbon is not None:
            numbers_ += [x for point in pool.carbon.points for x in point]
        if not all(isinstance(x, (int, float)) and math.isfinite(x) and x >= 0 for x in numbers_):
            return False
    return True


def _unquote_specials(text: str) -> str:
    # yaml.safe_dump quotes the strings ".nan" etc.; unquoted they are YAML's NaN and infinities.
    for special in (".nan", ".inf", "-.inf", "1e400"):
        text = text.replace(f"'{special}'", special)
    return text


@FUZZ
@given(doc=documents)
def test_structured_files_load_with_finite_numbers_or_fail_clearly(doc):
    out = _load(_unquote_specials(yaml.safe_dump(doc)))
    if isinstance(out, PoolSet):
        assert _finite(out)


@FUZZ
@given(text=st.text(max_size=300))
def test_any_text_loads_or_fails_clearly(text):
    _load(text)


@FUZZ
@given(data=st.binary(max_size=200))
def test_any_bytes_on_disk_load_or_fail_clearly(data, tmp_path_factory):
    path = tmp_path_factory.mktemp("pools") / "pools.yaml"
    path.write_bytes(data)
    try:
        load_pools(path)
    except PoolConfigError as e:
        assert str(path) in str(e)


BOMB = "version: 1\npools:\n  a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"  {chr(98 + i)}: &{chr(98 + i)} [{', '.join(['*' + chr(97 + i)] * 9)}]\n" for i in range(8))


@pytest.mark.parametrize("text, expect", [
    (BOMB, "aliases"),
    ("[" * 2000, "nested more than"),
    ("{a: " * 2000, "nested more than"),
    ("version: 1\npools:\n  a:\n    <<: {tier: edge}\n", "merge keys"),
    ("version: 1\npools:\n  a: {tier: edge, region: !!python/object:os.system x}\n", "cannot be read"),
    ("version: 1\npools:\n  a: {tier: edge, watts_per_cpu: " + "9" * 5000 + "}\n", "cannot be read"),
] + [(f"version: 1\npools:\n  a: {{tier: edge, {key}: {value}}}\n", "not a finite number")
     for key in ("watts_per_cpu", "bandwidth_mbps", "carbon_intensity") for value in (".nan", ".inf")]
  + [("version: 1\npools:\n  a: {tier: edge, cost_per_hour: {CPU: .nan}}\n", "not a finite number"),
     ("version: 1\npools:\n  a: {tier: edge, latency_ms: {regions: {r: .inf}}}\n", "not a finite number")])
def test_findings_of_the_input_review_fail_fast_with_the_line(text, expect):
    out = _load(text)
    assert isinstance(out, PoolConfigError) and expect in str(out) and str(out).startswith("fuzz.yaml:"), out


def test_a_file_that_is_not_utf8_says_so(tmp_path):
    path = tmp_path / "pools.yaml"
    path.write_bytes(b"version: 1\npools:\n  a: {tier: \xff\xfe}\n")
    with pytest.raises(PoolConfigError, match="not UTF-8"):
        load_pools(path)
