"""`alphatide window windows` against the fake venue, through the real ccxt client."""

from __future__ import annotations

import json
import time

import pytest

from pipelines.cli import main
from tests.fakes.polymarket_venue import FakePolymarketVenue


def test_window_windows_lists_the_current_and_next_window(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("ALPHATIDE_HOME", str(tmp_path))
    # the CLI runs on the wall clock, so the fake does too (a window may turn during the test)
    with FakePolymarketVenue(time.time, lambda t: 100.0) as fake:
        before = fake.current_start()
        fake.set_fee(before + 300, 1200)
        assert main(["window", "windows", "--api-url", fake.base_url]) == 0
    listed = json.loads(capsys.readouterr().out)
    starts = [int(w["slug"].rsplit("-", 1)[1]) for w in listed]
    assert len(starts) == 2 and starts[1] == starts[0] + 300 and starts[0] in (before, before + 300)
    fees = {int(w["slug"].rsplit("-", 1)[1]): w["fee_rate"] for w in listed}
    assert fees[before + 300] == "0.12" and fees.get(before, "0.25") == "0.25"  # read per market
    assert listed[0]["tick"] == "0.01" and listed[0]["min_size"] == "5"


@pytest.mark.integration
@pytest.mark.slow  # the default model settings: about a minute on 2 cores
def test_window_train_on_a_candle_file(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    from tests.pipelines.window.test_model import _random_walk

    monkeypatch.setenv("ALPHATIDE_HOME", str(tmp_path))
    path = tmp_path / "btc_1m.parquet"
    _random_walk(8).write_parquet(path)
    assert main(["window", "train", "--candles", str(path), "--timeframe", "1m"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["model"] == "alphatide-window" and summary["version"] == "1"
    assert summary["windows"] > 0 and "oos_brier" in summary and summary["promoted"] is True
