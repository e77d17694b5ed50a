"""The stages of the nightly chain: one function per Airflow task.

Each stage reads what the previous one handed over (a manifest in the lake's `_state`), calls the pure
logic (`select_universe`, `validate_candles`, `build_features`, `retrain_walk_forward`,
`promote_if_better`), writes through the adapters (lake, registry, feature store) and returns a small
JSON-able summary (Airflow keeps it as the task's XCom). Settings are loaded once per call.
"""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any

import polars as pl

from pipelines import chain_events
from pipelines.backfill import Backfiller, load_market_metadata
from pipelines.batch_gate import batch_candles as _batch_candles
from pipelines.batch_gate import gate_batch
from pipelines.config import Settings, load_settings
from pipelines.errors import DataValidationError, OperatorError
from pipelines.feature_store import FeastStore
from pipelines.features import FEATURE_COLUMNS, build_features
from pipelines.lake import Lake
from pipelines.lake_staging import StagedLake
from pipelines.registry import MlflowRegistry
from pipelines.retrain import drift_check, retrain_and_promote, with_model_overrides
from pipelines.sources import CandleSource, CcxtCandleSource, make_source
from pipelines.universe import daily_stats, select_universe, universe_symbols, universe_window

log = logging.getLogger(__name__)

Summary = dict[str, Any]


def _require(lake: Lake, name: str, producer: str) -> dict[str, Any]:
    state = lake.read_state(name)
    if state is None:
        raise OperatorError(f"no '{name}' manifest in {lake.root / '_state'}: run the {producer} stage first")
    return state


def _source_for(settings: Settings, resolved: str, as_of: datetime) -> CandleSource:
    """Recreate the source the universe stage resolved (so `auto` cannot switch mid-chain)."""
    return make_source(settings.model_copy(update={"source": resolved}), now=as_of)


def registry_for(settings: Settings) -> MlflowRegistry:
    return MlflowRegistry(
        settings.mlflow_tracking_uri, settings.mlruns_dir / "artifacts", settings.model.name
    )


def select_universe_from(
    source: CandleSource, lake: Lake, candidates: list[str], day: date, settings: Settings
) -> pl.DataFrame:
    """The universe of `day` from the source's bars before it, with the lake's book spreads and trade
    counts (when it holds any for the venue) in place of the candle-based estimates."""
    start, end = universe_window(day, settings.universe)
    candles = source.fetch_candles(candidates, settings.universe.stats_timeframe, start, end)
    daily = daily_stats(candles)
    counts = lake.daily_trade_counts(source.venue, candidates)
    if not counts.is_empty():
        daily = daily.join(counts, on=["symbol", "day"], how="left")
    spreads = lake.daily_book_spreads(source.venue, candidates)
    return select_universe(daily, candidates, day, settings.universe, book_spreads=spreads)


def run_universe(settings: Settings | None = None, now: datetime | None = None) -> Summary:
    """Pick today's universe from data strictly before the as-of date; store it dated."""
    settings = settings or load_settings()
    source = make_source(settings, now)
    as_of = source.as_of()
    day: date = as_of.date()
    candidates = source.list_symbols(settings.universe.quote)
    if not candidates:
        raise OperatorError(f"source {source.name} lists no {settings.universe.quote} symbols")
    lake = Lake(settings.lake_dir)
    universe = select_universe_from(source, lake, candidates, day, settings)
    symbols = universe_symbols(universe)
    if not symbols:
        raise OperatorError(f"universe of {day} is empty: no candidate had data in the lookback window")
    # Kept aside: the serving tier sees it only once the chain has succeeded (`run_materialize`).
    path = lake.stage_universe(universe, day)
    summary = {
        "date": day.isoformat(),
        "as_of": as_of.isoformat(),
        "source": source.name,
        "venue": source.venue,
        "symbols": symbols,
        "candidates": len(candidates),
        "path": str(path),
        "published": False,
    }
    lake.write_state("universe", summary)
    log.info("universe %s from %s (%d symbols, published when the chain succeeds): %s",
             day, source.name, len(symbols), ", ".join(symbols))
    return summary


