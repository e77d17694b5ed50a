"""Shared fixtures: where the recorded market data lives, a temporary alphatide home, a headless browser."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings

from bench.common import shared_data_dir
from tests.browser import launch_chromium

PROJECT_ROOT = Path(__file__).resolve().parents[1]

# Property tests: no per-example deadline (the 2-core machines are shared, timings are noisy) and, in CI,
# the same examples every run (a red CI must be reproducible; locally they keep exploring).
hypothesis_settings.register_profile(
    "alphatide",
    deadline=None,
    derandomize=bool(os.environ.get("CI")),
    suppress_health_check=[HealthCheck.too_slow],
)
hypothesis_settings.load_profile("alphatide")


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The recorded data folder; tests using it skip (with the reason) on a machine without it."""
    path = shared_data_dir()
    if not (path / "binance_spot_candles").is_dir():
        pytest.skip(f"recorded market data not found at {path} (set SHARED_DATA_DIR); realdata test")
    return path


@pytest.fixture
def browser() -> Iterator[Any]:
    """A headless Chromium (`tests.browser.launch_chromium`); skips when playwright or chromium is missing."""
    with launch_chromium() as launched:
        yield launched
