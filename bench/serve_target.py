"""The servers `bench.serve` measures, each run as its own process on one uvicorn worker.

    python -m bench.serve_target fast    # serving.app.create_app: the real tier (cache, memo, async)
    python -m bench.serve_target naive   # /signal written the obvious way: Feast SDK get_online_features
                                         # + MLflow pyfunc predict on every request
    python -m bench.serve_target floor   # /signal answering a constant: the p99 this machine allows
                                         # any one-worker uvicorn server right now (the noise floor)

Settings come from the environment (ALPHATIDE_HOME = the benchmark's temporary home). The process binds
127.0.0.1:0 and prints ``PORT <n>`` on stdout once listening.
"""

from __future__ import annotations

import socket
import sys
from datetime import UTC, datetime
from typing import Annotated

import numpy as np
import uvicorn
from fastapi import FastAPI, HTTPException, Query

from pipelines.config import Settings, load_settings
from serving.messages import Signal
from serving.signals import decide_action, threshold_reason

SYMBOL_PATTERN = r"^[A-Z0-9]{1,20}/[A-Z0-9]{2,10}$"  # as serving.app (not imported: the naive server is lean)


def naive_app(settings: Settings) -> FastAPI:
    """The straightforward endpoint: no cache, the SDKs on the request path."""
    import mlflow.pyfunc
    import pandas as pd

    from pipelines.feature_store import FeastStore
    from pipelines.lake import Lake
    from pipelines.registry import MlflowRegistry

    registry = MlflowRegistry(settings.mlflow_tracking_uri, settings.mlruns_dir / "artifacts", settings.model.name)
    ref = registry.champion()
    assert ref is not None, "the benchmark home has no champion"
    model = mlflow.pyfunc.load_model(f"models:/{ref.name}@champion")
    store = FeastStore(settings).store
    table = Lake(settings.lake_dir).read_universe()
    assert table is not None
    universe = set(table["symbol"].to_list())
    app = FastAPI(title="alphatide-naive")

    @app.get("/signal", response_model=Signal)
    def signal(symbol: Annotated[str, Query(pattern=SYMBOL_PATTERN)]) -> Signal:
        if symbol not in universe:
            raise HTTPException(404, f"{symbol} is not in today's universe")
        online = store.get_online_features(
            features=store.get_feature_service(settings.feature_service),
            entity_rows=[{"symbol": symbol}],
            full_feature_names=False,
        ).to_dict(include_event_timestamps=True)
        frame = pd.DataFrame({c: [online.get(c, [None])[0]] for c in ref.feature_columns}, dtype="float64")
        prediction = model.predict(frame)
        # A calibrated pyfunc answers P(up) per row; a plain CatBoost pyfunc answers the class (0/1).
        values = np.asarray(prediction, dtype=np.float64)
        p_up = float(values[0, -1] if values.ndim == 2 else values[0])
        stamps = [v[0] for k, v in online.items() if k.endswith("__ts") and v and v[0]]
        feature_time = max(stamps) if stamps else None
        if isinstance(feature_time, int | float):
            feature_time = datetime.fromtimestamp(feature_time, UTC)
        return Signal(
            symbol=symbol, p_up=p_up, action=decide_action(p_up, settings), model_name=ref.name,
            model_version=ref.version, feature_time=feature_time, served_at=datetime.now(UTC),
            reason=threshold_reason(p_up, settings),
        )

    return app


def floor_app() -> FastAPI:
    """A server doing no work per request: its p99 is what the host's load alone costs."""
    app = FastAPI(title="alphatide-floor")
    body = {"symbol": "BTC/USDT", "p_up": 0.5, "action": "hold"}

    @app.get("/signal")
    async def signal(symbol: Annotated[str, Query(pattern=SYMBOL_PATTERN)]) -> dict[str, object]:
        return body

    return app


def main(kind: str) -> None:
    settings = load_settings()
    if kind == "fast":
        if settings.serving.lean_imports:  # as `alphatide serve` does
            from serving.lean_imports import install

            install()
        from serving.app import create_app

        app = create_app(settings)
    elif kind == "naive":
        app = naive_app(settings)
    elif kind == "floor":
        app = floor_app()
    else:
        raise SystemExit(f"usage: python -m bench.serve_target fast|naive|floor (got {kind!r})")
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on", workers=1)
    server = uvicorn.Server(config)
    print(f"PORT {sock.getsockname()[1]}", flush=True)
    server.run(sockets=[sock])


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "")
