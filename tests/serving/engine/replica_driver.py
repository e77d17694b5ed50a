"""One serving replica for the replica tests: `python -m tests.serving.engine.replica_driver` (settings from
ALPHATIDE_* in the environment, as `alphatide serve`).

The app is the real one (`serving.app.create_app`: lifespan, leader lease, engine, routers) served by
uvicorn on 127.0.0.1 at an ephemeral port, printed as ``PORT <n>`` once bound. The test feeds the
engine through one extra route, ``POST /_test/feed`` (books, signals and trades, as the stream would submit
them; 503 on a standby): the stream itself is not what these tests are about.
"""

from __future__ import annotations

import socket
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import uvicorn
from fastapi import FastAPI, HTTPException, Request

from pipelines.config import check_live_start, load_settings
from serving.app import create_app
from serving.engine.events import BookEvent, SignalEvent, TradeEvent


def add_feed_route(app: FastAPI) -> None:
    @app.post("/_test/feed")
    def feed(request: Request, body: dict[str, Any]) -> dict[str, int]:
        engine = getattr(request.app.state, "trading_engine", None)
        if engine is None:
            raise HTTPException(503, "not the active replica")
        now = datetime.now(UTC)
        for symbol, bid, ask in body.get("books", []):
            engine.submit(BookEvent(symbol, Decimal(bid), Decimal(ask), Decimal(5), Decimal(5), now))
        for symbol, p_up in body.get("signals", []):
            engine.submit(SignalEvent(symbol, float(p_up), now))
        for symbol, price, size in body.get("trades", []):  # public prints (paper fills)
            engine.submit(TradeEvent(symbol, Decimal(price), Decimal(size), now))
        return {"queued": sum(len(body.get(k, [])) for k in ("books", "signals", "trades"))}


def main() -> None:
    settings = load_settings()
    check_live_start(settings)
    app = create_app(settings)
    add_feed_route(app)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    print(f"PORT {sock.getsockname()[1]}", flush=True)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    server.run(sockets=[sock])


if __name__ == "__main__":
    main()
