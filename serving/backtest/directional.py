"""The directional backtest's signals: the champion scoring the replayed stream's incremental features.

The capture's own events (trades, depth diffs, snapshots, as `iter_binance_capture` reads them) go,
in receive order up to each replayed instant, through the live stream's `StreamPipeline` (the one
`FeatureEngine`, the `ChampionScorer` with the registry's champion, the same trusted-book rule); the
`SignalEvent`s it would have sent to the engine are handed to the backtest's engine right after the
market event of that instant. Nothing here computes a feature or a score itself.

Without a champion in the registry (`settings.mlflow_tracking_uri`) `champion_signals` raises an
`OperatorError` saying so (the CLI exits 2).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pipelines.config import Settings
from pipelines.domain.marketdata import BookDiff, BookSnapshot, CaptureEvent, Trade
from pipelines.errors import OperatorError
from pipelines.marketdata.binance_capture import iter_binance_capture
from pipelines.online_store import OnlineFeatures
from pipelines.registry import ChampionSource, serving_registry
from serving.engine.engine import TradingEngine
from serving.engine.events import BookEvent, EngineEvent, SignalEvent, TradeEvent
from serving.feature_cache import LatestFeatures
from serving.scorer import ChampionScorer
from serving.stream.pipeline import StreamPipeline


class _NoOnlineStore:
    """A backtest has no online store: the pipeline's cache only keeps what the replay itself wrote."""

    def latest(self, symbol: str, feature_columns: tuple[str, ...]) -> OnlineFeatures | None:
        return None


class _Collect:
    """The pipeline's engine sink: keeps the signals (books and trades reach the engine from the replay)."""

    def __init__(self) -> None:
        self.signals: list[SignalEvent] = []

    def submit(self, event: Any) -> bool:
        if isinstance(event, SignalEvent):
            self.signals.append(event)
        return True


class ChampionSignals:
    """`signals(event)` for `runner.drive`: the SignalEvents the stream produced up to the event's instant."""

    def __init__(self, pipeline: StreamPipeline, sink: _Collect, events: Iterator[CaptureEvent]) -> None:
        self.pipeline, self._sink, self._events = pipeline, sink, events
        self._pending: CaptureEvent | None = next(events, None)
        self.emitted: list[SignalEvent] = []

    def __call__(self, event: BookEvent | TradeEvent) -> list[EngineEvent]:
        until_ns = int(event.ts.timestamp() * 1e6) * 1000
        while self._pending is not None and self._pending.recv_ns <= until_ns:
            ev = self._pending.event
            if isinstance(ev, Trade | BookDiff | BookSnapshot):  # the kinds asked for (no bookTicker)
                self.pipeline.on_event(ev, time.perf_counter())
            self._pending = next(self._events, None)
        out, self._sink.signals = self._sink.signals, []
        self.emitted.extend(out)
        return list(out)


def champion_scorer(settings: Settings, registry: ChampionSource | None = None) -> ChampionScorer:
    """The serving tier's scorer on the registry's champion; OperatorError when there is none."""
    source = registry or serving_registry(
        settings.mlflow_tracking_uri, settings.mlruns_dir / "artifacts", settings.model.name
    )
    scorer = ChampionScorer(source, check_every_s=settings.serving.model_check_s)
    scorer.refresh()
    if scorer.current() is None:
        detail = f" ({scorer.last_error})" if scorer.last_error else ""
        raise OperatorError(
            f"no champion model {settings.model.name!r} registered at {settings.mlflow_tracking_uri}{detail}: "
            "the directional backtest scores with the champion; run `alphatide chain` (or train and promote "
            "a model) first"
        )
    return scorer


def champion_signals(
    settings: Settings, capture: Path, symbol: str, unified_symbol: str, *, scorer: ChampionScorer | None = None
) -> Any:
    """A `signals_factory` for `run_backtest`: the stream pipeline over the capture files of `symbol`."""
    scorer = scorer or champion_scorer(settings)
    files = sorted(capture.glob(f"{symbol.lower()}_*.gz"))
    if not files:
        raise OperatorError(f"no capture files {symbol.lower()}_*.gz under {capture}")

    def factory(engine: TradingEngine) -> ChampionSignals:
        sink = _Collect()
        pipeline = StreamPipeline(settings, scorer=scorer, cache=LatestFeatures(_NoOnlineStore()), engine=sink)
        events = iter_binance_capture(files, kinds=("trade", "depth", "snapshot"),
                                      resolve_symbol=lambda _: unified_symbol)
        return ChampionSignals(pipeline, sink, events)

    return factory
