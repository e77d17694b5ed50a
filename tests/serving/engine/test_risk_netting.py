"""Property: the concentration switch nets an underlying across venues and instrument types.

A completed hedge cycle (spot bought on the primary venue, the same size of the perpetual sold on the
hedge venue, any prices, split into any fills) is a net exposure of ~0 and never trips
`symbol_concentration`; the same book with its hedge leg missing still does. Gross (both legs) still
feeds the leverage switch.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from pipelines.config import EngineConfig
from pipelines.trading.exposure import underlying
from pipelines.trading.instruments import Side
from pipelines.trading.killswitch import Switch
from pipelines.trading.orders import BookTop, Fill, Liquidity
from serving.engine.portfolio import Portfolio
from serving.engine.risk import Risk

NOW = datetime(2026, 12, 2, 12, tzinfo=UTC)
LOT = Decimal("0.00001")
ASSETS = {"BTC": Decimal(60000), "ETH": Decimal(3000), "SOL": Decimal(150)}


def _book(price: Decimal, spread_bps: int) -> BookTop:
    half = price * spread_bps / Decimal(20000)
    return BookTop(price - half, price + half, Decimal(1), Decimal(1), NOW)


def _fill(portfolio: Portfolio, venue: str, symbol: str, side: Side, size: Decimal, price: Decimal, n: int) -> None:
    pieces = [size / n] * (n - 1)
    pieces.append(size - sum(pieces, Decimal(0)))
    for i, piece in enumerate(pieces):
        fill = Fill(f"{venue}-{symbol}-{i}", piece, price, Decimal(0), Liquidity.TAKER, NOW)
        portfolio.apply_fill(("hedge-1", venue, symbol), side, fill, is_major=True, lot=LOT, reduce_only=False)


def _concentration(portfolio: Portfolio, tmp: Path, min_book_share: float | None = None) -> list[str]:
    """Symbols the concentration switch fires for; `min_book_share` overrides the book's equity floor."""
    cfg = EngineConfig()
    if min_book_share is not None:
        kill = cfg.trading.kill.model_copy(update={"concentration_min_book_share": min_book_share})
        cfg = cfg.model_copy(update={"trading": cfg.trading.model_copy(update={"kill": kill})})
    risk = Risk(cfg, portfolio, tmp / "PAUSE", lambda *_: None)
    verdict = risk.evaluate(NOW, [])
    return [t.symbol or "" for t in verdict.triggers if t.switch is Switch.SYMBOL_CONCENTRATION]


cycle = st.tuples(
    st.sampled_from(sorted(ASSETS)),
    st.integers(1, 50_000),  # size in lots
    st.integers(-30, 30),  # hedge venue's price vs the primary's, bps
    st.integers(1, 4),  # fills of the maker leg
    st.integers(1, 4),  # fills of the hedge leg
)


@settings(max_examples=60, deadline=None, derandomize=True)
@given(cycles=st.lists(cycle, min_size=1, max_size=4), spread_bps=st.integers(0, 10))
def test_completed_hedge_cycles_never_trip_concentration(
    cycles: list[tuple[str, int, int, int, int]], spread_bps: int, tmp_path_factory: object
) -> None:
    # Arrange: a funded account; each cycle buys spot on "primary" and sells the perpetual on "hedge"
    tmp = Path(str(tmp_path_factory.mktemp("risk")))  # type: ignore[attr-defined]
    portfolio = Portfolio({"hedge-1": None})
    portfolio.cash = {"primary": Decimal(10**7), "hedge": Decimal(10**7)}
    for asset, lots, basis_bps, n_maker, n_hedge in cycles:
        price = ASSETS[asset]
        hedge_price = price * (1 + Decimal(basis_bps) / 10000)
        spot, perp = f"{asset}/USDT", f"{asset}/USDT:USDT"
        portfolio.on_book("primary", spot, _book(price, spread_bps))
        portfolio.on_book("hedge", perp, _book(hedge_price, spread_bps))
        size = LOT * lots
        _fill(portfolio, "primary", spot, Side.BUY, size, price, n_maker)
        _fill(portfolio, "hedge", perp, Side.SELL, size, hedge_price, n_hedge)
    # Act
    fired = _concentration(portfolio, tmp)
    # Assert: delta-neutral legs net out; dropping one hedge leg leaves a one-legged asset that trips
    assert fired == []
    asset = cycles[0][0]
    one_legged = Portfolio({"hedge-1": None})
    one_legged.cash = dict(portfolio.cash)
    for key, pos in portfolio.positions.items():
        if not (key[1] == "hedge" and underlying(key[2]) == asset):
            one_legged.positions[key] = pos
    one_legged.books = dict(portfolio.books)
    net = {underlying(k[2]) for k in one_legged.positions}
    if len(net) == 1:  # the only asset left unhedged: 100% of gross is net (judged on gross alone: the
        # funded account's equity floor would call a position this small no concentration of capital)
        assert f"{asset}/USDT" in _concentration(one_legged, tmp, min_book_share=0.0)


def test_one_legged_position_trips_and_gross_still_feeds_leverage(tmp_path: Path) -> None:
    # Arrange: a one-legged spot position, then the same with its hedge on an account too small for both
    portfolio = Portfolio({"hedge-1": None})
    portfolio.cash = {"primary": Decimal(1000)}
    portfolio.on_book("primary", "BTC/USDT", _book(ASSETS["BTC"], 2))
    _fill(portfolio, "primary", "BTC/USDT", Side.BUY, Decimal("0.01"), ASSETS["BTC"], 1)
    # Act / Assert: the one leg is 100% of exposure
    assert _concentration(portfolio, tmp_path) == ["BTC/USDT"]
    portfolio.on_book("hedge", "BTC/USDT:USDT", _book(ASSETS["BTC"], 2))
    _fill(portfolio, "hedge", "BTC/USDT:USDT", Side.SELL, Decimal("0.01"), ASSETS["BTC"], 1)
    assert _concentration(portfolio, tmp_path) == []
    # gross 1200 on equity ~1000: leverage 1.2 is under 1.5; halve the cash and it fires
    portfolio.cash = {"primary": Decimal(-200), "hedge": Decimal(900)}
    verdict = Risk(EngineConfig(), portfolio, tmp_path / "PAUSE", lambda *_: None).evaluate(NOW, [])
    assert Switch.LEVERAGE in {t.switch for t in verdict.triggers}


def test_a_small_first_position_is_no_concentration_of_capital(tmp_path: Path) -> None:
    # Arrange: 10,000 of equity, one BTC position (a market maker's first clip, then a larger holding)
    portfolio = Portfolio({"hedge-1": None})
    portfolio.cash = {"primary": Decimal(10_000)}
    portfolio.on_book("primary", "BTC/USDT", _book(ASSETS["BTC"], 2))
    _fill(portfolio, "primary", "BTC/USDT", Side.BUY, Decimal("0.002"), ASSETS["BTC"], 1)  # 120: 100% of gross
    # Act / Assert: 120 of a book of max(120, 10% x ~10,000) = 12% < 30%; on gross alone it is 100%
    assert _concentration(portfolio, tmp_path) == []
    assert _concentration(portfolio, tmp_path, min_book_share=0.0) == ["BTC/USDT"]
    # a holding of 0.06 BTC (3,600: 36% of equity) is a concentration whatever the floor
    _fill(portfolio, "primary", "BTC/USDT", Side.BUY, Decimal("0.058"), ASSETS["BTC"], 1)
    assert _concentration(portfolio, tmp_path) == ["BTC/USDT"]
