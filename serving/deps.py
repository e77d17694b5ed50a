"""What the routers and the lifespan of the serving tier share (built once by `create_app`)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

import polars as pl

from pipelines.config import Settings
from pipelines.lake import Lake
from pipelines.online_store import RedisOnlineStore, SqliteOnlineStore
from pipelines.registry import ChampionSource
from serving.feature_cache import LatestFeatures
from serving.health import ScoringMode
from serving.metrics import RollingConfidence
from serving.scorer import ChampionScorer
from serving.ws_hub import SignalHub


class UniverseCache:
    """The newest stored universe, re-read at most every `ttl_s` seconds (the nightly chain replaces it)."""

    def __init__(self, lake: Lake, ttl_s: float = 60.0, clock: Callable[[], float] = time.monotonic):
        self._lake, self._ttl_s, self._clock = lake, ttl_s, clock
        self._symbols: frozenset[str] = frozenset()
        self._date: str | None = None
        self._read_at: float | None = None

    def due(self) -> bool:
        return self._read_at is None or self._clock() - self._read_at >= self._ttl_s

    def get(self) -> tuple[frozenset[str], str | None]:
        now = self._clock()
        if self._read_at is None or now - self._read_at >= self._ttl_s:
            table = self._lake.read_universe()
            if table is not None:
                self._symbols = frozenset(table.filter(pl.col("tier").is_not_null())["symbol"].to_list())
                self._date = str(table["date"][0]) if len(table) else None
            self._read_at = now
        return self._symbols, self._date

    def peek(self) -> tuple[frozenset[str], str | None]:
        return self._symbols, self._date


@dataclass
class ServingDeps:
    settings: Settings
    registry: ChampionSource
    scorer: ChampionScorer
    universe: UniverseCache
    latest: LatestFeatures
    hub: SignalHub
    confidence: RollingConfidence
    now: Callable[[], datetime]
    owned_store: SqliteOnlineStore | RedisOnlineStore | None = None
    mode: ScoringMode = field(default_factory=ScoringMode)
