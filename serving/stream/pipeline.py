"""Per-event processing of the live stream: features, online store, signals, hot score, trading engine.

For every market event (called inline by the feed, on the stream's own event loop and thread):

1. `pipelines.features.incremental.FeatureEngine` (the one feature implementation, also behind the batch
   path) updates the symbol's state in O(1); it returns a `FeatureRow` for each 5-minute bar the event
   closed.
2. On a bar close: the row goes into the in-process `LatestFeatures` cache at once (what `/signal`
   reads), and is pushed to the Feast online store **once per closed bar** (a batch of the rows the event
   closed) on a single background thread, so the event loop never waits for the store; a failed push
   marks the store unavailable (`/signal` then answers 503 `hold`) until a later push or read succeeds.
   The bar's row is scored and published as a ``bar_close`` signal. A bar of the window model's
   reference symbol (BTC/USDT) is also scored by the window model (`serving.stream.window_signal`,
   when a window strategy runs): its `SignalEvent`s go to the engine (never intrabar: see there).
3. Between bar closes, each symbol is scored on `FeatureEngine.features_at` (flow and book values now,
   bar values of the last closed bar) at most every `stream.signal_interval_s` of exchange time: an
   ``intrabar`` signal for `/ws/signals` and the trading engine (never for the cache or the store: those
   hold bar-close rows, what the model was trained on).
4. Trades and best quotes feed the hot-score board and, as `TradeEvent`/`BookEvent`, the trading engine
   (`engine.submit` only queues; it never blocks); trades and signals feed the trailing statistics of the
   signal's rule inputs (`serving.stream.signal_inputs`: volume and its norm, spread norm, volatility,
   expected return, Kyle's lambda threshold). Every trade and book diff marks `freshness` (what `/health` reads).

Before the first event, `warm` feeds each symbol's recent closed bars (`serving.stream.warm`) so the
first scores see real bar features, not nulls.

A signal whose features have no trusted order book (`spread_pct` null: book stale, crossed or not
synced) is published as `hold` with that reason and not sent to the engine.

`latencies_s` keeps the receive-to-signal latency of the last signals (bench.live reports its p99).
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Protocol

import polars as pl

from pipelines.config import Settings
from pipelines.domain.marketdata import BookDiff, Trade
from pipelines.features.incremental import FeatureEngine, FeatureRow
from pipelines.online_store import OnlineFeatures
from pipelines.trading.instruments import Side
from serving.feature_cache import LatestFeatures
from serving.freshness import DataFreshness
from serving.messages import SignalMessage
from serving.metrics import INFERENCE_LATENCY, SIGNALS, RollingConfidence
from serving.scorer import ChampionScorer
from serving.signals import decide_action, threshold_reason
from serving.stream.feed import MarketEvent
from serving.stream.hot import HotScoreBoard
from serving.stream.signal_inputs import TrailingStats
from serving.stream.warm import CandleFetch, WarmReport, warm_up
from serving.stream.window_signal import WindowSignal
from serving.ws_hub import SignalHub

log = logging.getLogger(__name__)


class EngineSink(Protocol):
    """The trading engine's input side (`serving.engine.TradingEngine.submit`)."""

    def submit(self, event: Any) -> bool: ...


class FeaturePusher(Protocol):
    def push(self, frame: pl.DataFrame) -> None: ...


def _utc(ts_us: int) -> datetime:
    return datetime.fromtimestamp(ts_us / 1e6, UTC)


