"""ccxt `prediction.polymarket` structures -> the venue-independent window-market types. No IO."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from pipelines.domain.window_market import (
    BookSide,
    Outcome,
    OutcomeBook,
    OutcomeFee,
    OutcomeOrder,
    OutcomeToken,
    OutcomeTrade,
    WindowMarket,
    start_from_slug,
    window_bounds,
)
from pipelines.errors import OperatorError
from pipelines.trading.instruments import MarketInfo


def dec(value: Any, name: str = "value") -> Decimal:
    if value is None:
        raise OperatorError(f"venue sent no {name}")
    return Decimal(str(value))


def _ts_ms(value: Any) -> datetime:
    return datetime.fromtimestamp(int(value) / 1000, UTC) if value is not None else datetime.now(UTC)


def window_from_event(event: Mapping[str, Any], window_s: int, prefix: str) -> WindowMarket:
    """The window market of a ccxt prediction event (`fetchEvents({'slug': ...})`)."""
    slug = str(event["slug"])
    start_s = start_from_slug(slug, prefix)
    markets: Sequence[Mapping[str, Any]] = event.get("markets") or []
    if len(markets) != 1:
        raise OperatorError(f"{slug}: expected one binary market, the venue lists {len(markets)}")
    market = markets[0]
    tokens: dict[Outcome, OutcomeToken] = {}
    winner: Outcome | None = None
    for raw in market.get("outcomes") or []:
        outcome = Outcome(str(raw["label"]).capitalize())
        tokens[outcome] = OutcomeToken(outcome, str(raw["outcome"]), str(raw["outcomeId"]))
        if raw.get("winner") is True:
            winner = outcome
    if set(tokens) != {Outcome.UP, Outcome.DOWN}:
        raise OperatorError(f"{slug}: outcomes {sorted(tokens)} are not Up/Down")
    start, end = window_bounds(start_s, window_s)
    limits = market.get("limits") or {}
    return WindowMarket(
        slug=slug,
        condition_id=str(market.get("id")),
        start=start,
        end=end,
        up=tokens[Outcome.UP],
        down=tokens[Outcome.DOWN],
        tick_size=dec((market.get("precision") or {}).get("price"), "tick size").normalize(),
        min_size=dec((limits.get("amount") or {}).get("min") or 0, "min size").normalize(),
        active=bool(market.get("active")),
        resolved=bool(market.get("resolved")),
        winner=winner,
    )


def book_from_ccxt(book: Mapping[str, Any], token_id: str, tick: Decimal) -> OutcomeBook:
    """ccxt sorts a unified book best first (bids descending, asks ascending)."""
    bids = tuple(BookSide(dec(p), dec(s)) for p, s, *_ in book.get("bids") or [])
    asks = tuple(BookSide(dec(p), dec(s)) for p, s, *_ in book.get("asks") or [])
    return OutcomeBook(
        token_id=token_id,
        bids=tuple(sorted(bids, key=lambda b: -b.price)),
        asks=tuple(sorted(asks, key=lambda a: a.price)),
        tick_size=tick,
        ts=_ts_ms(book.get("timestamp")),
    )


def trade_from_ccxt(trade: Mapping[str, Any]) -> OutcomeTrade:
    """A public print, or one of our fills (`fetchMyTrades`).

    The CLOB reports a trade with the TAKER's side and order; when we were the maker
    (`trader_side == "MAKER"`) our side, order and size are in our entry of `maker_orders`.
    """
    fee = trade.get("fee") or {}
    info = trade.get("info") or {}
    side, order_id, size = str(trade.get("side")), trade.get("order") or None, trade.get("amount")
    if str(info.get("trader_side", "")).upper() == "MAKER":
        mine = next(iter(info.get("maker_orders") or []), None)
        if mine is not None:
            side, order_id = str(mine.get("side", side)).lower(), mine.get("order_id") or order_id
            size = mine.get("matched_amount") or size
    return OutcomeTrade(
        trade_id=str(trade.get("id") or info.get("id")),
        token_id=str(trade.get("outcomeId")),
        price=dec(trade.get("price"), "trade price"),
        size=dec(size, "trade size"),
        side=side,
        ts=_ts_ms(trade.get("timestamp")),
        order_id=order_id,
        fee_rate=dec(fee["rate"]) if fee.get("rate") is not None else None,
    )


def order_from_ccxt(order: Mapping[str, Any]) -> OutcomeOrder:
    return OutcomeOrder(
        order_id=str(order["id"]),
        token_id=str(order.get("outcomeId")),
        side=str(order.get("side")),
        price=dec(order.get("price") or 0),
        size=dec(order.get("amount") or 0),
        filled=dec(order.get("filled") or 0),
        status=str(order.get("status")),
    )


def market_info(window: WindowMarket, outcome: Outcome, fee: OutcomeFee, tick: Decimal, exponent: int) -> MarketInfo:
    """The engine's `MarketInfo` of one outcome token (what a broker over this venue reports).

    `taker_fee` is the market's peak fee fraction (at price 0.5): rate x 0.25^exponent, the most a taker
    pays; strategies recover the curve's rate from it (`pipelines.trading.window_fees.peak_fee_rate`).
    Makers pay nothing. Sizes are in shares (2 decimals), the minimum is the market's `orderMinSize`.
    """
    token = window.token(outcome)
    return MarketInfo(
        symbol=token.handle,
        venue_symbol_id=token.token_id,
        tick_size=tick,
        lot_size=Decimal("0.01"),
        min_notional=Decimal(0),
        maker_fee=Decimal(0),
        taker_fee=fee.rate * Decimal("0.25") ** exponent,
        min_size=window.min_size,
    )
