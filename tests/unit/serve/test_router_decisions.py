"""OutstandingWorkRouter's decision and cost estimate: pure functions, no replicas."""

from __future__ import annotations

from yuanrong._private.serve.router import estimate_cost, pick_batch_aware, pick_least_work, remaining_work


def test_estimate_cost_reads_the_keyword_or_a_dict_argument():
    assert estimate_cost((), {"max_tokens": 300}, cost_key="max_tokens", default_cost=1) == 300
    assert estimate_cost(({"max_tokens": 7},), {}, cost_key="max_tokens", default_cost=1) == 7
    assert estimate_cost(("raw http",), {}, cost_key="max_tokens", default_cost=2.5) == 2.5
    assert estimate_cost((), {"max_tokens": True}, cost_key="max_tokens", default_cost=1) == 1
    assert estimate_cost((), {"max_tokens": -3}, cost_key="max_tokens", default_cost=1) == 1


def test_least_work_first_and_ties_keep_order():
    assert pick_least_work(["a", "b", "c"], {"a": 500, "b": 3, "c": 40}) == [["b"], ["c"], ["a"]]
    # One long request outweighs several short ones: count-based routing would pick "a" here.
    assert pick_least_work(["a", "b"], {"a": 900, "b": 30})[0] == ["b"]
    assert pick_least_work(["x", "y"], {}) == [["x"], ["y"]]


def test_remaining_work_counts_progress_of_the_oldest_request():
    inflight = [(100.0, 10.0), (50.0, 12.0)]
    assert remaining_work(inflight, now=20.0, rate=None) == 150
    assert remaining_work(inflight, now=20.0, rate=5.0) == 100  # oldest: 10 s x 5/s done
    assert remaining_work(inflight, now=100.0, rate=5.0) == 50  # oldest finished at most its cost


def test_with_continuous_batching_every_running_request_progresses():
    inflight = [(100.0, 10.0), (50.0, 12.0), (80.0, 19.0)]
    # Two at once: the two oldest progressed 10 s and 8 s at 5/s; the third waits for a slot.
    assert remaining_work(inflight, now=20.0, rate=5.0, concurrency=2) == 230 - 50 - 40


def test_batch_aware_ranks_free_slots_first_then_the_soonest_free_slot():
    inflight = {"a": [(500.0, 0.0)],                       # one long stream, room for more
                "b": [(10.0, 0.0), (10.0, 0.0)],           # full (batch 2) but about to free a slot
                "c": [(400.0, 0.0), (300.0, 0.0)]}         # full for a long while
    ranks = pick_batch_aware(["c", "b", "a"], inflight, now=1.0, rate=5.0, batch=2)
    # Work-based routing would put "a" last; with a free slot it starts the request at once.
    assert ranks == [["a"], ["b"], ["c"]]
    assert pick_batch_aware(["x", "y"], {}, now=0.0, rate=None, batch=4) == [["x"], ["y"]]
