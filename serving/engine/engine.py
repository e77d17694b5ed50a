"""The trading engine: it only routes events between its components (NautilusTrader's split).

Components: `Portfolio`, one `Execution` per venue (over a `Broker`), `Risk` (every intent passes it),
`Reconciler` (the venue wins), `Persistence` (orders stored before they are sent), and the strategies
(`serving.engine.strategy.Strategy`, each with its own `EngineContext`); helpers in `routing`.

State changes only under one lock, from the caller of `handle`/`tick` (tests, replays: deterministic,
clock injected) or the engine's worker thread (`start()`: events queued by `submit`, a timer for `tick`;
`serving.engine.worker`).

Routing:
- BookEvent / TradeEvent: portfolio marks -> the venue's broker (paper matching) -> working orders ->
  every strategy's `on_book` / `on_trade`.
- SignalEvent: the risk component keeps it (per-symbol switches) -> every strategy's `on_signal`.
- HealthEvent: the risk component's health inputs.
- Venue events: execution -> portfolio (fills, round trips, store) -> the owning strategy's `on_fill`
  and `on_order_update`.
- tick(now): day roll, order updates, working orders, strategies' `on_timer`, every `sweep_interval_s`
  the clean start retry, the stale-order sweep and the kill-switch actions; every `reconcile_interval_s`
  reconciliation. A pause file that appears is acted on at the next tick.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from decimal import Decimal
from pathlib import Path

from pipelines.config import EngineConfig
from pipelines.trading.config import require_utc, system_clock
from pipelines.trading.killswitch import Action, RiskVerdict
from pipelines.trading.orders import BookTop, ClientOrderIdFactory, Fill, VenueEvent
from pipelines.trading.paper import Trade
from serving.engine import routing
from serving.engine.alerts import AlertSink, dispatch, post_alert_async
from serving.engine.broker import Broker, BrokerError, base_quote
from serving.engine.context import EngineContext
from serving.engine.counters import Counters
from serving.engine.events import BookEvent, EngineEvent, HealthEvent, ReplayClock, SignalEvent, TradeEvent
from serving.engine.execution import ActiveWork, Execution, ExecutionHooks
from serving.engine.persistence.schema import DEFAULT_STRATEGY, PositionRecord
from serving.engine.persistence.state import Persistence, TrackedOrder
from serving.engine.persistence.store import TradingStore
from serving.engine.portfolio import Portfolio
from serving.engine.reconcile import Reconciler
from serving.engine.risk import Risk
from serving.engine.status import Decision, EngineStatus, PositionSnapshot, engine_status, position_snapshots
from serving.engine.strategy import FillEvent, OrderIntent, RiskLimits, Strategy, SubmitResult
from serving.engine.worker import EngineWorker

log = logging.getLogger("alphatide.engine")


class TradingEngine:
    """See the module docstring. `brokers` maps venue names to brokers ("" = the default venue)."""

    def __init__(
        self,
        cfg: EngineConfig,
        brokers: Broker | Mapping[str, Broker],
        store: TradingStore,
        *,
        quote: str,
        majors: Iterable[str],
        pause_file: Path,
        clock: Callable[[], datetime] = system_clock,
        strategies: Iterable[Strategy] = (),
        allocations: Mapping[str, Decimal | None] | None = None,
        kinds: Mapping[str, str] | None = None,
        default_venues: Mapping[str, str] | None = None,
    ) -> None:
        self.cfg, self.trading = cfg, cfg.trading
        self.quote, self.majors, self.pause_file, self.clock = quote, frozenset(majors), pause_file, clock
        self.strategies: dict[str, Strategy] = {s.strategy_id: s for s in strategies}
        self.default_strategy = next(iter(self.strategies), DEFAULT_STRATEGY)
        self.kinds = dict(kinds or {})
        self.persistence = Persistence(store, cfg.store_error_window_s)
        alloc = {sid: (allocations or {}).get(sid) for sid in self.strategies} or {DEFAULT_STRATEGY: None}
        self.portfolio = Portfolio(alloc)
        self.risk = Risk(cfg, self.portfolio, pause_file, self.alert)
        self.risk.store_errors = self.persistence.error_count
        self.ids = ClientOrderIdFactory(clock, self.trading.orders.client_id_prefix)
        hooks = ExecutionHooks(self._on_fill, self._on_update, self.record, self.alert)
        venues = {"": brokers} if not isinstance(brokers, Mapping) else dict(brokers)
        self.executions = {
            v: Execution(v, b, self.trading, self.ids, self.persistence, hooks) for v, b in venues.items()
        }
        self.reconciler = Reconciler(
            self.portfolio, self.persistence, quote, self.default_strategy, self.is_major, self.alert
        )
        venue_of = dict(default_venues or {})
        self.contexts = {sid: EngineContext(self, sid, venue_of.get(sid, "")) for sid in self.strategies}
        self.counters = Counters(self)
        self.decisions: deque[Decision] = deque(maxlen=200)
        self.action_listeners: list[Callable[[Action, str], None]] = []
        self.alert_sinks: list[AlertSink] = []  # e.g. Telegram (serving.engine.telegram); never blocking
        self.last_reconcile: datetime | None = None
        self._last_sweep: datetime | None = None
        self._verdict_at: datetime | None = None
        self._pause_seen = False
        self._pending_fills: dict[str, list[FillEvent]] = {}
        self._lock = threading.RLock()
        self.worker = EngineWorker(
            self._lock,
            lambda event: self.handle(event),
            lambda: self.tick(),
            tick_interval_s=cfg.tick_interval_s,
            max_queue=cfg.max_queue,
        )
        self._recovered = False

    # ================================================================ accessors (and compatibility)
    @property
    def broker(self) -> Broker:
        return self.execution("").broker

    @property
    def store(self) -> TradingStore:
        return self.persistence.store

    @store.setter
    def store(self, store: TradingStore) -> None:
        self.persistence.store = store

    def execution(self, venue: str) -> Execution:
        ex = self.executions.get(venue)
        if ex is None:
            raise BrokerError(f"no broker for venue {venue!r} (configured: {sorted(self.executions)})")
        return ex

    @property
    def positions(self) -> dict[str, PositionRecord]:
        """The default strategy's positions on the default venue, by symbol."""
        return {p.symbol: p for p in self.portfolio.of(self.default_strategy) if p.venue == ""}

    @property
    def works(self) -> dict[str, ActiveWork]:
        return {k: w for ex in self.executions.values() for k, w in ex.works.items()}

    @property
    def guard(self):  # type: ignore[no-untyped-def]  # RiskGuard
        return self.risk.guard

    @property
    def last_verdict(self) -> RiskVerdict | None:
        return self.risk.last_verdict

    @property
    def cash(self) -> Decimal:
        return self.portfolio.cash.get("", Decimal(0))

    @property
    def manual_kill(self) -> bool:
        return self.risk.manual_kill

    @property
    def clean_started(self) -> bool:
        return all(ex.clean_started for ex in self.executions.values())

    @property
    def running(self) -> bool:
        return self.worker.running

    @property
    def dropped(self) -> int:
        """Events `submit` refused because the worker's queue was full."""
        return self.worker.dropped

    def strategy(self, strategy_id: str) -> Strategy:
        return self.strategies[strategy_id]

    def now(self) -> datetime:
        return require_utc(self.clock(), "clock()")

    def equity(self) -> Decimal:
        return self.portfolio.equity()

    def is_major(self, symbol: str) -> bool:
        # outcome tokens of window markets (BTC_UPDOWN_5M_<start>:UP) are no BASE/QUOTE pair: not a major
        return "/" in symbol and base_quote(symbol)[0] in self.majors

    # ================================================================ lifecycle
    def start(self, *, background: bool = True) -> None:
        """Recover (clean start, reconcile), start the strategies and, with `background`, the worker."""
        with self._lock:
            if not self._recovered:
                self.recover()
        if background:
            self.worker.start()

    def shutdown(self, timeout_s: float = 10.0) -> None:
        """Graceful stop: no new entries, cancel resting orders, persist everything, stop the worker."""
        self.risk.accepting_entries = False
        self.worker.stop(timeout_s)
        with self._lock:
            now = self.now()
            self._each(lambda s, ctx: s.on_stop(ctx))
            for ex in self.executions.values():
                ex.shutdown(now)
            self.counters.persist(now)
            for ex in self.executions.values():
                ex.broker.close()
            self.store.close()

    def submit(self, event: EngineEvent) -> bool:
        """Queue an event for the worker (never blocks the stream); False when the queue was full."""
        return self.worker.submit(event)

    def recover(self) -> None:
        """Rebuild from the store, settle orders live at the crash, clean start, reconcile, start strategies."""
        with self._lock:
            now = self.now()
            self.counters.load(now)
            self.portfolio.load(self.store.load_all_positions().values())
            self.portfolio.realized.update(self.persistence.realized_by_strategy())
            live = self.store.load_orders(live_only=True)
            for ex in self.executions.values():
                ex.recover(live, now)
            for ex in self.executions.values():
                ex.clean_start(now)
            self.reconcile(now)
            self._each(lambda s, ctx: s.on_start(ctx))
            self._recovered = True

    def clean_start(self, now: datetime) -> int:
        return sum(ex.clean_start(now) for ex in self.executions.values())

    # ================================================================ inputs
    def handle(self, event: EngineEvent) -> None:
        """Process one event synchronously (the worker calls this; tests and replays may too)."""
        with self._lock:
            if isinstance(self.clock, ReplayClock) and not isinstance(event, HealthEvent):
                self.clock.observe(event.ts)
            match event:
                case SignalEvent():
                    self.risk.signals[event.symbol] = event
                    self._each(lambda s, ctx: s.on_signal(ctx, event))
                case TradeEvent():
                    self._market(event.venue, event.symbol, trade=event)
                case BookEvent():
                    self._market(event.venue, event.symbol, book=event)
                case HealthEvent():
                    self.risk.health = event

    def _market(
        self, venue: str, symbol: str, *, book: BookEvent | None = None, trade: TradeEvent | None = None
    ) -> None:
        now = self.now()
        ex = self.executions.get(venue)
        if book is not None:
            top = BookTop(book.bid, book.ask, book.bid_size, book.ask_size, require_utc(book.ts, "book ts"))
            self.portfolio.on_book(venue, symbol, top)
            if ex is not None:
                ex.on_book(symbol, top, now)
        if trade is not None:
            self.portfolio.on_trade(venue, symbol, trade.price)
            if ex is not None:
                ex.on_trade(
                    symbol, Trade(trade.price, trade.size, require_utc(trade.ts, "trade ts"), trade.aggressor), now
                )
        if ex is not None:
            ex.drive(now, symbol, lambda s: self.portfolio.books.get((venue, s)))
        if book is not None:
            self._each(lambda s, ctx: s.on_book(ctx, book))
        if trade is not None:
            self._each(lambda s, ctx: s.on_trade(ctx, trade))

    def tick(self, now: datetime | None = None) -> None:
        """Periodic work (see the module docstring); `now` defaults to the clock."""
        with self._lock:
            now = require_utc(now) if now is not None else self.now()
            self.counters.roll_day(now)
            sweep_due = (
                self._last_sweep is None or (now - self._last_sweep).total_seconds() >= self.cfg.sweep_interval_s
            )
            for ex in self.executions.values():
                streamed = getattr(ex.broker, "stream_events", None)  # WebSocket order updates, every tick
                if streamed is not None:
                    ex.apply(streamed(ex.live_orders(), now), now)
                if ex.broker.name == "paper" or sweep_due:
                    ex.poll(now)
                ex.drive(now, None, lambda s, v=ex.venue: self.portfolio.books.get((v, s)))  # type: ignore[misc]
            self._each(lambda s, ctx: s.on_timer(ctx, now))
            pause = self.pause_file.exists()
            if sweep_due or pause != self._pause_seen:
                self._pause_seen = pause
                self._last_sweep = now
                for ex in self.executions.values():
                    if not ex.clean_started:
                        ex.clean_start(now)
                    ex.sweep(now)
                self.evaluate_risk(now, act=True)
            if (
                self.last_reconcile is None
                or (now - self.last_reconcile).total_seconds() >= self.cfg.reconcile_interval_s
            ):
                self.reconcile(now)

    def _each(self, call: Callable[[Strategy, EngineContext], None]) -> None:
        for sid, strategy in self.strategies.items():
            try:
                call(strategy, self.contexts[sid])
            except Exception as exc:  # one broken strategy must not stop the others
                log.exception("strategy %s failed", sid)
                self.record(sid, self.now(), "", "strategy_error", f"{type(exc).__name__}: {exc}")

    # ================================================================ intents (from the contexts)
    def risk_limits(self, strategy_id: str, symbol: str | None) -> RiskLimits:
        """The limits a new entry of `strategy_id` gets now (evaluates the switches and acts on them)."""
        with self._lock:
            verdict = self.evaluate_risk(self.now(), act=True)
            return self.risk.limits(strategy_id, symbol, verdict, self.risk.gate(self.executions.values()))

    def current_limits(self, strategy_id: str) -> RiskLimits:
        verdict = self.risk.last_verdict
        gate = self.risk.gate(self.executions.values())
        if verdict is None:
            return RiskLimits(False, gate or "not evaluated yet", 0.0)
        return self.risk.limits(strategy_id, None, verdict, gate)

    def pending_entries(self, strategy_id: str) -> Decimal:
        return routing.pending_entries(self, strategy_id)

    def submit_intent(self, strategy_id: str, intent: OrderIntent) -> SubmitResult:
        """Risk, then the execution of the intent's venue (the contexts call this)."""
        with self._lock:
            return routing.submit_intent(self, strategy_id, intent)

    def cancel_intent(self, strategy_id: str, order_id: str, reason: str) -> None:
        with self._lock:
            now = self.now()
            for ex in self.executions.values():
                work = ex.works.get(order_id)
                tracked = ex.tracked.get(order_id)
                owner = work.strategy_id if work is not None else tracked.strategy_id if tracked is not None else None
                if owner == strategy_id:
                    ex.cancel(order_id, now, reason)

    # ================================================================ venue events (from execution)
    def _on_fill(self, tracked: TrackedOrder, fill: Fill, now: datetime) -> None:
        routing.book_fill(self, tracked, fill, now)

    def _on_update(self, tracked: TrackedOrder, event: VenueEvent, now: datetime) -> None:
        routing.deliver_update(self, tracked, event, now)

    # ================================================================ risk and control
    def evaluate_risk(self, now: datetime, *, act: bool) -> RiskVerdict:
        """Evaluate every kill switch; with `act`, carry out the verdict's actions."""
        verdict = self.risk.evaluate(now, self.executions.values())
        self._verdict_at = now
        self.persistence.put("guard", self.risk.guard_json(), now, only_if_changed=True)
        if act:
            self._carry_out(verdict, now)
        return verdict

    def _carry_out(self, verdict: RiskVerdict, now: datetime) -> None:
        routing.carry_out(self, verdict, now)

    def cancel_entries(self, now: datetime, reason: str) -> int:
        return sum(ex.cancel_entries(now, reason) for ex in self.executions.values())

    def exit_position(self, pos: PositionRecord, now: datetime, reason: str) -> None:
        """Close a position on behalf of its strategy (flatten, reduce leverage); never blocked by risk."""
        routing.exit_position(self, pos, now, reason)

    def kill(self, reason: str = "manual kill") -> EngineStatus:
        """Stop new entries at once and cancel resting entry orders (persisted; survives a restart)."""
        with self._lock:
            now = self.now()
            self.risk.manual_kill = True
            self.persistence.put("manual_kill", True, now)
            self.alert(now, "manual_kill", reason)
            self.cancel_entries(now, f"manual kill: {reason}")
            self.evaluate_risk(now, act=True)
            return self.status()

    def resume(self) -> EngineStatus:
        """Clear the API kill and the drawdown halt latch (timed pauses and the pause file stay in force)."""
        with self._lock:
            now = self.now()
            self.risk.manual_kill = False
            if self.risk.guard.state.halted:
                self.risk.peak_equity = self.equity()
                self.persistence.put("peak_equity", str(self.risk.peak_equity), now)
            self.risk.guard.reset_halt()
            self.persistence.put("manual_kill", False, now)
            self.alert(now, "resume", "entries resumed by the API")
            self.evaluate_risk(now, act=False)
            return self.status()

    def reconcile(self, now: datetime) -> list[str]:
        """Positions and cash of every venue against its balances; the venue wins. Returns the mismatches."""
        with self._lock:
            self.last_reconcile = now
            mismatches: list[str] = []
            ok = True
            for ex in self.executions.values():
                symbols = set(self.risk.signals) | {s for (v, s) in self.portfolio.books if v == ex.venue}
                result = self.reconciler.reconcile(ex, symbols, now)
                ok, mismatches = ok and result.ok, mismatches + result.mismatches
            if ok:
                self.risk.reconciled = True
            if self.counters.day is None:
                self.counters.roll_day(now)
            return mismatches

    def record_store_error(self, now: datetime, exc: Exception) -> None:
        """Count a store failure seen outside the engine (the online store), for the store-errors switch."""
        with self._lock:
            self.persistence.error(now, exc)

    def day_pnl(self) -> Decimal:
        """Account PnL since the start of the UTC day (quote currency)."""
        with self._lock:
            return self.equity() - self.risk.day_start_equity

    # ================================================================ reporting
    def record(self, strategy_id: str, now: datetime, symbol: str, action: str, reason: str) -> None:
        self.decisions.append(Decision(now, symbol, action, reason, strategy_id))
        log.info("[%s] %s %s: %s", strategy_id, symbol, action, reason)

    def alert(self, now: datetime, kind: str, message: str) -> None:
        """Record an alert (store + log) and, when configured, POST it to the webhook without waiting."""
        log.warning("ALERT %s: %s", kind, message)
        self.persistence.alert(now, kind, message)
        if self.cfg.alert_webhook_url is not None:
            post_alert_async(self.cfg.alert_webhook_url.get_secret_value(), now, kind, message, self.broker.name)
        dispatch(self.alert_sinks, now, kind, message, self.broker.name)

    def status(self) -> EngineStatus:
        with self._lock:
            return engine_status(self)

    def position_snapshots(self) -> list[PositionSnapshot]:
        with self._lock:
            return position_snapshots(self)
