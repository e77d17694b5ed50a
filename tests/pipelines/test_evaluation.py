"""The forecast report: confidence buckets, sessions by UTC hour, volatility regimes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl
import pytest

from pipelines.evaluation import evaluate_forecast, session_names, top_confidence_accuracy, vol_regime_names


def test_confidence_buckets_rank_by_distance_from_a_coin_flip() -> None:
    p = np.array([0.9, 0.1, 0.52, 0.48, 0.6, 0.45, 0.51, 0.5, 0.7, 0.3])
    y = np.array([1, 0, 0, 1, 0, 1, 0, 1, 1, 0])  # the 4 most confident are right, the rest wrong

    assert top_confidence_accuracy(y, p, 0.2) == 1.0
    assert top_confidence_accuracy(y, p, 0.4) == 1.0
    assert top_confidence_accuracy(y, p, 1.0) == pytest.approx(0.5)  # p = 0.5 counts as up, and y was 1


def test_sessions_follow_the_utc_hour() -> None:
    day = datetime(2026, 1, 5, tzinfo=UTC)
    ts = pl.Series([day + timedelta(hours=h) for h in (0, 7, 8, 12, 13, 21, 22, 23)])
    assert session_names(ts).tolist() == ["asia", "asia", "europe", "europe", "us", "us", "asia", "asia"]


def test_vol_regimes_and_missing_values() -> None:
    assert vol_regime_names(np.array([0.5, 1.0, 1.5, np.nan])).tolist() == ["calm", "normal", "expanding", "unknown"]


def test_report_groups_rows_and_names_metrics() -> None:
    rng = np.random.default_rng(3)
    n = 2000
    ts = pl.Series([datetime(2026, 1, 5, tzinfo=UTC) + timedelta(minutes=5 * i) for i in range(n)])
    p = rng.random(n)
    y = (rng.random(n) < p).astype(int)
    vol = np.where(np.arange(n) % 2 == 0, 0.5, 1.5)

    report = evaluate_forecast(y, p, ts, vol)

    assert set(report.by_session) == {"asia", "europe", "us"}
    assert set(report.by_vol_regime) == {"calm", "expanding"}
    assert sum(m.n for m in report.by_session.values()) == n
    metrics = report.metrics("oos_")
    assert metrics["oos_accuracy_top_10"] > metrics["oos_accuracy_top_50"] > 0.6
    assert "oos_session_us_auc" in metrics and "oos_vol_calm_brier" in metrics
