from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from pipelines.modeling.fusion import (
    ContextReadout,
    FusionConfig,
    FusionWeights,
    RegimeBoost,
    fit_context_readout,
    fit_fusion,
    fit_regime_boost,
    fuse,
    major_mask,
)


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1 / (1 + np.exp(-z))


def _log_loss(p: np.ndarray, y: np.ndarray) -> float:
    p = np.clip(p, 1e-6, 1 - 1e-6)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))


def planted(n: int, seed: int) -> dict[str, np.ndarray]:
    """Two independent pieces of evidence; the tabular tower sees one, the context the other."""
    rng = np.random.default_rng(seed)
    a, b = rng.normal(size=n), rng.normal(size=n)
    y = (rng.random(n) < _sigmoid(0.8 * a + 0.8 * b)).astype(float)
    return {
        "p_tab": _sigmoid(0.8 * a),
        "context_score": _sigmoid(0.8 * b),
        "regime_boost": np.full(n, 0.5) + 0.02 * rng.normal(size=n),  # uninformative
        "y": y,
        "is_major": rng.random(n) < 0.4,
    }


def test_fitted_fusion_beats_the_worse_input_out_of_sample() -> None:
    # Arrange
    train, test = planted(6000, seed=1), planted(6000, seed=2)
    # Act
    weights = fit_fusion(train["p_tab"], train["context_score"], train["regime_boost"], train["y"], train["is_major"])
    fused = fuse(weights, test["p_tab"], test["context_score"], test["regime_boost"], test["is_major"])
    # Assert
    losses = {k: _log_loss(test[k], test["y"]) for k in ("p_tab", "context_score")}
    assert _log_loss(fused, test["y"]) < max(losses.values())
    assert _log_loss(fused, test["y"]) < min(losses.values())  # independent evidence: better than either
    for group in ("majors", "alts"):
        assert weights[group].source == "fitted"
        assert weights[group].w_regime < 0.15  # the uninformative input gets little weight


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), n=st.integers(0, 3000), major_share=st.floats(0, 1))
def test_weights_are_always_on_the_simplex(seed: int, n: int, major_share: float) -> None:
    rng = np.random.default_rng(seed)
    data = planted(n, seed)
    data["is_major"] = rng.random(n) < major_share
    data["context_score"][rng.random(n) < 0.1] = np.nan
    weights = fit_fusion(data["p_tab"], data["context_score"], data["regime_boost"], data["y"], data["is_major"])
    for w in weights.values():
        assert all(v >= 0 for v in w.as_tuple())
        assert sum(w.as_tuple()) == pytest.approx(1.0, abs=1e-9)


def test_groups_with_little_data_keep_the_seed_weights() -> None:
    # Arrange: plenty of alts, 100 majors (< min_rows 500)
    data = planted(3000, seed=3)
    data["is_major"] = np.arange(3000) < 100
    # Act
    weights = fit_fusion(data["p_tab"], data["context_score"], data["regime_boost"], data["y"], data["is_major"])
    # Assert
    assert weights["majors"] == FusionWeights(0.55, 0.30, 0.15, source="seed", n_rows=100)
    assert weights["alts"].source == "fitted"


def test_a_single_class_group_keeps_the_seed_weights() -> None:
    data = planted(2000, seed=4)
    weights = fit_fusion(data["p_tab"], data["context_score"], data["regime_boost"], np.ones(2000), data["is_major"])
    assert weights["majors"].as_tuple() == (0.55, 0.30, 0.15)
    assert weights["alts"].as_tuple() == (0.65, 0.10, 0.25)
    assert {w.source for w in weights.values()} == {"seed"}


def test_missing_inputs_renormalize_the_remaining_weights() -> None:
    weights = {
        "majors": FusionWeights(0.5, 0.3, 0.2, source="seed"),
        "alts": FusionWeights(0.0, 0.5, 0.5, source="seed"),
    }
    p = fuse(
        weights,
        p_tab=np.array([0.6, 0.6, 0.6, 0.7]),
        context_score=np.array([0.4, np.nan, np.nan, np.nan]),
        regime_boost=np.array([0.5, 0.5, np.nan, np.nan]),
        is_major=np.array([True, True, True, False]),
    )
    np.testing.assert_allclose(p, [0.5 * 0.6 + 0.3 * 0.4 + 0.2 * 0.5, (0.5 * 0.6 + 0.2 * 0.5) / 0.7, 0.6, 0.7])


