"""`WindowPaperBroker`: paper trading of Polymarket window-market outcome tokens (issue 17.5, on paper).

The paper fill rule is `PaperBroker`'s (`pipelines.trading.paper.PaperEngine`, one per outcome token):
a marketable (IOC) order fills against the book top after the paper latency, a resting order only when
the venue's public trades go through its price, partially up to the traded size. What differs from a
spot symbol:

- instruments: the outcome handles (`BTC_UPDOWN_5M_<start>:UP`) are registered by the feed
  (`serving.window_feed`) when it discovers a window on the venue: `register(info)` with the
  `MarketInfo` of `pipelines.adapters.polymarket.parse.market_info` (tick 0.01 from the venue, min size
  the market's `orderMinSize`, `taker_fee` the market's peak fee fraction from `fetchTradingFee`). An
  unknown handle is a `BrokerError` (no order is sent for a window the venue has not listed).
- fees: a taker pays the market's curve, shares x price x rate x (price x (1 - price))^exponent USDC
  (`pipelines.trading.window_fees`), withheld in tokens on a buy; makers pay nothing. The `Filled`
  events carry that fee in USDC (what the strategies and the portfolio book).
- balances: one cash asset (the engine's quote) and outcome tokens by handle, in a `TokenLedger`
  (fees in tokens included, so a sell of the full position never exceeds what the venue would hold);
  `redeem(start, winner)` pays 1 per winning token once the venue reports the window resolved.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING

from pipelines.config import ENV_PREFIX
from pipelines.domain.window_market import Outcome, outcome_handle
from pipelines.errors import ConfigError
from pipelines.trading.config import PaperConfig
from pipelines.trading.instruments import MarketInfo, Side
from pipelines.trading.orders import Cancelled, Fill, Filled, Liquidity, Order, Rejected, VenueEvent
from pipelines.trading.window_fees import TokenLedger, fee_usdc, peak_fee_rate
from serving.engine.broker import BrokerError, PaperBroker

if TYPE_CHECKING:
    from pipelines.config import Settings
    from serving.engine.venues import VenueSpec

VENUE = "polymarket"
WITHHELD = "fee-withheld:"  # export_state key prefix of `withheld`


def window_of(handle: str) -> int:
    """The window start of an outcome handle (BTC_UPDOWN_5M_<start>:UP)."""
    return int(handle.split(":")[0].rsplit("_", 1)[1])


class WindowPaperBroker(PaperBroker):
    name = "paper-polymarket"

    def __init__(self, cfg: PaperConfig, quote: str, starting_balance: Decimal, *, fee_exponent: int = 2) -> None:
        super().__init__(self._unknown, cfg, quote, starting_balance)
        self.quote, self.fee_exponent = quote, fee_exponent
        self.ledger = TokenLedger(cash=starting_balance)
        self.withheld: dict[int, Decimal] = {}  # per window start: taker fees (USDC) withheld in tokens
        self.api_url: str | None = None  # the venue's base URL (gamma/, clob/, data/ under it); None: polymarket

    @staticmethod
    def _unknown(symbol: str) -> MarketInfo:
        raise BrokerError(f"{symbol}: not a window market the feed has discovered on {VENUE}")

    def register(self, info: MarketInfo) -> None:
        with self._lock:
            self._markets[info.symbol] = info

    def place(self, order: Order, now: datetime) -> list[VenueEvent]:
        with self._lock:
            try:
                self.market(order.symbol)
            except BrokerError as exc:
                return [Rejected(order.client_order_id, now, str(exc))]
            if order.side is Side.BUY:
                have, need = self.ledger.cash, order.price * order.size
            else:
                have, need = self.ledger.balance(order.symbol), order.size
            if have < need:
                return [Rejected(order.client_order_id, now, f"insufficient balance: {have} < {need}")]
            self._orders[order.client_order_id] = order
            return self._settle(self._engine(order.symbol).submit(order, self._time(order.symbol, now)))

    def cancel(self, order: Order, now: datetime) -> list[VenueEvent]:
        with self._lock:
            if order.symbol not in self._markets:  # redeemed: the venue cancelled it at resolution
                return [Cancelled(order.client_order_id, now, "window resolved: the market is closed")]
            return super().cancel(order, now)

    def balances(self) -> dict[str, Decimal]:
        with self._lock:
            return {self.quote: self.ledger.cash, **{k: v for k, v in self.ledger.tokens.items() if v}}

    def export_state(self) -> dict[str, str]:
        with self._lock:
            fees = {f"{WITHHELD}{start}": str(fee) for start, fee in self.withheld.items()}
            return {**{asset: str(amount) for asset, amount in self.balances().items()}, **fees}

    def restore_state(self, state: Mapping[str, str]) -> None:
        with self._lock:
            if state:
                self.ledger.cash = Decimal(state.get(self.quote, "0"))
                rest = {k: v for k, v in state.items() if k != self.quote}
                self.withheld = {int(k[len(WITHHELD):]): Decimal(v) for k, v in rest.items() if k.startswith(WITHHELD)}
                self.ledger.tokens = {k: Decimal(v) for k, v in rest.items() if not k.startswith(WITHHELD)}

    def held_windows(self) -> set[int]:
        """Starts of the windows whose tokens the paper account holds (to redeem once resolved)."""
        with self._lock:
            return {window_of(handle) for handle, amount in self.ledger.tokens.items() if amount > 0}

    def token_fees_held(self) -> Decimal:
        """USDC value of the fees withheld in tokens of windows not yet redeemed: the engine's portfolio
        charges them in cash until redemption, so reconciliation counts them as paid."""
        with self._lock:
            return sum(self.withheld.values(), Decimal(0))

    def redeem(self, start_s: int, winner: Outcome) -> Decimal:
        """The venue resolved the window: 1 USDC per winning token; its markets and orders are gone."""
        with self._lock:
            win, lose = outcome_handle(start_s, winner), outcome_handle(start_s, winner.other)
            credited = self.ledger.settle(win, lose)
            self.withheld.pop(start_s, None)
            for handle in (win, lose):
                self.ledger.tokens.pop(handle, None)
                self._engines.pop(handle, None)
                self._markets.pop(handle, None)
                self._last.pop(handle, None)
            return credited

    def _settle(self, events: list[VenueEvent]) -> list[VenueEvent]:
        """Fills into the ledger with the market's fee curve (taker only); the events with that fee."""
        out: list[VenueEvent] = []
        for event in events:
            order = self._orders.get(event.client_order_id) if isinstance(event, Filled) else None
            if isinstance(event, Filled) and order is not None:
                f = event.fill
                rate = peak_fee_rate(self.market(order.symbol).taker_fee, self.fee_exponent)
                taker = f.liquidity is Liquidity.TAKER
                side = "buy" if order.side is Side.BUY else "sell"
                self.ledger.apply_fill(order.symbol, side, f.size, f.price, taker=taker, rate=rate,
                                       exponent=self.fee_exponent)
                fee = fee_usdc(f.size, f.price, rate, self.fee_exponent) if taker else Decimal(0)
                if side == "buy" and fee > 0:
                    start = window_of(order.symbol)
                    self.withheld[start] = self.withheld.get(start, Decimal(0)) + fee
                event = Filled(event.client_order_id, Fill(f.fill_id, f.size, f.price, fee, f.liquidity, f.ts))
            out.append(event)
        return out


def build_window_paper_broker(settings: Settings, venue: VenueSpec) -> WindowPaperBroker:
    """The paper broker of a `{"name": "polymarket", "mode": "paper"}` venue entry."""
    if venue.mode != "paper":
        raise ConfigError(f"{ENV_PREFIX}VENUES: venue 'polymarket' runs on paper only (\"mode\": \"paper\")")
    cfg = settings.engine
    broker = WindowPaperBroker(cfg.trading.paper, settings.universe.quote, cfg.paper_starting_balance)
    broker.api_url = venue.api_url
    return broker
