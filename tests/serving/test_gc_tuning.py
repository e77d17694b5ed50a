"""The startup heap is frozen out of the collector's passes and the gen-0 threshold is set."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from serving.gc_tuning import freeze_startup_heap, thaw_heap


@pytest.fixture
def restore_gc() -> Iterator[None]:
    threshold = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*threshold)


@pytest.mark.usefixtures("restore_gc")
def test_freeze_moves_live_objects_to_the_permanent_generation() -> None:
    kept = [{"row": i} for i in range(10_000)]  # alive at "startup"

    frozen = freeze_startup_heap(5_000)

    assert frozen >= len(kept) and gc.get_freeze_count() == frozen
    assert gc.get_threshold()[0] == 5_000
    assert len(gc.get_objects()) < frozen  # a full pass no longer walks the frozen heap


@pytest.mark.usefixtures("restore_gc")
def test_disabled_freeze_leaves_the_collector_alone() -> None:
    threshold, frozen = gc.get_threshold(), gc.get_freeze_count()

    assert freeze_startup_heap(5_000, enabled=False) == 0
    assert gc.get_freeze_count() == frozen and gc.get_threshold() == threshold


@pytest.mark.usefixtures("restore_gc")
def test_thaw_returns_the_frozen_heap_to_the_collector() -> None:
    freeze_startup_heap(700)

    thaw_heap()

    assert gc.get_freeze_count() == 0
