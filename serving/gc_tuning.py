"""The serving process's garbage collector, tuned once the startup heap is built (`freeze_startup_heap`).

Measured (bench.serve, stream and engine on, 500 req/s, 2 shared cores): the serving process holds about
400,000 GC-tracked objects after startup (the champion, pandas/polars/catboost modules, the warmed
stream state). CPython's default collector re-traverses all of them on every generation-2 collection
(seven in a 20 s run, up to 415 ms each) and many on generation-1 collections (up to 17 ms): whichever
thread triggers one holds the GIL for that long, and `/signal` requests queue behind it. That, not the
stream's work, dominated the stream-on p99.

`freeze_startup_heap` runs one full collection and then `gc.freeze()`: everything alive at that point
moves to the permanent generation, which collections never traverse (those objects live for the whole
process anyway). It also raises the generation-0 threshold (`serving.gc_threshold0`), so the short-lived
garbage of requests and market events is collected in fewer, still short, passes. `thaw_heap` undoes
the freeze when the app stops (the lifespan), so a process that runs several apps (tests) frees them.
"""

from __future__ import annotations

import gc
import logging

log = logging.getLogger(__name__)


def freeze_startup_heap(threshold0: int, *, enabled: bool = True) -> int:
    """Collect, freeze the surviving objects and set the gen-0 threshold; returns the frozen count."""
    if not enabled:
        return 0
    gc.unfreeze()  # a second app in one process (tests): what the first froze and dropped is freed now
    gc.collect()
    gc.freeze()
    _, threshold1, threshold2 = gc.get_threshold()
    gc.set_threshold(threshold0, threshold1, threshold2)
    frozen = gc.get_freeze_count()
    log.info("gc: %d startup objects frozen, gen-0 threshold %d", frozen, threshold0)
    return frozen


def thaw_heap() -> None:
    """At shutdown: frozen objects go back to the collector (an app stopped in a process that goes on)."""
    gc.unfreeze()
