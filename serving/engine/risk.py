"""The risk component: every intent passes it before it is sent; it can only reduce or refuse.

Account-wide: every kill switch of SPEC 10 (`pipelines.trading.killswitch.RiskGuard`) on a snapshot this
component measures (equity, exposure, streaks, API and store errors, zombie orders, the serving tier's
health inputs, the manual kill and the pause file) and the deployment phase's caps. Entries also wait for
the clean start of every venue and the first successful reconciliation, and stop at shutdown.
Per strategy: its allocation (exposure plus pending entries never above its equity) and its own daily
loss limit (the account's fraction, on its allocation).
Exits are never refused (they are only rounded to the lot).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from pipelines.config import EngineConfig
from pipelines.trading.instruments import MarketInfo, Side, rejection_reason, round_size
from pipelines.trading.killswitch import GuardState, RiskGuard, RiskSnapshot, RiskVerdict, Switch, SymbolRisk
from pipelines.trading.orders import BookTop
from serving.engine.events import HealthEvent, SignalEvent
from serving.engine.execution import Execution
from serving.engine.persistence.schema import iso, parse_ts
from serving.engine.portfolio import Portfolio
from serving.engine.strategy import OrderIntent, RiskLimits


@dataclass(frozen=True)
class Approval:
    accepted: bool
    size: Decimal
    reason: str = ""


class Risk:
    """See the module docstring. Not thread-safe: the engine calls it under its lock."""

    def __init__(
        self,
        cfg: EngineConfig,
        portfolio: Portfolio,
        pause_file: Path,
        alert: Callable[[datetime, str, str], None],
    ) -> None:
        self.cfg = cfg
        self.kill_cfg = cfg.trading.kill
        self.portfolio = portfolio
        self.pause_file = pause_file
        self.alert = alert
        self.guard = RiskGuard(self.kill_cfg)
        self.health = HealthEvent()
        self.signals: dict[str, SignalEvent] = {}
        self.manual_kill = False
        self.accepting_entries = True
        self.reconciled = False
        self.last_verdict: RiskVerdict | None = None
        self.day_start_equity = Decimal(0)
        self.peak_equity = Decimal(0)
        self.strategy_day_start: dict[str, Decimal] = {}
        self.store_errors: Callable[[datetime], int] = lambda now: 0

    # ---- measurement --------------------------------------------------------------------------
    def _symbol_risk(self, venue_symbols: Iterable[tuple[str, str]]) -> tuple[SymbolRisk, ...]:
        # Signed per symbol (venues netted; the kill switch nets symbols of one underlying), gross per leg.
        exposure: dict[str, Decimal] = {}
        gross: dict[str, Decimal] = {}
        for pos in self.portfolio.positions.values():
            value = self.portfolio.value(pos)
            exposure[pos.symbol] = exposure.get(pos.symbol, Decimal(0)) + value
            gross[pos.symbol] = gross.get(pos.symbol, Decimal(0)) + abs(value)
        risks = []
        for symbol in sorted(set(exposure) | set(self.signals) | {s for _, s in venue_symbols}):
            sig = self.signals.get(symbol)
            spread = sig.spread if sig is not None and sig.spread is not None else self._book_spread(symbol)
            risks.append(
                SymbolRisk(
                    symbol=symbol,
                    exposure=exposure.get(symbol, Decimal(0)),
                    gross=gross.get(symbol, Decimal(0)),
                    hurst=sig.hurst if sig else None,
                    spread=spread,
                    spread_norm=sig.spread_norm if sig else None,
                    volume=sig.volume if sig else None,
                    volume_norm=sig.volume_norm if sig else None,
                )
            )
        return tuple(risks)

    def _book_spread(self, symbol: str) -> float | None:
        book = self.portfolio.books.get(("", symbol))
        if book is None or not book.is_sane():
            return None
        return float((book.ask - book.bid) / ((book.ask + book.bid) / 2))

    def snapshot(self, now: datetime, executions: Iterable[Execution]) -> RiskSnapshot:
        """Everything the kill switches read, measured here (plus the serving tier's health inputs)."""
        executions = list(executions)
        equity = self.portfolio.equity()
        requests = errors = zombies = 0
        for ex in executions:
            r, e = ex.broker.api_health(now)
            requests, errors, zombies = requests + r, errors + e, zombies + ex.zombies(now)
        h = self.health
        return RiskSnapshot(
            equity=equity,
            day_start_equity=self.day_start_equity or equity,
            peak_equity=max(self.peak_equity, equity),
            symbols=self._symbol_risk(()),
            api_requests=requests,
            api_errors=errors,
            store_errors=self.store_errors(now),
            calibration_error=h.calibration_error,
            drift_p_value=h.drift_p_value,
            zombie_orders=zombies,
            inference_p99_ms=h.inference_p99_ms,
            memory_bytes=h.memory_bytes,
            live_pnl=h.live_pnl,
            simulated_pnl=h.simulated_pnl,
            manual_kill=self.manual_kill,
            pause_file_present=self.pause_file.exists(),
        )

    def evaluate(self, now: datetime, executions: Iterable[Execution]) -> RiskVerdict:
        """Evaluate every kill switch; alerts the ones that fired since the last evaluation."""
        equity = self.portfolio.equity()
        if equity > self.peak_equity:
            self.peak_equity = equity
        verdict = self.guard.evaluate(self.snapshot(now, executions), now)
        self.last_verdict = verdict
        for trigger in verdict.triggers:
            if trigger.switch in verdict.newly_fired:
                self.alert(now, f"kill_switch:{trigger.switch.value}", trigger.reason)
        return verdict

    # ---- gates --------------------------------------------------------------------------------
    def gate(self, executions: Iterable[Execution]) -> str | None:
        """Why no entry can be sent at all right now (before any kill switch), or None."""
        if not self.accepting_entries:
            return "engine is shutting down: no new entries"
        if not all(ex.clean_started for ex in executions):
            return "no clean start yet: open orders of the account unknown"
        if not self.reconciled:
            return "no successful reconciliation yet: positions and balances unknown"
        return None

    def limits(self, strategy_id: str, symbol: str | None, verdict: RiskVerdict, gate: str | None) -> RiskLimits:
        if gate is not None:
            return RiskLimits(False, gate, 0.0)
        allowed = verdict.allow_entries if symbol is None else verdict.can_enter(symbol)
        reason = ""
        if not allowed:
            reason = "; ".join(t.reason for t in verdict.triggers if t.symbol in (None, symbol)) or "blocked"
        else:
            reason = self._strategy_block(strategy_id) or ""
            allowed = not reason
        return RiskLimits(
            allowed,
            reason,
            verdict.size_multiplier if allowed else 0.0,
            verdict.max_trade_notional,
            verdict.bankroll_cap,
        )

    def _strategy_block(self, strategy_id: str) -> str | None:
        if self.portfolio.allocations.get(strategy_id) is None:
            return None  # on the whole account: the account's switches are its switches
        start = self.strategy_day_start.get(strategy_id)
        equity = self.portfolio.strategy_equity(strategy_id)
        if start is not None and start > 0:
            day_return = float((equity - start) / start)
            if day_return <= self.kill_cfg.daily_loss_limit:
                return f"strategy {strategy_id}: daily PnL {day_return:.2%} <= {self.kill_cfg.daily_loss_limit:.2%}"
        return None

    def check(
        self,
        strategy_id: str,
        intent: OrderIntent,
        market: MarketInfo,
        book: BookTop | None,
        limits: RiskLimits,
        pending_entries: Decimal,
    ) -> Approval:
        """Approve `intent` (maybe smaller) or refuse it. Exits: rounding only."""
        size = round_size(market, intent.size)
        if intent.is_exit:
            return Approval(size > 0, size, "" if size > 0 else f"exit size {intent.size} rounds to 0 lots")
        if not limits.allowed:
            return Approval(False, Decimal(0), limits.reason)
        price = intent.price or (self._touch(book, intent.side))
        if price is None:
            return Approval(False, Decimal(0), "no price for the risk check (no book)")
        notional = size * price
        caps: list[tuple[Decimal, str]] = []
        if limits.max_trade_notional is not None:
            caps.append((limits.max_trade_notional, "phase per-trade cap"))
        if limits.bankroll_cap is not None:
            caps.append((limits.bankroll_cap - self.portfolio.exposure() - pending_entries, "phase bankroll"))
        if self.portfolio.allocations.get(strategy_id) is not None:
            room = self.portfolio.strategy_equity(strategy_id) - self.portfolio.exposure(strategy_id) - pending_entries
            caps.append((room, f"strategy {strategy_id} allocation"))
        why = ""
        for cap, name in caps:
            if notional > cap:
                notional, why = max(cap, Decimal(0)), f"reduced to the {name} ({cap:.2f})"
        if why:
            size = round_size(market, notional / price)
        problem = rejection_reason(market, price, size)
        if problem is not None:
            return Approval(False, Decimal(0), f"{why}: {problem}" if why else problem)
        return Approval(True, size, why)

    @staticmethod
    def _touch(book: BookTop | None, side: Side) -> Decimal | None:
        if book is None or not book.is_sane():
            return None
        return book.bid if side is Side.BUY else book.ask

    # ---- persistence of the guard -------------------------------------------------------------
    def guard_json(self) -> dict[str, Any]:
        s = self.guard.state
        return {
            "consecutive_losses": s.consecutive_losses,
            "losing_days": s.losing_days,
            "pauses": {k.value: iso(v) for k, v in s.pauses.items()},
            "halted": s.halted,
            "halt_reason": s.halt_reason,
            "last_active": sorted(x.value for x in s.last_active),
        }

    def load_guard(self, data: dict[str, Any] | None) -> None:
        if not data:
            return
        self.guard = RiskGuard(
            self.kill_cfg,
            GuardState(
                consecutive_losses=int(data["consecutive_losses"]),
                losing_days=int(data["losing_days"]),
                pauses={Switch(k): parse_ts(v) for k, v in data["pauses"].items()},
                halted=bool(data["halted"]),
                halt_reason=data["halt_reason"],
                last_active=frozenset(Switch(x) for x in data["last_active"]),
            ),
        )
