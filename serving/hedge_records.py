"""Where the running process keeps its hedge cycle records, and how `/hedge/*` finds them.

When the engine runs a strategy of kind ``hedge`` (`serving.strategies.hedge.HedgeStrategy`),
`attach_hedge_records` opens one `HedgeStore` (the engine's PostgreSQL DSN when
`ALPHATIDE_ENGINE__DSN` is set, else SQLite at `<home>/trading/hedge.db`), gives every hedge strategy
a background `RecordWriter` as a record sink, and publishes the store as `app.state.hedge_store`, which
`serving.api.hedge` reads. Without a hedge strategy the state stays None and the endpoints answer 404
saying so. `detach_hedge_records` flushes the writer and closes the store.
"""

from __future__ import annotations

import logging
from typing import Any

from pipelines.config import Settings
from pipelines.trading.hedge.store import HedgeStore, RecordWriter

log = logging.getLogger(__name__)


def hedge_dsn(settings: Settings) -> str:
    dsn = settings.engine.dsn
    if dsn is not None:
        return dsn.get_secret_value()
    home = settings.home / "trading"
    home.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{home / 'hedge.db'}"


def attach_hedge_records(app: Any, engine: Any, settings: Settings) -> HedgeStore | None:
    from serving.strategies.hedge import HedgeStrategy

    app.state.hedge_store, app.state.hedge_writer = None, None
    hedges = [s for s in getattr(engine, "strategies", {}).values() if isinstance(s, HedgeStrategy)]
    if not hedges:
        return None
    store = HedgeStore(hedge_dsn(settings))
    writer = RecordWriter(store)
    for strategy in hedges:
        strategy.sinks.append(writer.submit)
    app.state.hedge_store, app.state.hedge_writer = store, writer
    log.info("hedge: %d strategy(ies) record cycles to %s", len(hedges), store.engine.url.render_as_string())
    return store


def detach_hedge_records(app: Any) -> None:
    writer = getattr(app.state, "hedge_writer", None)
    store = getattr(app.state, "hedge_store", None)
    if writer is not None:
        writer.close()
    if store is not None:
        store.close()
    app.state.hedge_store, app.state.hedge_writer = None, None
