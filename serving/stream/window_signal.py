"""The window model's signal in the serving tier (issue 17): `SignalEvent("btc-updown-5m", p_up, ...)`.

`WindowSignal` scores the `alphatide-window` champion (its own `ChampionScorer` over the registry's
`WindowModelConfig.name` model) on the stream's bars of the model's symbol (`WindowModelConfig.symbol`,
BTC/USDT: the window strategies' `reference_symbol`) and returns one `SignalEvent` per window signal
symbol the engine's window strategies read (`cfg.signal_symbol`); the stream pipeline submits them to
the engine through its sink, as it does its own signals.

When it scores: at every bar close of the reference symbol, i.e. at each bar boundary t inside a
window (W <= t < W + window_s): exactly the training rows of `pipelines.window.dataset` (1-minute bars:
t = W, W+1m, ..., W+4m; 5-minute bars: t = W only). The row is `pipelines.window.dataset.scoring_row`
(the same expressions as `window_dataset`) on the features of the bar that closed at t, as the stream's
`FeatureEngine` gives them (the batch features' incremental twin). `SignalEvent.ts` is t (UTC), so the
strategies' `max_signal_age_s` counts from the scoring time. Never between bar closes: intrabar the
directional features would be the last bar's while price_vs_open and time_decay took values the model
never saw with them (a 5m model saw only time_decay = 1 and price_vs_open = 0), an extrapolation the
training did not cover.

What it refuses (logged once per champion version and reason, shown by `status()` in /health): a
champion whose `timeframe` tag differs from the stream's bars (or was not recorded), one that needs a
column the scoring row lacks, bars that do not tile the window. A scoring row whose price_vs_open is
unknown (the window's opening bar was not seen, e.g. the stream started inside the window) is skipped:
no training row has one.

Cost: nothing until `activate(engine)` finds a window strategy (`window`, `window_mm`: a strategy whose
cfg has a `signal_symbol`); then a champion watcher thread reading the registry's alias every
`serving.model_check_s`, the model in memory when a champion exists, and about 1 ms per reference bar
(a one-row polars frame, the model's predict) on the stream's thread.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any, Literal

from prometheus_client import Counter, Gauge
from pydantic import BaseModel, Field

from pipelines.config import Settings
from pipelines.features.incremental import FeatureRow
from pipelines.features.spec import DEFAULT_PARAMS, US_PER_S
from pipelines.registry import ChampionSource, serving_registry
from pipelines.window import MODEL_NAME, SYMBOL
from pipelines.window.dataset import WINDOW_FEATURES, check_tiles, scoring_row
from serving.scorer import ChampionScorer, LoadedModel

log = logging.getLogger(__name__)

WINDOW_P_UP = Gauge(
    "alphatide_window_signal_p_up", "The window model's last P(window closes >= its open), by signal symbol.",
    ["symbol"],
)
WINDOW_SIGNALS = Counter(
    "alphatide_window_signals_total",
    "Window-model scoring rows by outcome (scored, refused champion, skipped row).", ["outcome"],
)

State = Literal["inactive", "no_champion", "refused", "scoring"]


class WindowSignalStatus(BaseModel):
    """What /health shows of the window model's signal."""

    state: State = Field(description="inactive (no window strategy), no_champion, refused or scoring")
    reason: str | None = Field(None, description="Why not scoring (a refused champion says why)")
    model: str
    model_version: str | None = None
    tradeable: bool | None = None
    reference_symbol: str
    signal_symbols: list[str] = Field(default_factory=list)
    last_p_up: float | None = None
    last_signal_time: datetime | None = None
    signals: int = 0


