"""A trading process for the kill -9 test: `python -m tests.serving.engine.crash_driver MODE HOME VENUE_URL [two]`.

With `two`, the engine runs two directional strategies: `dir-a` (all symbols) and `dir-b` (BTC only).

MODE `run`: start the engine (live broker against the fake venue), enter every symbol, print `PLACED`,
then keep streaming books and ticking until killed. MODE `recover`: start (recovery, clean start,
reconcile), print `RECOVERED`, shut down gracefully and exit 0.
"""

from __future__ import annotations

import sys
import time
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

from pipelines.config import EngineConfig, load_settings
from serving.engine import build_engine
from serving.engine.config import StrategyEntry
from serving.engine.events import BookEvent, SignalEvent
from tests.fakes.trading_venue import TEST_API_KEY, TEST_API_SECRET

SYMBOLS = ("BTC/USDT", "ETH/USDT", "SOL/USDT", "XRP/USDT")
TWO = (
    StrategyEntry(id="dir-a", kind="directional", allocation=Decimal(3000)),
    StrategyEntry(id="dir-b", kind="directional", allocation=Decimal(1000), params={"symbols": ["BTC/USDT"]}),
)
ONE = (StrategyEntry(id="directional", kind="directional"),)


def main(mode: str, home: str, venue_url: str, strategies: str = "one") -> None:
    settings = load_settings(
        {},
        home=Path(home),
        engine=EngineConfig(
            mode="live",
            api_url=venue_url,
            venue_api_key=TEST_API_KEY,  # type: ignore[arg-type]
            venue_api_secret=TEST_API_SECRET,  # type: ignore[arg-type]
            sweep_interval_s=0.05,
        ),
    )
    engine = build_engine(settings, strategies=TWO if strategies == "two" else ONE)
    engine.broker.exchange.enableRateLimit = False  # type: ignore[attr-defined]
    engine.start(background=False)
    if mode == "recover":
        print("RECOVERED", flush=True)
        engine.shutdown()
        return

    def books() -> None:
        now = datetime.now(UTC)
        for symbol in SYMBOLS:
            engine.handle(BookEvent(symbol, Decimal("100.00"), Decimal("100.01"), Decimal(5), Decimal(5), now))

    books()
    for symbol in SYMBOLS:
        engine.handle(SignalEvent(symbol, 0.8, datetime.now(UTC)))
    print("PLACED", flush=True)
    while True:  # until SIGKILL
        books()
        engine.tick()
        time.sleep(0.02)


if __name__ == "__main__":
    main(*sys.argv[1:5])
