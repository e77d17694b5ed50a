"""Fixtures of the serving tests: one serving-ready home per session (training a champion takes seconds)."""

from __future__ import annotations

import pytest

from bench.serving_home import build_ready_home
from pipelines.config import Settings


@pytest.fixture(scope="session")
def serving_home(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """Universe BTC/ETH/SOL/XRP, a champion (version 1), features of 3 synthetic symbols materialized.

    Read-only for the tests that share it: build your own home to move aliases or write features.
    """
    return build_ready_home(tmp_path_factory.mktemp("serving_home"))
