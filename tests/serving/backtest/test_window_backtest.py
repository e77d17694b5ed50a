"""The window strategies in the engine on the tick-level simulator over seeded window books.

Two windows resolved by hand-made 5-minute candles; the seeded market has no noise, so its Up and Down
mids stay 0.50 (asks 0.51) while the reference price sits at the window's open. Settlement by hand:
fee fraction at 0.51 = 0.25 x (0.51 x 0.49)^2 = 0.0156125025 of notional, withheld in tokens.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import ROUND_FLOOR, Decimal
from pathlib import Path

import polars as pl
import pytest

from pipelines.config import EngineConfig, load_settings
from pipelines.sim.window_books import WindowBookConfig
from pipelines.trading.config import KillSwitchConfig, TradingConfig
from serving.backtest.window import WindowBacktestSpec, run_window_backtest

W0 = 1_772_445_600  # 2026-03-02 10:00 UTC, a window start
D = Decimal


def _candles() -> pl.DataFrame:
    ts = [datetime.fromtimestamp(W0 + k * 300, UTC) for k in (-1, 0, 1)]
    closes = [100.0, 101.0, 100.5]  # W0: 100 -> 101 (Up); W1: 101 -> 100.5 (Down)
    return pl.DataFrame({"ts": ts, "open": closes, "high": closes, "low": closes, "close": closes})


def _hand(size: Decimal, won: bool) -> tuple[Decimal, Decimal, Decimal]:
    """(cost, fees USDC, pnl) of buying `size` at 0.51 as a taker and holding to resolution."""
    cost = size * D("0.51")
    fee = cost * D("0.0156125025")
    payout = size - fee / D("0.51") if won else D(0)
    return cost, fee, payout - cost


@pytest.mark.integration
def test_directional_window_backtest_settles_each_window_as_computed_by_hand(tmp_path: Path) -> None:
    signals = pl.DataFrame({
        "ts": [datetime.fromtimestamp(W0, UTC), datetime.fromtimestamp(W0 + 300, UTC)],
        "p_up": [0.60, 0.30],
    })
    spec = WindowBacktestSpec(
        strategy="window", candles=_candles(), signals=signals, out=tmp_path / "bt",
        books=WindowBookConfig(seed=3, noise=0.0, trades_per_refresh=0.0),
    )

    result = run_window_backtest(load_settings({}, home=tmp_path), spec)

    rows = {r["start"]: r for r in result.windows}
    # W0: p 0.60 on Up at 0.51: f = 0.25 x (0.09 - 0.0079623763) / 0.49 = 0.041856 -> $8.3712 -> 16.41 shares
    up_size = (D(200) * (D("0.25") * (D("0.09") - D("0.51") * D("0.0156125025")) / D("0.49")) / D("0.51")).quantize(
        D("0.01"), rounding=ROUND_FLOOR)
    assert up_size == D("16.41")
    cost, fee, pnl = _hand(up_size, won=True)
    assert rows[W0]["winner"] == rows[W0]["settled_side"] == "Up"
    assert D(rows[W0]["cost"]) == cost and D(rows[W0]["fees"]) == fee and D(rows[W0]["pnl"]) == pnl
    # W1: p(Down) 0.70 at 0.51: quarter Kelly 0.0929 -> $18.58, capped by the $10 daily-loss budget: 19.60 shares
    cost1, fee1, pnl1 = _hand(D("19.60"), won=True)
    assert rows[W0 + 300]["winner"] == rows[W0 + 300]["settled_side"] == "Down"
    assert D(rows[W0 + 300]["cost"]) == cost1 and D(rows[W0 + 300]["pnl"]) == pnl1
    # the venue side of the same fills agrees to its 6-decimal token unit
    for start, expected in ((W0, pnl), (W0 + 300, pnl1)):
        assert abs(D(rows[start]["venue_pnl"]) - expected) < D("0.00001")
    assert D(result.summary["total"]["pnl"]) == pnl + pnl1
    assert result.summary["total"]["filled_orders"] == 2
    assert (tmp_path / "bt" / "windows.csv").read_text().count("\n") == 3
    assert fee1 > 0 and D(rows[W0 + 300]["fees"]) == fee1  # the curve fee, withheld in tokens
    # the engine's own positions of both windows were redeemed at resolution: nothing left open, and its
    # realized PnL is the store rows' (the fee squared between tokens and cash)
    assert result.engine.positions == {}
    assert abs(result.engine.portfolio.realized["window"] - (pnl + pnl1)) < D("0.00001")


@pytest.mark.integration
def test_window_maker_backtest_runs_the_registered_maker_and_settles_its_fills(tmp_path: Path) -> None:
    signals = pl.DataFrame({"ts": [datetime.fromtimestamp(W0, UTC)], "p_up": [0.50]})
    spec = WindowBacktestSpec(
        strategy="window_mm", candles=_candles(), signals=signals, out=tmp_path / "mm", starts=[W0],
        books=WindowBookConfig(seed=5, noise=0.0, trades_per_refresh=3.0, sweep_ticks=4),
    )

    # concentration judged on gross alone (no equity floor): after the two fills below the one window is
    # all of the book and the switch stops adding, which keeps the hand-computed path to two fills
    kill = KillSwitchConfig(concentration_min_book_share=0.0)
    engine = EngineConfig(trading=TradingConfig(kill=kill))
    result = run_window_backtest(load_settings({}, home=tmp_path, engine=engine), spec)

    row = result.windows[0]
    # bids 0.48 / 0.48 around 0.50; a sweep fills 20 Up at 0.48, the skew (2 cents for 20 shares long Up)
    # lifts the Down bid to 0.50, which a later sweep fills: 20 + 20 tokens for 9.60 + 10.00, Up pays 20
    assert row["settled_side"] == row["winner"] == "Up"
    assert (D(row["cost"]), D(row["payout"]), D(row["pnl"]), D(row["fees"])) == (D("19.60"), D(20), D("0.40"), 0)
    assert D(row["venue_pnl"]) == D("0.40") and result.summary["total"]["filled_orders"] == 2


@pytest.mark.integration
def test_alphatide_backtest_strategy_window_from_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from pipelines.cli import main

    candles = _candles().with_columns(
        pl.lit("BTC/USDT").alias("symbol"), pl.col("ts").dt.epoch("ms").alias("open_time"), pl.lit(1.0).alias("volume")
    ).drop("ts")
    candles.write_parquet(tmp_path / "c.parquet")
    pl.DataFrame({"ts": [datetime.fromtimestamp(W0, UTC)], "p_up": [0.60]}).write_parquet(tmp_path / "s.parquet")
    monkeypatch.setenv("ALPHATIDE_HOME", str(tmp_path / "home"))

    code = main(["backtest", "--strategy", "window", "--candles", str(tmp_path / "c.parquet"), "--signals",
                 str(tmp_path / "s.parquet"), "--noise", "0", "--out", str(tmp_path / "o")])

    assert code == 0
    _, _, pnl = _hand(D("16.41"), won=True)  # the first test's W0, by hand
    printed = json.loads(capsys.readouterr().out)
    assert D(printed["total"]["pnl"]) == pnl and printed["total"]["filled_orders"] == 1
