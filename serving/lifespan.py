"""The serving tier's lifespan: champion watcher, trading engine, health monitor, stream (in that order).

The engine (`serving.engine.trading_lifespan`) is published as `app.state.trading_engine`; the health
monitor (`serving.health.HealthMonitor`, `app.state.health`) measures the process on a timer and feeds
the engine, and the stream writes to the engine through the monitor's tee (signals and trades are
observed for the live calibration error). The stream (`stream.source` = ``ccxt`` or ``replay``; ``off``
by default) runs on its own thread and event loop (`serving.stream.runner`), with the engine on the
replay's event time in a replay; it is `app.state.stream`. With the stream on, the window model's
signal (`serving.stream.window_signal`, `app.state.window_signal`) is handed to the stream's pipeline and
activated once the engine runs a window strategy.
"""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.concurrency import run_in_threadpool

from pipelines.lake import Lake
from serving.deps import ServingDeps
from serving.engine.config import load_extras
from serving.engine.telegram import TelegramSender, WebSocketWatch, load_alert_settings
from serving.gc_tuning import freeze_startup_heap, thaw_heap
from serving.health import HealthMonitor, HealthTee, StreamDrift, lake_reference
from serving.hedge_records import attach_hedge_records, detach_hedge_records
from serving.shadow import install_shadow
from serving.strategy_feed import StrategyFeed
from serving.stream.runner import serving_stream
from serving.stream.window_signal import WindowSignal
from serving.trading_metrics import TRADING_COLLECTOR

log = logging.getLogger("alphatide.serving")


def _monitor(app: FastAPI, deps: ServingDeps) -> HealthMonitor | None:
    engine = getattr(app.state, "trading_engine", None)
    if engine is None:
        return None
    extras = load_extras()
    monitor = HealthMonitor(
        engine,
        extras.health,
        extras.airflow,
        clear_caches=deps.latest.clear,
        mode=deps.mode,
        p99_limit_ms=deps.settings.engine.trading.kill.inference_p99_limit_ms,
    )
    monitor.start()
    threading.Thread(target=_attach_drift, args=(monitor, deps), name="alphatide-drift-ref", daemon=True).start()
    return monitor


def _attach_drift(monitor: HealthMonitor, deps: ServingDeps) -> None:
    """Give the monitor the champion's training distribution (the lake's features), off the event loop."""
    settings = deps.settings
    champion = deps.scorer.current()
    if champion is None:
        return
    columns = champion.ref.feature_columns
    try:
        path = Lake(settings.lake_dir).features_path(settings.data.timeframe)
        reference = lake_reference(path, columns, settings.drift.recent_days, settings.drift.max_rows)
    except Exception:  # no features yet, or an unreadable file: drift stays unmeasured (logged)
        log.exception("drift reference could not be read")
        return
    if reference is None:
        return
    drift = StreamDrift(monitor.cfg, reference, columns, settings.drift.p_value)
    deps.latest.listeners.append(lambda row: drift.observe(row.values))
    monitor.drift = drift


def _alerting(app: FastAPI, engine: Any) -> None:
    """Telegram (when configured) as an engine alert sink, and the WebSocket-down watch (SPEC 14)."""
    cfg = load_alert_settings()
    app.state.telegram = TelegramSender(cfg.telegram).start() if cfg.telegram.configured else None
    if app.state.telegram is not None:
        engine.alert_sinks.append(app.state.telegram)
    app.state.ws_watch = WebSocketWatch(lambda kind, msg: engine.alert(engine.now(), kind, msg), cfg.alerts).start()


def _stop_alerting(app: FastAPI) -> None:
    for name in ("strategy_feed", "window_feed", "ws_watch", "telegram"):
        part = getattr(app.state, name, None)
        if part is not None:
            part.stop()
        setattr(app.state, name, None)


def serving_lifespan(deps: ServingDeps) -> Callable[[FastAPI], AbstractAsyncContextManager[None]]:
    settings = deps.settings

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.stream = None
        # The stream's bars of BTC/USDT scored by the window model (serving.stream.window_signal); it costs
        # nothing until `attach` finds a window strategy in the engine.
        window_signal = app.state.window_signal = (
            WindowSignal(settings) if settings.stream.source != "off" else None
        )
        app.state.health = None
        sys.setswitchinterval(settings.serving.gil_switch_interval_s)
        await run_in_threadpool(deps.scorer.start)

        def attach() -> Any:
            # The engine is running: start the monitor and give the stream the monitor's tee.
            monitor = app.state.health = _monitor(app, deps)
            engine = getattr(app.state, "trading_engine", None)
            install_shadow(engine, monitor)  # live vs simulated PnL of the same orders (serving.shadow)
            if engine is not None:
                attach_hedge_records(app, engine, settings)  # /hedge/cycles, /hedge/summary
                TRADING_COLLECTOR.bind(engine, monitor, app)  # /metrics reads the engine on scrape
                _alerting(app, engine)
                app.state.strategy_feed = StrategyFeed(engine, deps.hub.publish).start()  # quote/window on /ws
                from serving.window_feed import start_window_feed  # ccxt.prediction only when it is used

                app.state.window_feed = start_window_feed(engine)  # polymarket books/trades (paper windows)
                if window_signal is not None:
                    window_signal.activate(engine)  # the window model's signal, when a window strategy runs
            return HealthTee(engine, monitor) if engine is not None and monitor is not None else engine

        def detach() -> None:
            TRADING_COLLECTOR.unbind()
            _stop_alerting(app)
            detach_hedge_records(app)
            if app.state.health is not None:
                app.state.health.stop()

        try:
            # The trading engine, and the stream on its own thread and event loop (serving.stream.runner).
            async with serving_stream(
                app,
                settings,
                universe_symbols=lambda: sorted(deps.universe.get()[0]),
                attach=attach,
                detach=detach,
                scorer=deps.scorer,
                cache=deps.latest,
                hub=deps.hub,
                pusher=deps.owned_store,
                confidence=deps.confidence,
                window=window_signal,
            ):
                freeze_startup_heap(settings.serving.gc_threshold0, enabled=settings.serving.gc_freeze)
                yield
        finally:
            thaw_heap()
            deps.scorer.stop()
            if window_signal is not None:
                window_signal.stop()
            deps.latest.close()
            if deps.owned_store is not None:
                deps.owned_store.close()

    return lifespan