class WindowSignal:
    def __init__(
        self,
        settings: Settings,
        *,
        registry: ChampionSource | None = None,
        model_name: str = MODEL_NAME,
        reference_symbol: str = SYMBOL,
        window_s: int = DEFAULT_PARAMS.window_market_s,
    ) -> None:
        """`registry`: where the champion is read (default: `serving_registry` of the settings, model
        `model_name`, `WindowModelConfig.name`'s default); built only on `activate`. `reference_symbol`:
        the symbol the model was trained on (`WindowModelConfig.symbol`)."""
        self.settings = settings
        self.model_name = model_name
        self.reference_symbol = reference_symbol
        self.window_s = window_s
        self.timeframe = settings.data.timeframe
        self._registry = registry
        self.scorer: ChampionScorer | None = None
        self.signal_symbols: tuple[str, ...] = ()
        self.reason: str | None = None
        self._logged: set[tuple[str | None, str]] = set()
        self.last: Any = None  # the last SignalEvent
        self.last_row: dict[str, float | None] | None = None  # the scoring row behind it
        self.signals = 0

    # ---- lifecycle ---------------------------------------------------------------------------------
    def activate(self, engine: Any) -> bool:
        """Serve the engine's window strategies (idempotent); False (and no cost) when it has none."""
        return self.serve(_signal_symbols(engine, self.reference_symbol, self.window_s))

    def serve(self, signal_symbols: Iterable[str]) -> bool:
        """Score for these window signal symbols from now on (starts the champion watcher once)."""
        symbols = sorted(set(signal_symbols))
        if not symbols:
            return False
        self.signal_symbols = tuple(symbols)
        if self.scorer is None:
            registry = self._registry or serving_registry(
                self.settings.mlflow_tracking_uri, self.settings.mlruns_dir / "artifacts", self.model_name
            )
            self.scorer = ChampionScorer(registry, check_every_s=self.settings.serving.model_check_s)
            self.scorer.start()
        log.info("window signal: %s on %s bars of %s -> %s", self.model_name, self.timeframe,
                 self.reference_symbol, ", ".join(symbols))
        return True

    def stop(self) -> None:
        if self.scorer is not None:
            self.scorer.stop()

    # ---- scoring -----------------------------------------------------------------------------------
    def on_bar(self, row: FeatureRow) -> list[Any]:
        """The SignalEvents of a closed bar (none unless it is the reference symbol's and a usable
        champion is in service); see the module docstring."""
        if self.scorer is None or row.symbol != self.reference_symbol:
            return []
        champion = self.scorer.current()
        if champion is None:
            self.reason = f"no {self.model_name} champion in the registry"
            return []
        refusal = self._refusal(champion)
        if refusal is not None:
            self._refuse(champion, refusal)
            return []
        values = scoring_row(row.event_ts_us, row.values, self.window_s)
        if values["price_vs_open"] is None:
            WINDOW_SIGNALS.labels(outcome="skipped").inc()
            self.reason = "the window's opening bar was not seen (no price_vs_open): no signal this window"
            return []
        scored = self.scorer.score(self.reference_symbol, values)
        if scored is None:
            return []
        from serving.engine.events import SignalEvent

        ts = datetime.fromtimestamp(row.event_ts_us / US_PER_S, UTC)
        events = [SignalEvent(symbol=s, p_up=scored.p_up, ts=ts, tradeable=scored.tradeable, kind="window")
                  for s in self.signal_symbols]
        for symbol in self.signal_symbols:
            WINDOW_P_UP.labels(symbol=symbol).set(scored.p_up)
        WINDOW_SIGNALS.labels(outcome="scored").inc()
        self.reason, self.last, self.last_row = None, events[0], values
        self.signals += 1
        return events

    def _refusal(self, champion: LoadedModel) -> str | None:
        ref = champion.ref
        if ref.timeframe is None:
            return (f"{ref.name} v{ref.version} has no timeframe tag (registered before it was recorded): "
                    f"retrain it (`alphatide window train` or the nightly chain) to serve it on {self.timeframe} bars")
        if ref.timeframe != self.timeframe:
            return (f"{ref.name} v{ref.version} was trained on {ref.timeframe} bars; the stream builds "
                    f"{self.timeframe} bars (data.timeframe): its features would not match, not scored")
        missing = [c for c in ref.feature_columns if c not in WINDOW_FEATURES]
        if missing or not ref.feature_columns:
            return f"{ref.name} v{ref.version} needs columns the scoring row lacks: {missing or 'none listed'}"
        try:
            check_tiles(self.timeframe, self.window_s)
        except ValueError as exc:
            return f"{exc}: no scoring rows"
        return None

    def _refuse(self, champion: LoadedModel, reason: str) -> None:
        WINDOW_SIGNALS.labels(outcome="refused").inc()
        self.reason = reason
        key = (champion.ref.version, reason)
        if key not in self._logged:
            self._logged.add(key)
            log.warning("window signal refused: %s", reason)

    # ---- status ------------------------------------------------------------------------------------
    def status(self) -> WindowSignalStatus:
        champion = self.scorer.current() if self.scorer is not None else None
        state: State
        reason: str | None
        if self.scorer is None:
            state, reason = "inactive", "no window strategy in the engine"
        elif champion is None:
            state, reason = "no_champion", f"no {self.model_name} champion in the registry"
        elif (refusal := self._refusal(champion)) is not None:
            state, reason = "refused", refusal
        else:
            state, reason = "scoring", self.reason
        last = self.last
        return WindowSignalStatus(
            state=state,
            reason=reason,
            model=self.model_name,
            model_version=champion.ref.version if champion else None,
            tradeable=champion.tradeable if champion else None,
            reference_symbol=self.reference_symbol,
            signal_symbols=list(self.signal_symbols),
            last_p_up=last.p_up if last is not None else None,
            last_signal_time=last.ts if last is not None else None,
            signals=self.signals,
        )


def _signal_symbols(engine: Any, reference: str, window_s: int) -> list[str]:
    """The signal symbols of the engine's window strategies settled on `reference` prints (a strategy on
    another reference or window length is logged and not served: the model is of `reference` windows)."""
    out = []
    for sid, strategy in getattr(engine, "strategies", {}).items():
        cfg = getattr(strategy, "cfg", None)
        symbol = getattr(cfg, "signal_symbol", None)
        if not isinstance(symbol, str):
            continue
        trading = getattr(cfg, "trading", None) or getattr(cfg, "mm", None)
        their_reference = getattr(cfg, "reference_symbol", reference)
        their_window = getattr(trading, "window_s", window_s)
        if their_reference != reference or their_window != window_s:
            log.warning("window strategy %s: reference %s / %ss windows are not the window model's (%s, %ss)",
                        sid, their_reference, their_window, reference, window_s)
            continue
        out.append(symbol)
    return out
