"""`/hedge/cycles` and `/hedge/summary`: the hedge strategy's cycle records and its volume/points tracker.

Mounted by `serving.app.create_app`; the lifespan sets `app.state.hedge_store` to the
`pipelines.trading.hedge.store.HedgeStore` its hedge strategies' `RecordWriter` writes to
(`serving.hedge_records`); without a hedge strategy both endpoints answer 404 with the reason.
Read-only and open, like `/positions`.

- `GET /hedge/cycles?strategy_id=&since=&limit=100`: newest first, every field of `CycleRecord`
  (Decimals as strings).
- `GET /hedge/summary?strategy_id=&since=&until=`: `records.summarize` over the selected cycles:
  `cycles`, `outcomes`, `fill_rate`, `trade_count`, `fees`, `rebates`, `max_abs_imbalance`,
  `imbalanced_cycles`, `spread_cost_bps_mean`, `fill_to_hedge_p50_ms` / `_p99_ms`, `venues` (volume,
  size, trades, fees, rebates per venue), `volume_by_day`, `volume_by_month` (per venue).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request

from pipelines.trading.hedge.records import summarize
from pipelines.trading.hedge.store import HedgeStore

router = APIRouter(prefix="/hedge", tags=["hedge"])


def get_hedge_store(request: Request) -> HedgeStore:
    store = getattr(request.app.state, "hedge_store", None)
    if not isinstance(store, HedgeStore):
        raise HTTPException(
            status_code=404,
            detail="no hedge strategy configured (a strategy of kind 'hedge' in ALPHATIDE_STRATEGIES)",
        )
    return store


StoreDep = Annotated[HedgeStore, Depends(get_hedge_store)]


@router.get("/cycles")
def hedge_cycles(
    store: StoreDep,
    strategy_id: str | None = None,
    since: datetime | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[dict[str, Any]]:
    return [r.to_json() for r in store.cycles(strategy_id=strategy_id, since=since, limit=limit)]


@router.get("/summary")
def hedge_summary(
    store: StoreDep,
    strategy_id: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> dict[str, Any]:
    if since is not None and until is not None and until <= since:
        raise HTTPException(status_code=422, detail="until must be after since")
    return summarize(store.cycles(strategy_id=strategy_id, since=since, until=until, newest_first=False))
