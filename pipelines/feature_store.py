"""The feature store behind a small interface; Feast (SQLite online store by default) implements it."""

from __future__ import annotations

import importlib.util
import math
from datetime import UTC, datetime
from pathlib import Path
from string import Template
from types import ModuleType
from typing import Any, Protocol
from urllib.parse import urlparse

import polars as pl
import yaml

from pipelines.config import Settings
from pipelines.errors import ConfigError
from pipelines.online_store import OnlineFeatures, feature_views


class FeatureReader(Protocol):
    def latest(self, symbol: str, feature_columns: tuple[str, ...]) -> OnlineFeatures | None: ...


def _load_definitions(feature_repo: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location("alphatide_feature_repo", feature_repo / "definitions.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def feast_redis_connection_string(url: str) -> str:
    """redis://[user:password@]host:port/db[?ssl=true] -> Feast's "host:port,db=N,password=...,ssl=true"."""
    parsed = urlparse(url)
    if parsed.scheme not in {"redis", "rediss"} or not parsed.hostname:
        raise ConfigError("ALPHATIDE_REDIS_URL must look like redis://[:password@]host:port/db")
    parts = [f"{parsed.hostname}:{parsed.port or 6379}"]
    db = parsed.path.lstrip("/")
    if db:
        parts.append(f"db={int(db)}")
    if parsed.username:
        parts.append(f"username={parsed.username}")
    if parsed.password:
        parts.append(f"password={parsed.password}")
    if parsed.scheme == "rediss":
        parts.append("ssl=true")
    return ",".join(parts)


def feast_repo_config(settings: Settings) -> Any:
    """Feast's RepoConfig from `feature_repo/feature_store[.redis].yaml` with the settings filled in."""
    from feast.repo_config import RepoConfig

    name = "feature_store.redis.yaml" if settings.online_store == "redis" else "feature_store.yaml"
    values = {"FEAST_DIR": str(settings.feast_dir), "PROJECT": settings.feast_project, "REDIS": ""}
    if settings.redis_url is not None:
        values["REDIS"] = feast_redis_connection_string(settings.redis_url.get_secret_value())
    text = Template((settings.feature_repo_dir / name).read_text()).substitute(values)
    config = RepoConfig(**yaml.safe_load(text))
    config.repo_path = settings.feature_repo_dir
    return config


class FeastStore:
    """Feast, configured from `feature_repo/` with paths and secrets from the settings."""

    def __init__(self, settings: Settings):
        from feast import FeatureStore

        self.settings = settings
        settings.feast_dir.mkdir(parents=True, exist_ok=True)
        self._defs = _load_definitions(settings.feature_repo_dir)
        self.store = FeatureStore(config=feast_repo_config(settings))
        self._views: dict[str, tuple[str, ...]] | None = None

    @property
    def service_name(self) -> str:
        return self.settings.feature_service

    def views(self, feature_columns: tuple[str, ...]) -> dict[str, tuple[str, ...]]:
        """Feature columns grouped by feature view: candle-based ones vs book/flow ones."""
        return feature_views(feature_columns)

    def apply(self, features_path: Path, feature_columns: tuple[str, ...]) -> None:
        self._views = self.views(feature_columns)
        self.store.apply(self._defs.definitions(str(features_path), self._views, self.service_name))

    def materialize(self, start: datetime, end: datetime) -> None:
        self.store.materialize(start_date=start, end_date=end)

    def push(self, frame: pl.DataFrame) -> None:
        """Write the newest feature rows (symbol, event_ts, feature columns) to the online store, one push
        per feature view (the stream's path)."""
        from feast.data_source import PushMode

        for view, columns in self._registered_views().items():
            present = [c for c in columns if c in frame.columns]
            if present:
                part = frame.select("symbol", "event_ts", *present).to_pandas()
                self.store.push(self._defs.PUSH_SOURCES[view], part, to=PushMode.ONLINE)

    def _registered_views(self) -> dict[str, tuple[str, ...]]:
        """The views as applied (read back from the registry when this process did not apply them)."""
        if self._views is None:
            service = self.store.get_feature_service(self.service_name)
            self._views = {p.name: tuple(f.name for f in p.features) for p in service.feature_view_projections}
        return self._views

    def latest(self, symbol: str, feature_columns: tuple[str, ...]) -> OnlineFeatures | None:
        service = self.store.get_feature_service(self.service_name)
        response = self.store.get_online_features(
            features=service, entity_rows=[{"symbol": symbol}], full_feature_names=False
        ).to_dict(include_event_timestamps=True)
        values: dict[str, float | None] = {}
        for column in feature_columns:
            raw = response.get(column, [None])[0]
            values[column] = None if raw is None or (isinstance(raw, float) and math.isnan(raw)) else float(raw)
        stamps = [_as_utc(v[0]) for k, v in response.items() if k.endswith("__ts") and v]
        known = [stamp for stamp in stamps if stamp is not None]
        if all(v is None for v in values.values()) and not known:
            return None
        return OnlineFeatures(symbol=symbol, values=values, event_time=max(known) if known else None)


def _as_utc(raw: object) -> datetime | None:
    """Feast reports event timestamps as epoch seconds (0 when the entity has no row) or datetimes."""
    if isinstance(raw, datetime):
        return raw if raw.tzinfo else raw.replace(tzinfo=UTC)
    if isinstance(raw, int | float) and raw > 0:
        return datetime.fromtimestamp(raw, UTC)
    return None
