"""Fixtures of the serving tests: one serving-ready home per session (training a champion takes seconds),
and the local Binance spot + USD-M fakes the two-venue hedge tests trade on."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal

import pytest

from bench.serving_home import build_ready_home
from pipelines.config import Settings
from tests.fakes.binance_usdm_venue import FakeBinanceUsdm
from tests.fakes.trading_venue import FakeTradingVenue


@pytest.fixture(scope="session")
def serving_home(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """Universe BTC/ETH/SOL/XRP, a champion (version 1), features of 3 synthetic symbols materialized.

    Read-only for the tests that share it: build your own home to move aliases or write features.
    """
    return build_ready_home(tmp_path_factory.mktemp("serving_home"))


@pytest.fixture
def spot() -> Iterator[FakeTradingVenue]:
    """A fake Binance spot venue (127.0.0.1) with BTCUSDT only and 10,000 USDT free."""
    with FakeTradingVenue({"BTCUSDT": ("BTC", "USDT")}, {"USDT": Decimal(10_000)}) as venue:
        yield venue


@pytest.fixture
def usdm() -> Iterator[FakeBinanceUsdm]:
    """A fake Binance USD-M futures venue (127.0.0.1) with its default markets and balance."""
    with FakeBinanceUsdm() as venue:
        yield venue
