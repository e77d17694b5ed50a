"""bench.serve's helpers: the RSS split, the scheduling fallback and the client without cyclic GC."""

from __future__ import annotations

import gc
import os
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from bench.serve import _client_without_gc, feed_process, raise_priority, rss_parts_mb

ROOT = Path(__file__).resolve().parents[2]


def test_rss_parts_add_up_to_the_resident_set() -> None:
    rss_mb = psutil.Process().memory_info().rss / 2**20

    parts = rss_parts_mb(os.getpid())

    assert set(parts) == {"anon", "file"} and parts["anon"] > 0 and parts["file"] > 0
    assert abs(parts["anon"] + parts["file"] - rss_mb) < 0.1 * rss_mb  # read a moment apart


def test_rss_parts_of_a_gone_process_are_empty() -> None:
    assert rss_parts_mb(2**22 + 12345) == {}


def test_the_feed_process_is_found_among_the_servers_children_and_nothing_else_is() -> None:
    # Arrange: a stand-in replayed venue, then a child whose command line names the feed module
    me = psutil.Process()
    venue = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)", "serving.stream.replay"])
    try:
        assert feed_process(me) is None
        feed = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)", "serving.stream.feed_process"])
        try:
            # Act
            found = feed_process(me)

            # Assert
            assert found is not None and found.pid == feed.pid
        finally:
            feed.kill()
            feed.wait()
    finally:
        venue.kill()
        venue.wait()


def test_normal_priority_changes_nothing() -> None:
    before = os.sched_getscheduler(0), os.getpriority(os.PRIO_PROCESS, 0)

    assert raise_priority("normal") == "normal"
    assert (os.sched_getscheduler(0), os.getpriority(os.PRIO_PROCESS, 0)) == before


def test_a_raised_priority_is_what_the_process_runs_at() -> None:
    # In a child interpreter: the test process itself must not run at real-time priority.
    code = (
        "import os; from bench.serve import raise_priority, normal_priority\n"
        "applied = raise_priority('realtime')\n"
        "policy = os.sched_getscheduler(0); nice = os.getpriority(os.PRIO_PROCESS, 0)\n"
        "assert (applied, policy) == ('realtime', os.SCHED_FIFO) or (applied == 'nice' and nice == -10) "
        "or applied == 'normal', (applied, policy, nice)\n"
        "normal_priority(); assert os.sched_getscheduler(0) == os.SCHED_OTHER\n"
        "print(applied)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60)

    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() in {"realtime", "nice", "normal"}


def test_the_client_runs_without_cyclic_gc_and_gets_it_back_even_when_the_run_fails() -> None:
    assert gc.isenabled()
    with pytest.raises(RuntimeError), _client_without_gc():
        assert not gc.isenabled() and gc.get_freeze_count() > 0
        raise RuntimeError("the run failed")
    assert gc.isenabled() and gc.get_freeze_count() == 0
