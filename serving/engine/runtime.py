"""The directional strategy runtime: signals and market data in, orders out, every rule from pipelines.trading.

One `TradingEngine` per process. Its state changes only under one lock, from either the caller of
`handle`/`tick` (tests, replays: deterministic, clock injected) or its own worker thread (`start()`:
events queued by `submit` from the stream, a timer for `tick`). See `serving.engine` for the interface.

What happens where:
- `SignalEvent`: exits first (the EV trail reads the new expected return), then the entry gate: SPEC 9
  expected value vs threshold (`decide_entry`), the kill switches (`RiskGuard.evaluate` on a snapshot
  measured here), adaptive Kelly sizing (`size_position`), then a post-only working order
  (`OrderManager`). Spot is long only: p_up < 0.5 never opens a position (it feeds exits).
- `BookEvent` / `TradeEvent`: marks; the paper broker matches; working orders advance (TTL, re-quote,
  taker fallback within the cap, cancel delay); exit rules run.
- `tick(now)`: order updates from the broker, working orders, exits (time stops), and every
  `sweep_interval_s` the stale-order sweep and the kill-switch actions (flatten, halt, cancel all,
  reduce leverage, alerts); every `reconcile_interval_s` positions and cash against the venue (the
  venue's figure wins, the mismatch is logged and alerted); the UTC day roll (losing-days switch).
- Persistence: an order is written (state `new`) *before* it is sent, and every fill, position change and
  counter (Kelly state, guard state, deployment phase, day-start and peak equity, manual kill) is
  committed as it happens. `recover()` at start rebuilds from the store, learns the fate of orders that
  were live at the crash, cancels every open order of the account (clean start) and reconciles.
- Exits are never blocked by a kill switch; only entries are.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import logging
import math
import queue
import statistics
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

import httpx

from pipelines.config import EngineConfig
from pipelines.trading.config import TradingConfig, require_utc, system_clock
from pipelines.trading.decision import EntryInputs, WinRateTracker, decide_entry
from pipelines.trading.exits import PositionView, evaluate_exit
from pipelines.trading.instruments import MarketInfo, Side, rejection_reason, round_size
from pipelines.trading.killswitch import (
    Action,
    GuardState,
    RiskGuard,
    RiskSnapshot,
    RiskVerdict,
    Switch,
    SymbolRisk,
)
from pipelines.trading.orders import (
    BookTop,
    CancelOrder,
    ClientOrderIdFactory,
    Filled,
    FillError,
    IllegalTransitionError,
    Order,
    OrderAction,
    OrderManager,
    OrderState,
    PlaceOrder,
    VenueEvent,
    WorkingOrder,
    WorkStatus,
    apply_event,
    count_zombies,
    is_zombie,
)
from pipelines.trading.paper import Trade
from pipelines.trading.sizing import AdaptiveKelly, KellyState, SizingInputs, size_position
from serving.engine.broker import Broker, BrokerError, base_quote
from serving.engine.events import BookEvent, EngineEvent, HealthEvent, ReplayClock, SignalEvent, TradeEvent
from serving.engine.store import ClosedTrade, PositionRecord, StoreError, TradingStore, iso, parse_ts

log = logging.getLogger("alphatide.engine")

Purpose = Literal["entry", "exit"]


@dataclass
class TrackedOrder:
    """An order we know, with the intent it belongs to."""

    order: Order
    work_id: str
    purpose: str


@dataclass
class ActiveWork:
    work: WorkingOrder
    purpose: Purpose
    reason: str


@dataclass(frozen=True)
class Decision:
    """One entry/exit decision or refusal, for the log and the status endpoint."""

    ts: datetime
    symbol: str
    action: str
    reason: str


@dataclass(frozen=True)
class PositionSnapshot:
    symbol: str
    size: Decimal
    entry_price: Decimal
    mark: Decimal | None
    unrealized_pnl: Decimal | None
    opened_at: datetime
    exiting: bool


@dataclass(frozen=True)
class EngineStatus:
    mode: str
    running: bool
    accepting_entries: bool
    manual_kill: bool
    pause_file: str
    pause_file_present: bool
    halted: bool
    entries_allowed: bool
    active_switches: tuple[str, ...]
    reasons: tuple[str, ...]
    paused_until: datetime | None
    equity: Decimal
    cash: Decimal
    day_start_equity: Decimal
    peak_equity: Decimal
    kelly_fraction: float
    deployment_phase: int | None
    open_positions: int
    live_orders: int
    dropped_events: int
    last_reconcile: datetime | None
    recent_decisions: tuple[Decision, ...] = field(default_factory=tuple)


class TradingEngine:
    """See the module docstring."""

    def __init__(
        self,
        cfg: EngineConfig,
        broker: Broker,
        store: TradingStore,
        *,
        quote: str,
        majors: Iterable[str],
        pause_file: Path,
        clock: Callable[[], datetime] = system_clock,
    ) -> None:
        self.cfg = cfg
        self.trading: TradingConfig = cfg.trading
        self.broker = broker
        self.store = store
        self.quote = quote
        self.majors = frozenset(majors)
        self.pause_file = pause_file
        self.clock = clock
        self.ids = ClientOrderIdFactory(clock, self.trading.orders.client_id_prefix)
        self.manager = OrderManager(self.trading.orders, self.ids)
        self.kelly = AdaptiveKelly(self.trading.sizing)
        self.wins = WinRateTracker(self.trading.decision)
        self.guard = RiskGuard(self.trading.kill)
        self.tracked: dict[str, TrackedOrder] = {}
        self.works: dict[str, ActiveWork] = {}
        self.positions: dict[str, PositionRecord] = {}
        self.books: dict[str, BookTop] = {}
        self.last_price: dict[str, Decimal] = {}
        self.signals: dict[str, SignalEvent] = {}
        self.health = HealthEvent()
        self.cash = Decimal(0)
        self.day: str | None = None
        self.day_start_equity = Decimal(0)
        self.peak_equity = Decimal(0)
        self.manual_kill = False
        self.accepting_entries = True
        self.decisions: deque[Decision] = deque(maxlen=200)
        self.action_listeners: list[Callable[[Action, str], None]] = []
        self.last_verdict: RiskVerdict | None = None
        self.last_reconcile: datetime | None = None
        self._last_sweep: datetime | None = None
        self._last_sample: datetime | None = None
        self._mids: dict[str, dict[datetime, float]] = {}
        self._store_errors: deque[datetime] = deque()
        self._guard_saved: str | None = None
        self._lock = threading.RLock()
        self._queue: queue.Queue[EngineEvent] = queue.Queue(maxsize=cfg.max_queue)
        self._dropped = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._recovered = False
        self.clean_started = False

    # ================================================================================ lifecycle
    def start(self, *, background: bool = True) -> None:
        """Recover (clean start, reconcile) and, with `background`, run the worker thread."""
        with self._lock:
            if not self._recovered:
                self.recover()
        if background and self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="alphatide-engine", daemon=True)
            self._thread.start()

    def shutdown(self, timeout_s: float = 10.0) -> None:
        """Graceful stop: no new entries, cancel resting orders, persist everything, stop the worker."""
        self.accepting_entries = False
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
            self._thread = None
        with self._lock:
            now = self._now()
            for tracked in list(self.tracked.values()):
                if tracked.order.is_live:
                    self._cancel_order(tracked, now, "graceful shutdown")
            # Let cancels complete (the paper venue applies them after its latency).
            settle = now + timedelta(milliseconds=self.trading.paper.latency_ms + 1)
            self._apply(self.broker.poll(self._live_orders(), settle), now)
            for work in self.works.values():
                if work.work.status is WorkStatus.WORKING:
                    work.work.finish(WorkStatus.EXPIRED, "graceful shutdown")
            self.works.clear()
            self._persist_counters(now)
            self.broker.close()
            self.store.close()

    def submit(self, event: EngineEvent) -> bool:
        """Queue an event for the worker (never blocks the stream); False when the queue was full."""
        try:
            self._queue.put_nowait(event)
            return True
        except queue.Full:
            self._dropped += 1
            return False

    def _run(self) -> None:
        next_tick = 0.0
        while not self._stop.is_set():
            try:
                event = self._queue.get(timeout=self.cfg.tick_interval_s)
            except queue.Empty:
                event = None
            try:
                with self._lock:
                    if event is not None:
                        self.handle(event)
                    if time.monotonic() >= next_tick:
                        self.tick()
                        next_tick = time.monotonic() + self.cfg.tick_interval_s
            except Exception:  # keep trading on the next event; the error is in the log
                log.exception("engine worker: event handling failed")

    def _now(self) -> datetime:
        return require_utc(self.clock(), "clock()")

    # ================================================================================ recovery
    def recover(self) -> None:
        """Rebuild from the store, settle orders live at the crash, clean start, reconcile."""
        now = self._now()
        with self._lock:
            self._load_counters(now)
            self.positions = self.store.load_positions()
            for stored in self.store.load_orders(live_only=True):
                self.tracked[stored.order.client_order_id] = TrackedOrder(stored.order, stored.work_id, stored.purpose)
            for tracked in self.tracked.values():
                with contextlib.suppress(BrokerError):
                    self.broker.market(tracked.order.symbol)
            # What happened to orders that were live when the previous process died.
            self._apply(self.broker.poll(self._live_orders(), now), now)
            self.clean_start(now)
            self.reconcile(now)
            self._recovered = True

    def clean_start(self, now: datetime) -> int:
        """Cancel every open order of the account on the venue (SPEC 11); returns how many were cancelled."""
        cancelled = 0
        try:
            views = self.broker.open_orders()
        except BrokerError as exc:
            # No entry until the account is known clean: the sweep tries again.
            self.alert(now, "clean_start", f"cannot list open orders (entries wait for a clean start): {exc}")
            self.clean_started = False
            return 0
        known = self.store.known_client_ids([v.client_order_id for v in views if v.client_order_id])
        for view in views:
            if self.broker.cancel_venue_order(view, now):
                cancelled += 1
            if view.client_order_id not in known:
                self.alert(
                    now,
                    "clean_start",
                    f"cancelled unknown open order {view.client_order_id or view.venue_order_id} on {view.symbol}",
                )
        # Learn the final state (and last fills) of our orders, then close what the venue no longer has.
        settle = now + timedelta(milliseconds=self.trading.paper.latency_ms + 1)
        self._apply(self.broker.poll(self._live_orders(), settle), now)
        for tracked in self.tracked.values():
            order = tracked.order
            if order.is_live:
                with contextlib.suppress(IllegalTransitionError):
                    if order.state is OrderState.NEW:
                        order.reject(now, "not at the venue at clean start")
                    else:
                        order.confirm_cancelled(now, "closed at clean start")
                self._save_order(tracked, now)
        if cancelled:
            log.warning("clean start: cancelled %d open order(s)", cancelled)
        self.clean_started = True
        return cancelled

    # ================================================================================ inputs
    def handle(self, event: EngineEvent) -> None:
        """Process one event synchronously (the worker calls this; tests and replays may too)."""
        with self._lock:
            if isinstance(self.clock, ReplayClock) and not isinstance(event, HealthEvent):
                self.clock.observe(event.ts)
            match event:
                case SignalEvent():
                    self.on_signal(event)
                case TradeEvent():
                    self.on_trade(event)
                case BookEvent():
                    self.on_book(event)
                case HealthEvent():
                    self.health = event

    def on_book(self, ev: BookEvent) -> None:
        with self._lock:
            now = self._now()
            book = BookTop(ev.bid, ev.ask, ev.bid_size, ev.ask_size, require_utc(ev.ts, "book ts"))
            self.books[ev.symbol] = book
            self._apply(self.broker.on_book(ev.symbol, book), now)
            self._drive(now, ev.symbol)

    def on_trade(self, ev: TradeEvent) -> None:
        with self._lock:
            now = self._now()
            self.last_price[ev.symbol] = ev.price
            trade = Trade(ev.price, ev.size, require_utc(ev.ts, "trade ts"), ev.aggressor)
            self._apply(self.broker.on_trade(ev.symbol, trade), now)
            self._drive(now, ev.symbol)

    def on_signal(self, sig: SignalEvent) -> None:
        with self._lock:
            now = self._now()
            self.signals[sig.symbol] = sig
            self._check_exit(sig.symbol, now)
            self._consider_entry(sig, now)

    def tick(self, now: datetime | None = None) -> None:
        """Periodic work (see module docstring); `now` defaults to the clock."""
        with self._lock:
            now = require_utc(now) if now is not None else self._now()
            self._roll_day(now)
            self._sample_mids(now)
            sweep_due = (
                self._last_sweep is None or (now - self._last_sweep).total_seconds() >= self.cfg.sweep_interval_s
            )
            if self.broker.name == "paper" or sweep_due:
                self._apply(self.broker.poll(self._live_orders(), now), now)
            self._drive(now, None)
            if sweep_due:
                self._last_sweep = now
                if not self.clean_started:
                    self.clean_start(now)
                self.sweep(now)
                self.evaluate_risk(now, act=True)
            if self.last_reconcile is None or (
                (now - self.last_reconcile).total_seconds() >= self.cfg.reconcile_interval_s
            ):
                self.reconcile(now)

    # ================================================================================ control
    def kill(self, reason: str = "manual kill") -> EngineStatus:
        """Stop new entries at once (persisted; survives a restart) until `resume`."""
        with self._lock:
            now = self._now()
            self.manual_kill = True
            self._put_state("manual_kill", True, now)
            self.alert(now, "manual_kill", reason)
            self.evaluate_risk(now, act=True)
            return self.status()

    def resume(self) -> EngineStatus:
        """Clear the API kill and the drawdown halt latch (timed pauses and the pause file stay in force).

        Resuming after a drawdown halt acknowledges the loss: the peak restarts from the current equity,
        otherwise the same drawdown would latch the halt again at the next evaluation.
        """
        with self._lock:
            now = self._now()
            self.manual_kill = False
            if self.guard.state.halted:
                self.peak_equity = self.equity()
                self._put_state("peak_equity", str(self.peak_equity), now)
            self.guard.reset_halt()
            self._put_state("manual_kill", False, now)
            self.alert(now, "resume", "entries resumed by the API")
            self.evaluate_risk(now, act=False)
            return self.status()

    def alert(self, now: datetime, kind: str, message: str) -> None:
        """Record an alert (store + log) and, when configured, POST it to the webhook without waiting."""
        log.warning("ALERT %s: %s", kind, message)
        try:
            self.store.add_alert(now, kind, message)
        except StoreError as exc:
            self._store_error(now, exc)
        if self.cfg.alert_webhook_url is not None:
            payload = {"ts": now.isoformat(), "kind": kind, "message": message, "mode": self.broker.name}
            threading.Thread(
                target=_post_alert, args=(self.cfg.alert_webhook_url.get_secret_value(), payload), daemon=True
            ).start()

    # ================================================================================ views
    def status(self) -> EngineStatus:
        with self._lock:
            verdict = self.last_verdict
            return EngineStatus(
                mode=self.broker.name,
                running=self._thread is not None,
                accepting_entries=self.accepting_entries,
                manual_kill=self.manual_kill,
                pause_file=str(self.pause_file),
                pause_file_present=self.pause_file.exists(),
                halted=self.guard.state.halted,
                entries_allowed=bool(verdict and verdict.allow_entries and self.accepting_entries),
                active_switches=tuple(sorted(s.value for s in verdict.active)) if verdict else (),
                reasons=verdict.reasons if verdict else (),
                paused_until=verdict.paused_until if verdict else None,
                equity=self.equity(),
                cash=self.cash,
                day_start_equity=self.day_start_equity,
                peak_equity=self.peak_equity,
                kelly_fraction=self.kelly.fraction,
                deployment_phase=self.trading.kill.deployment.active_phase,
                open_positions=len(self.positions),
                live_orders=len(self._live_orders()),
                dropped_events=self._dropped,
                last_reconcile=self.last_reconcile,
                recent_decisions=tuple(list(self.decisions)[-20:]),
            )

    def position_snapshots(self) -> list[PositionSnapshot]:
        with self._lock:
            out = []
            exiting = {w.work.market.symbol for w in self.works.values() if w.purpose == "exit"}
            for pos in self.positions.values():
                mark = self.mark(pos.symbol)
                pnl = (mark - pos.entry_price) * pos.size if mark is not None else None
                out.append(
                    PositionSnapshot(
                        pos.symbol, pos.size, pos.entry_price, mark, pnl, pos.opened_at, pos.symbol in exiting
                    )
                )
            return sorted(out, key=lambda p: p.symbol)

    def mark(self, symbol: str) -> Decimal | None:
        """Exit price of a long now: the bid, else the last trade."""
        book = self.books.get(symbol)
        if book is not None and book.is_sane():
            return book.bid
        return self.last_price.get(symbol)

    def equity(self) -> Decimal:
        total = self.cash
        for pos in self.positions.values():
            mark = self.mark(pos.symbol) or pos.entry_price
            total += pos.size * mark
        return total

    # ================================================================================ risk
    def snapshot(self, now: datetime) -> RiskSnapshot:
        """Everything the kill switches read, measured by the runtime (plus the serving tier's inputs)."""
        equity = self.equity()
        symbols = set(self.positions) | set(self.signals)
        risks = []
        for symbol in sorted(symbols):
            pos = self.positions.get(symbol)
            mark = self.mark(symbol)
            exposure = pos.size * (mark or pos.entry_price) if pos is not None else Decimal(0)
            sig = self.signals.get(symbol)
            spread = sig.spread if sig is not None and sig.spread is not None else self._book_spread(symbol)
            risks.append(
                SymbolRisk(
                    symbol=symbol,
                    exposure=exposure,
                    hurst=sig.hurst if sig else None,
                    spread=spread,
                    spread_norm=sig.spread_norm if sig else None,
                    volume=sig.volume if sig else None,
                    volume_norm=sig.volume_norm if sig else None,
                )
            )
        requests, errors = self.broker.api_health(now)
        self._trim_store_errors(now)
        h = self.health
        return RiskSnapshot(
            equity=equity,
            day_start_equity=self.day_start_equity or equity,
            peak_equity=max(self.peak_equity, equity),
            symbols=tuple(risks),
            api_requests=requests,
            api_errors=errors,
            store_errors=len(self._store_errors),
            calibration_error=h.calibration_error,
            drift_p_value=h.drift_p_value,
            zombie_orders=count_zombies(self._live_orders(), now, self.trading.orders),
            inference_p99_ms=h.inference_p99_ms,
            memory_bytes=h.memory_bytes,
            live_pnl=h.live_pnl,
            simulated_pnl=h.simulated_pnl,
            manual_kill=self.manual_kill,
            pause_file_present=self.pause_file.exists(),
        )

    def evaluate_risk(self, now: datetime, *, act: bool) -> RiskVerdict:
        """Evaluate every kill switch; with `act`, carry out the verdict's actions."""
        equity = self.equity()
        if equity > self.peak_equity:
            self.peak_equity = equity
        verdict = self.guard.evaluate(self.snapshot(now), now)
        self.last_verdict = verdict
        for trigger in verdict.triggers:
            if trigger.switch in verdict.newly_fired:
                self.alert(now, f"kill_switch:{trigger.switch.value}", trigger.reason)
        self._save_guard(now)
        if act:
            self._carry_out(verdict, now)
        return verdict

    def _carry_out(self, verdict: RiskVerdict, now: datetime) -> None:
        reasons = "; ".join(verdict.reasons)
        if Action.FLATTEN in verdict.actions:
            for symbol in list(self.positions):
                self._start_exit(symbol, now, f"flatten: {reasons}")
            for work in list(self.works.values()):
                if work.purpose == "entry":
                    self._abandon(work, now, "flatten and halt")
        if Action.CANCEL_ALL in verdict.actions:
            self.cancel_all(now, f"cancel all: {reasons}")
        if Action.REDUCE_LEVERAGE in verdict.actions and self.positions:
            largest = max(self.positions.values(), key=lambda p: p.size * (self.mark(p.symbol) or p.entry_price))
            self._start_exit(largest.symbol, now, "reduce leverage")
        for action in (Action.RETRAIN, Action.DEGRADE_TO_TABULAR, Action.SHED_CACHES):
            if action in verdict.actions:
                for listener in self.action_listeners:
                    try:
                        listener(action, reasons)
                    except Exception:
                        log.exception("action listener failed for %s", action)

    def cancel_all(self, now: datetime, reason: str) -> None:
        """Cancel every live order we track and every open order the venue lists; drop entry intents."""
        for work in list(self.works.values()):
            self._abandon(work, now, reason)
        for tracked in list(self.tracked.values()):
            if tracked.order.is_live:
                self._cancel_order(tracked, now, reason)
        try:
            mine = {t.order.client_order_id for t in self.tracked.values()}
            for view in self.broker.open_orders():
                if view.client_order_id not in mine:
                    self.broker.cancel_venue_order(view, now)
        except BrokerError as exc:
            self.alert(now, "cancel_all", f"cannot list open orders: {exc}")

    def sweep(self, now: datetime) -> None:
        """Stale-order sweep: re-ask about unacknowledged orders, cancel orders live past their TTL."""
        cfg = self.trading.orders
        keep = timedelta(seconds=cfg.ttl_seconds * 10)
        for cid, tracked in list(self.tracked.items()):
            # Terminal orders stay tracked a while: a late fill after a cancel must still find its order.
            closed = tracked.order.closed_at
            if closed is not None and now - closed > keep and tracked.work_id not in self.works:
                del self.tracked[cid]
        for tracked in list(self.tracked.values()):
            order = tracked.order
            if not order.is_live or not is_zombie(order, now, cfg):
                continue
            if order.state in (OrderState.OPEN, OrderState.PARTIALLY_FILLED, OrderState.CANCEL_REQUESTED):
                self._cancel_order(tracked, now, "stale-order sweep")

    # ================================================================================ reconciliation
    def reconcile(self, now: datetime) -> list[str]:
        """Positions and cash against the venue's balances; the venue wins. Returns the mismatches."""
        self.last_reconcile = now
        # Fills first: a fill the venue has but we have not polled yet must not look like a mismatch
        # (adopting it now and applying it later would count it twice until the next reconciliation).
        self._apply(self.broker.poll(self._live_orders(), now), now)
        try:
            balances = self.broker.balances()
        except BrokerError as exc:
            self.alert(now, "reconcile", f"cannot read balances: {exc}")
            return []
        mismatches: list[str] = []
        venue_cash = balances.get(self.quote, Decimal(0))
        if abs(venue_cash - self.cash) > Decimal("0.01"):
            mismatches.append(f"{self.quote} cash: local {self.cash} vs venue {venue_cash}")
            self.cash = venue_cash
        # Symbols in use: held, ordered, signalled or streamed (other assets of the account are not ours).
        symbols = set(self.positions) | {t.order.symbol for t in self.tracked.values()} | set(self.signals)
        symbols |= set(self.books)
        for symbol in sorted(symbols):
            try:
                market = self.broker.market(symbol)
            except BrokerError:
                continue
            base, _ = base_quote(symbol)
            venue_size = round_size(market, max(balances.get(base, Decimal(0)), Decimal(0)))
            pos = self.positions.get(symbol)
            local = pos.size if pos is not None else Decimal(0)
            if abs(venue_size - local) < market.lot_size:
                continue
            mismatches.append(f"{symbol}: local {local} vs venue {venue_size} {base}")
            self._adopt_venue_size(symbol, venue_size, market, now)
        for text in mismatches:
            self.alert(now, "reconcile_mismatch", f"{text}: the venue's figure wins")
        self._put_state("cash", str(self.cash), now)
        if self.day is None:
            self._roll_day(now)
        return mismatches

    def _adopt_venue_size(self, symbol: str, venue_size: Decimal, market: MarketInfo, now: datetime) -> None:
        pos = self.positions.get(symbol)
        if venue_size <= 0:
            if pos is not None:
                del self.positions[symbol]
                self._persist(lambda: self.store.delete_position(symbol), now)
            return
        if pos is None:
            mark = self.mark(symbol)
            if mark is None:
                # Without a price the position cannot be valued nor exited sensibly: adopt it at the next
                # reconciliation that has one (the mismatch is alerted now and again then).
                log.warning("reconcile: %s %s held at the venue, adopted once a price is known", venue_size, symbol)
                return
            pos = PositionRecord(
                symbol,
                venue_size,
                mark,
                venue_size * mark,
                Decimal(0),
                Decimal(0),
                Decimal(0),
                Decimal(0),
                now,
                self._is_major(symbol),
            )
        else:
            ratio = venue_size / pos.size if pos.size > 0 else Decimal(1)
            pos.entry_notional *= ratio
            pos.size = venue_size
        self.positions[symbol] = pos
        self._persist(lambda: self.store.save_position(pos, now), now)

    # ================================================================================ entries
    def _record(self, now: datetime, symbol: str, action: str, reason: str) -> None:
        self.decisions.append(Decision(now, symbol, action, reason))
        log.info("%s %s: %s", symbol, action, reason)

    def _consider_entry(self, sig: SignalEvent, now: datetime) -> None:
        symbol = sig.symbol
        if not self.accepting_entries:
            return self._record(now, symbol, "skip", "engine is shutting down: no new entries")
        if not self.clean_started:
            return self._record(now, symbol, "skip", "no clean start yet: open orders of the account unknown")
        if symbol in self.positions or any(w.work.market.symbol == symbol for w in self.works.values()):
            return self._record(now, symbol, "skip", "already positioned or working in this symbol")
        if sig.p_up < 0.5:
            return self._record(now, symbol, "skip", f"p_up {sig.p_up:.4f} < 0.5: spot is long only")
        book = self.books.get(symbol)
        if book is None or not book.is_sane():
            return self._record(now, symbol, "skip", "no usable book yet")
        try:
            market = self.broker.market(symbol)
        except BrokerError as exc:
            return self._record(now, symbol, "skip", f"no market info: {exc}")
        is_major = self._is_major(symbol)
        avg_win, avg_loss = self._payoffs(is_major)
        mid = (book.bid + book.ask) / 2
        spread = float((book.ask - book.bid) / mid)
        inputs = EntryInputs(
            p_win=sig.p_up,
            avg_win=avg_win,
            avg_loss=avg_loss,
            fees=float(market.maker_fee + market.taker_fee),
            expected_slippage=self.cfg.expected_slippage,
            spread=spread,
            volatility=sig.volatility if sig.volatility is not None else 0.0,
        )
        decision = decide_entry(inputs, self.trading.decision, self.wins)
        if not decision.enter:
            return self._record(now, symbol, "skip", decision.reason)
        verdict = self.evaluate_risk(now, act=True)
        if not verdict.can_enter(symbol):
            why = "; ".join(t.reason for t in verdict.triggers if t.symbol in (None, symbol)) or "blocked"
            return self._record(now, symbol, "blocked", why)
        sized = size_position(
            self.kelly.fraction,
            SizingInputs(
                side=Side.BUY,
                equity=self.equity(),
                price=book.bid,
                confidence=sig.p_up,
                is_major=is_major,
                open_positions=len(self.positions),
                vpin=sig.vpin,
                kyle_lambda=sig.kyle_lambda,
                kyle_lambda_threshold=sig.kyle_lambda_threshold,
                max_correlation_with_open=self.max_correlation_with_open(symbol),
                new_listing=sig.new_listing,
                risk_multiplier=verdict.size_multiplier,
                max_trade_notional=verdict.max_trade_notional,
                bankroll_cap=verdict.bankroll_cap,
            ),
            market,
            self.trading.sizing,
            available_notional=self.cash,
        )
        if sized.size <= 0:
            return self._record(now, symbol, "skip", f"size 0: {sized.reason}")
        work, actions = self.manager.start(market, Side.BUY, sized.size, book, now, allow_taker=True)
        if work.status is not WorkStatus.WORKING:
            return self._record(now, symbol, "skip", work.finish_reason or "working order failed")
        self.works[work.work_id] = ActiveWork(work, "entry", decision.reason)
        self._record(now, symbol, "enter", f"buy {sized.size} @ {sized.price}; {decision.reason}")
        self._send(self.works[work.work_id], actions, now)
        return None

    def _payoffs(self, is_major: bool) -> tuple[float, float]:
        """Average win / loss magnitude: from closed trades once there are enough, else the exit levels."""
        returns = self.kelly.state().recent_returns
        if len(returns) >= self.cfg.stats_min_trades:
            wins = [r for r in returns if r > 0]
            losses = [-r for r in returns if r <= 0]
            if wins and losses:
                return sum(wins) / len(wins), sum(losses) / len(losses)
        exits = self.trading.exits
        return exits.take_profit, exits.hard_stop_major if is_major else exits.hard_stop_alt

    # ================================================================================ exits
    def _check_exit(self, symbol: str, now: datetime) -> None:
        pos = self.positions.get(symbol)
        if pos is None or any(w.purpose == "exit" and w.work.market.symbol == symbol for w in self.works.values()):
            return
        mark = self.mark(symbol)
        if mark is None or mark <= 0:
            return
        try:
            market = self.broker.market(symbol)
        except BrokerError:
            return
        sig = self.signals.get(symbol)
        view = PositionView(
            symbol=symbol,
            side=Side.BUY,
            entry_price=pos.entry_price,
            opened_at=pos.opened_at,
            is_major=pos.is_major,
            tick_size=market.tick_at(pos.entry_price),
            max_hold_seconds=120.0 if sig is not None and sig.new_listing else None,
        )
        expected = sig.expected_return if sig is not None else None
        decision = evaluate_exit(view, mark, now, self.trading.exits, expected)
        if decision.exit:
            self._start_exit(symbol, now, decision.reason)

    def _start_exit(self, symbol: str, now: datetime, reason: str) -> None:
        pos = self.positions.get(symbol)
        if pos is None or any(w.purpose == "exit" and w.work.market.symbol == symbol for w in self.works.values()):
            return
        for entry in list(self.works.values()):
            if entry.purpose == "entry" and entry.work.market.symbol == symbol:
                self._abandon(entry, now, f"exit started: {reason}")
        book = self.books.get(symbol)
        try:
            market = self.broker.market(symbol)
        except BrokerError as exc:
            return self._record(now, symbol, "exit_blocked", f"no market info: {exc}")
        size = round_size(market, pos.size)
        if book is None:
            return self._record(now, symbol, "exit_blocked", "no book to price the exit")
        problem = rejection_reason(market, book.ask, size)
        if problem is not None:
            return self._record(now, symbol, "exit_blocked", problem)
        work, actions = self.manager.start(market, Side.SELL, size, book, now, allow_taker=True)
        if work.status is not WorkStatus.WORKING:
            return self._record(now, symbol, "exit_blocked", work.finish_reason or "working order failed")
        self.works[work.work_id] = ActiveWork(work, "exit", reason)
        self._record(now, symbol, "exit", f"sell {size}: {reason}")
        self._send(self.works[work.work_id], actions, now)
        return None

    # ================================================================================ orders
    def _drive(self, now: datetime, symbol: str | None) -> None:
        for work in list(self.works.values()):
            if symbol is not None and work.work.market.symbol != symbol:
                continue
            book = self.books.get(work.work.market.symbol)
            actions = self.manager.next_actions(work.work, book, now)
            if actions:
                self._send(work, actions, now)
            if work.work.status is not WorkStatus.WORKING and work.work.live_child() is None:
                self.works.pop(work.work.work_id, None)
                self._record(
                    now,
                    work.work.market.symbol,
                    f"{work.purpose}_done",
                    f"{work.work.status.value}: {work.work.finish_reason}",
                )
        for sym in [symbol] if symbol is not None else list(self.positions):
            self._check_exit(sym, now)

    def _send(self, work: ActiveWork, actions: list[OrderAction], now: datetime) -> None:
        for action in actions:
            if isinstance(action, PlaceOrder):
                tracked = TrackedOrder(action.order, work.work.work_id, work.purpose)
                self.tracked[action.order.client_order_id] = tracked
                # Write-ahead: the intent is durable before the venue hears of it.
                if not self._save_order(tracked, now):
                    action.order.reject(now, "not sent: the store could not record it")
                    continue
                try:
                    events = self.broker.place(action.order, now)
                except BrokerError as exc:
                    self._record(now, action.order.symbol, "place_failed", str(exc))
                    events = []
                self._apply(events, now)
            elif isinstance(action, CancelOrder):
                tracked_cancel = self.tracked.get(action.client_order_id)
                if tracked_cancel is not None:
                    self._save_order(tracked_cancel, now)
                    self._apply(self.broker.cancel(tracked_cancel.order, now), now)

    def _cancel_order(self, tracked: TrackedOrder, now: datetime, reason: str) -> None:
        order = tracked.order
        if order.state is not OrderState.CANCEL_REQUESTED:
            try:
                order.request_cancel(now)
            except IllegalTransitionError:
                return
        self._save_order(tracked, now)
        try:
            self._apply(self.broker.cancel(order, now), now)
        except BrokerError as exc:
            self._record(now, order.symbol, "cancel_failed", f"{reason}: {exc}")

    def _abandon(self, work: ActiveWork, now: datetime, reason: str) -> None:
        live = work.work.live_child()
        if work.work.status is WorkStatus.WORKING:
            work.work.finish(WorkStatus.EXPIRED, reason)
        if live is not None:
            tracked = self.tracked.get(live.client_order_id)
            if tracked is not None:
                self._cancel_order(tracked, now, reason)
        self.works.pop(work.work.work_id, None)

    def _live_orders(self) -> list[Order]:
        return [t.order for t in self.tracked.values() if t.order.is_live]

    def _apply(self, events: list[VenueEvent], now: datetime) -> None:
        for event in events:
            tracked = self.tracked.get(event.client_order_id)
            if tracked is None:
                log.info("event for an order we do not track: %s", event)
                continue
            order = tracked.order
            filled_before = order.filled
            try:
                apply_event(order, event)
            except (IllegalTransitionError, FillError) as exc:
                log.info("ignored venue event %s: %s", type(event).__name__, exc)
                continue
            try:
                with self.store.batch():
                    self._save_order(tracked, now, raise_errors=True)
                    if isinstance(event, Filled) and order.filled > filled_before:
                        self._on_fill(tracked, event, now)
            except StoreError as exc:
                self._store_error(now, exc)

    def _on_fill(self, tracked: TrackedOrder, event: Filled, now: datetime) -> None:
        fill, order = event.fill, tracked.order
        symbol = order.symbol
        notional = fill.size * fill.price
        pos = self.positions.get(symbol)
        if order.side is Side.BUY:
            self.cash -= notional + fill.fee
            if pos is None:
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
                    self._is_major(symbol),
                )
                self.positions[symbol] = pos
            pos.size += fill.size
            pos.entry_notional += notional
            pos.entry_fees += fill.fee
            pos.entry_price = pos.entry_notional / (pos.size + pos.exited_size)
            self.store.save_position(pos, now)
        else:
            self.cash += notional - fill.fee
            if pos is None:
                log.warning("sell fill on %s without a position (adopted at reconciliation)", symbol)
            else:
                pos.size -= fill.size
                pos.exited_size += fill.size
                pos.exit_proceeds += notional
                pos.exit_fees += fill.fee
                try:
                    lot = self.broker.market(symbol).lot_size
                except BrokerError:
                    lot = Decimal(0)
                if pos.size <= 0 or pos.size < lot:  # nothing sendable left: the round trip is over
                    self._close_position(pos, tracked, now)
                else:
                    self.store.save_position(pos, now)
        self.store.put_state("cash", str(self.cash), now)
        self.store.put_state("broker", self.broker.export_state(), now)

    def _close_position(self, pos: PositionRecord, tracked: TrackedOrder, now: datetime) -> None:
        entered = pos.size + pos.exited_size
        cost = pos.entry_notional * (pos.exited_size / entered) if entered > 0 else pos.entry_notional
        net_pnl = pos.exit_proceeds - cost - pos.entry_fees - pos.exit_fees
        net_return = float(net_pnl / cost) if cost > 0 else 0.0
        work = self.works.get(tracked.work_id)
        reason = work.reason if work is not None else "exit"
        del self.positions[pos.symbol]
        self.store.delete_position(pos.symbol)
        self.store.record_closed_trade(
            ClosedTrade(pos.symbol, pos.opened_at, now, pos.exited_size, net_pnl, net_return, reason)
        )
        self.kelly.record_trade(net_return)
        self.wins.record(net_pnl > 0)
        self.guard.record_trade_result(net_pnl, now)
        self._record(now, pos.symbol, "closed", f"net PnL {net_pnl} ({net_return:.4%}): {reason}")
        self._persist_counters(now, raise_errors=True)

    # ================================================================================ persistence
    def _save_order(self, tracked: TrackedOrder, now: datetime, *, raise_errors: bool = False) -> bool:
        try:
            self.store.save_order(tracked.order, tracked.work_id, tracked.purpose, now)
            return True
        except StoreError as exc:
            if raise_errors:
                raise
            self._store_error(now, exc)
            return False

    def _persist(self, fn: Callable[[], Any], now: datetime) -> bool:
        try:
            fn()
            return True
        except StoreError as exc:
            self._store_error(now, exc)
            return False

    def _put_state(self, key: str, value: Any, now: datetime) -> None:
        self._persist(lambda: self.store.put_state(key, value, now), now)

    def _store_error(self, now: datetime, exc: Exception) -> None:
        log.error("trading store error: %s", exc)
        self._store_errors.append(now)

    def record_store_error(self, now: datetime, exc: Exception) -> None:
        """Count a store failure seen outside the engine (e.g. the feature store), for the switch."""
        with self._lock:
            self._store_error(now, exc)

    def _trim_store_errors(self, now: datetime) -> None:
        horizon = now - timedelta(seconds=self.cfg.store_error_window_s)
        while self._store_errors and self._store_errors[0] < horizon:
            self._store_errors.popleft()

    def _guard_json(self) -> dict[str, Any]:
        s = self.guard.state
        return {
            "consecutive_losses": s.consecutive_losses,
            "losing_days": s.losing_days,
            "pauses": {k.value: iso(v) for k, v in s.pauses.items()},
            "halted": s.halted,
            "halt_reason": s.halt_reason,
            "last_active": sorted(x.value for x in s.last_active),
        }

    def _save_guard(self, now: datetime) -> None:
        data = self._guard_json()
        text = json.dumps(data, sort_keys=True)
        if text != self._guard_saved:
            self._put_state("guard", data, now)
            self._guard_saved = text

    def _persist_counters(self, now: datetime, *, raise_errors: bool = False) -> None:
        k = self.kelly.state()
        values: dict[str, Any] = {
            "kelly": {"fraction": k.fraction, "recent_returns": list(k.recent_returns), "since": k.since_recalibration},
            "win_outcomes": list(self.wins.outcomes()),
            "guard": self._guard_json(),
            "deployment_phase": self.trading.kill.deployment.active_phase,
            "day": self.day,
            "day_start_equity": str(self.day_start_equity),
            "peak_equity": str(self.peak_equity),
            "cash": str(self.cash),
            "manual_kill": self.manual_kill,
            "broker": self.broker.export_state(),
        }
        try:
            with self.store.batch():
                for key, value in values.items():
                    self.store.put_state(key, value, now)
        except StoreError as exc:
            if raise_errors:
                raise
            self._store_error(now, exc)

    def _load_counters(self, now: datetime) -> None:
        st = self.store
        kelly = st.get_state("kelly")
        if kelly:
            self.kelly = AdaptiveKelly(
                self.trading.sizing,
                KellyState(float(kelly["fraction"]), tuple(kelly["recent_returns"]), int(kelly["since"])),
            )
        self.wins = WinRateTracker(self.trading.decision, st.get_state("win_outcomes", []))
        guard = st.get_state("guard")
        if guard:
            self.guard = RiskGuard(
                self.trading.kill,
                GuardState(
                    consecutive_losses=int(guard["consecutive_losses"]),
                    losing_days=int(guard["losing_days"]),
                    pauses={Switch(k): parse_ts(v) for k, v in guard["pauses"].items()},
                    halted=bool(guard["halted"]),
                    halt_reason=guard["halt_reason"],
                    last_active=frozenset(Switch(x) for x in guard["last_active"]),
                ),
            )
        phase = self.trading.kill.deployment.active_phase
        stored_phase = st.get_state("deployment_phase", "unset")
        if stored_phase != "unset" and stored_phase != phase:
            self.alert(now, "phase_change", f"deployment phase {stored_phase} -> {phase} (configuration)")
        self.day = st.get_state("day")
        self.day_start_equity = Decimal(st.get_state("day_start_equity", "0"))
        self.peak_equity = Decimal(st.get_state("peak_equity", "0"))
        self.manual_kill = bool(st.get_state("manual_kill", False))
        broker_state = st.get_state("broker")
        if broker_state:
            self.broker.restore_state(broker_state)
        cash = st.get_state("cash")
        if cash is not None:
            self.cash = Decimal(cash)
        else:
            with contextlib.suppress(BrokerError):
                self.cash = self.broker.balances().get(self.quote, Decimal(0))
        self._put_state("deployment_phase", phase, now)

    def _roll_day(self, now: datetime) -> None:
        today = now.date().isoformat()
        if self.day == today:
            return
        equity = self.equity()
        if self.day is not None and self.day_start_equity > 0:
            day_end = datetime.fromisoformat(today).replace(tzinfo=UTC)
            day_pnl = equity - self.day_start_equity
            self.guard.record_day_result(day_pnl, max(day_end, now - timedelta(seconds=1)))
            self.alert(now, "daily_pnl", f"{self.day}: PnL {day_pnl} {self.quote}, equity {equity}")
        self.day = today
        self.day_start_equity = equity
        if equity > self.peak_equity:
            self.peak_equity = equity
        self._persist_counters(now)

    # ================================================================================ helpers
    def _sample_mids(self, now: datetime) -> None:
        """Sample every symbol's log mid at the same instants (the correlation rule aligns on them)."""
        if self._last_sample is not None and (now - self._last_sample).total_seconds() < self.cfg.correlation_sample_s:
            return
        self._last_sample = now
        for symbol, book in self.books.items():
            if book.is_sane():
                series = self._mids.setdefault(symbol, {})
                series[now] = math.log(float((book.bid + book.ask) / 2))
                while len(series) > self.cfg.correlation_window:
                    del series[next(iter(series))]

    def max_correlation_with_open(self, symbol: str) -> float | None:
        """Highest return correlation of `symbol` with an open position (SPEC 9: > 0.8 halves the newer).

        Returns over the sampling instants both symbols have; None until `correlation_min_samples`.
        """
        mine = self._mids.get(symbol, {})
        best: float | None = None
        for other in self.positions:
            if other == symbol:
                continue
            theirs = self._mids.get(other, {})
            common = sorted(set(mine) & set(theirs))
            if len(common) <= self.cfg.correlation_min_samples:
                continue
            a = [mine[t1] - mine[t0] for t0, t1 in itertools.pairwise(common)]
            b = [theirs[t1] - theirs[t0] for t0, t1 in itertools.pairwise(common)]
            try:
                corr = statistics.correlation(a, b)
            except statistics.StatisticsError:  # a flat series has no correlation
                continue
            best = corr if best is None else max(best, corr)
        return best

    def _is_major(self, symbol: str) -> bool:
        return base_quote(symbol)[0] in self.majors

    def _book_spread(self, symbol: str) -> float | None:
        book = self.books.get(symbol)
        if book is None or not book.is_sane():
            return None
        return float((book.ask - book.bid) / ((book.ask + book.bid) / 2))


def _post_alert(url: str, payload: dict[str, str]) -> None:
    """Best effort: an alert sink that is down must not stop trading (the alert is in the store anyway)."""
    try:
        httpx.post(url, json=payload, timeout=5.0)
    except httpx.HTTPError as exc:
        log.error("alert webhook failed: %s", type(exc).__name__)
