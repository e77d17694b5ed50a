"""sigma and (A, k) estimators: known parameters recovered from synthetic arrivals and paths."""

from __future__ import annotations

import math

import numpy as np
import pytest

from pipelines.trading.market_making.config import EstimatorConfig
from pipelines.trading.market_making.estimators import (
    IntensityEstimator,
    IntensityFit,
    VolatilityEstimator,
    fit_intensity,
    k_per_price,
    order_depths,
)

A, K = 140.0, 1.5


def poisson_orders(seed: int, seconds: float, mid: float = 100.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Market orders per side as a Poisson process of rate A; the depth each reaches is Exp(k), so the
    rate of orders reaching depth >= delta is exactly A exp(-k delta)."""
    rng = np.random.default_rng(seed)
    times, sides, prices = [], [], []
    for side in (1.0, -1.0):
        n = rng.poisson(A * seconds)
        times.append(np.sort(rng.uniform(0.0, seconds, n)))
        sides.append(np.full(n, side))
        prices.append(mid + side * rng.exponential(1.0 / K, n))
    order = np.argsort(np.concatenate(times), kind="stable")
    return np.concatenate(times)[order], np.concatenate(sides)[order], np.concatenate(prices)[order]


def test_fit_recovers_a_and_k_from_poisson_arrivals_within_ten_percent() -> None:
    times, sides, prices = poisson_orders(seed=12, seconds=60.0)
    depths = order_depths(times, sides, prices, np.full(times.size, 100.0))

    fit = fit_intensity(depths, 60.0)

    assert fit is not None
    assert pytest.approx(A, rel=0.10) == fit.A and fit.k == pytest.approx(K, rel=0.10)
    assert fit.r2 > 0.99


def test_online_estimator_recovers_a_and_k_and_refits() -> None:
    cfg = EstimatorConfig(intensity_window_seconds=60.0, refit_seconds=10.0, prior_a=1.0, prior_k=9.0)
    estimator = IntensityEstimator(cfg)
    times, sides, prices = poisson_orders(seed=3, seconds=60.0)
    assert estimator.current(0.0).source == "prior"  # before any trade: the prior, never nothing

    for t, side, price in zip(times, sides, prices, strict=True):
        estimator.observe(float(t), int(side), float(price), 100.0)
    fit = estimator.current(60.0)

    assert fit.source == "fit"
    assert pytest.approx(A, rel=0.10) == fit.A and fit.k == pytest.approx(K, rel=0.10)
    # Between refits the last fit stands; after refit_seconds a new window is fitted.
    assert estimator.current(65.0) is fit
    later, lside, lprice = poisson_orders(seed=4, seconds=60.0)
    for t, side, price in zip(later + 60.0, lside, 100.0 + (lprice - 100.0) / 2, strict=True):
        estimator.observe(float(t), int(side), float(price), 100.0)  # depths halved: k doubles
    assert estimator.current(125.0).k == pytest.approx(2 * K, rel=0.15)


def test_k_fitted_in_ticks_rescales_to_price_units() -> None:
    times, sides, prices = poisson_orders(seed=5, seconds=30.0)
    depths = order_depths(times, sides, prices, np.full(times.size, 100.0))
    tick = 0.01
    in_price = fit_intensity(depths, 30.0)
    in_ticks = fit_intensity(depths / tick, 30.0)
    assert in_price is not None and in_ticks is not None
    assert in_ticks.k == pytest.approx(in_price.k * tick)
    assert k_per_price(in_ticks.k, tick) == pytest.approx(in_price.k)
    assert pytest.approx(in_price.A) == in_ticks.A  # A is a rate: the price unit does not enter it


def test_one_taker_order_sweeping_levels_counts_once_at_its_deepest_price() -> None:
    times = np.array([1, 1, 1, 2, 2, 3])
    sides = np.array([1.0, 1.0, 1.0, 1.0, -1.0, -1.0])
    prices = np.array([100.1, 100.2, 100.3, 100.1, 99.9, 100.05])
    depths = order_depths(times, sides, prices, np.full(6, 100.0))
    # (t=1, buy) is one order reaching 0.3; t=2 has a buy and a sell; the t=3 sell above the mid is 0.
    assert depths == pytest.approx([0.3, 0.1, 0.1, 0.0])


def test_lambda_is_an_order_rate_not_traded_volume() -> None:
    estimator = IntensityEstimator(EstimatorConfig(intensity_min_orders=5, refit_seconds=1.0))
    # The online API takes no size at all: a 1000 BTC order and a 0.001 BTC order reach the same depth
    # and count the same. Fewer orders than the minimum leave the prior in place.
    for t in range(4):
        estimator.observe(float(t), 1, 100.5, 100.0)
    assert estimator.current(10.0).source == "prior"


def test_sigma_recovered_from_a_brownian_mid() -> None:
    sigma, dt = 0.8, 0.1  # price units per sqrt(second), a book every 100 ms
    rng = np.random.default_rng(7)
    mids = 100.0 + np.cumsum(rng.normal(0.0, sigma * math.sqrt(dt), 3000))
    estimator = VolatilityEstimator(EstimatorConfig(sigma_window_seconds=300.0))
    for i, mid in enumerate(mids):
        estimator.observe(i * dt, float(mid))
    assert estimator.sigma(len(mids) * dt) == pytest.approx(sigma, rel=0.10)


def test_sigma_never_stalls_without_mid_changes() -> None:
    cfg = EstimatorConfig(sigma_window_seconds=60.0, sigma_prior_seconds=60.0)
    with_prior = VolatilityEstimator(cfg, prior_sigma=0.5)
    without = VolatilityEstimator(cfg)
    for estimator in (with_prior, without):
        estimator.observe(0.0, 100.0)
    # A single book and then silence for ten minutes: still a positive, finite sigma.
    assert with_prior.sigma(600.0) == pytest.approx(0.5)
    assert 0 < without.sigma(600.0) == pytest.approx(cfg.sigma_floor_fraction * 100.0)
    # Data arriving moves the estimate away from the prior towards what it measures.
    rng = np.random.default_rng(1)
    mid = 100.0
    for i in range(1, 601):
        mid += rng.normal(0.0, 2.0 * math.sqrt(0.1))
        with_prior.observe(600.0 + i * 0.1, mid)
    assert 1.2 < with_prior.sigma(660.0) < 2.2


def test_a_nightly_prior_seeds_the_online_estimators() -> None:
    cfg = EstimatorConfig()
    intensity = IntensityEstimator(cfg)
    intensity.set_prior(IntensityFit(4.6, 0.15, 7000, 12, 0.9, source="nightly"))
    assert intensity.current(0.0).k == 0.15
    vol = VolatilityEstimator(cfg)
    vol.set_prior(7.0)
    vol.observe(0.0, 61_600.0)
    assert vol.sigma(1.0) == pytest.approx(7.0)
