"""Window markets: quarter-Kelly sizing, entry cutoff, settlement, fees in tokens, market-maker quotes."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipelines.domain.window_market import Outcome
from pipelines.trading.window import (
    WindowMMConfig,
    WindowTradingConfig,
    decide_entry,
    kelly_fraction,
    resolve,
    settle,
)
from pipelines.trading.window_fees import TokenLedger, buy_fee_tokens, effective_fee_fraction, fee_usdc
from pipelines.trading.window_mm import window_quotes

CFG = WindowTradingConfig()
D = Decimal


# ---- quarter-Kelly -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("p", "price", "expected"),
    [
        (0.60, D("0.50"), 0.25 * 0.10 / 0.50),  # 0.05
        (0.55, D("0.40"), 0.25 * 0.15 / 0.60),  # 0.0625
        (0.70, D("0.65"), 0.25 * 0.05 / 0.35),  # 0.0357...
        (0.90, D("0.50"), 0.10),  # raw 0.2 is capped at max_bankroll_fraction
    ],
)
def test_quarter_kelly_matches_hand_computed_cases(p: float, price: Decimal, expected: float) -> None:
    assert kelly_fraction(p, price, CFG) == pytest.approx(expected)


@given(p=st.floats(0.0, 1.0), price=st.decimals("0.01", "0.99", places=2))
def test_kelly_is_zero_without_edge_and_never_above_the_cap(p: float, price: Decimal) -> None:
    f = kelly_fraction(p, price, CFG)
    assert 0.0 <= f <= CFG.max_bankroll_fraction
    if p - float(price) <= 0:
        assert f == 0.0


def test_fee_is_taken_off_the_edge() -> None:
    rate = D("0.25")
    fee_per_share = float(effective_fee_fraction(D("0.5"), rate, 2)) * 0.5  # 0.0078125
    assert kelly_fraction(0.6, D("0.5"), CFG, rate) == pytest.approx(0.25 * (0.1 - fee_per_share) / 0.5)
    assert kelly_fraction(0.505, D("0.5"), CFG, rate) == 0.0  # 0.5 cent of edge does not pay a 0.78 cent fee


def test_entry_size_is_the_stake_over_the_price_and_capped_per_trade() -> None:
    # Arrange: p 0.6 at 0.5 -> f 0.05 of $200 = $10 -> 20 shares
    decision = decide_entry(0.6, D("0.50"), D("0.52"), 200.0, CFG)
    assert decision.entry is not None
    assert (decision.entry.outcome, decision.entry.size, decision.entry.stake) == (Outcome.UP, D("20.00"), D("10.0000"))
    # f capped at 0.10 of $200 = $20, at most the $20 per-trade cap -> 40 shares at 0.5 ...
    roomy = WindowTradingConfig(daily_loss_limit=D(100), max_trade=D(15))
    big = decide_entry(0.95, D("0.50"), D("0.52"), 200.0, roomy)
    assert big.entry is not None and (big.entry.size, big.entry.stake) == (D("30.00"), D("15.0000"))
    # ... and never more than the daily loss budget ($10 by default): the whole stake can be lost
    capped = decide_entry(0.95, D("0.50"), D("0.52"), 200.0, CFG)
    assert capped.entry is not None and capped.entry.stake == D("10.0000")


def test_entry_buys_down_when_the_model_says_down() -> None:
    decision = decide_entry(0.40, D("0.65"), D("0.56"), 200.0, CFG)
    assert decision.entry is not None and decision.entry.outcome is Outcome.DOWN
    assert decision.entry.price == D("0.56")
    assert decision.entry.fraction == pytest.approx(0.25 * (0.60 - 0.56) / 0.44)  # 0.0227


def test_no_entry_without_edge() -> None:
    decision = decide_entry(0.50, D("0.51"), D("0.51"), 200.0, CFG)
    assert decision.entry is None and "no edge" in decision.reason


def test_no_entry_after_the_cutoff() -> None:
    cfg = WindowTradingConfig(min_seconds_left=45)
    assert decide_entry(0.8, D("0.5"), D("0.5"), 45.0, cfg).entry is not None
    late = decide_entry(0.8, D("0.5"), D("0.5"), 44.9, cfg)
    assert late.entry is None and "no entry" in late.reason


def test_daily_loss_budget_caps_the_stake_and_stops_entries() -> None:
    half_used = decide_entry(0.95, D("0.50"), None, 200.0, CFG, pnl_today=D("-6"))
    assert half_used.entry is not None and half_used.entry.stake <= D("4")
    assert decide_entry(0.95, D("0.50"), None, 200.0, CFG, pnl_today=D("-10")).entry is None


def test_below_venue_minimum_is_not_entered() -> None:
    decision = decide_entry(0.52, D("0.50"), None, 200.0, CFG, min_size=D(5))  # f 0.01 -> $2 -> 4 shares
    assert decision.entry is None and "minimum" in decision.reason


def test_config_defaults_are_the_seed_phase_one() -> None:
    assert (CFG.bankroll, CFG.max_trade, CFG.daily_loss_limit, CFG.kelly_fraction) == (D(200), D(20), D(10), 0.25)
    with pytest.raises(ValueError):
        WindowTradingConfig(bankroll_typo=1)  # type: ignore[call-arg]


# ---- resolution and settlement --------------------------------------------------------------------
def test_tie_resolves_up() -> None:
    assert resolve(100.0, 100.0) is Outcome.UP
    assert resolve(100.0, 100.01) is Outcome.UP
    assert resolve(100.0, 99.99) is Outcome.DOWN


def test_settlement_credits_the_winning_side() -> None:
    shares = {Outcome.UP: D(20), Outcome.DOWN: D(5)}
    assert settle(shares, D("12.5"), Outcome.UP) == (D(20), D("7.5"))
    assert settle(shares, D("12.5"), Outcome.DOWN) == (D(5), D("-7.5"))


def test_ledger_settlement_pays_one_per_winning_token() -> None:
    ledger = TokenLedger(cash=D(100))
    ledger.apply_fill("up", "buy", D(10), D("0.4"), taker=False, rate=D(0), exponent=2)
    ledger.apply_fill("down", "buy", D(4), D("0.5"), taker=False, rate=D(0), exponent=2)
    assert ledger.settle("up", "down") == D(10)
    assert ledger.cash == D(100) - D(4) - D(2) + D(10)
    assert ledger.balance("up") == ledger.balance("down") == 0


# ---- fees charged in tokens -----------------------------------------------------------------------
def test_fee_curve_peaks_at_one_half() -> None:
    rate = D("0.25")
    assert fee_usdc(D(100), D("0.5"), rate, 2) == D("0.78125")  # 1.5625% of $50
    assert (
        fee_usdc(D(100), D("0.5"), rate, 2) > fee_usdc(D(100), D("0.3"), rate, 2) > fee_usdc(D(100), D("0.1"), rate, 2)
    )


def test_fees_in_tokens_leave_a_sellable_balance() -> None:
    # Arrange: a taker buy of 100 Up at 0.50 with the venue's 2500 bps base fee
    ledger = TokenLedger(cash=D(100))
    fee = ledger.apply_fill("up", "buy", D(100), D("0.50"), taker=True, rate=D("0.25"), exponent=2)
    # Act
    sellable = ledger.sellable("up", D("0.01"))
    # Assert: 1.5625 tokens were withheld; the full-position sell is what the wallet holds, rounded down
    assert fee == D("1.562500")
    assert ledger.balance("up") == D("98.437500")
    assert sellable == D("98.43")
    with pytest.raises(ValueError, match="exceeds the balance"):
        ledger.apply_fill("up", "sell", D(100), D("0.6"), taker=True, rate=D("0.25"), exponent=2)
    ledger.apply_fill("up", "sell", sellable, D("0.60"), taker=True, rate=D("0.25"), exponent=2)
    assert D(0) <= ledger.balance("up") < D("0.01")


@given(
    shares=st.decimals("1", "500", places=2),
    price=st.decimals("0.01", "0.99", places=2),
    rate=st.decimals("0", "0.5", places=4),
)
def test_sellable_never_exceeds_what_the_venue_credited(shares: Decimal, price: Decimal, rate: Decimal) -> None:
    ledger = TokenLedger(cash=D(1000))
    ledger.apply_fill("t", "buy", shares, price, taker=True, rate=rate, exponent=2)
    credited = shares - fee_usdc(shares, price, rate, 2) / price  # exact, unrounded
    assert ledger.sellable("t", D("0.01")) <= credited
    assert buy_fee_tokens(shares, price, rate, 2) >= 0


# ---- market-maker quotes --------------------------------------------------------------------------
MM = WindowMMConfig()


def test_quotes_are_fair_plus_minus_two_cents_when_flat() -> None:
    quotes = window_quotes(0.60, D(0), 200.0, D("0.01"), MM)
    assert quotes is not None and quotes.up_bid is not None and quotes.down_bid is not None
    assert quotes.up_bid.price == D("0.58")
    assert quotes.up_ask == D("0.62")
    assert quotes.down_bid.price == D("0.38")
    assert quotes.up_bid.size == quotes.down_bid.size == MM.quote_size


def test_quotes_skew_against_inventory() -> None:
    long_up = window_quotes(0.60, D(30), 200.0, D("0.01"), MM)  # 3 units long -> 3 cents lower
    short_up = window_quotes(0.60, D(-30), 200.0, D("0.01"), MM)
    assert long_up is not None and short_up is not None
    assert long_up.up_bid is not None and long_up.up_bid.price == D("0.55")
    assert long_up.up_ask == D("0.59")
    assert short_up.up_bid is not None and short_up.up_bid.price == D("0.61")


def test_no_side_exceeds_its_share_cap() -> None:
    at_cap = window_quotes(0.5, D(200), 200.0, D("0.01"), MM)
    near_cap = window_quotes(0.5, D(-190), 200.0, D("0.01"), MM)
    assert at_cap is not None and at_cap.up_bid is None and at_cap.down_bid is not None
    assert near_cap is not None and near_cap.down_bid is not None and near_cap.down_bid.size == D(10)


def test_quotes_disappear_before_resolution() -> None:
    assert window_quotes(0.6, D(0), MM.pull_seconds, D("0.01"), MM) is None
    assert window_quotes(0.6, D(0), MM.pull_seconds + 1, D("0.01"), MM) is not None


@given(
    p=st.floats(0.0, 1.0),
    inventory=st.decimals("-400", "400", places=0),
    tick=st.sampled_from([D("0.01"), D("0.001")]),
)
def test_quotes_stay_inside_the_price_band(p: float, inventory: Decimal, tick: Decimal) -> None:
    quotes = window_quotes(p, inventory, 120.0, tick, MM)
    assert quotes is not None
    for quote in (quotes.up_bid, quotes.down_bid):
        if quote is not None:
            assert D("0.01") <= quote.price <= D("0.99")
            assert quote.price % tick == 0
            assert 0 < quote.size <= MM.max_shares_per_side
    if quotes.up_bid is not None and quotes.up_ask is not None:
        assert quotes.up_bid.price < quotes.up_ask


@given(
    p=st.floats(0.0, 1.0),
    up_ask=st.decimals("0.01", "0.99", places=2),
    down_ask=st.decimals("0.01", "0.99", places=2),
    left=st.floats(0.0, 300.0),
    pnl=st.decimals("-20", "20", places=2),
)
def test_an_entry_never_risks_more_than_every_cap_allows(
    p: float, up_ask: Decimal, down_ask: Decimal, left: float, pnl: Decimal
) -> None:
    decision = decide_entry(p, up_ask, down_ask, left, CFG, pnl_today=pnl, min_size=D(5))
    if decision.entry is None:
        return
    entry = decision.entry
    budget = CFG.daily_loss_limit + min(pnl, D(0))
    cap = min(CFG.max_trade, budget, CFG.bankroll * D(repr(CFG.max_bankroll_fraction)))
    assert entry.stake == entry.price * entry.size <= cap
    assert entry.size >= 5 and entry.size % CFG.size_step == 0
    assert left >= CFG.min_seconds_left
    p_side = p if entry.outcome is Outcome.UP else 1 - p
    assert p_side > float(entry.price)  # only ever buys the side the model thinks is cheap