def _pending_batch(lake: Lake, universe: dict[str, Any]) -> str | None:
    """The batch an interrupted backfill of the same universe left staged (resumed, not restarted)."""
    last = lake.read_state("backfill")
    if last is None or last.get("universe_date") != universe["date"]:
        return None
    return str(last["batch_id"]) if lake.staging_dir(str(last["batch_id"])).is_dir() else None


def run_backfill(settings: Settings | None = None) -> Summary:
    """Bring the lake up to date for the universe: incremental from each symbol's watermark."""
    settings = settings or load_settings()
    lake = Lake(settings.lake_dir)
    universe = _require(lake, "universe", "universe")
    as_of = datetime.fromisoformat(universe["as_of"])
    source = _source_for(settings, universe["source"], as_of)
    timeframe = settings.data.timeframe
    start, end = as_of - timedelta(days=settings.data.history_days), as_of
    if isinstance(source, CcxtCandleSource):
        load_market_metadata(source, lake, ttl=timedelta(hours=settings.data.markets_ttl_h))
    batch_id = _pending_batch(lake, universe) or f"{universe['date']}-{uuid.uuid4().hex[:8]}"
    staged = StagedLake(lake, batch_id)  # committed by the validation stage, only when the batch passes
    staged.root.mkdir(parents=True, exist_ok=True)  # an empty batch (nothing new) is still a batch
    lake.write_state("backfill", {"batch_id": batch_id, "universe_date": universe["date"], "state": "running"})
    backfiller = Backfiller(source, staged, settings.data, on_progress=chain_events.progress_reporter("backfill"))
    report = backfiller.run(universe["symbols"], [f"candles_{timeframe}"], start, end)
    rows = report.new_rows
    summary = {
        "batch_id": batch_id,
        "staging": str(staged.root),
        "venue": source.venue,
        "source": universe["source"],
        "timeframe": timeframe,
        "symbols": universe["symbols"],
        "start": start.isoformat(),
        "end": end.isoformat(),
        "new_rows": rows,
        "refetched_bars": report.refetched_bars,
        "venue_outages": report.venue_outages,
        "symbol_gaps": report.symbol_gaps,
        "universe_date": universe["date"],
        "state": "staged",
    }
    lake.write_state("backfill", summary)
    return summary


def run_validation(settings: Settings | None = None) -> Summary:
    """The gate: the staged batch is committed to the lake only when it passes; a failing batch is
    quarantined with its report (the rows stay out of the lake, the watermarks do not move) and the
    chain stops here."""
    settings = settings or load_settings()
    lake = Lake(settings.lake_dir)
    batch = _require(lake, "backfill", "backfill")
    staged = StagedLake(lake, batch["batch_id"])
    if not staged.exists():
        done = lake.read_state("validated")
        if done is not None and done.get("batch_id") == batch["batch_id"]:
            return done  # already validated and committed (a re-run of this task)
        raise OperatorError(
            f"batch {batch['batch_id']} is not staged any more ({batch.get('state')}): run the backfill again"
        )
    try:
        committed = gate_batch(lake, staged, batch, settings)
    except DataValidationError:
        lake.write_state("backfill", {**batch, "state": "quarantined"})
        raise
    summary = {
        **batch,
        "state": "committed",
        "validated_rows": committed["validated_rows"],
        "committed_partitions": committed["partitions"],
        "validated_at": datetime.now(UTC).isoformat(),
    }
    lake.write_state("validated", summary)
    lake.write_state("backfill", summary)
    return summary


