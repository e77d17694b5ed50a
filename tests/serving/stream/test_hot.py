"""The hot score of SPEC 3: components from trades and quotes, rank-normalized, weighted, top N."""

from __future__ import annotations

import pytest

from pipelines.config import StreamConfig
from serving.stream.hot import HotScoreBoard, rank_normalize

MINUTE_US = 60_000_000
T0 = 1_785_000_000 * 1_000_000 - (1_785_000_000 * 1_000_000) % MINUTE_US


def test_rank_normalize_scales_ranks_and_ties_and_unknowns() -> None:
    ranks = rank_normalize({"a": 1.0, "b": 3.0, "c": 3.0, "d": 5.0, "e": None})
    assert ranks == {"a": 0.0, "b": pytest.approx(0.5), "c": pytest.approx(0.5), "d": 1.0, "e": 0.5}
    assert rank_normalize({"only": 2.0}) == {"only": 0.5}


def _feed(board: HotScoreBoard, symbol: str, drift: float, volume: float, buy_share: float, spread: float) -> None:
    price = 100.0
    for minute in range(61):
        price *= 1 + drift + (0.001 if minute % 2 else -0.001)
        qty = volume * (3.0 if minute >= 56 else 1.0)  # a surge in the last 5 minutes
        board.on_trade(symbol, T0 + minute * MINUTE_US, price, qty * buy_share, True)
        board.on_trade(symbol, T0 + minute * MINUTE_US + 1, price, qty * (1 - buy_share), False)
    board.on_quote(symbol, 100 * (1 - spread / 2), 100 * (1 + spread / 2))


def test_the_symbol_that_wins_every_component_ranks_first() -> None:
    board = HotScoreBoard(StreamConfig(hot_top_n=2))
    _feed(board, "HOT/USDT", drift=0.002, volume=10, buy_share=0.8, spread=0.0001)
    _feed(board, "MID/USDT", drift=0.0005, volume=10, buy_share=0.5, spread=0.0005)
    _feed(board, "COLD/USDT", drift=-0.001, volume=10, buy_share=0.2, spread=0.002)
    board.on_hurst("HOT/USDT", 0.7)
    board.on_hurst("COLD/USDT", 0.5)

    ranking = board.rank()
    hot = board.components("HOT/USDT")

    assert [e.symbol for e in ranking.top] == ["HOT/USDT", "MID/USDT"] and ranking.symbols_ranked == 3
    assert hot["momentum"] == pytest.approx((1.002 * 1.0 - 0.0) ** 20 - 1, rel=0.05)
    assert hot["volume_surge"] is not None and hot["volume_surge"] > 1.5
    assert hot["order_flow"] == pytest.approx(0.6)
    assert hot["regime_match"] == 1.0 and board.components("COLD/USDT")["regime_match"] == 0.0
    assert ranking.top[0].score > ranking.top[1].score and 0 <= ranking.top[1].score <= 1


def test_weights_must_sum_to_one() -> None:
    with pytest.raises(ValueError, match="sum to 1"):
        StreamConfig(hot_weight_momentum=0.5)
