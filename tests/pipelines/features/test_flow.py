"""Order-flow, book and liquidation features on small hand-made inputs (values worked out by hand)."""

from __future__ import annotations

import polars as pl
import pytest

from pipelines.domain.marketdata import BookDiff, BookLevel, BookSnapshot, Trade
from pipelines.features.book import BookTop, cancel_terms, ofi_terms
from pipelines.features.flow import AnyEvent, Liquidation, flow_features_at, frames_from_events
from pipelines.features.incremental import FeatureEngine
from pipelines.features.spec import FeatureParams
from tests.pipelines.features._support import T0_US, us_times

S = 1_000_000
SYM = "AAA/USDT"


def _queries(*seconds: float) -> pl.DataFrame:
    return pl.DataFrame({"symbol": [SYM] * len(seconds), "t": us_times([T0_US + round(s * S) for s in seconds])})


def _trade(sec: float, price: float, qty: float, side: str) -> Trade:
    return Trade("binance", SYM, T0_US + round(sec * S), price, qty, side, "0")  # type: ignore[arg-type]


def test_trade_windows_sum_the_last_seconds_and_need_full_coverage() -> None:
    # Arrange: feed starts at 0 s. Quote volumes: buy 100 @10 s, sell 30 @40 s, buy 50 @70 s, sell 20 @95 s.
    trades = [
        _trade(0, 10.0, 1.0, "buy"),
        _trade(10, 10.0, 10.0, "buy"),
        _trade(40, 10.0, 3.0, "sell"),
        _trade(70, 12.5, 4.0, "buy"),
        _trade(95, 10.0, 2.0, "sell"),
    ]
    frames = frames_from_events(trades)

    # Act: at 100 s the 30 s and 60 s windows are covered, 120 s and 300 s are not; at 70 s (exactly
    # the time of a trade) that trade is not yet included.
    out = flow_features_at(_queries(100, 70), trades=frames.trades).to_dicts()

    # Assert
    at100, at70 = out
    assert at100["aggressor_ratio_30s"] == pytest.approx(50.0 / 70.0)  # [70, 100): buy 50, sell 20
    assert at100["aggressor_ratio_60s"] == pytest.approx(50.0 / 100.0)  # [40, 100): sell 30, buy 50, sell 20
    assert at100["aggressor_ratio_120s"] is None  # [-20, 100) starts before the feed
    assert at100["cumdelta_5m"] is None
    # vw momentum over [40, 100): tick returns x qty / qty, for trades with a previous trade.
    want = ((10 / 10 - 1) * 3 + (12.5 / 10 - 1) * 4 + (10 / 12.5 - 1) * 2) / (3 + 4 + 2)
    assert at100["vw_momentum_1m"] == pytest.approx(want)
    assert at70["aggressor_ratio_60s"] == pytest.approx(100.0 / 130.0)  # [10, 70): buy 100, sell 30
    # Book and liquidation columns: no input, null.
    assert at100["spread_pct"] is None and at100["liquidation_imbalance"] is None


def test_trade_windows_without_trades_are_null_ratios_but_zero_sums() -> None:
    trades = [_trade(0, 10.0, 1.0, "buy"), _trade(1, 10.0, 1.0, "sell")]
    out = flow_features_at(_queries(400), trades=frames_from_events(trades).trades).row(0, named=True)
    assert out["cumdelta_5m"] == 0.0  # nothing traded in [100, 400): a known zero
    assert out["aggressor_ratio_30s"] is None  # 0 / 0
    assert out["vw_momentum_1m"] is None


def test_cancel_terms_count_changes_within_the_top_levels() -> None:
    # Arrange: a 2-level band; the previous book has bids 10 (2.0), 9 (1.0) and asks 11 (1.5), 12 (1.0).
    prev = BookTop((10.0, 9.0), (2.0, 1.0), (11.0, 12.0), (1.5, 1.0))
    diff = BookDiff(
        "binance", SYM, T0_US, 1, 1, None,
        (BookLevel(10.0, 0.5), BookLevel(9.5, 1.0), BookLevel(8.0, 9.0)),  # -1.5, +1.0, outside band
        (BookLevel(12.0, 0.0), BookLevel(11.0, 2.0)),  # -1.0, +0.5
    )  # fmt: skip

    # Act
    added, removed = cancel_terms(prev, diff, 2)

    # Assert
    assert (added, removed) == pytest.approx((1.5, 2.5))


