"""The event loop over one or more simulated markets (several venues in one run, e.g. a two-venue hedge).

`Simulation.run(step)` calls ``step(now, markets)`` after every instant at which something reaches us
(a feed row or an exchange answer, on any market), in time order across markets, like hftbacktest's
``wait_next_feed(include_order_resp=True)``. Between two such instants each market's exchange runs ahead
only as far as it safely can: nothing we send at or after ``now`` reaches any exchange before ``now`` +
the smallest entry latency of all markets, so that is how far the exchanges may go without us.

Each market keeps its own clock offset (in its `Feed`) and latency model; the common clock is the
exchange clock, on which every feed's local times were placed.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from pipelines.sim.market import INF, SimMarket

Step = Callable[[int, Sequence[SimMarket]], None]


class Simulation:
    def __init__(self, markets: Sequence[SimMarket]) -> None:
        if not markets:
            raise ValueError("a simulation needs at least one market")
        names = [(m.venue, m.symbol) for m in markets]
        if len(set(names)) != len(names):
            raise ValueError(f"duplicate (venue, symbol) among {names}")
        self.markets = list(markets)
        self._lookahead = max(1, min(m.latency.min_entry_ns for m in self.markets))
        self.now = min(m.next_any() for m in self.markets)
        self.steps = 0

    def next_instant(self) -> int:
        """The next instant something reaches us (INF when the replay is over); the exchanges are run
        up to it (as far as safe)."""
        while True:
            horizon = self.now + self._lookahead
            t = min(m.next_local(horizon) for m in self.markets)
            if t >= INF:
                rest = min(m.next_any() for m in self.markets)
                if rest >= INF:
                    return INF
            if t < horizon:
                return t
            # nothing reaches us before the horizon: move on to the next event of any kind
            self.now = max(horizon, min(m.next_any() for m in self.markets))

    def run(self, step: Step) -> None:
        markets = self.markets
        while True:
            t = self.next_instant()
            if t >= INF:
                break
            for m in markets:
                m.advance(t)
            self.now = t
            self.steps += 1
            step(t, markets)
        for m in markets:
            m.advance(INF - 1)
