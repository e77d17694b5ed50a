"""The replayed venue in its own process: it answers ccxt's REST calls on its port and dies on stop."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx

from serving.stream.replay_process import ReplayProcess


def test_replay_process_serves_the_capture_and_stops(shared_data: Path) -> None:
    capture = shared_data / "binance_ticks" / "spot"

    async def scenario() -> tuple[int, list[str], int | None]:
        replay = await ReplayProcess(capture, speed=1.0).start()
        try:
            url = replay.ccxt_urls()["public"] + "/exchangeInfo"
            async with httpx.AsyncClient() as client:
                response = await client.get(url, timeout=30)
            symbols = [s["symbol"] for s in response.json()["symbols"]]
        finally:
            await replay.stop()
        assert replay.process is not None
        return response.status_code, symbols, replay.process.poll()

    status, symbols, exit_code = asyncio.run(scenario())

    assert status == 200
    assert symbols == ["BTCUSDT", "ETHUSDT"]
    assert exit_code is not None, "the replay process is gone after stop()"