def test_weights_and_readouts_round_trip_through_json() -> None:
    w = FusionWeights(0.6, 0.3, 0.1, source="fitted", n_rows=10, log_loss=0.69)
    assert FusionWeights.from_dict(json.loads(json.dumps(w.to_dict()))) == w
    r = ContextReadout(0.1, (0.2, -0.3, 0.0, 0.4))
    assert ContextReadout.from_dict(json.loads(json.dumps(r.to_dict()))) == r
    b = RegimeBoost((0.8, 1.25), ((0.4, 0.5, 0.6), (0.5, 0.5, 0.5), (0.6, 0.5, 0.4)))
    assert RegimeBoost.from_dict(json.loads(json.dumps(b.to_dict()))) == b


def test_context_readout_learns_the_direction_of_the_context() -> None:
    rng = np.random.default_rng(5)
    context = rng.normal(size=(4000, 4))
    y = (rng.random(4000) < _sigmoid(1.5 * context[:, 0] - 1.0 * context[:, 3])).astype(float)
    context[:10] = np.nan
    readout = fit_context_readout(context, y)
    assert readout.coef[0] > 1.0 and readout.coef[3] < -0.6
    assert abs(readout.coef[1]) < 0.2 and abs(readout.coef[2]) < 0.2
    scores = readout.score(context)
    assert np.isnan(scores[:10]).all() and np.all((scores[10:] > 0) & (scores[10:] < 1))


def test_regime_boost_finds_the_planted_regime_shift_and_shrinks_small_cells() -> None:
    # Arrange: up-trend rows rise 60% of the time, down-trend rows 40%, everything else 50%
    rng = np.random.default_rng(6)
    n = 20_000
    trend = rng.choice([-1.0, 0.0, 1.0], size=n, p=[0.45, 0.1, 0.45])
    vol = rng.uniform(0.5, 1.2, n)  # no stormy rows at all
    y = (rng.random(n) < 0.5 + 0.1 * trend).astype(float)
    # Act
    boost = fit_regime_boost(vol, trend, y)
    # Assert
    values = boost.value(np.array([1.0, 1.0, 2.0, np.nan]), np.array([1.0, -1.0, 1.0, 1.0]))
    assert values[0] == pytest.approx(0.6, abs=0.03)
    assert values[1] == pytest.approx(0.4, abs=0.03)
    assert values[2] == 0.5  # empty cell: the prior
    assert np.isnan(values[3])


def test_major_mask_reads_the_base_asset() -> None:
    assert major_mask(["BTC/USDT", "PEPE/USDT", "ETH/KRW", "BTCDOM/USDT"], ("BTC", "ETH")).tolist() == [
        True, False, True, False,
    ]


def test_bad_inputs_are_named() -> None:
    data = planted(100, seed=7)
    with pytest.raises(ValueError, match="context_score has 99 rows"):
        fit_fusion(data["p_tab"], data["context_score"][:-1], data["regime_boost"], data["y"], data["is_major"])
    with pytest.raises(ValueError, match="probabilities"):
        fit_fusion(data["p_tab"] * 3, data["context_score"], data["regime_boost"], data["y"], data["is_major"])
    with pytest.raises(ValueError, match="sum to 1"):
        FusionWeights(0.5, 0.5, 0.5, source="seed")
    with pytest.raises(ValidationError, match="sum to 1"):
        FusionConfig(majors_seed=(0.5, 0.3, 0.3))
    with pytest.raises(ValueError, match="lacks group 'alts'"):
        fuse({"majors": FusionWeights(1, 0, 0, source="seed")}, data["p_tab"], data["context_score"],
             data["regime_boost"], data["is_major"])
    with pytest.raises(ValueError, match="p_tab must be finite"):
        fuse({"majors": FusionWeights(1, 0, 0, source="seed"), "alts": FusionWeights(1, 0, 0, source="seed")},
             np.array([np.nan]), np.array([0.5]), np.array([0.5]), np.array([True]))
