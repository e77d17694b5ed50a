"""The engine's account counters: day start and peak equity, the UTC day roll, cash and broker state.

Persisted under fixed keys of the store's state table (`guard`, `day`, `day_start_equity`,
`peak_equity`, `cash`, `manual_kill`, `broker`, `deployment_phase`, `strategy_day_start`), so a restart
(or `kill -9`) resumes the same day, pauses, halt and paper balances.
"""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from serving.engine.broker import BrokerError

if TYPE_CHECKING:
    from serving.engine.engine import TradingEngine


def _cash_key(venue: str) -> str:
    return "cash" if not venue else f"cash:{venue}"


def _broker_key(venue: str) -> str:
    return "broker" if not venue else f"broker:{venue}"


class Counters:
    def __init__(self, engine: TradingEngine) -> None:
        self.engine = engine
        self.day: str | None = None

    def values(self, *, only_money: bool = False) -> dict[str, Any]:
        e = self.engine
        money: dict[str, Any] = {}
        for venue, ex in e.executions.items():
            money[_cash_key(venue)] = str(e.portfolio.cash.get(venue, Decimal(0)))
            money[_broker_key(venue)] = ex.broker.export_state()
        if only_money:
            return money
        risk = e.risk
        return money | {
            "guard": risk.guard_json(),
            "deployment_phase": e.trading.kill.deployment.active_phase,
            "day": self.day,
            "day_start_equity": str(risk.day_start_equity),
            "peak_equity": str(risk.peak_equity),
            "manual_kill": risk.manual_kill,
            "strategy_day_start": {k: str(v) for k, v in risk.strategy_day_start.items()},
        }

    def persist(self, now: datetime, *, raise_errors: bool = False, only_money: bool = False) -> None:
        self.engine.persistence.put_many(self.values(only_money=only_money), now, raise_errors=raise_errors)

    def load(self, now: datetime) -> None:
        e, p = self.engine, self.engine.persistence
        e.risk.load_guard(p.get("guard"))
        phase = e.trading.kill.deployment.active_phase
        stored_phase = p.get("deployment_phase", "unset")
        if stored_phase != "unset" and stored_phase != phase:
            e.alert(now, "phase_change", f"deployment phase {stored_phase} -> {phase} (configuration)")
        self.day = p.get("day")
        e.risk.day_start_equity = Decimal(p.get("day_start_equity", "0"))
        e.risk.peak_equity = Decimal(p.get("peak_equity", "0"))
        e.risk.manual_kill = bool(p.get("manual_kill", False))
        e.risk.strategy_day_start = {k: Decimal(v) for k, v in (p.get("strategy_day_start") or {}).items()}
        for venue, ex in e.executions.items():
            broker_state = p.get(_broker_key(venue))
            if broker_state:
                ex.broker.restore_state(broker_state)
            cash = p.get(_cash_key(venue))
            if cash is not None:
                e.portfolio.cash[venue] = Decimal(cash)
            else:
                with contextlib.suppress(BrokerError):
                    e.portfolio.cash[venue] = ex.broker.balances().get(e.quote, Decimal(0))
        p.put("deployment_phase", phase, now)

    def roll_day(self, now: datetime) -> None:
        """At the first event of a new UTC day: close the old day (losing-days switch, PnL alert)."""
        today = now.date().isoformat()
        if self.day == today:
            return
        e, risk = self.engine, self.engine.risk
        equity = e.equity()
        if self.day is not None and risk.day_start_equity > 0:
            day_end = datetime.fromisoformat(today).replace(tzinfo=UTC)
            day_pnl = equity - risk.day_start_equity
            risk.guard.record_day_result(day_pnl, max(day_end, now - timedelta(seconds=1)))
            e.alert(now, "daily_pnl", f"{self.day}: PnL {day_pnl} {e.quote}, equity {equity}")
        self.day = today
        risk.day_start_equity = equity
        risk.strategy_day_start = {sid: e.portfolio.strategy_equity(sid) for sid in e.strategies}
        if equity > risk.peak_equity:
            risk.peak_equity = equity
        self.persist(now)