def test_ofi_terms_follow_cont_kukanov_stoikov() -> None:
    # Level 1: bid price up (new bid qty 3 counts +3), ask unchanged with qty 2 -> 1 (+1 from the ask).
    # Level 2: bid unchanged 1 -> 4 (+3), ask price down 13 -> 12.5 with qty 1 (-1).
    prev = BookTop((10.0, 9.0), (2.0, 1.0), (11.0, 13.0), (2.0, 5.0))
    new = BookTop((10.5, 9.0), (3.0, 4.0), (11.0, 12.5), (1.0, 1.0))
    assert ofi_terms(prev, new, (1, 2)) == pytest.approx([3.0 + 1.0, 4.0 + 3.0 - 1.0])


def _book_events() -> list[AnyEvent]:
    snap = BookSnapshot(
        "binance", SYM, None, 100,
        (BookLevel(100.0, 2.0), BookLevel(99.0, 1.0)),
        (BookLevel(101.0, 1.0), BookLevel(102.0, 3.0)),
    )  # fmt: skip
    return [
        snap,
        BookDiff("binance", SYM, T0_US, 101, 101, None, (BookLevel(100.0, 3.0),), ()),
        BookDiff("binance", SYM, T0_US + 2 * S, 102, 103, None, (), (BookLevel(101.0, 2.0),)),
        # ids jump 103 -> 110: a gap, the book needs a new snapshot
        BookDiff("binance", SYM, T0_US + 10 * S, 110, 111, None, (), (BookLevel(101.0, 1.0),)),
    ]


def test_book_features_read_the_last_state_before_t_and_go_null_when_stale_or_broken() -> None:
    # Arrange
    frames = frames_from_events(_book_events())

    # Act: at 1 s (first diff applied), 3 s (second), 6 s (4 s old: stale), 11 s (after the gap).
    out = flow_features_at(_queries(1, 3, 6, 11), book=frames.book, params=FeatureParams(book_stale_s=3.0))
    rows = out.to_dicts()

    # Assert: at 1 s bids 100 (3.0), 99 (1.0); asks 101 (1.0), 102 (3.0).
    r = rows[0]
    assert r["spread_pct"] == pytest.approx(1.0 / 100.5)
    assert r["bid_ask_imbalance"] == pytest.approx((3.0 - 1.0) / 4.0)
    assert r["lob_depth_imbalance"] == pytest.approx((4.0 - 4.0) / 8.0)
    micro = (100.0 * 1.0 + 101.0 * 3.0) / 4.0
    assert r["microprice_dev"] == pytest.approx((micro - 100.5) / 100.5)
    assert rows[1]["bid_ask_imbalance"] == pytest.approx((3.0 - 2.0) / 5.0)
    assert rows[2]["spread_pct"] is None  # stale
    assert rows[3]["spread_pct"] is None  # gap: not trusted
    # 60 s windows: the book has not been valid for 60 s yet.
    assert all(x["ofi_l1"] is None and x["cancel_rate_1m"] is None for x in rows)


def test_liquidation_imbalance_is_signed_by_the_forced_side_and_null_without_any() -> None:
    # Arrange: feed from the first trade at 0 s; shorts squeezed (forced buys) 300 quote, longs 100.
    events: list[AnyEvent] = [
        _trade(0, 10.0, 1.0, "buy"),
        Liquidation("binanceusdm", SYM, T0_US + 320 * S, "buy", 100.0, 3.0),
        Liquidation("binanceusdm", SYM, T0_US + 330 * S, "sell", 100.0, 1.0),
    ]
    frames = frames_from_events(events)

    # Act
    out = flow_features_at(_queries(340, 700), trades=frames.trades, liquidations=frames.liquidations)[
        "liquidation_imbalance"
    ].to_list()

    # Assert
    assert out[0] == pytest.approx((300.0 - 100.0) / 400.0)
    assert out[1] is None  # no liquidation in [400, 700)


def test_engine_features_at_matches_the_batch_at_arbitrary_times() -> None:
    # Arrange
    events = [
        _trade(0, 10.0, 1.0, "buy"),
        _trade(10, 10.0, 10.0, "buy"),
        _trade(40, 10.0, 3.0, "sell"),
        _trade(70, 12.5, 4.0, "buy"),
    ]
    engine = FeatureEngine("1m")
    engine.on_events(events)
    frames = frames_from_events(events)

    # Act
    live = engine.features_at(SYM, T0_US + 100 * S)
    batch = flow_features_at(_queries(100), trades=frames.trades).row(0, named=True)

    # Assert
    for name in ("aggressor_ratio_30s", "aggressor_ratio_60s", "aggressor_ratio_120s", "vw_momentum_1m"):
        assert live[name] == batch[name], name
    with pytest.raises(ValueError, match="after the latest event"):
        engine.features_at(SYM, T0_US + 70 * S)
