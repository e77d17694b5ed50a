"""The directional strategy of SPEC 9 as a `Strategy`: the champion's signals in, post-only entries and
rule-based exits out. Its decisions are `pipelines.trading.directional`'s, the very wiring the nightly
backtest calls.

- Signal: exits first (the EV trail reads the new expected return), then the entry: no entry on a
  signal that is not tradeable (the serving model has not passed the promotion gate), nor where it is
  already positioned or working; spot is long only; the risk component's limits (a kill switch is the
  reason given); the expected value after costs against the threshold (the signal's spread and payoff
  statistics when it carries them, else the book's spread and the closed trades'); adaptive Kelly
  sizing (halved when correlated > 0.8 with an open position); a WORKING buy at the bid.
- Books and trades: exits (hard stop, EV trail, time stop, take profit) on the new mark.
- Timer: every symbol's log mid sampled at the same instants (the correlation rule aligns on them),
  exits of every position (time stops).
- Fills that close a round trip feed the adaptive Kelly and the win-rate tracker, persisted in the
  strategy's state (they survive restarts).
"""

from __future__ import annotations

import itertools
import json
import math
import statistics
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from pipelines.trading.config import TradingConfig
from pipelines.trading.decision import WinRateTracker
from pipelines.trading.directional import EntryCosts, SizeContext, entry_decision, entry_size, exit_decision, exit_view
from pipelines.trading.instruments import Side
from pipelines.trading.sizing import AdaptiveKelly, KellyState
from serving.engine.broker import BrokerError, base_quote
from serving.engine.events import BookEvent, SignalEvent, TradeEvent
from serving.engine.strategy import FillEvent, OrderIntent, OrderUpdate, StrategyContext


@dataclass(frozen=True)
class DirectionalParams:
    """The engine-level numbers the strategy reads (defaults from `EngineConfig`)."""

    expected_slippage: float = 0.0002
    stats_min_trades: int = 20
    correlation_sample_s: float = 60.0
    correlation_window: int = 120
    correlation_min_samples: int = 20
    symbols: frozenset[str] | None = None  # None: every signalled symbol
    trade_ungated: bool = False  # paper only (validated by EngineConfig): trade a not-yet-gated champion too