def run_features(settings: Settings | None = None) -> Summary:
    """Features for the validated batch, written to the lake (the offline store's file)."""
    settings = settings or load_settings()
    lake = Lake(settings.lake_dir)
    batch = _require(lake, "validated", "validation")
    features = build_features(_batch_candles(lake, batch), batch["timeframe"])
    path = lake.write_features(features, batch["timeframe"])
    summary = {
        "batch_id": batch["batch_id"],
        "path": str(path),
        "rows": len(features),
        "feature_columns": list(FEATURE_COLUMNS),
        "timeframe": batch["timeframe"],
        "last_event_ts": features["event_ts"].max().isoformat(),  # type: ignore[union-attr]
        "first_event_ts": features["event_ts"].min().isoformat(),  # type: ignore[union-attr]
    }
    lake.write_state("features", summary)
    return summary


def run_drift_check(settings: Settings | None = None) -> Summary:
    """KS drift of the newest features against the rest of the batch (SPEC 8); recorded, never blocking.

    The result is kept in the lake's `_state/drift` (the retrain logs it on its run) and returned.
    """
    settings = settings or load_settings()
    lake = Lake(settings.lake_dir)
    built = _require(lake, "features", "features")
    report = drift_check(lake.read_features(built["timeframe"]), tuple(built["feature_columns"]), settings)
    summary = {"batch_id": built["batch_id"], "drift": report.any_drift, **report.to_dict()}
    lake.write_state("drift", summary)
    if report.any_drift:
        log.warning("feature drift (KS p < %s): %s", settings.drift.p_value, ", ".join(report.drifted))
    return summary


def run_training(
    settings: Settings | None = None,
    *,
    horizon_bars: int | None = None,
    train_months: int | None = None,
    optuna_trials: int | None = None,
) -> Summary:
    """Walk-forward retrain; score it and the champion on the same out-of-sample period; promote if better.

    The keyword arguments override the settings for one run (the Airflow UI's trigger parameters);
    None keeps the configured value. See `pipelines.retrain.retrain_and_promote`.
    """
    settings = with_model_overrides(
        settings or load_settings(),
        horizon_bars=horizon_bars,
        train_months=train_months,
        optuna_trials=optuna_trials,
    )
    lake = Lake(settings.lake_dir)
    batch = _require(lake, "validated", "validation")
    built = _require(lake, "features", "features")
    drift = lake.read_state("drift")
    summary = retrain_and_promote(
        settings,
        candles=_batch_candles(lake, batch),
        features=lake.read_features(built["timeframe"]),
        feature_columns=tuple(built["feature_columns"]),
        timeframe=built["timeframe"],
        lineage={
            "feature_service": settings.feature_service,
            "universe_date": batch["universe_date"],
            "data_snapshot": batch["batch_id"],
            "source": batch["source"],
        },
        drift=drift if drift is not None and drift.get("batch_id") == built["batch_id"] else None,
        registry=registry_for(settings),
    )
    lake.write_state("training", summary)
    return summary


def run_materialize(settings: Settings | None = None) -> Summary:
    """Register the Feast definitions and load the newest feature values into the online store."""
    settings = settings or load_settings()
    lake = Lake(settings.lake_dir)
    built = _require(lake, "features", "features")
    store = FeastStore(settings)
    store.apply(lake.features_path(built["timeframe"]), tuple(built["feature_columns"]))
    end = datetime.fromisoformat(built["last_event_ts"]) + timedelta(seconds=1)
    # Only the newest row per symbol reaches the online store; a few days back covers every symbol.
    start = max(datetime.fromisoformat(built["first_event_ts"]), end - timedelta(days=3))
    store.materialize(start, end)
    # The last stage: the chain succeeded, so the day's universe becomes the one the serving tier reads.
    validated = lake.read_state("validated") or {}
    day = validated.get("universe_date")
    published = lake.publish_universe(date.fromisoformat(day)) if day else None
    summary = {
        "feature_service": settings.feature_service,
        "start": start.isoformat(),
        "end": end.isoformat(),
        "universe_published": str(published) if published else None,
    }
    lake.write_state("online", summary)
    if published:
        log.info("universe of %s published: %s", day, published)
    return summary
