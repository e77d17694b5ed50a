"""Market-data sources behind one interface (`CandleSource`), and the factory that picks one."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

from pipelines.config import Settings
from pipelines.sources.base import CandleSource
from pipelines.sources.binance import CcxtCandleSource
from pipelines.sources.replay import ReplaySource
from pipelines.sources.synthetic import SyntheticSource

log = logging.getLogger(__name__)

__all__ = ["CandleSource", "CcxtCandleSource", "ReplaySource", "SyntheticSource", "make_source"]


def _synthetic(settings: Settings, now: datetime) -> SyntheticSource:
    midnight = now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return SyntheticSource(
        as_of=midnight,
        # Enough history for the backfill plus the universe's look-back and listing-age window before it.
        days=settings.data.history_days + max(settings.universe.lookback_days, settings.universe.min_listing_days) + 1,
        n_symbols=settings.data.synthetic_symbols,
        seed=settings.data.synthetic_seed,
        quote=settings.universe.quote,
    )


def make_source(settings: Settings, now: datetime | None = None) -> CandleSource:
    """The source named by `ALPHATIDE_SOURCE`. `auto` probes Binance for a few seconds and falls back to
    synthetic data with a warning that says so."""
    now = now or datetime.now(UTC)
    if settings.source == "synthetic":
        return _synthetic(settings, now)
    if settings.source == "replay":
        assert settings.replay_dir is not None  # checked by Settings
        return ReplaySource(settings.replay_dir, venue=settings.venue)
    data = settings.data
    live = CcxtCandleSource(
        settings.venue,
        # `auto` must decide quickly; an explicit venue gets the normal request timeout.
        timeout_s=data.probe_timeout_s if settings.source == "auto" else data.request_timeout_s,
        max_retries=data.max_retries,
        backoff_s=data.backoff_s,
        max_backoff_s=data.max_backoff_s,
    )
    if settings.source == "binance":
        return live
    if live.reachable():
        log.info("source auto: %s is reachable, using live market data", settings.venue)
        return live
    log.warning(
        "source auto: %s did not answer within %.0f s; using SYNTHETIC candles (set ALPHATIDE_SOURCE to choose)",
        settings.venue,
        settings.data.probe_timeout_s,
    )
    return _synthetic(settings, now)


def history_window(source: CandleSource, days: int) -> tuple[datetime, datetime]:
    """[start, end) of the backfill: `days` whole days ending at the source's as-of instant."""
    end = source.as_of()
    return end - timedelta(days=days), end
