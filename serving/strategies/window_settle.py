"""Settlement of window-market positions at resolution, shared by the directional and the maker strategy.

`WindowBook` keeps a strategy's positions per window (tokens per outcome after the fee withheld in
tokens, USDC paid, fees) and the reference prints that resolve the windows with the venue's rule:
open = the last print before the window's start, close = the last print before its end, close >= open
is Up. When the first print at or after a window's end arrives, every position of that window is
settled (1 USDC per winning token) and reported through `ctx.window_settled` (the store's per-window
row and the Prometheus window metrics) and `ctx.record`. Without prints around a window the side is
not guessed: an alert, no PnL booked.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal

from pipelines.domain.window_market import Outcome, window_slug, window_start_s
from pipelines.trading.orders import Fill
from pipelines.trading.window import resolve, settle
from serving.engine.events import TradeEvent
from serving.engine.persistence.window_pnl import WindowSettlement
from serving.engine.strategy import StrategyContext


@dataclass
class WindowPosition:
    shares: dict[Outcome, Decimal] = field(default_factory=dict)
    cost: Decimal = Decimal(0)
    entries: int = 0
    fees: Decimal = Decimal(0)


def parse_handle(handle: str) -> tuple[int, Outcome]:
    """(window start, outcome) of a ccxt outcome handle such as BTC_UPDOWN_5M_1700000100:UP."""
    market, _, label = handle.partition(":")
    return int(market.rsplit("_", 1)[1]), Outcome(label.capitalize())


class WindowBook:
    def __init__(self, window_s: int, reference_symbol: str, reference_venue: str | None, venue: str) -> None:
        self.window_s, self.reference_symbol, self.reference_venue, self.venue = (
            window_s, reference_symbol, reference_venue, venue
        )
        self.positions: dict[int, WindowPosition] = {}
        self.window_open: dict[int, Decimal] = {}
        self.last_price: tuple[datetime, Decimal] | None = None

    # ---- state --------------------------------------------------------------------------------
    def dump(self) -> str:
        return json.dumps({
            str(s): {"shares": {k.value: str(v) for k, v in p.shares.items()}, "cost": str(p.cost),
                     "entries": p.entries, "fees": str(p.fees)}
            for s, p in self.positions.items()
        })

    def load(self, text: str) -> None:
        for start, raw in json.loads(text or "{}").items():
            self.positions[int(start)] = WindowPosition(
                {Outcome(k): Decimal(v) for k, v in raw["shares"].items()}, Decimal(raw["cost"]),
                int(raw["entries"]), Decimal(raw.get("fees", "0")),
            )

    # ---- fills and prints ---------------------------------------------------------------------------
    def book_fill(self, handle: str, fill: Fill) -> None:
        """A buy of outcome tokens: a taker's fee (USDC) is withheld in tokens, fee / price fewer credited."""
        start, outcome = parse_handle(handle)
        position = self.positions.setdefault(start, WindowPosition())
        credited = fill.size - (fill.fee / fill.price if fill.price > 0 else Decimal(0))
        position.shares[outcome] = position.shares.get(outcome, Decimal(0)) + credited
        position.cost += fill.size * fill.price
        position.fees += fill.fee

    def is_reference(self, event: TradeEvent) -> bool:
        if event.symbol != self.reference_symbol:
            return False
        return self.reference_venue is None or event.venue == self.reference_venue

    def ended(self, start: int) -> bool:
        """Whether a reference print at or after the window's end has been seen: the window is over for
        settlement, whatever the engine's clock says (a late clock must not re-enter a settled window)."""
        last = self.last_price
        return last is not None and last[0].timestamp() >= start + self.window_s

    def on_print(self, ctx: StrategyContext, event: TradeEvent) -> list[WindowSettlement]:
        """Observe one reference print; the windows it settles (already reported to `ctx`)."""
        start = window_start_s(event.ts, self.window_s)
        last = self.last_price
        if start not in self.window_open and last is not None and last[0].timestamp() < start:
            self.window_open[start] = last[1]  # the window's open: the last price before its start
        settled = self._settle_due(ctx, event.ts)
        self.last_price = (event.ts, event.price)
        return settled

    def _settle_due(self, ctx: StrategyContext, now: datetime) -> list[WindowSettlement]:
        out: list[WindowSettlement] = []
        for start in sorted(s for s in self.positions if s + self.window_s <= now.timestamp()):
            opened, last = self.window_open.get(start), self.last_price
            position = self.positions.pop(start)
            if opened is None or last is None or not start <= last[0].timestamp() < start + self.window_s:
                ctx.alert("window_unsettled", f"window {start}: no reference prints around it; pnl not booked")
                ctx.record("unsettled", f"window {start}: cost {position.cost}, shares {position.shares}")
                continue
            winner = resolve(float(opened), float(last[1]))
            payout, pnl = settle(position.shares, position.cost, winner)
            result = WindowSettlement(
                ctx.strategy_id, window_slug(start), datetime.fromtimestamp(start, UTC), winner.value,
                position.cost, position.fees, payout, pnl, now, self.venue,
            )
            ctx.window_settled(result)
            ctx.record("settle", f"window {start} resolved {winner.value}: payout {payout}, pnl {pnl}")
            out.append(result)
        for start in [s for s in self.window_open if s + 2 * self.window_s < now.timestamp()]:
            del self.window_open[start]
        return out
