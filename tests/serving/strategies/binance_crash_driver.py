"""A hedge process for the kill -9 test: `python -m tests.serving.strategies.binance_crash_driver HOME SPOT USDM`.

Starts the engine with the hedge on the two live Binance brokers (spot at SPOT, USD-M at USDM: the fakes
of the test process), feeds both books, prints `QUOTED` once its maker order rests, then keeps ticking
(and printing `HEDGED` if it ever sends a hedge) until SIGKILLed.
"""

from __future__ import annotations

import sys
import time
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

from serving.engine.events import BookEvent
from tests.serving.strategies.binance_engine import PERP_SYMBOL, SPOT, SPOT_SYMBOL, USDM, build_hedge_engine


def books(engine: object) -> None:
    now = datetime.now(UTC)
    for venue, symbol, bid, ask in (
        (USDM, PERP_SYMBOL, "60000.0", "60000.1"),
        (SPOT, SPOT_SYMBOL, "60000.00", "60000.01"),
    ):
        engine.handle(BookEvent(symbol, Decimal(bid), Decimal(ask), Decimal(5), Decimal(5), now, venue))  # type: ignore[attr-defined]


def main(home: str, spot_url: str, usdm_url: str) -> None:
    engine, _ = build_hedge_engine(Path(home), spot_url, usdm_url)
    engine.start(background=False)
    books(engine)
    strategy = engine.strategy("hedge")
    print("QUOTED" if strategy.cycle is not None else "NOT-QUOTED", flush=True)  # type: ignore[attr-defined]
    said = False
    while True:  # until SIGKILL
        books(engine)
        engine.tick()
        cycle = strategy.cycle  # type: ignore[attr-defined]
        if not said and cycle is not None and any(o.role.value == "hedge" for o in cycle.orders.values()):
            print("HEDGED", flush=True)
            said = True
        time.sleep(0.02)


if __name__ == "__main__":
    main(*sys.argv[1:4])