class StreamPipeline:
    def __init__(
        self,
        settings: Settings,
        *,
        scorer: ChampionScorer,
        cache: LatestFeatures,
        hub: SignalHub | None = None,
        pusher: FeaturePusher | None = None,
        engine: EngineSink | None = None,
        confidence: RollingConfidence | None = None,
        window: WindowSignal | None = None,
        wall_clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        keep_latencies: int = 200_000,
    ):
        self.settings = settings
        self.scorer = scorer
        self.cache = cache
        self.hub = hub
        self.engine = engine
        self.window = window
        self.confidence = confidence or RollingConfidence(settings.serving.confidence_window)
        self.features = FeatureEngine(settings.data.timeframe)
        self.hot = HotScoreBoard(settings.stream)
        self.stats = TrailingStats(settings.realtime, self.features.bar_us)
        self.freshness = DataFreshness(settings.realtime.health_max_data_age_s)
        self.warm_report: WarmReport | None = None
        self._pusher = pusher
        self._push_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="feast-push") if pusher else None
        self._wall_clock = wall_clock
        self._interval_us = int(settings.stream.signal_interval_s * 1e6)
        self._last_signal_us: dict[str, int] = {}
        self.latencies_s: deque[float] = deque(maxlen=keep_latencies)
        self.events = 0
        self.signals = 0
        self.bars_closed = 0
        self.pushes_pending = 0

    # ---- warm-up ---------------------------------------------------------------------------------
    def warm(self, symbols: list[str], start: datetime, fetch: CandleFetch | None = None) -> WarmReport:
        """Feed each symbol's recent closed bars before `start` (call before the first event)."""
        self.warm_report = warm_up(self.settings, symbols, start, self.features, self.stats, fetch=fetch)
        self.freshness = DataFreshness(self.settings.realtime.health_max_data_age_s)  # data is due from now
        return self.warm_report

    # ---- the feed's sinks ------------------------------------------------------------------------
    def on_event(self, event: MarketEvent, received: float) -> None:
        """One market event (see the module docstring). Never raises: a bad event is logged and skipped."""
        self.events += 1
        try:
            rows = self.features.on_event(event)
            symbol = event.symbol
            if isinstance(event, Trade):
                self.freshness.mark("trade")
                is_buy = event.aggressor_side == "buy"
                self.hot.on_trade(symbol, event.ts_us, event.price, event.qty, is_buy)
                self.stats.on_trade(symbol, event.ts_us, event.price, event.qty)
                if self.engine is not None:
                    self.engine.submit(_trade_event(event, is_buy))
            elif isinstance(event, BookDiff):  # a REST snapshot (fetched at every resubscribe) is not live data
                self.freshness.mark("book")
            if rows:
                self._bars_closed(rows, received)
            clock = self.features.clock(symbol)
            if clock is None:
                return
            last = self._last_signal_us.get(symbol)
            if last is None or clock - last >= self._interval_us:
                self._last_signal_us[symbol] = clock
                at = clock + 1  # features_at needs a time after the newest event
                self._signal(symbol, self.features.features_at(symbol, at), at, "intrabar", received)
        except Exception:  # one bad event must not stop the feed
            log.exception("stream event %r failed", event)

    def on_quote(self, symbol: str, bid: float, bid_qty: float, ask: float, ask_qty: float, ts_us: int) -> None:
        self.hot.on_quote(symbol, bid, ask)
        if self.engine is not None:
            from serving.engine.events import BookEvent

            self.engine.submit(
                BookEvent(symbol, Decimal(repr(bid)), Decimal(repr(ask)), Decimal(repr(bid_qty)),
                          Decimal(repr(ask_qty)), _utc(ts_us))
            )

    # ---- bar closes ------------------------------------------------------------------------------
    def _bars_closed(self, rows: list[FeatureRow], received: float) -> None:
        self.bars_closed += len(rows)
        for row in rows:
            self.cache.put(OnlineFeatures(row.symbol, dict(row.values), _utc(row.event_ts_us)))
            self.hot.on_hurst(row.symbol, row.values.get("hurst"))
            self.stats.on_kyle(row.symbol, row.values.get("kyle_lambda"))
        if self._pusher is not None and self._push_pool is not None and self.settings.stream.push_to_store:
            self.pushes_pending += 1
            self._push_pool.submit(self._push, rows)
        for row in rows:
            self._signal(row.symbol, row.values, row.event_ts_us, "bar_close", received)
        if self.window is not None and self.engine is not None:
            for row in rows:  # the window model's rows are bar closes of its reference symbol only
                for event in self.window.on_bar(row):
                    self.engine.submit(event)

    def _push(self, rows: list[FeatureRow]) -> None:
        assert self._pusher is not None
        columns = list(rows[0].values)
        frame = pl.DataFrame(
            {
                "symbol": [r.symbol for r in rows],
                "ts": [_utc(r.ts_us) for r in rows],
                "event_ts": [_utc(r.event_ts_us) for r in rows],
                **{c: [r.values.get(c) for r in rows] for c in columns},
            },
            schema={"symbol": pl.String, "ts": pl.Datetime("us", "UTC"), "event_ts": pl.Datetime("us", "UTC"),
                    **dict.fromkeys(columns, pl.Float64)},
        )
        try:
            self._pusher.push(frame)
        except Exception as exc:  # store down: /signal holds until a push or read succeeds
            self.cache.store_failed("push", exc)
        else:
            self.cache.store_ok()
        finally:
            self.pushes_pending -= 1

    # ---- scoring ---------------------------------------------------------------------------------
    def _signal(
        self, symbol: str, values: dict[str, float | None], at_us: int, trigger: str, received: float
    ) -> None:
        champion = self.scorer.current()
        if champion is None:
            return
        started = time.perf_counter()
        # The scorer keeps each symbol's last bars for a fused champion's sequence tower (a closed bar is
        # appended), serves the tabular tower while degraded, and says whether the champion may trade.
        scored = self.scorer.score(symbol, values, bar_close_ts_us=at_us if trigger == "bar_close" else None)
        INFERENCE_LATENCY.observe(time.perf_counter() - started)
        if scored is None:
            return
        p_up = scored.p_up
        trusted_book = values.get("spread_pct") is not None
        if trigger == "intrabar":
            # /signal serves the last closed bar; while the live book is untrusted it says hold, and why.
            self.cache.mark_stale(symbol, None if trusted_book else "no trusted order book right now")
        if trusted_book:
            action, reason = decide_action(p_up, self.settings), threshold_reason(p_up, self.settings)
        else:
            action, reason = "hold", "no trusted order book (stale, crossed or not synced): hold"
        self.confidence.add(p_up)
        SIGNALS.labels(action=action).inc()
        self.signals += 1
        if self.hub is not None and self.hub.clients:
            self.hub.publish(
                SignalMessage(
                    symbol=symbol, p_up=p_up, action=action, reason=reason, model_version=champion.ref.version,
                    trigger=trigger,  # type: ignore[arg-type]  # one of the two literals by construction
                    feature_time=_utc(at_us), published_at=self._wall_clock(),
                )
            )
        if self.engine is not None and trusted_book:
            self.engine.submit(self.signal_event(symbol, values, at_us, p_up, tradeable=scored.tradeable))
        self.latencies_s.append(time.perf_counter() - received)

    def signal_event(
        self, symbol: str, values: dict[str, float | None], at_us: int, p_up: float, *, tradeable: bool = True
    ) -> Any:
        """The engine's `SignalEvent`: every field its rules read, from the features and trailing stats;
        `tradeable` False (a champion that has not passed the full gate) publishes but opens nothing."""
        from serving.engine.events import SignalEvent

        inputs = self.stats.inputs(symbol, at_us, p_up)  # the norms from before this signal, then update
        spread = values.get("spread_pct")
        if spread is not None:
            self.stats.on_spread(symbol, at_us, spread)
        return SignalEvent(
            symbol=symbol, p_up=p_up, ts=_utc(at_us), vpin=values.get("vpin"),
            kyle_lambda=values.get("kyle_lambda"), kyle_lambda_threshold=inputs.kyle_lambda_threshold,
            hurst=values.get("hurst"), spread=spread, spread_norm=inputs.spread_norm,
            volume=inputs.volume, volume_norm=inputs.volume_norm, volatility=inputs.volatility,
            expected_return=inputs.expected_return, tradeable=tradeable,
        )

    def close(self) -> None:
        if self._push_pool is not None:
            self._push_pool.shutdown(wait=True)


def _trade_event(trade: Trade, is_buy: bool) -> Any:
    from serving.engine.events import TradeEvent

    return TradeEvent(
        trade.symbol, Decimal(repr(trade.price)), Decimal(repr(trade.qty)), _utc(trade.ts_us),
        Side.BUY if is_buy else Side.SELL,
    )
