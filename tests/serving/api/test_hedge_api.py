"""`/hedge/cycles` and `/hedge/summary` over a real store, through FastAPI."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.testclient import TestClient

from pipelines.trading.hedge.store import HedgeStore
from serving.api.hedge import router
from tests.pipelines.trading.hedge.test_records_store import three_cycles


def test_cycles_and_summary_endpoints(tmp_path: Path) -> None:
    app = FastAPI()
    app.include_router(router)
    client = TestClient(app)
    assert client.get("/hedge/cycles").status_code == 404  # no hedge strategy configured: said so

    store = HedgeStore(f"sqlite:///{tmp_path / 'h.db'}")
    records = three_cycles()
    store.write(records)
    app.state.hedge_store = store

    cycles = client.get("/hedge/cycles", params={"limit": 2}).json()
    assert [c["cycle_id"] for c in cycles] == [records[2].cycle_id, records[1].cycle_id]
    assert cycles[1]["outcome"] == "unwound" and cycles[1]["unwind_size"] == str(records[1].unwind_size)
    summary = client.get("/hedge/summary", params={"strategy_id": "hedge-1"}).json()
    assert summary["cycles"] == 3 and summary["outcomes"]["clean"] == 1
    assert set(summary["venues"]) == {"primary", "hedge"}
    assert client.get("/hedge/summary", params={"strategy_id": "nobody"}).json()["cycles"] == 0
    bad = client.get("/hedge/summary", params={"since": "2026-12-02T00:00:00Z", "until": "2026-12-01T00:00:00Z"})
    assert bad.status_code == 422
    store.close()
