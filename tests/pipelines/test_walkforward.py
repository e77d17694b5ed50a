"""Walk-forward windows: embargo, non-overlapping tests, no training row at or after its test start."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipelines.walkforward import plan_windows, walk_forward_windows

START = datetime(2024, 1, 1, tzinfo=UTC)
HOUR = timedelta(hours=1)


@settings(max_examples=200, deadline=None)
@given(
    history_h=st.integers(24, 24 * 400),
    train_h=st.integers(1, 24 * 200),
    test_h=st.integers(1, 24 * 14),
    extra_step_h=st.integers(0, 48),
    embargo_min=st.integers(0, 600),
    expanding=st.booleans(),
    max_folds=st.one_of(st.none(), st.integers(1, 12)),
)
def test_windows_keep_the_embargo_and_never_overlap(
    history_h: int,
    train_h: int,
    test_h: int,
    extra_step_h: int,
    embargo_min: int,
    expanding: bool,
    max_folds: int | None,
) -> None:
    end = START + history_h * HOUR
    embargo = timedelta(minutes=embargo_min)

    windows = list(
        walk_forward_windows(
            START,
            end,
            train_span=train_h * HOUR,
            test_span=test_h * HOUR,
            step=(test_h + extra_step_h) * HOUR,
            embargo=embargo,
            expanding=expanding,
            max_folds=max_folds,
        )
    )

    if max_folds is not None:
        assert len(windows) <= max_folds
    for w in windows:
        assert START <= w.train_start < w.train_end
        assert w.test_start - w.train_end == embargo  # every train row is > embargo before the test
        assert w.train_end <= w.test_start  # no training row at or after its test start
        assert w.test_end - w.test_start == test_h * HOUR and w.test_end <= end
        if not expanding:
            assert w.train_end - w.train_start <= train_h * HOUR
    for earlier, later in itertools.pairwise(windows):
        assert earlier.test_end <= later.test_start  # test windows do not overlap
        assert earlier.index + 1 == later.index
    if windows:
        assert windows[-1].test_end == end  # anchored on the newest data


def test_overlapping_steps_and_bad_spans_are_refused() -> None:
    with pytest.raises(ValueError, match="overlap"):
        list(walk_forward_windows(START, START + 100 * HOUR, train_span=HOUR, test_span=2 * HOUR, step=HOUR,
                                  embargo=timedelta(0)))
    with pytest.raises(ValueError, match="embargo"):
        list(walk_forward_windows(START, START + 100 * HOUR, train_span=HOUR, test_span=HOUR, step=HOUR,
                                  embargo=-HOUR))


def test_six_months_weekly_folds() -> None:
    windows = list(
        walk_forward_windows(
            START,
            START + timedelta(days=182),
            train_span=timedelta(days=180),
            test_span=timedelta(days=7),
            step=timedelta(days=7),
            embargo=timedelta(minutes=5),
            max_folds=8,
        )
    )
    assert len(windows) == 8
    assert windows[-1].test_start == START + timedelta(days=175)
    assert windows[0].train_start == START  # clipped to the history


def test_short_history_degrades_to_shorter_folds_with_a_note() -> None:
    plan = plan_windows(
        START,
        START + timedelta(days=10),
        folds=4,
        train_span=timedelta(days=180),
        test_span=timedelta(days=7),
        embargo=timedelta(minutes=5),
        expanding=False,
        max_test_share=0.3,
        min_train_span=timedelta(days=2),
    )
    assert len(plan.windows) == 4
    assert all(w.test_end - w.test_start == timedelta(hours=18) for w in plan.windows)
    assert plan.notes and "shorter" in plan.notes[0]
    with pytest.raises(ValueError, match="too short"):
        plan_windows(
            START,
            START + timedelta(hours=3),
            folds=1,
            train_span=timedelta(days=1),
            test_span=timedelta(days=1),
            embargo=timedelta(hours=1),
            expanding=False,
            max_test_share=0.3,
            min_train_span=timedelta(days=2),
        )


def test_a_time_stratified_sample_keeps_the_same_share_of_every_day() -> None:
    import polars as pl

    from pipelines.walkforward import time_stratified_sample

    start = datetime(2026, 1, 1, tzinfo=UTC)
    frame = pl.DataFrame({"ts": [start + timedelta(minutes=5 * i) for i in range(288 * 10)], "x": range(2880)})

    sample = time_stratified_sample(frame, 720, seed=1)

    per_day = sample.group_by(pl.col("ts").dt.date()).len()["len"].to_list()
    assert len(sample) == 720 and per_day == [72] * 10  # a quarter of each day, all ten days
    assert sample["ts"].is_sorted()  # order kept
    assert time_stratified_sample(frame, 5000, seed=1).equals(frame)
    assert time_stratified_sample(frame, 720, seed=1).equals(sample)  # seeded
