"""`WindowSimVenue`: the simulator's Polymarket window venue (a `SimulatedVenue` over outcome tokens).

The outcome tokens of one window at a time are its markets (`load_window` swaps them in when a window
opens; orders of past windows are gone with their market, as at the venue after resolution). What
differs from a spot venue:

- fees: the market's fee curve, read from the market config (`fee_rate`, `fee_exponent`): a taker pays
  shares x price x rate x (price x (1 - price))^exponent USDC, withheld in tokens on a buy
  (`pipelines.trading.window_fees`); makers pay nothing. `market()` reports as `taker_fee` the curve's
  peak fraction (rate x 0.25^exponent), what the strategies turn back into the rate;
- balances: one cash asset (`cash_asset`, the engine's quote) and outcome tokens by handle, fees in
  tokens included; `settle(start, winner)` redeems a resolved window (1 per winning token) and keeps the
  window's venue-side PnL in `ledgers` (the report's check against the strategy's own settlement).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal

from pipelines.domain.window_market import Outcome, outcome_handle
from pipelines.sim.market import BUY, Response, SimMarket
from pipelines.trading.instruments import MarketInfo
from pipelines.trading.orders import Cancelled, Fill, Filled, Liquidity, Order, VenueEvent
from pipelines.trading.window_fees import TokenLedger, fee_usdc
from serving.brokers.sim.venue import SimulatedVenue


class WindowSimVenue(SimulatedVenue):
    def __init__(
        self, name: str, cash: Decimal, *, fee_rate: Decimal, fee_exponent: int, cash_asset: str = "USDT"
    ) -> None:
        super().__init__(name, [], {cash_asset: cash})
        self.fee_rate, self.fee_exponent, self.cash_asset = fee_rate, fee_exponent, cash_asset
        self.ledger = TokenLedger(cash=cash)
        self.ledgers: dict[int, TokenLedger] = {}  # per window: its fills and settlement (cash = its PnL)

    def load_window(self, markets: Sequence[SimMarket]) -> None:
        for m in markets:
            m.inbox = []
        self._markets = {m.symbol: m for m in markets}
        self._infos = {}

    def cancel(self, order: Order, now: datetime) -> list[VenueEvent]:
        ref = self._oid_by_cid.get(order.client_order_id)
        if ref is not None and ref[0] not in self._markets:
            return [Cancelled(order.client_order_id, now, "window resolved: the market is closed")]
        return super().cancel(order, now)

    def market(self, symbol: str) -> MarketInfo:
        if symbol not in self._infos:
            m = self.sim_market(symbol)
            peak = self.fee_rate * Decimal("0.25") ** self.fee_exponent
            self._infos[symbol] = MarketInfo(
                symbol, symbol, m.feed.tick_size, m.feed.lot_size, m.min_notional, Decimal(0), peak, m.min_size
            )
        return self._infos[symbol]

    def _events(self, m: SimMarket, r: Response) -> list[VenueEvent]:
        events = super()._events(m, r)
        out: list[VenueEvent] = []
        for event in events:
            if isinstance(event, Filled):
                f = event.fill
                taker = f.liquidity is Liquidity.TAKER
                fee = fee_usdc(f.size, f.price, self.fee_rate, self.fee_exponent) if taker else Decimal(0)
                local = m.orders.get(r.oid)
                side = "buy" if local is None or local.side == BUY else "sell"
                start = int(m.symbol.split(":")[0].rsplit("_", 1)[1])
                for ledger in (self.ledger, self.ledgers.setdefault(start, TokenLedger())):
                    ledger.apply_fill(m.symbol, side, f.size, f.price, taker=taker, rate=self.fee_rate,
                                      exponent=self.fee_exponent)
                event = Filled(event.client_order_id, Fill(f.fill_id, f.size, f.price, fee, f.liquidity, f.ts))
            out.append(event)
        return out

    def settle(self, start: int, winner: Outcome) -> Decimal:
        """Redeem a resolved window: 1 per winning token (both ledgers); the window's venue-side PnL."""
        win, lose = outcome_handle(start, winner), outcome_handle(start, winner.other)
        self.ledger.settle(win, lose)
        ledger = self.ledgers.setdefault(start, TokenLedger())
        ledger.settle(win, lose)
        return ledger.cash

    def balances(self) -> dict[str, Decimal]:
        return {self.cash_asset: self.ledger.cash, **{k: v for k, v in self.ledger.tokens.items() if v}}
