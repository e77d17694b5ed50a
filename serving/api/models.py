"""Read-only model endpoints for the dashboard: `GET /models/champion` and `GET /models/history`.

- `/models/champion`: the version the scorer serves now (its tower, whether it is tradeable) and the
  version that holds the registry's `champion` alias (they differ for a few seconds after a promotion).
- `/models/history`: every registered version, newest first, with its aliases, its registration time,
  whether it passed the full gate (`tradeable` tag) and the gate's summary (`promotion` tag, written by
  `MlflowRegistry.record_decision`).

For the embedded SQLite registry (`pipelines.registry.SqliteRegistryReader`) the history is read straight
from MLflow 3's registry tables, read-only, as that reader does: the serving process never imports the
MLflow SDK. For any other registry (`MlflowRegistry`, a tracking server) its client is asked.
"""

from __future__ import annotations

import contextlib
import sqlite3
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fastapi import APIRouter, HTTPException
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field

from pipelines.registry import CHAMPION, ChampionSource, ModelRef, SqliteRegistryReader
from serving.deps import ServingDeps

SUMMARY_CHARS = 500


class ModelOut(BaseModel):
    name: str
    version: str
    run_id: str
    tower: str
    tradeable: bool
    horizon_bars: int
    features: int


class ChampionOut(BaseModel):
    served: ModelOut | None = Field(description="What the scorer serves now (None: no model loaded)")
    registry: ModelOut | None = Field(description="What holds the `champion` alias in the registry")


class VersionOut(BaseModel):
    version: str
    aliases: list[str]
    created_at: datetime | None
    tradeable: bool
    promotion: str = Field(description="The gate's summary (truncated); '' when none was recorded")
    run_id: str


def _model_out(ref: ModelRef | None) -> ModelOut | None:
    if ref is None:
        return None
    return ModelOut(
        name=ref.name,
        version=ref.version,
        run_id=ref.run_id,
        tower=ref.tower,
        tradeable=ref.tradeable,
        horizon_bars=ref.horizon_bars,
        features=len(ref.feature_columns),
    )


def _ms(value: Any) -> datetime | None:
    return datetime.fromtimestamp(int(value) / 1000, UTC) if value is not None else None


def sqlite_history(database: Path, model_name: str) -> list[VersionOut]:
    """The history from MLflow 3's registry tables (read-only; [] before MLflow created its schema)."""
    if not database.is_file():
        return []
    uri = f"{database.resolve().as_uri()}?mode=ro"
    with contextlib.closing(sqlite3.connect(uri, uri=True, timeout=5.0)) as connection:
        try:
            versions = connection.execute(
                "SELECT version, run_id, creation_time FROM model_versions "
                "WHERE name = ? AND workspace = 'default' ORDER BY version DESC",
                (model_name,),
            ).fetchall()
            aliases = connection.execute(
                "SELECT alias, version FROM registered_model_aliases WHERE name = ? AND workspace = 'default'",
                (model_name,),
            ).fetchall()
            tags = connection.execute(
                "SELECT version, key, value FROM model_version_tags "
                "WHERE name = ? AND workspace = 'default' AND key IN ('tradeable', 'promotion')",
                (model_name,),
            ).fetchall()
        except sqlite3.OperationalError as exc:
            if "no such table" in str(exc):
                return []
            raise
    by_version: dict[str, dict[str, str]] = {}
    for version, key, value in tags:
        by_version.setdefault(str(version), {})[key] = str(value)
    return [
        VersionOut(
            version=str(version),
            aliases=sorted(a for a, v in aliases if str(v) == str(version)),
            created_at=_ms(created),
            tradeable=by_version.get(str(version), {}).get("tradeable") == "true",
            promotion=by_version.get(str(version), {}).get("promotion", "")[:SUMMARY_CHARS],
            run_id=str(run_id),
        )
        for version, run_id, created in versions
    ]


def _sdk_history(registry: Any) -> list[VersionOut]:
    """Through an `MlflowRegistry`'s client (the SDK is already loaded in that case)."""
    client, name = registry.client, registry.model_name
    found = client.search_model_versions(f"name='{name}'")
    aliases = client.get_registered_model(name).aliases or {}
    return [
        VersionOut(
            version=str(v.version),
            aliases=sorted(a for a, ver in aliases.items() if str(ver) == str(v.version)),
            created_at=_ms(v.creation_timestamp),
            tradeable=(v.tags or {}).get("tradeable") == "true",
            promotion=(v.tags or {}).get("promotion", "")[:SUMMARY_CHARS],
            run_id=str(v.run_id),
        )
        for v in sorted(found, key=lambda v: -int(v.version))
    ]


def history(registry: ChampionSource) -> list[VersionOut]:
    if isinstance(registry, SqliteRegistryReader):
        return sqlite_history(registry.database, registry.model_name)
    if hasattr(registry, "client") and hasattr(registry, "model_name"):
        return _sdk_history(registry)
    champion = registry.champion()  # any other source: only what it can say
    return (
        [
            VersionOut(
                version=champion.version,
                aliases=[CHAMPION],
                created_at=None,
                tradeable=champion.tradeable,
                promotion="",
                run_id=champion.run_id,
            )
        ]
        if champion is not None
        else []
    )


def models_router(deps: ServingDeps) -> APIRouter:
    router = APIRouter(prefix="/models", tags=["models"])

    @router.get("/champion", response_model=ChampionOut, responses={503: {}})
    async def champion() -> ChampionOut:
        try:
            loaded = await run_in_threadpool(deps.scorer.current)
            in_registry = await run_in_threadpool(deps.registry.champion)
        except Exception as exc:  # an unreadable registry: say so rather than 500
            raise HTTPException(503, f"model registry unavailable: {type(exc).__name__}: {exc}") from exc
        return ChampionOut(served=_model_out(loaded.ref if loaded else None), registry=_model_out(in_registry))

    @router.get("/history", response_model=list[VersionOut], responses={503: {}})
    async def model_history() -> list[VersionOut]:
        try:
            return await run_in_threadpool(history, deps.registry)
        except Exception as exc:
            raise HTTPException(503, f"model registry unavailable: {type(exc).__name__}: {exc}") from exc

    return router
