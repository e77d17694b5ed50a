"""The open-loop HTTP load generator of `bench.serve` (its step 3: no coordinated omission).

Request i is due at start + i / rate, whatever happened to the earlier ones; `Run` keeps each request's
latency from the client's wake-up to send, from its scheduled time, and the timer lag between them. The
client is a minimal keep-alive HTTP/1.1 client on asyncio streams (`CONNECTIONS` connections).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

import numpy as np

SYMBOLS = ("BTC/USDT", "ETH/USDT", "SOL/USDT")
TIMEOUT_S = 5.0
CONNECTIONS = 64


class _Connection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self.reader, self.writer = reader, writer

    async def get(self, request: bytes) -> int:
        self.writer.write(request)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        length = 0
        for line in head.split(b"\r\n"):
            if line[:15].lower() == b"content-length:":
                length = int(line[15:])
        if length:
            await self.reader.readexactly(length)
        return status


@dataclass
class Run:
    latencies_ms: list[float] = field(default_factory=list)  # from the client's wake-up to send
    from_schedule_ms: list[float] = field(default_factory=list)  # from the scheduled send time
    timer_lag_ms: list[float] = field(default_factory=list)  # wake-up minus scheduled time
    statuses: dict[int, int] = field(default_factory=dict)
    timeouts: int = 0
    errors: int = 0


async def drive(port: int, rate: float, duration_s: float, symbols: tuple[str, ...]) -> Run:
    pool: asyncio.Queue[_Connection] = asyncio.Queue()
    for _ in range(CONNECTIONS):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        pool.put_nowait(_Connection(reader, writer))
    requests = [
        f"GET /signal?symbol={s.replace('/', '%2F')} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode() for s in symbols
    ]
    run = Run()
    total = int(rate * duration_s)
    start = time.perf_counter() + 0.05
    loop = asyncio.get_running_loop()

    def record(due: float, woke: float) -> None:
        done = time.perf_counter()
        run.latencies_ms.append((done - woke) * 1000)
        run.from_schedule_ms.append((done - due) * 1000)
        run.timer_lag_ms.append((woke - due) * 1000)

    async def one(i: int, due: float, woke: float) -> None:
        connection = None
        try:
            async with asyncio.timeout_at(loop.time() + (due + TIMEOUT_S - time.perf_counter())):
                connection = await pool.get()
                status = await connection.get(requests[i % len(requests)])
            run.statuses[status] = run.statuses.get(status, 0) + 1
            record(due, woke)
            pool.put_nowait(connection)
        except TimeoutError:
            run.timeouts += 1
            record(due, woke)
            if connection is not None:  # its response may still arrive: replace the connection
                connection.writer.close()
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
                pool.put_nowait(_Connection(reader, writer))
        except (OSError, asyncio.IncompleteReadError, ValueError):
            run.errors += 1

    tasks = []
    for i in range(total):
        due = start + i / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(i, due, time.perf_counter())))
    await asyncio.gather(*tasks)
    while not pool.empty():
        pool.get_nowait().writer.close()
    return run


def _pct(values: list[float], q: float) -> float:
    return round(float(np.percentile(np.asarray(values), q)), 3) if values else float("nan")
