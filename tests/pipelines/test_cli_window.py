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
    now = time.time()
    with FakePolymarketVenue(lambda: now, lambda t: 100.0) as fake:
        fake.set_fee(fake.current_start() + 300, 1200)
        assert main(["window", "windows", "--api-url", fake.base_url]) == 0
    listed = json.loads(capsys.readouterr().out)
    start = int(now) - int(now) % 300
    assert [w["slug"] for w in listed] == [f"btc-updown-5m-{start}", f"btc-updown-5m-{start + 300}"]
    assert [w["fee_rate"] for w in listed] == ["0.25", "0.12"]
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
