"""KS drift check: a shifted feature is flagged, a stable one is not, sparse ones are left untested."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from pipelines.drift import feature_drift


def test_shifted_feature_drifts_and_stable_one_does_not() -> None:
    rng = np.random.default_rng(0)
    reference = pl.DataFrame({"stable": rng.normal(size=5000), "moved": rng.normal(size=5000),
                              "sparse": [None] * 5000}, schema={"stable": pl.Float64, "moved": pl.Float64,
                                                                "sparse": pl.Float64})
    recent = pl.DataFrame({"stable": rng.normal(size=1000), "moved": rng.normal(0.5, 1, size=1000),
                           "sparse": [1.0] * 1000})

    report = feature_drift(reference, recent, ("stable", "moved", "sparse"), p_value=0.01)

    assert report.drifted == ("moved",)
    by_name = {f.feature: f for f in report.features}
    assert by_name["stable"].p_value is not None and by_name["stable"].p_value > 0.01
    assert by_name["sparse"].p_value is None and not by_name["sparse"].drifted
    assert report.to_dict()["drifted"] == ["moved"]


def test_missing_columns_are_named() -> None:
    frame = pl.DataFrame({"a": [1.0]})
    with pytest.raises(ValueError, match="b"):
        feature_drift(frame, frame, ("a", "b"))


@pytest.mark.parametrize(("n", "m", "shift"), [(5000, 300, 0.2), (60, 80, 0.5), (50_000, 300, 0.15), (2000, 2000, 0.1)])
def test_ks_2samp_matches_scipy_asymptotic_p_where_drift_is_decided(n: int, m: int, shift: float) -> None:
    from scipy.stats import ks_2samp as scipy_ks  # the reference (not imported by the serving process)

    from pipelines.drift import ks_2samp

    rng = np.random.default_rng(7)
    a, b = rng.normal(size=n), rng.normal(shift, 1, size=m)

    statistic, p = ks_2samp(a, b)

    expected = scipy_ks(a, b, method="asymp")
    assert statistic == pytest.approx(float(expected.statistic), abs=1e-12)
    assert expected.pvalue < 0.1
    assert p == pytest.approx(float(expected.pvalue), rel=1e-3)


def test_ks_2samp_p_is_capped_at_one_for_identical_samples() -> None:
    from pipelines.drift import ks_2samp

    values = np.random.default_rng(1).normal(size=400)

    assert ks_2samp(values, values) == (0.0, 1.0)