class DirectionalStrategy:
    """See the module docstring."""

    def __init__(
        self, strategy_id: str, trading: TradingConfig, majors: frozenset[str], params: DirectionalParams
    ) -> None:
        self.strategy_id = strategy_id
        self.trading = trading
        self.majors = majors
        self.params = params
        self.kelly = AdaptiveKelly(trading.sizing)
        self.wins = WinRateTracker(trading.decision)
        self.signals: dict[str, SignalEvent] = {}
        self._seen: set[str] = set()
        self._mids: dict[str, dict[datetime, float]] = {}
        self._last_sample: datetime | None = None

    # ---- lifecycle ----------------------------------------------------------------------------
    def on_start(self, ctx: StrategyContext) -> None:
        state = ctx.state()
        if "kelly" in state:
            k = json.loads(state["kelly"])
            self.kelly = AdaptiveKelly(
                self.trading.sizing, KellyState(float(k["fraction"]), tuple(k["recent_returns"]), int(k["since"]))
            )
        if "win_outcomes" in state:
            self.wins = WinRateTracker(self.trading.decision, json.loads(state["win_outcomes"]))
        self._save(ctx)

    def on_stop(self, ctx: StrategyContext) -> None:
        self._save(ctx)

    def _save(self, ctx: StrategyContext) -> None:
        k = self.kelly.state()
        kelly = {"fraction": k.fraction, "recent_returns": list(k.recent_returns), "since": k.since_recalibration}
        ctx.save_state({"kelly": json.dumps(kelly), "win_outcomes": json.dumps(list(self.wins.outcomes()))})

    # ---- events -------------------------------------------------------------------------------
    def on_book(self, ctx: StrategyContext, event: BookEvent) -> None:
        self._seen.add(event.symbol)
        self._check_exit(ctx, event.symbol)

    def on_trade(self, ctx: StrategyContext, event: TradeEvent) -> None:
        self._check_exit(ctx, event.symbol)

    def on_signal(self, ctx: StrategyContext, event: SignalEvent) -> None:
        if event.kind != "directional":  # a window market's probability is not a market to buy
            return
        self.signals[event.symbol] = event
        self._check_exit(ctx, event.symbol)
        self._consider_entry(ctx, event)

    def on_order_update(self, ctx: StrategyContext, update: OrderUpdate) -> None:
        pass  # the working order's end is recorded by execution; positions move on fills

    def on_fill(self, ctx: StrategyContext, fill: FillEvent) -> None:
        trip = fill.round_trip
        if trip is None:
            return
        self.kelly.record_trade(trip.net_return)
        self.wins.record(trip.net_pnl > 0)
        self._save(ctx)
        ctx.record("closed", f"net PnL {trip.net_pnl} ({trip.net_return:.4%}): {trip.reason}", trip.symbol)

    def on_timer(self, ctx: StrategyContext, now: datetime) -> None:
        self._sample_mids(ctx, now)
        for _venue, symbol in ctx.portfolio().positions:
            self._check_exit(ctx, symbol)

    # ---- entries ------------------------------------------------------------------------------
    def _consider_entry(self, ctx: StrategyContext, sig: SignalEvent) -> None:
        symbol = sig.symbol
        if self.params.symbols is not None and symbol not in self.params.symbols:
            return None
        if not sig.tradeable and not self.params.trade_ungated:
            return ctx.record("skip", "signal not tradeable (the serving model has not passed the gate)", symbol)
        if ctx.position(symbol) != 0 or ctx.open_orders(symbol):
            return ctx.record("skip", "already positioned or working in this symbol", symbol)
        if sig.p_up < 0.5:
            return ctx.record("skip", f"p_up {sig.p_up:.4f} < 0.5: spot is long only", symbol)
        book = ctx.book(symbol)
        if book is None or not Decimal(0) < book.bid < book.ask:
            return ctx.record("skip", "no usable book yet", symbol)
        try:
            market = ctx.instrument(symbol)
        except BrokerError as exc:
            return ctx.record("skip", f"no market info: {exc}", symbol)
        is_major = self._is_major(symbol)
        avg_win, avg_loss = self._payoffs(is_major)
        if sig.avg_win is not None and sig.avg_loss is not None:
            avg_win, avg_loss = sig.avg_win, sig.avg_loss
        spread = sig.spread if sig.spread is not None else float((book.ask - book.bid) / ((book.bid + book.ask) / 2))
        costs = EntryCosts(
            avg_win,
            avg_loss,
            float(market.maker_fee + market.taker_fee),
            self.params.expected_slippage,
            spread,
            sig.volatility if sig.volatility is not None else 0.0,
        )
        limits = ctx.risk_limits(symbol)  # before the gate: a kill switch is reported as the reason
        if not limits.allowed:
            return ctx.record("blocked", limits.reason, symbol)
        choice = entry_decision(sig.p_up, costs, self.trading, self.wins, long_only=True)
        if not choice.enter or choice.side is None:
            return ctx.record("skip", choice.reason, symbol)
        view = ctx.portfolio()
        sizing = SizeContext(
            equity=view.equity,
            is_major=is_major,
            open_positions=len(view.positions),
            vpin=sig.vpin,
            kyle_lambda=sig.kyle_lambda,
            kyle_lambda_threshold=sig.kyle_lambda_threshold,
            max_correlation_with_open=self.max_correlation_with_open(symbol, [s for _, s in view.positions]),
            new_listing=sig.new_listing,
            risk_multiplier=limits.size_multiplier,
            max_trade_notional=limits.max_trade_notional,
            bankroll_cap=limits.bankroll_cap,
            available_notional=view.available,
        )
        sized = entry_size(self.kelly.fraction, choice.side, book.bid, choice.confidence, sizing, market, self.trading)
        if sized.size <= 0:
            return ctx.record("skip", f"size 0: {sized.reason}", symbol)
        result = ctx.submit(OrderIntent(symbol, Side.BUY, sized.size, tag="entry"))
        if not result.accepted:
            return ctx.record("skip", result.reason or "refused", symbol)
        ctx.record("enter", f"buy {result.size} @ {sized.price}; {choice.reason}", symbol)
        return None

    def _payoffs(self, is_major: bool) -> tuple[float, float]:
        """Average win / loss magnitude: from closed trades once there are enough, else the exit levels."""
        returns = self.kelly.state().recent_returns
        if len(returns) >= self.params.stats_min_trades:
            wins = [r for r in returns if r > 0]
            losses = [-r for r in returns if r <= 0]
            if wins and losses:
                return sum(wins) / len(wins), sum(losses) / len(losses)
        exits = self.trading.exits
        return exits.take_profit, exits.hard_stop_major if is_major else exits.hard_stop_alt

    def _is_major(self, symbol: str) -> bool:
        return base_quote(symbol)[0] in self.majors

    # ---- exits --------------------------------------------------------------------------------
    def _check_exit(self, ctx: StrategyContext, symbol: str) -> None:
        pos = ctx.portfolio().positions.get(("", symbol))
        if pos is None or pos.size <= 0 or pos.average_price is None:
            return
        if any(o.tag != "entry" for o in ctx.open_orders(symbol)):
            return  # an exit is already working
        mark = pos.mark
        if mark is None or mark <= 0:
            return
        try:
            market = ctx.instrument(symbol)
        except BrokerError:
            return
        sig = self.signals.get(symbol)
        opened = pos.opened_at or ctx.now()
        view = exit_view(
            symbol,
            Side.BUY,
            pos.average_price,
            opened,
            self._is_major(symbol),
            market,
            new_listing=sig is not None and sig.new_listing,
        )
        decision = exit_decision(view, mark, ctx.now(), self.trading, sig.expected_return if sig else None)
        if decision.exit:
            self.start_exit(ctx, symbol, pos.size, decision.reason)

    def start_exit(self, ctx: StrategyContext, symbol: str, size: Decimal, reason: str) -> None:
        for order in ctx.open_orders(symbol):
            if order.tag == "entry":
                ctx.cancel(order.order_id, f"exit started: {reason}")
        if ctx.book(symbol) is None:
            return ctx.record("exit_blocked", "no book to price the exit", symbol)
        result = ctx.submit(OrderIntent(symbol, Side.SELL, size, is_exit=True, tag=reason))
        if not result.accepted:
            return ctx.record("exit_blocked", result.reason, symbol)
        ctx.record("exit", f"sell {result.size}: {reason}", symbol)
        return None

    # ---- correlation --------------------------------------------------------------------------
    def _sample_mids(self, ctx: StrategyContext, now: datetime) -> None:
        """Sample every symbol's log mid at the same instants (the correlation rule aligns on them)."""
        if (
            self._last_sample is not None
            and (now - self._last_sample).total_seconds() < self.params.correlation_sample_s
        ):
            return
        self._last_sample = now
        for symbol in sorted(self._seen):
            book = ctx.book(symbol)
            if book is not None and Decimal(0) < book.bid < book.ask:
                series = self._mids.setdefault(symbol, {})
                series[now] = math.log(float((book.bid + book.ask) / 2))
                while len(series) > self.params.correlation_window:
                    del series[next(iter(series))]

    def max_correlation_with_open(self, symbol: str, open_symbols: list[str]) -> float | None:
        """Highest return correlation of `symbol` with an open position (SPEC 9: > 0.8 halves the newer)."""
        mine = self._mids.get(symbol, {})
        best: float | None = None
        for other in open_symbols:
            if other == symbol:
                continue
            theirs = self._mids.get(other, {})
            common = sorted(set(mine) & set(theirs))
            if len(common) <= self.params.correlation_min_samples:
                continue
            a = [mine[t1] - mine[t0] for t0, t1 in itertools.pairwise(common)]
            b = [theirs[t1] - theirs[t0] for t0, t1 in itertools.pairwise(common)]
            try:
                corr = statistics.correlation(a, b)
            except statistics.StatisticsError:  # a flat series has no correlation
                continue
            best = corr if best is None else max(best, corr)
        return best
