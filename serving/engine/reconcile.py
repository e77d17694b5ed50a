"""Reconciliation: positions and cash of each venue against the venue's figures; the venue's figure wins.

Spot symbols: the base balance of a symbol is the account's position in it and the quote balance its
cash. Derivatives (unified symbols with a settle currency, `BTC/USDT:USDT`): the venue's positions
(`Broker.positions`, ccxt `fetchPositions`: contracts and side) give the signed size per instrument,
compared with the local signed size (a short is negative); a broker without `positions` leaves its
derivatives unreconciled (never read the spot way: a short perpetual has no base balance).
Fills are polled first (a fill the venue has and we have not seen yet must not look like a
mismatch). A mismatch is logged, alerted, and the local figure replaced: a position the venue holds more
(or less) of is adjusted on the strategy that holds most of it, or adopted by the default strategy when
no strategy holds it (its exit rules then manage it); a position the venue no longer has is dropped.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from pipelines.trading.instruments import MarketInfo, Side, round_size
from serving.engine.broker import BrokerError, base_quote
from serving.engine.execution import Execution
from serving.engine.persistence.schema import PositionRecord
from serving.engine.persistence.state import Persistence
from serving.engine.portfolio import Portfolio

log = logging.getLogger("alphatide.engine.reconcile")


def is_derivative(symbol: str) -> bool:
    """A unified ccxt symbol with a settle currency (`BTC/USDT:USDT`, `BTC/USD:BTC-261225`)."""
    return ":" in symbol


def _round_signed(market: MarketInfo, size: Decimal) -> Decimal:
    rounded = round_size(market, abs(size))
    return rounded if size >= 0 else -rounded


@dataclass(frozen=True)
class ReconcileResult:
    ok: bool  # the venue's balances could be read
    mismatches: list[str]


class Reconciler:
    def __init__(
        self,
        portfolio: Portfolio,
        persistence: Persistence,
        quote: str,
        default_strategy: str,
        is_major: Callable[[str], bool],
        alert: Callable[[datetime, str, str], None],
    ) -> None:
        self.portfolio = portfolio
        self.persistence = persistence
        self.quote = quote
        self.default_strategy = default_strategy
        self.is_major = is_major
        self.alert = alert

    def reconcile(self, ex: Execution, symbols: set[str], now: datetime) -> ReconcileResult:
        """Reconcile one venue; `symbols` are the ones in use (held, ordered, signalled or streamed)."""
        ex.poll(now)
        try:
            balances = ex.broker.balances()
        except BrokerError as exc:
            self.alert(now, "reconcile", f"cannot read balances: {exc}")
            return ReconcileResult(False, [])
        venue = ex.venue
        mismatches: list[str] = []
        venue_cash = balances.get(self.quote, Decimal(0))
        # a window-market venue withholds taker fees in tokens; the portfolio paid them in cash (until redemption)
        venue_cash -= getattr(ex.broker, "token_fees_held", lambda: Decimal(0))()
        local_cash = self.portfolio.cash.get(venue, Decimal(0))
        if abs(venue_cash - local_cash) > Decimal("0.01"):
            mismatches.append(f"{self.quote} cash: local {local_cash} vs venue {venue_cash}")
            self.portfolio.cash[venue] = venue_cash
        symbols = symbols | {p.symbol for p in self.portfolio.positions.values() if p.venue == venue}
        symbols |= {t.order.symbol for t in ex.tracked.values()}
        derivs = sorted(s for s in symbols if is_derivative(s))
        try:
            venue_positions = self._positions(ex, derivs)
        except BrokerError as exc:
            self.alert(now, "reconcile", f"cannot read positions: {exc}")
            return ReconcileResult(False, [])
        for symbol in sorted(symbols):
            if is_derivative(symbol) and symbol not in venue_positions:
                continue
            try:
                market = ex.market(symbol)
            except BrokerError:
                continue
            if "/" not in symbol:  # a window market's outcome token (a handle, no BASE/QUOTE): not per token
                continue
            base, _ = base_quote(symbol)
            if is_derivative(symbol):
                venue_size, unit = _round_signed(market, venue_positions[symbol]), "contracts"
            else:
                venue_size, unit = round_size(market, max(balances.get(base, Decimal(0)), Decimal(0))), base
            holders = self.portfolio.holders(venue, symbol)
            local = sum((p.signed_size for p in holders), Decimal(0))
            if abs(venue_size - local) < market.lot_size:
                continue
            mismatches.append(f"{symbol}: local {local} vs venue {venue_size} {unit}")
            if is_derivative(symbol):
                self._adopt_signed(venue, symbol, venue_size, market, now)
            else:
                self._adopt(venue, symbol, venue_size - local, market, now)
        for text in mismatches:
            log.warning("reconcile %s: %s: the venue's figure wins", venue or "default", text)
            self.alert(now, "reconcile_mismatch", f"{text}: the venue's figure wins")
        self.persistence.put("cash", str(self.portfolio.cash.get("", Decimal(0))), now)
        return ReconcileResult(True, mismatches)

    @staticmethod
    def _positions(ex: Execution, derivs: list[str]) -> dict[str, Decimal]:
        reader = getattr(ex.broker, "positions", None)
        if not derivs or not callable(reader):
            return {}
        return dict(reader(derivs))

    def _adopt_signed(self, venue: str, symbol: str, target: Decimal, market: MarketInfo, now: datetime) -> None:
        """A derivative: make the local signed size `target` (a long or a short; the largest holder moves)."""
        holders = sorted(self.portfolio.holders(venue, symbol), key=lambda p: p.size, reverse=True)
        others = sum((p.signed_size for p in holders[1:]), Decimal(0))
        if holders:
            pos = holders[0]
            want = target - others
            if want == 0 or (want > 0) == (pos.side is Side.BUY):
                self._resize(pos, abs(want), market, now)
                return
            self._resize(pos, Decimal(0), market, now)  # the venue's side flipped: a new position
            target = want
        else:
            target -= others
        self._open(venue, symbol, abs(target), Side.BUY if target > 0 else Side.SELL, now)

    def _adopt(self, venue: str, symbol: str, delta: Decimal, market: MarketInfo, now: datetime) -> None:
        """Move the local position by `delta` (base units) so the account matches the venue."""
        holders = sorted(self.portfolio.holders(venue, symbol), key=lambda p: p.size, reverse=True)
        if delta < 0:
            for pos in holders:  # the venue holds less: shrink the largest holders first
                take = min(pos.size, -delta)
                delta += take
                self._resize(pos, pos.size - take, market, now)
                if delta >= 0:
                    break
            return
        if holders:
            pos = holders[0]
            self._resize(pos, pos.size + delta, market, now)
            return
        self._open(venue, symbol, delta, Side.BUY, now)

    def _open(self, venue: str, symbol: str, size: Decimal, side: Side, now: datetime) -> None:
        """Adopt `size` held at the venue as a new position of the default strategy."""
        if size <= 0:
            return
        delta = size
        mark = self.portfolio.mark(venue, symbol, side)
        if mark is None:
            # Without a price the position can be neither valued nor exited sensibly: adopt it at the next
            # reconciliation that has one (the mismatch is alerted now and again then).
            log.warning("reconcile: %s %s held at the venue, adopted once a price is known", delta, symbol)
            return
        pos = PositionRecord(
            symbol,
            delta,
            mark,
            delta * mark,
            Decimal(0),
            Decimal(0),
            Decimal(0),
            Decimal(0),
            now,
            self.is_major(symbol),
            self.default_strategy,
            venue,
            side,
        )
        self.portfolio.put(pos)
        self.persistence.attempt(lambda: self.persistence.store.save_position(pos, now), now)

    def _resize(self, pos: PositionRecord, size: Decimal, market: MarketInfo, now: datetime) -> None:
        store = self.persistence.store
        if size < market.lot_size or size <= 0:
            self.portfolio.drop(pos.key)
            self.persistence.attempt(lambda: store.delete_position(pos.symbol, pos.strategy_id, pos.venue), now)
            return
        ratio = size / pos.size if pos.size > 0 else Decimal(1)
        pos.entry_notional *= ratio
        pos.size = size
        self.persistence.attempt(lambda: store.save_position(pos, now), now)
