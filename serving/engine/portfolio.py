"""The portfolio: positions, cash, marks and PnL, per strategy and for the account. No IO.

Positions are keyed by (strategy_id, venue, symbol); a fill changes exactly one of them and the cash of
its venue. Round trips: a position opens on a fill from flat (its side is the entry side), grows with
fills of that side and shrinks with fills of the other; when what is left cannot be sent any more (below
one lot) the round trip is closed and its net PnL (fees of both legs included) is returned. An exit fill
never opens a position on the other side (spot cannot go short; a stray exit fill is adopted at the next
reconciliation instead).

Marks: the price a position could exit at now (the bid for a long, the ask for a short), else the last
trade. Account equity = cash of every venue + sum of signed size x mark. A strategy's equity is its
allocation plus its realized and unrealized PnL, or the account equity when it has no allocation.
Money is Decimal in the quote currency.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from pipelines.trading.instruments import Side
from pipelines.trading.orders import BookTop, Fill
from serving.engine.persistence.schema import PositionRecord
from serving.engine.strategy import PortfolioView, PositionView, RoundTrip

log = logging.getLogger("alphatide.engine.portfolio")

Key = tuple[str, str, str]  # (strategy_id, venue, symbol)


@dataclass(frozen=True)
class FillResult:
    """What a fill did: the position after it (None when flat) and the round trip it closed, if any."""

    position: PositionRecord | None
    round_trip: RoundTrip | None
    ignored: bool = False


class Portfolio:
    """See the module docstring. Not thread-safe: the engine calls it under its lock."""

    def __init__(self, allocations: dict[str, Decimal | None]) -> None:
        self.allocations = dict(allocations)
        self.positions: dict[Key, PositionRecord] = {}
        self.cash: dict[str, Decimal] = {}
        self.realized: dict[str, Decimal] = dict.fromkeys(allocations, Decimal(0))
        self.books: dict[tuple[str, str], BookTop] = {}
        self.last_price: dict[tuple[str, str], Decimal] = {}

    # ---- market data --------------------------------------------------------------------------
    def on_book(self, venue: str, symbol: str, book: BookTop) -> None:
        self.books[(venue, symbol)] = book

    def on_trade(self, venue: str, symbol: str, price: Decimal) -> None:
        self.last_price[(venue, symbol)] = price

    def mark(self, venue: str, symbol: str, side: Side = Side.BUY) -> Decimal | None:
        """Exit price of a position entered on `side`: the bid for a long, the ask for a short."""
        book = self.books.get((venue, symbol))
        if book is not None and book.is_sane():
            return book.bid if side is Side.BUY else book.ask
        return self.last_price.get((venue, symbol))

    # ---- positions ----------------------------------------------------------------------------
    def load(self, positions: Iterable[PositionRecord]) -> None:
        self.positions = {p.key: p for p in positions}

    def position(self, strategy_id: str, venue: str, symbol: str) -> PositionRecord | None:
        return self.positions.get((strategy_id, venue, symbol))

    def of(self, strategy_id: str) -> list[PositionRecord]:
        return [p for p in self.positions.values() if p.strategy_id == strategy_id]

    def holders(self, venue: str, symbol: str) -> list[PositionRecord]:
        return [p for p in self.positions.values() if p.venue == venue and p.symbol == symbol]

    def put(self, pos: PositionRecord) -> None:
        self.positions[pos.key] = pos

    def drop(self, key: Key) -> None:
        self.positions.pop(key, None)

    def apply_fill(
        self,
        key: Key,
        side: Side,
        fill: Fill,
        *,
        is_major: bool,
        lot: Decimal,
        reduce_only: bool,
        reason: str = "",
    ) -> FillResult:
        """Book one fill of strategy `key[0]` (see the module docstring for the round-trip rules)."""
        strategy_id, venue, symbol = key
        notional = fill.size * fill.price
        sign = Decimal(1) if side is Side.BUY else Decimal(-1)
        self.cash[venue] = self.cash.get(venue, Decimal(0)) - sign * notional - fill.fee
        pos = self.positions.get(key)
        if pos is None:
            if reduce_only:
                log.warning("%s fill on %s without a position (adopted at reconciliation)", side.value, symbol)
                return FillResult(None, None, ignored=True)
            pos = PositionRecord(
                symbol,
                Decimal(0),
                fill.price,
                Decimal(0),
                Decimal(0),
                Decimal(0),
                Decimal(0),
                Decimal(0),
                fill.ts,
                is_major,
                strategy_id,
                venue,
                side,
            )
            self.positions[key] = pos
        if side is pos.side:
            pos.size += fill.size
            pos.entry_notional += notional
            pos.entry_fees += fill.fee
            pos.entry_price = pos.entry_notional / (pos.size + pos.exited_size)
            return FillResult(pos, None)
        pos.size -= fill.size
        pos.exited_size += fill.size
        pos.exit_proceeds += notional
        pos.exit_fees += fill.fee
        if pos.size <= 0 or pos.size < lot:  # nothing sendable left: the round trip is over
            return FillResult(None, self._close(pos, fill.ts, reason))
        return FillResult(pos, None)

    def _close(self, pos: PositionRecord, now: datetime, reason: str) -> RoundTrip:
        entered = pos.size + pos.exited_size
        cost = pos.entry_notional * (pos.exited_size / entered) if entered > 0 else pos.entry_notional
        gross = pos.exit_proceeds - cost if pos.side is Side.BUY else cost - pos.exit_proceeds
        net_pnl = gross - pos.entry_fees - pos.exit_fees
        net_return = float(net_pnl / cost) if cost > 0 else 0.0
        self.positions.pop(pos.key, None)
        self.realized[pos.strategy_id] = self.realized.get(pos.strategy_id, Decimal(0)) + net_pnl
        return RoundTrip(
            pos.venue, pos.symbol, pos.side, pos.exited_size, net_pnl, net_return, pos.opened_at, now, reason
        )

    # ---- valuation ----------------------------------------------------------------------------
    def value(self, pos: PositionRecord) -> Decimal:
        """Signed market value of a position (entry price until a mark is known)."""
        mark = self.mark(pos.venue, pos.symbol, pos.side) or pos.entry_price
        return pos.signed_size * mark

    @staticmethod
    def _partial_realized(pos: PositionRecord) -> Decimal:
        """PnL already realized by partial exits of an open position (fees of the exits included)."""
        entered = pos.size + pos.exited_size
        if pos.exited_size <= 0 or entered <= 0:
            return Decimal(0)
        cost = pos.entry_notional * (pos.exited_size / entered)
        gross = pos.exit_proceeds - cost if pos.side is Side.BUY else cost - pos.exit_proceeds
        return gross - pos.exit_fees

    def unrealized(self, pos: PositionRecord) -> Decimal | None:
        mark = self.mark(pos.venue, pos.symbol, pos.side)
        if mark is None:
            return None
        return (mark - pos.entry_price) * pos.signed_size

    def total_cash(self) -> Decimal:
        return sum(self.cash.values(), Decimal(0))

    def equity(self) -> Decimal:
        return self.total_cash() + sum((self.value(p) for p in self.positions.values()), Decimal(0))

    def exposure(self, strategy_id: str | None = None) -> Decimal:
        """Gross exposure (quote currency) of one strategy or of the account."""
        return sum(
            (abs(self.value(p)) for p in self.positions.values() if strategy_id in (None, p.strategy_id)),
            Decimal(0),
        )

    def strategy_unrealized(self, strategy_id: str) -> Decimal:
        return sum((self.unrealized(p) or Decimal(0) for p in self.of(strategy_id)), Decimal(0))

    def strategy_equity(self, strategy_id: str) -> Decimal:
        allocation = self.allocations.get(strategy_id)
        if allocation is None:
            return self.equity()
        return allocation + self.realized.get(strategy_id, Decimal(0)) + self.strategy_unrealized(strategy_id)

    def view(self, strategy_id: str) -> PortfolioView:
        positions = {
            (p.venue, p.symbol): PositionView(
                p.venue,
                p.symbol,
                p.signed_size,
                p.entry_price,
                self._partial_realized(p),
                self.unrealized(p),
                p.opened_at,
                self.mark(p.venue, p.symbol, p.side),
            )
            for p in self.of(strategy_id)
        }
        allocation = self.allocations.get(strategy_id)
        equity = self.strategy_equity(strategy_id)
        return PortfolioView(
            strategy_id,
            allocation if allocation is not None else equity,
            equity,
            self.realized.get(strategy_id, Decimal(0)),
            self.strategy_unrealized(strategy_id),
            positions,
        )
