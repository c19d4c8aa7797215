"""The read cache, without Ray: a table stays cached for one catalogue generation."""

from __future__ import annotations

import concurrent.futures
import threading
import time

import pyarrow as pa
import pytest

from datashare.dataset_info import DatasetInfo
from datashare.read_cache import ReadCache, _WatchThread

TABLE = pa.table({"x": [1, 2, 3]})
INFO = DatasetInfo("t", 1, TABLE.schema, 3, TABLE.nbytes, 1, ("n1",), 0.0)


def _now(fn):
    fn()        # watch again at once, in the test's thread (readers do it on their watch thread)


class FakeCatalogue:
    """Stands in for the catalogue's watch: each watch is a future the test completes."""

    def __init__(self) -> None:
        self.watches: list[tuple[int, concurrent.futures.Future]] = []
        self.drops_since: list[int | None] = []

    def watch(self, since, drops_since, timeout_s, on_done):
        fut: concurrent.futures.Future = concurrent.futures.Future()
        fut.add_done_callback(on_done)
        self.watches.append((since, fut))
        self.drops_since.append(drops_since)
        return fut


def _cache_with_table(generation: int = 5) -> tuple[ReadCache, FakeCatalogue]:
    cat = FakeCatalogue()
    cache = ReadCache(cat.watch, rearm=_now)
    cache.saw_generation(generation)
    cache.put("t", None, INFO, TABLE, generation)
    return cache, cat


def test_a_table_is_served_while_the_generation_holds():
    cache, cat = _cache_with_table()
    assert cache.get("t", None) == (INFO, TABLE)
    assert cache.get("t", 1) is None and cache.get("u", None) is None
    cache.saw_generation(5)                       # the same generation again: no new watch
    assert len(cat.watches) == 1 and cache.get("t", None) is not None


def test_a_change_notification_empties_the_cache():
    cache, cat = _cache_with_table()
    cat.watches[0][1].set_result((6, 0, ()))
    assert cache.get("t", None) is None
    cache.put("t", None, INFO, TABLE, 5)           # a read from before the change is not cached
    assert cache.get("t", None) is None


def test_a_quiet_watch_is_renewed_and_the_cache_kept():
    cache, cat = _cache_with_table()
    cat.watches[0][1].set_result((5, 0, ()))                # timed out with no change
    assert len(cat.watches) == 2 and cat.watches[1][0] == 5
    assert cache.get("t", None) == (INFO, TABLE)


def test_a_failed_watch_stops_caching():
    cache, cat = _cache_with_table()
    cat.watches[0][1].set_exception(RuntimeError("catalogue died"))
    assert cache.get("t", None) is None


def test_a_newer_generation_seen_in_a_lookup_drops_older_tables():
    cache, cat = _cache_with_table()
    cache.saw_generation(7)
    assert cache.get("t", None) is None and cat.watches[-1][0] == 7
    cat.watches[0][1].set_result((6, 0, ()))                # the old watch answering late changes nothing
    cache.put("t", None, INFO, TABLE, 7)
    assert cache.get("t", None) == (INFO, TABLE)


def test_without_a_watch_nothing_is_cached():
    def broken_watch(since, drops_since, timeout_s, on_done):
        raise ConnectionError("no catalogue")

    cache = ReadCache(broken_watch)
    cache.saw_generation(1)
    cache.put("t", None, INFO, TABLE, 1)
    assert cache.get("t", None) is None


def test_clear_forgets_everything():
    cache, _ = _cache_with_table()
    cache.clear()
    assert cache.get("t", None) is None


def test_catalogue_entries_live_and_die_with_the_generation():
    cache, cat = _cache_with_table()
    entry = object()
    cache.put_entry("t", None, entry, 5)
    assert cache.get_entry("t", None) is entry and cache.get_entry("t", 1) is None
    cache.put_entry("t", 1, entry, 4)              # an answer from an older generation is not kept
    assert cache.get_entry("t", 1) is None
    cat.watches[0][1].set_result((6, 0, ()))                # a publish anywhere: entries go with the tables
    assert cache.get_entry("t", None) is None
    cache.saw_generation(6)
    cache.put_entry("t", None, entry, 6)
    cache.clear()                                  # this process published
    assert cache.get_entry("t", None) is None


def test_hits_on_tables_and_entries_read_from_a_pool_copy_are_counted():
    reads = []
    cat = FakeCatalogue()
    cache = ReadCache(cat.watch, on_read=reads.append, rearm=_now)
    cache.saw_generation(5)
    cache.put("t", None, INFO, TABLE, 5, ("edge-1", "t", 1))
    cache.put("u", None, INFO, TABLE, 5)                   # not from a pool copy: nothing to count
    cache.put_entry("t", 1, object(), 5, ("edge-1", "t", 1))
    assert cache.get("t", None) == (INFO, TABLE) and cache.get("u", None) == (INFO, TABLE)
    cache.get_entry("t", 1)
    assert cache.get("v", None) is None                    # a miss reaches the catalogue, which counts it
    assert reads == [("edge-1", "t", 1), ("edge-1", "t", 1)]


