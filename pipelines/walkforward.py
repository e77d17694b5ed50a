"""Walk-forward windows (SPEC 8) as a pure generator, and the plan that fits them to the history at hand.

A window trains on `[train_start, train_end)` and tests on `[test_start, test_end)`, all UTC bar-open
times. `train_end = test_start - embargo`: with an embargo of at least the label horizon (in bars x bar
length), the label of the last training row (which looks `h` bars ahead) ends before the test period
starts, so no training label has seen a test bar (SPEC 6).

Windows are anchored on the end of the history: the last test window ends at `end`, earlier ones step
back by `step`. They are yielded in time order. Test windows never overlap (`step >= test_span`).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np
import polars as pl

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Window:
    """One fold. Train rows have `train_start <= ts < train_end`; test rows `test_start <= ts < test_end`."""

    index: int
    train_start: datetime
    train_end: datetime
    test_start: datetime
    test_end: datetime

    def describe(self) -> str:
        return (
            f"fold {self.index}: train {self.train_start:%Y-%m-%d %H:%M} to {self.train_end:%Y-%m-%d %H:%M}, "
            f"test {self.test_start:%Y-%m-%d %H:%M} to {self.test_end:%Y-%m-%d %H:%M} UTC"
        )


def walk_forward_windows(
    start: datetime,
    end: datetime,
    *,
    train_span: timedelta,
    test_span: timedelta,
    step: timedelta,
    embargo: timedelta,
    expanding: bool = False,
    max_folds: int | None = None,
    min_train_span: timedelta | None = None,
) -> Iterator[Window]:
    """Folds over the history `[start, end)`, the last test window ending at `end`, in time order.

    Sliding (default): each fold trains on the `train_span` before its embargo. Expanding: every fold
    trains from `start`. A fold whose training part would be shorter than `min_train_span` (default:
    `test_span`) is not produced, nor any earlier one. At most `max_folds` (the most recent ones).
    Raises ValueError on non-positive spans, a negative embargo, `step < test_span` (test windows would
    overlap) or `end <= start`.
    """
    if train_span <= timedelta(0) or test_span <= timedelta(0) or step <= timedelta(0):
        raise ValueError("train_span, test_span and step must be positive")
    if embargo < timedelta(0):
        raise ValueError("embargo must not be negative")
    if step < test_span:
        raise ValueError(f"step {step} < test_span {test_span}: test windows would overlap")
    if end <= start:
        raise ValueError(f"empty history: end {end} <= start {start}")
    if max_folds is not None and max_folds < 1:
        raise ValueError("max_folds must be >= 1")
    shortest = min_train_span if min_train_span is not None else test_span
    folds: list[tuple[datetime, datetime, datetime, datetime]] = []
    test_end = end
    while max_folds is None or len(folds) < max_folds:
        test_start = test_end - test_span
        train_end = test_start - embargo
        train_start = start if expanding else max(start, train_end - train_span)
        if train_end - train_start < shortest or test_start < start:
            break
        folds.append((train_start, train_end, test_start, test_end))
        test_end = test_end - step
    for index, (train_start, train_end, test_start, test_end) in enumerate(reversed(folds)):
        yield Window(index, train_start, train_end, test_start, test_end)


@dataclass(frozen=True)
class WindowPlan:
    windows: tuple[Window, ...]
    notes: tuple[str, ...]  # why the plan deviates from the configured spans (empty when it does not)


def plan_windows(
    start: datetime,
    end: datetime,
    *,
    folds: int,
    train_span: timedelta,
    test_span: timedelta,
    embargo: timedelta,
    expanding: bool,
    max_test_share: float,
    min_train_span: timedelta,
) -> WindowPlan:
    """Configured windows when the history allows them, otherwise a graceful degradation (logged).

    The folds' test windows together may take at most `max_test_share` of the history; when `folds x
    test_span` does not fit, the test span shrinks (step = test span, whole hours) so that they do,
    down to a minimum of one hour per fold, then the number of folds drops. Raises ValueError when not even one
    fold with `min_train_span` of training fits.
    """
    if folds < 1:
        raise ValueError("folds must be >= 1")
    if not 0 < max_test_share < 1:
        raise ValueError("max_test_share must be in (0, 1)")
    notes: list[str] = []
    history = end - start
    budget = history * max_test_share
    span = test_span
    count = folds
    if count * span > budget:
        floor = timedelta(hours=1)
        span = max(floor, floor * int((budget / count) / floor))  # whole hours: windows stay on bar times
        if count * span > budget:
            count = max(1, int(budget / floor))
        notes.append(
            f"history of {history} is shorter than {folds} folds x {test_span} test + {train_span} train: "
            f"using {count} folds x {span} test"
        )
    windows = tuple(
        walk_forward_windows(
            start,
            end,
            train_span=train_span,
            test_span=span,
            step=span,
            embargo=embargo,
            expanding=expanding,
            max_folds=count,
            min_train_span=min(min_train_span, history * (1 - max_test_share)),
        )
    )
    if not windows:
        raise ValueError(
            f"history {start} to {end} is too short for one walk-forward fold "
            f"(test {span}, embargo {embargo}, at least {min_train_span} of training)"
        )
    if windows[0].train_end - windows[0].train_start < train_span and not expanding:
        notes.append(
            f"first fold trains on {windows[0].train_end - windows[0].train_start} instead of {train_span}: "
            "not enough history before it"
        )
    if len(windows) < count:
        notes.append(f"{len(windows)} folds fit instead of {count}")
    for note in notes:
        log.info("walk-forward plan: %s", note)
    return WindowPlan(windows, tuple(notes))


def time_stratified_sample(
    frame: pl.DataFrame, max_rows: int, *, seed: int, stratum: timedelta = timedelta(days=1)
) -> pl.DataFrame:
    """At most about `max_rows` rows of `frame` drawn evenly across its time span (order kept).

    Rows are grouped into strata of `stratum` (a UTC day by default) by `ts`; each stratum keeps the same
    share of its rows (max_rows / len(frame), at least one row), chosen with a seeded generator. So a fold
    capped by `max_train_rows` still fits on its whole training window, not on its latest rows.
    """
    if max_rows < 1:
        raise ValueError("max_rows must be >= 1")
    if len(frame) <= max_rows:
        return frame
    share = max_rows / len(frame)
    key = np.random.default_rng(seed).random(len(frame))
    every = f"{int(stratum.total_seconds())}s"
    quota = (pl.len().over("_stratum") * share).floor().clip(lower_bound=1)
    return (
        frame.with_columns(pl.Series("_key", key), pl.col("ts").dt.truncate(every).alias("_stratum"))
        .filter(pl.col("_key").rank("ordinal").over("_stratum") <= quota)
        .drop("_key", "_stratum")
    )
