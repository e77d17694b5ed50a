"""Tick-level simulator: recorded L2 books and trades replayed with queue position, latency and fees.

feed (capture / lake -> int rows), book (plain L2 book), queue (queue-position models), latency, fees,
orders (codes and records), market (matching + both clocks of one venue's symbol), simulation (several
markets on one clock), quoting (the benchmark's touch quoter), report (the backtest report), config
(a venue's typed settings). The Broker adapter and the replay driver live in `serving.brokers.sim`.
"""
