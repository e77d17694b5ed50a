"""What a market maker holds and the holding it returns to: the q of the Avellaneda-Stoikov formulas.

q = base held - target (base units; `pipelines.trading.market_making.model.Inventory`).

- Base held. On spot (`allow_short` False) it is the venue's base balance (the broker's `balances()`
  through `ctx.available_balance`: what the account really holds, whoever bought it), read at the first
  quote and again every `balance_refresh_seconds`; in between, the strategy's own fills move it. A fill
  stamped at or before the read is already in the balance and is not counted twice. On a perpetual (or
  when the context cannot read balances) it is the strategy's position in the engine's portfolio.
- Target. `inventory_target` (base) or `inventory_target_notional` (quote, turned into base at the first
  mid and then fixed); neither set: a perpetual's is 0 and spot's is half the strategy's capital in base
  (its allocation, else the pair's value at the venue: quote balance + base balance x mid), so a spot
  maker starting with half its capital in base is flat (q = 0) and quotes both sides at once.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from typing import Any

from pipelines.trading.instruments import MarketInfo, Side, round_size
from pipelines.trading.market_making.config import MarketMakingConfig
from serving.engine.broker import base_quote
from serving.engine.strategy import StrategyContext


def _reader(ctx: StrategyContext) -> Callable[[str, str], Decimal | None] | None:
    reader: Any = getattr(ctx, "available_balance", None)
    return reader if callable(reader) else None


class HeldInventory:
    """Base held and the target of one market maker (see the module docstring)."""

    def __init__(self, cfg: MarketMakingConfig, allocation: Decimal | None = None) -> None:
        self.cfg = cfg
        self.allocation = allocation
        self.target: Decimal | None = cfg.inventory_target
        if self.target is None and cfg.inventory_target_notional is None and cfg.allow_short:
            self.target = Decimal(0)
        self.source = "position"  # where `held` came from last: "balance" or "position"
        self._read: Decimal | None = None
        self._read_at: datetime | None = None
        self._since = Decimal(0)

    def on_fill(self, side: Side, size: Decimal, ts: datetime) -> None:
        """One of the strategy's own fills: moves the held base until the next balance read."""
        if self._read_at is not None and ts > self._read_at:
            self._since += size if side is Side.BUY else -size

    def held(self, ctx: StrategyContext, now: datetime) -> Decimal:
        """Base held now (spot: the venue's balance plus own fills since it was read)."""
        cfg = self.cfg
        reader = _reader(ctx)
        if cfg.allow_short or reader is None:
            self.source = "position"
            return ctx.position(cfg.symbol, cfg.venue)
        stale = self._read_at is None or (now - self._read_at).total_seconds() >= cfg.balance_refresh_seconds
        if stale:
            value = reader(cfg.venue, base_quote(cfg.symbol)[0])
            if value is None:
                self.source = "position"
                return ctx.position(cfg.symbol, cfg.venue)
            self._read, self._read_at, self._since = value, now, Decimal(0)
        self.source = "balance"
        assert self._read is not None
        return self._read + self._since

    def target_for(self, ctx: StrategyContext, market: MarketInfo, mid: Decimal) -> Decimal:
        """The target base holding, fixed the first time it is asked for (at the first mid)."""
        if self.target is None:
            notional = self.cfg.inventory_target_notional
            if notional is None:
                notional = self._capital(ctx, mid) / 2
            self.target = round_size(market, notional / mid) if mid > 0 else Decimal(0)
        return self.target

    def _capital(self, ctx: StrategyContext, mid: Decimal) -> Decimal:
        if self.allocation is not None:
            return self.allocation
        reader = _reader(ctx)
        if reader is not None:
            base, quote = base_quote(self.cfg.symbol)
            held_base, held_quote = reader(self.cfg.venue, base), reader(self.cfg.venue, quote)
            if held_base is not None or held_quote is not None:
                return (held_quote or Decimal(0)) + (held_base or Decimal(0)) * mid
        return ctx.portfolio().equity

    def snapshot(self) -> dict[str, Any]:
        return {"target_base": str(self.target) if self.target is not None else None, "held_source": self.source}