COPY_A, COPY_B = ("cache", "t", (1, "a")), ("cache", "u", (1, "b"))


def test_a_dropped_copy_drops_only_what_was_read_from_it():
    cache, cat = _cache_with_table()
    cache.put("t", 1, INFO, TABLE, 5, copies=[COPY_A])
    cache.put_entry("t", 1, "entry-t", 5, copies=[COPY_A])
    cache.put("u", None, INFO, TABLE, 5, copies=[COPY_B])
    assert cat.drops_since == [None]                    # the first watch: drops during generation 5
    cat.watches[0][1].set_result((5, 3, (COPY_A,)))     # edge-1 evicted copy a; no dataset changed
    assert cache.get("t", 1) is None and cache.get_entry("t", 1) is None
    assert cache.get("u", None) == (INFO, TABLE) and cache.get("t", None) == (INFO, TABLE)
    assert cat.drops_since == [None, 3] and cat.watches[1][0] == 5    # watching on from drop 3
    cache.put("t", 1, INFO, TABLE, 5, copies=[COPY_A])  # a lookup answered before the drop: not kept
    assert cache.get("t", 1) is None
    cat.watches[1][1].set_result((5, 4, None))          # the catalogue's log no longer reaches back
    assert cache.get("u", None) is None and cache.get("t", None) is None
    cache.put("t", None, INFO, TABLE, 5)                # but the generation holds: caching goes on
    assert cache.get("t", None) == (INFO, TABLE) and cat.drops_since[-1] == 4


def test_a_watch_answered_before_its_call_returns_does_not_deadlock():
    answers = []

    def watch(since, drops_since, timeout_s, on_done):
        fut: concurrent.futures.Future = concurrent.futures.Future()
        if drops_since is None:                          # drops already logged in this generation
            fut.set_result((since, 2, (COPY_B,)))
        answers.append(drops_since)
        fut.add_done_callback(on_done)                   # runs on_done now, in this thread
        return fut

    cache = ReadCache(watch)                             # re-arms on its own thread, as in a reader
    done = threading.Event()
    worker = threading.Thread(target=lambda: (cache.saw_generation(5), done.set()), daemon=True)
    worker.start()
    assert done.wait(5), "saw_generation deadlocked on a watch that answered at once"
    deadline = time.monotonic() + 5
    while len(answers) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert answers == [None, 2]                          # watching on from drop 2
    cache.put("t", None, INFO, TABLE, 5, copies=[COPY_A])
    cache.put("u", None, INFO, TABLE, 5, copies=[COPY_B])  # read from a copy dropped meanwhile: not kept
    assert cache.get("t", None) == (INFO, TABLE) and cache.get("u", None) is None


def test_watches_are_made_again_on_one_thread_in_the_order_of_the_answers():
    worker, ran = _WatchThread(), []
    done = threading.Event()
    for i in range(50):
        worker.submit(lambda i=i: ran.append((i, threading.get_ident())))
    worker.submit(done.set)
    assert done.wait(5)
    assert [i for i, _ in ran] == list(range(50))
    assert len({ident for _, ident in ran}) == 1 and ran[0][1] != threading.get_ident()


# The SystemExit that ends the thread is reported by pytest's thread hook, which Python's ignores.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_the_watch_thread_survives_a_failed_job_and_is_started_again_once_gone(caplog):
    worker, seen = _WatchThread(), []
    done = threading.Event()

    def fail():
        raise RuntimeError("catalogue gone")

    worker.submit(fail)
    worker.submit(lambda: (seen.append(threading.get_ident()), done.set()))
    assert done.wait(5) and "watching the catalogue again failed" in caplog.text
    first = worker._thread
    worker.submit(lambda: (_ for _ in ()).throw(SystemExit))     # ends the thread
    first.join(5)
    assert not first.is_alive()
    done.clear()
    worker.submit(lambda: (seen.append(threading.get_ident()), done.set()))
    assert done.wait(5) and worker._thread is not first and worker._thread.is_alive()


def test_a_forked_child_starts_its_own_watch_thread_and_drops_the_parents_jobs():
    worker, ran = _WatchThread(), []
    done = threading.Event()
    worker.submit(done.set)
    assert done.wait(5)
    parent_thread, parent_jobs = worker._thread, worker._jobs
    worker._pid = -1                                   # as seen from a child of a fork
    done.clear()
    worker.submit(lambda: (ran.append(threading.get_ident()), done.set()))
    assert done.wait(5) and worker._jobs is not parent_jobs and worker._thread is not parent_thread
