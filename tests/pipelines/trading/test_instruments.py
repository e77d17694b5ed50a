"""Tick/lot rounding, venue minimums, Upbit KRW price bands and the small-account rule."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipelines.trading.config import SizingConfig
from pipelines.trading.instruments import (
    UPBIT_KRW_MIN_ORDER,
    UPBIT_KRW_TICKS_2024_01_29,
    UPBIT_KRW_TICKS_2025_07_31,
    MarketInfo,
    Rounding,
    Side,
    TickBand,
    TickTable,
    apply_small_account_rule,
    is_on_tick,
    prepare_limit_order,
    price_for_side,
    rejection_reason,
    round_price,
    round_size,
    ticks_away,
    to_decimal,
    to_venue_str,
)

D = Decimal


def usdt_market() -> MarketInfo:
    return MarketInfo(
        symbol="ETH/USDT",
        venue_symbol_id="ETHUSDT",
        tick_size=D("0.01"),
        lot_size=D("0.0001"),
        min_notional=D("5"),
        maker_fee=D("0.001"),
        taker_fee=D("0.001"),
    )


def upbit_market(symbol: str = "BTC/KRW", venue_id: str = "KRW-BTC") -> MarketInfo:
    return MarketInfo(
        symbol=symbol,
        venue_symbol_id=venue_id,
        tick_size=D("1000"),
        lot_size=D("0.00000001"),
        min_notional=UPBIT_KRW_MIN_ORDER,
        maker_fee=D("0.0005"),
        taker_fee=D("0.0005"),
        tick_table=UPBIT_KRW_TICKS_2025_07_31,
    )


@pytest.mark.parametrize(
    ("price", "tick"),
    [
        ("150000000", "1000"),
        ("2000000", "1000"),
        ("1999999", "1000"),
        ("1000000", "1000"),
        ("999999", "500"),
        ("500000", "500"),
        ("499999", "100"),
        ("100000", "100"),
        ("99999", "50"),
        ("50000", "50"),
        ("49999", "10"),
        ("10000", "10"),
        ("9999", "5"),
        ("5000", "5"),
        ("4999", "1"),
        ("1000", "1"),
        ("100", "1"),
        ("99.9", "0.1"),
        ("10", "0.1"),
        ("9.99", "0.01"),
        ("0.5", "0.001"),
        ("0.00000999", "0.00000001"),
    ],
)
def test_upbit_krw_tick_follows_current_price_bands(price: str, tick: str) -> None:
    # Act
    result = UPBIT_KRW_TICKS_2025_07_31.tick_for(D(price))

    # Assert
    assert result == D(tick)


@pytest.mark.parametrize(
    ("price", "tick"),
    [("1500000", "500"), ("700000", "100"), ("300000", "50"), ("5000", "1"), ("500", "0.1")],
)
def test_upbit_krw_legacy_table_kept_for_replaying_history(price: str, tick: str) -> None:
    assert UPBIT_KRW_TICKS_2024_01_29.tick_for(D(price)) == D(tick)


def test_upbit_btc_buy_rounds_down_and_sell_rounds_up_to_1000_krw() -> None:
    # Arrange
    market = upbit_market()
    raw = D("143251234")

    # Act
    buy = price_for_side(market, raw, Side.BUY)
    sell = price_for_side(market, raw, Side.SELL)

    # Assert
    assert buy == D("143251000")
    assert sell == D("143252000")


def test_rounding_up_across_a_band_boundary_lands_on_a_valid_price() -> None:
    # Arrange: 999,800 is in the 500-KRW band; rounding up reaches the 1,000-KRW band.
    market = upbit_market("XYZ/KRW", "KRW-XYZ")

    # Act
    price = round_price(market, D("999800"), Rounding.UP)

    # Assert
    assert price == D("1000000")
    assert is_on_tick(market, price)


def test_ticks_away_uses_the_lower_band_tick_below_a_boundary() -> None:
    market = upbit_market("XYZ/KRW", "KRW-XYZ")

    assert ticks_away(market, D("1000000"), -1) == D("999500")
    assert ticks_away(market, D("999500"), 1) == D("1000000")
    assert ticks_away(market, D("1000000"), 2) == D("1002000")


def test_size_rounds_down_to_lot_never_up() -> None:
    market = usdt_market()

    assert round_size(market, D("0.12349999")) == D("0.1234")
    assert round_size(market, D("0.00009")) == D("0")


def test_order_below_upbit_minimum_is_not_sent_and_says_why() -> None:
    # Arrange: 4,999 KRW of BTC at 100,000,000 KRW.
    market = upbit_market()

    # Act
    check = prepare_limit_order(market, Side.BUY, D("100000000"), D("0.00004999"))

    # Assert
    assert not check.ok
    assert check.reason is not None and "below venue minimum 5000" in check.reason


def test_order_at_exactly_the_upbit_minimum_may_be_sent() -> None:
    market = upbit_market()

    check = prepare_limit_order(market, Side.BUY, D("100000000"), D("0.00005"))

    assert check.ok
    assert check.notional == D("5000")


def test_rejection_reason_catches_off_tick_price_and_size_below_minimum_size() -> None:
    market = MarketInfo(
        symbol="SOL/USDT",
        venue_symbol_id="SOLUSDT",
        tick_size=D("0.01"),
        lot_size=D("0.01"),
        min_notional=D("0"),
        maker_fee=D("0"),
        taker_fee=D("0.0004"),
        min_size=D("0.1"),
    )

    assert rejection_reason(market, D("100.005"), D("1")) is not None
    reason = rejection_reason(market, D("100"), D("0.05"))
    assert reason is not None and "minimum size" in reason


def test_venue_strings_are_plain_decimals() -> None:
    market = upbit_market()
    price = price_for_side(market, D("143251234"), Side.BUY)

    assert to_venue_str(price) == "143251000"
    assert to_venue_str(D("1E-8") * 5000) == "0.00005"
    assert to_venue_str(D("3000.10")) == "3000.1"
    assert to_venue_str(D("1.5E+3")) == "1500"


def test_to_decimal_goes_through_str_and_refuses_nan() -> None:
    assert to_decimal(0.1) == D("0.1")
    with pytest.raises(ValueError, match="finite"):
        to_decimal(float("nan"))
    with pytest.raises(ValueError, match="finite"):
        to_decimal("Infinity")


def test_market_info_refuses_percent_fees_and_float_steps() -> None:
    with pytest.raises(ValueError, match="percent"):
        MarketInfo("A/B", "AB", D("0.01"), D("1"), D("0"), D("0.1"), D("0.1"))
    with pytest.raises(TypeError, match="Decimal"):
        MarketInfo("A/B", "AB", 0.01, D("1"), D("0"), D("0"), D("0"))  # type: ignore[arg-type]


def test_tick_table_refuses_a_band_whose_start_is_off_its_own_tick() -> None:
    with pytest.raises(ValueError, match="not on its own tick"):
        TickTable("bad", (TickBand(D("0"), D("1")), TickBand(D("1005"), D("10"))))


def test_from_ccxt_reads_venue_metadata_not_a_symbol_map() -> None:
    # Arrange: the shape ccxt's load_markets returns (TICK_SIZE precision mode).
    market = {
        "symbol": "ETH/USDC:USDC",
        "id": "ETH_USDC_PERP",
        "precision": {"price": 0.01, "amount": 0.001},
        "limits": {"cost": {"min": 10.0}, "amount": {"min": 0.001}},
        "maker": 0.0002,
        "taker": 0.0005,
    }

    # Act
    info = MarketInfo.from_ccxt(market)

    # Assert
    assert info.venue_symbol_id == "ETH_USDC_PERP"
    assert (info.tick_size, info.lot_size, info.min_notional) == (D("0.01"), D("0.001"), D("10.0"))
    assert (info.maker_fee, info.taker_fee, info.min_size) == (D("0.0002"), D("0.0005"), D("0.001"))


def test_from_ccxt_decimal_places_mode_and_upbit_table() -> None:
    market = {"symbol": "BTC/KRW", "id": "KRW-BTC", "precision": {"price": 0, "amount": 8}, "limits": {}}

    info = MarketInfo.from_ccxt(
        market,
        precision_mode="decimal_places",
        tick_table=UPBIT_KRW_TICKS_2025_07_31,
        min_notional_override=UPBIT_KRW_MIN_ORDER,
    )

    assert info.lot_size == D("1E-8")
    assert info.min_notional == D("5000")
    assert info.tick_at(D("3000")) == D("1")


def test_from_ccxt_refuses_to_guess_a_missing_step() -> None:
    with pytest.raises(ValueError, match="refuse to guess"):
        MarketInfo.from_ccxt({"symbol": "X/Y", "id": "XY", "precision": {"amount": 1}})


# ---- small-account rule (SPEC 9) ----------------------------------------------------------------
def test_small_account_raises_to_minimum_plus_ten_percent_when_confident() -> None:
    # Arrange: 3,000 KRW of XRP at 3,000 KRW (tick 1 in the 1,000-5,000 band).
    market = upbit_market("XRP/KRW", "KRW-XRP")
    cfg = SizingConfig()

    # Act
    check = apply_small_account_rule(market, Side.BUY, D("3000"), D("1"), 0.65, D("20000"), cfg)

    # Assert
    assert check.ok
    assert check.notional >= D("5500")
    assert check.notional < D("5500") + D("3000") * market.lot_size + D("1")
    assert check.note is not None and "raised" in check.note


def test_small_account_does_not_raise_when_confidence_is_low() -> None:
    market = upbit_market("XRP/KRW", "KRW-XRP")

    check = apply_small_account_rule(market, Side.BUY, D("3000"), D("1"), 0.59, D("20000"), SizingConfig())

    assert not check.ok
    assert check.reason is not None and "confidence" in check.reason


def test_small_account_does_not_raise_without_enough_balance() -> None:
    market = upbit_market("XRP/KRW", "KRW-XRP")

    check = apply_small_account_rule(market, Side.BUY, D("3000"), D("1"), 0.9, D("5400"), SizingConfig())

    assert not check.ok
    assert check.reason is not None and "available" in check.reason


def test_small_account_leaves_an_order_above_the_minimum_alone() -> None:
    market = upbit_market("XRP/KRW", "KRW-XRP")

    check = apply_small_account_rule(market, Side.BUY, D("3000"), D("3"), 0.9, D("100000"), SizingConfig())

    assert check.ok
    assert check.size == D("3")
    assert check.note is None


# ---- properties ----------------------------------------------------------------------------------
prices = st.decimals(min_value=D("0.00000001"), max_value=D("500000000"), places=8, allow_nan=False)
sizes = st.decimals(min_value=D("0"), max_value=D("1000"), places=10, allow_nan=False)


@settings(max_examples=300, deadline=None)
@given(price=prices, side=st.sampled_from(Side))
def test_property_rounded_price_is_on_tick_and_never_worse_for_us(price: Decimal, side: Side) -> None:
    market = upbit_market()

    rounded = price_for_side(market, price, side)

    assert is_on_tick(market, rounded) or rounded == 0
    if side is Side.BUY:
        assert rounded <= price
        assert price - rounded < market.tick_at(price)
    else:
        assert rounded >= price
        assert rounded - price < market.tick_at(price)


@settings(max_examples=300, deadline=None)
@given(size=sizes, lot=st.sampled_from([D("1"), D("0.001"), D("0.00000001"), D("0.5")]))
def test_property_rounded_size_never_exceeds_request_and_is_a_lot_multiple(
    size: Decimal, lot: Decimal
) -> None:
    market = MarketInfo("A/B", "AB", D("0.01"), lot, D("0"), D("0"), D("0"))

    rounded = round_size(market, size)

    assert rounded <= size
    assert size - rounded < lot
    assert rounded % lot == 0


@settings(max_examples=300, deadline=None)
@given(
    price=st.decimals(min_value=D("1"), max_value=D("200000000"), places=2),
    size=sizes,
    side=st.sampled_from(Side),
)
def test_property_no_order_below_min_notional_is_ever_produced(
    price: Decimal, size: Decimal, side: Side
) -> None:
    market = upbit_market()

    check = prepare_limit_order(market, side, price, size)

    if check.ok:
        assert check.notional >= market.min_notional
        assert check.size > 0
    else:
        assert check.reason


@settings(max_examples=200, deadline=None)
@given(
    price=st.decimals(min_value=D("1"), max_value=D("10000000"), places=2),
    size=st.decimals(min_value=D("0"), max_value=D("0.1"), places=8),
    confidence=st.floats(min_value=0.0, max_value=1.0),
    balance=st.decimals(min_value=D("0"), max_value=D("100000"), places=0),
)
def test_property_small_account_rule_never_sends_below_minimum_or_beyond_balance(
    price: Decimal, size: Decimal, confidence: float, balance: Decimal
) -> None:
    market = upbit_market()

    check = apply_small_account_rule(market, Side.BUY, price, size, confidence, balance, SizingConfig())

    if check.ok:
        assert check.notional >= market.min_notional
        if check.note is not None:
            assert check.notional * (1 + market.taker_fee) <= balance
            assert confidence >= 0.6
