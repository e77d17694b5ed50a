"""The shadow in the serving process: mirror every execution's orders, feed the PnL gap to the health monitor.

`install_shadow(engine, monitor)` (called once by the lifespan, after the engine and the monitor start):
- wraps each execution's broker in `serving.engine.shadow.ShadowBroker` (under the engine's lock), so every
  order the live or paper execution sends is mirrored into the shadow's simulated fill model;
- sets ``engine.shadow`` (``/trading/status`` shows each strategy's live and simulated PnL and their gap);
- gives the monitor its ``pnl_source``: on each health timer the strategy with the widest gap goes to the
  engine as ``HealthEvent(live_pnl, simulated_pnl)``, and the risk component's ``pnl_gap`` kill switch alerts
  when ``|live - simulated| > pnl_gap_limit x max(|simulated|, pnl_gap_floor_quote, floor fraction x equity)``;
- binds the Prometheus collector: ``alphatide_shadow_pnl{strategy, book="live"|"simulated"}`` and
  ``alphatide_pnl_gap_ratio{strategy}``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

from prometheus_client import REGISTRY
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from serving.engine.shadow import Shadow, ShadowBroker


def _owner_lookup(execution: Any) -> Any:
    def strategy_of(client_order_id: str) -> str | None:
        tracked = execution.tracked.get(client_order_id)
        return tracked.strategy_id if tracked is not None else None

    return strategy_of


def install_shadow(engine: Any, monitor: Any = None) -> Shadow | None:
    """See the module docstring; returns the shadow (None without an engine). Idempotent per engine."""
    if engine is None:
        return None
    existing = getattr(engine, "shadow", None)
    if isinstance(existing, Shadow):
        return existing
    shadow = Shadow(engine.trading.paper)
    floor = Decimal(repr(engine.trading.kill.pnl_gap_floor_quote))
    with getattr(engine, "_lock", contextlib.nullcontext()):
        for venue, execution in engine.executions.items():
            if not isinstance(execution.broker, ShadowBroker):
                execution.broker = ShadowBroker(execution.broker, venue, shadow, _owner_lookup(execution))
        engine.shadow = shadow
    if monitor is not None:
        monitor.pnl_source = lambda: _widest(shadow, floor)
    SHADOW_COLLECTOR.bind(shadow, floor)
    return shadow


def _widest(shadow: Shadow, floor: Decimal) -> tuple[Decimal, Decimal] | None:
    pair = shadow.widest(floor)
    return (pair.live, pair.simulated) if pair is not None else None


class ShadowCollector(Collector):
    """The bound shadow's books on each scrape (nothing while unbound)."""

    def __init__(self) -> None:
        self.shadow: Shadow | None = None
        self.floor = Decimal(0)

    def bind(self, shadow: Shadow | None, floor: Decimal = Decimal(0)) -> None:
        self.shadow, self.floor = shadow, floor

    def describe(self) -> list[Any]:
        return []

    def collect(self) -> Iterator[GaugeMetricFamily]:
        shadow = self.shadow
        if shadow is None:
            return
        pnl = GaugeMetricFamily("alphatide_shadow_pnl", "PnL of a strategy's orders: live fills vs the shadow's "
                                "simulated fills (quote currency).", labels=["strategy", "book"])
        gap = GaugeMetricFamily("alphatide_pnl_gap_ratio", "|live - simulated PnL| / max(|simulated|, floor).",
                                labels=["strategy"])
        for pair in shadow.pairs():
            pnl.add_metric([pair.strategy_id, "live"], float(pair.live))
            pnl.add_metric([pair.strategy_id, "simulated"], float(pair.simulated))
            gap.add_metric([pair.strategy_id], pair.gap(self.floor))
        yield pnl
        yield gap


SHADOW_COLLECTOR = ShadowCollector()
REGISTRY.register(SHADOW_COLLECTOR)
