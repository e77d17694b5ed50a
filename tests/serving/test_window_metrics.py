"""A window settles in the running serving app's paper engine: its PnL row in the store and on /metrics."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from pipelines.domain.window_market import Outcome, outcome_handle
from pipelines.trading.orders import Fill, Liquidity
from serving.engine.events import TradeEvent
from tests.serving.test_trading_metrics import sample, scrape
from tests.serving.trading_app import market_venue, traded, wait_for

__all__ = ["market_venue", "traded"]

W = 1_772_445_600  # a past window: settlement follows the prints' own time


def _print(engine, seconds: float, price: str) -> None:  # type: ignore[no-untyped-def]
    ts = datetime.fromtimestamp(W, UTC) + timedelta(seconds=seconds)
    engine.submit(TradeEvent("BTC/USDT", Decimal(price), Decimal("0.1"), ts))


def test_a_settled_paper_window_is_a_store_row_and_a_metric(traded) -> None:  # type: ignore[no-untyped-def]
    client, engine = traded
    strategy = engine.strategies["window-btc"]
    with engine._lock:  # the paper broker has no Polymarket market: the venue's fill is booked here
        fill = Fill("f1", Decimal(20), Decimal("0.50"), Decimal("0.15625"), Liquidity.TAKER, datetime.now(UTC))
        strategy.book.book_fill(outcome_handle(W, Outcome.UP), fill)

    for seconds, price in ((-1, "100.00"), (10, "100.50"), (299, "100.20"), (301, "100.30")):
        _print(engine, seconds, price)
    wait_for(lambda: bool(engine.store.window_pnls("window-btc")))

    row = engine.store.window_pnls("window-btc")[0]
    # 20 tokens less 0.15625 / 0.50 withheld = 19.6875 pay 1 each; cost 10.00
    assert (row.market, row.settled_side, row.payout, row.pnl) == (
        f"btc-updown-5m-{W}", "Up", Decimal("19.6875"), Decimal("9.6875")
    )
    samples = scrape(client)
    assert sample(samples, "alphatide_window_last_pnl_usdc", strategy="window-btc") == 9.6875
    assert sample(samples, "alphatide_window_pnl_usdc_count", strategy="window-btc") >= 1
    assert sample(samples, "alphatide_window_pnl_usdc_bucket", strategy="window-btc", le="10.0") >= 1
    assert sample(samples, "alphatide_windows_settled_total", strategy="window-btc", side="Up") >= 1
    assert not [k for k in samples if k[0].startswith("alphatide_window") and "market" in dict(k[1])]
