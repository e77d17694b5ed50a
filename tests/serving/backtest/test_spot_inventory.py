"""A spot market maker's backtest starts holding its target base and quotes both sides from the start.

The capture is synthetic (seeded): a Binance spot snapshot, then a depth update every 100 ms moving the
touch around 100.00 and a market order every 300 ms alternately hitting the bid and lifting the ask, in
the recorded files' line format, so the whole `alphatide backtest` path runs on it in a second.
"""

from __future__ import annotations

import gzip
import json
import random
from decimal import Decimal
from pathlib import Path

import pytest

from pipelines.config import Settings, load_settings
from pipelines.sim.config import SimVenueConfig
from serving.backtest.runner import BacktestSpec, first_mid, run_backtest

T0_NS = 1_723_161_253_000_000_000
SECONDS = 120


def _line(ns: int, payload: dict[str, object]) -> str:
    return f"{ns} {json.dumps(payload, separators=(',', ':'))}"


def write_spot_capture(folder: Path, seed: int = 3) -> Path:
    """folder/spot/ethusdt_20240808.gz: `SECONDS` of a two-sided book near 100 with trades at the touch."""
    rng = random.Random(seed)
    uid = 1000
    levels = [f"{100 + s * 0.01 * i:.2f}" for s in (-1, 1) for i in range(1, 6)]
    lines = [_line(T0_NS, {"lastUpdateId": uid, "bids": [[p, "5.0"] for p in levels[:5]],
                           "asks": [[p, "5.0"] for p in levels[5:]]})]
    bid = 99.99
    for step in range(1, SECONDS * 10):
        ns = T0_NS + step * 100_000_000
        uid += 1
        new_bid = round(min(max(bid + rng.choice((-0.01, 0.0, 0.01)), 99.95), 100.05), 2)
        data = {"e": "depthUpdate", "E": ns // 1_000_000, "s": "ETHUSDT", "U": uid, "u": uid,
                "b": [[f"{new_bid:.2f}", "5.0"], [f"{new_bid - 0.01:.2f}", "5.0"]],
                "a": [[f"{new_bid + 0.02:.2f}", "5.0"], [f"{new_bid + 0.03:.2f}", "5.0"]]}
        if new_bid > bid:  # levels the touch left behind
            data["a"] = [[f"{new_bid:.2f}", "0"], [f"{new_bid + 0.01:.2f}", "0"], *data["a"]]  # type: ignore[list-item]
        elif new_bid < bid:
            data["b"] = [[f"{bid:.2f}", "0"], [f"{bid + 0.01:.2f}", "0"], *data["b"]]  # type: ignore[list-item]
        bid = new_bid
        lines.append(_line(ns, {"stream": "ethusdt@depth@100ms", "data": data}))
        if step % 3 == 0:
            sell = step % 6 == 0  # a seller hits the bid (buyer is maker) or a buyer lifts the ask
            px = bid if sell else bid + 0.02
            lines.append(_line(ns + 1000, {"stream": "ethusdt@trade", "data": {
                "e": "trade", "E": ns // 1_000_000, "s": "ETHUSDT", "t": step, "p": f"{px:.2f}", "q": "2.0",
                "T": ns // 1_000_000, "m": sell, "M": True}}))
    path = folder / "spot" / "ethusdt_20240808.gz"
    path.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(path, "wt") as fh:
        fh.write("\n".join(lines) + "\n")
    return path.parent


@pytest.fixture()
def settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.setenv("ALPHATIDE_HOME", str(tmp_path / "home"))
    return load_settings()


RULES = SimVenueConfig(tick_size=Decimal("0.01"), lot_size=Decimal("0.001"), min_notional=Decimal("5"),
                       min_size=Decimal("0.001"), maker_fee=0.001, taker_fee=0.001)


def test_spot_market_maker_holds_its_target_and_quotes_both_sides_from_the_start(
    settings: Settings, tmp_path: Path
) -> None:
    # Arrange: 1000 USDT, the default target is half of it in ETH at the first mid (100.00)
    capture = write_spot_capture(tmp_path / "ticks")
    spec = BacktestSpec("market_making", capture, symbol="ETHUSDT", out=tmp_path / "out", progress=False,
                        phase=0, sim=RULES, starting_balances={"USDT": Decimal(1000)},
                        params={"horizon_seconds": 60, "order_notional": "20", "gamma": 0.1,
                                "estimator": {"sigma_prior": 0.002}})

    # Act
    result = run_backtest(settings, spec)

    # Assert: 5 ETH held at the start (500 USDT at 100.00), the target is that holding, both sides rested
    summary = result.summary
    balances = {asset: Decimal(v) for asset, v in summary["starting_balances"].items()}
    assert balances == {"USDT": Decimal(500), "ETH": Decimal(5)}
    assert Decimal(summary["params"]["inventory_target"]) == Decimal(5)
    assert summary["fees"]["binance"] == {"maker": 0.001, "taker": 0.001}
    market = summary["markets"]["binance"]
    assert market["quote_uptime"] > 0.5  # bid and ask resting together most of the run
    assert market["ask_uptime"] > 0.5
    venue = result.engine.executions["binance"].broker
    assert venue.balances()["ETH"] >= 0  # spot never sold more than it held


def test_first_mid_is_the_first_two_sided_book(tmp_path: Path) -> None:
    from serving.backtest.runner import load_feed

    feed = load_feed(write_spot_capture(tmp_path / "ticks"), "ETHUSDT", RULES)
    assert first_mid(feed) == Decimal("100.00")


def test_a_perpetual_never_starts_holding_base(settings: Settings, tmp_path: Path) -> None:
    from serving.backtest.runner import initial_inventory

    class _Perp:
        symbol = "ETH/USDT:USDT"

    spec = BacktestSpec("market_making", tmp_path, initial_base_notional=Decimal(100))
    with pytest.raises(ValueError, match="only a spot market maker"):
        initial_inventory(spec, _Perp())  # type: ignore[arg-type]
    flat = BacktestSpec("market_making", tmp_path)
    assert initial_inventory(flat, _Perp()) is flat  # type: ignore[arg-type]
