"""Benchmark: many hedge cycles, the real ccxt.pro clients against the local Backpack and Hyperliquid fakes.

    python -m bench.hedge [--cycles 60] [--seed 7]

Backpack (`BTC/USDC` spot) is the primary, Hyperliquid (`BTC/USDC:USDC`) the hedge, both on 127.0.0.1
with their own REST and WebSocket protocols, served from a child process (`bench.hedge_venues`: like a
remote venue, they share no GIL with the client); `serving.strategies.hedge.HedgeStrategy` runs through
`bench.hedge_bridge.Bridge`. The bench plays the market: after each maker order it prints a trade
through the maker's price after a random delay (sometimes only part of its size, sometimes never, so
the maker's time to live runs out), and injects the venues' faults at a low seeded rate: false
"insufficient margin" rejects and half-filled IOCs on Hyperliquid, lost order updates on Backpack
(the REST poll must find those fills).

Writes `bench/results/hedge.json` and prints it as the last line: `cycles`, `max_abs_imbalance` (goal
0; from the records and, `venue_net`, from both venues' own position figures at the end),
`fill_to_hedge_p50_ms` / `_p99_ms` (first maker fill to first hedge fill, venue timestamps; the seed's
live figure is ~65 ms), `hedge_ack_p50_ms` (maker fill received -> hedge acknowledged, wall clock),
`fill_rate`, outcomes, load average and CPU time. `sim_cycles`, `sim_fill_rate`, `sim_spread_cost_bps`:
the hedge on the shared captures (spot maker, USD-M hedge) through the `alphatide backtest` path (null
with the reason when ../shared/data is absent).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import time
from decimal import Decimal
from typing import Any, TypeAlias

import ccxt.pro

from bench.common import publish
from bench.hedge_bridge import Bridge, Venue
from bench.hedge_venues import remote_venues
from pipelines.trading.hedge.records import summarize
from pipelines.trading.hedge.signing import install_fast_keccak, signer_backend
from pipelines.trading.instruments import MarketInfo
from serving.engine.events import BookEvent
from serving.strategies.hedge import HedgeStrategy, build_hedge

# Proxies of the fakes in the venue process (bench.hedge_venues): same calls, sent over a pipe.
FakeBackpack: TypeAlias = Any
FakeHyperliquid: TypeAlias = Any

BP_BOOK, HL_BOOK = ("60000.0", "60000.1"), ("60000", "60001")


async def connect(bp: FakeBackpack, hl: FakeHyperliquid) -> dict[str, Venue]:
    install_fast_keccak()  # C Keccak-256 for Hyperliquid's EIP-712 signing (coincurve signs when installed)
    venues = {
        "primary": Venue("primary", "backpack", ccxt.pro.backpack(bp.ccxt_config()), "BTC/USDC"),
        "hedge": Venue("hedge", "hyperliquid", ccxt.pro.hyperliquid(hl.ccxt_config()), "BTC/USDC:USDC"),
    }
    for venue, config in ((venues["primary"], bp.ccxt_config()), (venues["hedge"], hl.ccxt_config())):
        venue.order_client = getattr(ccxt.pro, venue.kind)(config)
        await venue.order_client.load_markets()  # markets and keys ready before the first order
    for venue in venues.values():
        await venue.client.load_markets()
        venue.info = MarketInfo.from_ccxt(venue.client.markets[venue.symbol])
        venue.balance = Decimal(str((await venue.client.fetch_balance())["USDC"]["free"]))
    return venues


def refresh_books(bridge: Bridge, bp: FakeBackpack, hl: FakeHyperliquid) -> None:
    bp.matcher.set_book("BTC_USDC", *BP_BOOK)
    hl.matcher.set_book("BTC", *HL_BOOK)
    now = bridge.now()
    for name, (bid, ask) in (("primary", BP_BOOK), ("hedge", HL_BOOK)):
        info = bridge.venues[name].info
        assert info is not None
        bridge.books[name] = BookEvent(info.symbol, Decimal(bid), Decimal(ask), Decimal(5), Decimal(5), now, name)


async def timer(bridge: Bridge, strategy: HedgeStrategy, bp: FakeBackpack, hl: FakeHyperliquid) -> None:
    while True:
        refresh_books(bridge, bp, hl)
        strategy.on_timer(bridge, bridge.now())  # type: ignore[arg-type]
        await asyncio.sleep(0.02)


async def play_market(bridge: Bridge, bp: FakeBackpack, hl: FakeHyperliquid, rng: random.Random) -> None:
    """For each new maker order: maybe print a trade through it, after a delay; inject faults."""
    seen: set[str] = set()
    while True:
        await asyncio.sleep(0.01)
        makers = [
            o for o in bridge.orders.values() if o.intent.tag == "hedge-maker" and o.venue_id and o.order_id not in seen
        ]
        for maker in makers:
            seen.add(maker.order_id)
            hl.matcher.reject_next = ["insufficient"] if rng.random() < 0.08 else []
            hl.matcher.ioc_fill_ratio = Decimal("0.5") if rng.random() < 0.08 else Decimal(1)
            if rng.random() < 0.08:
                bp.drop_updates(1)
            roll = rng.random()
            if roll < 0.25:
                continue  # nobody trades: the maker's time to live runs out
            await asyncio.sleep(rng.uniform(0.02, 0.4))
            size = maker.intent.size if roll > 0.4 else (maker.intent.size / 2).quantize(Decimal("0.00001"))
            assert maker.intent.price is not None
            through = maker.intent.price + (Decimal("-0.1") if maker.intent.side.value == "buy" else Decimal("0.1"))
            bp.matcher.trade("BTC_USDC", str(through), str(size))


async def venue_net(venues: dict[str, Venue]) -> Decimal:
    balance = await venues["primary"].client.fetch_balance()
    positions = await venues["hedge"].client.fetch_positions()
    hedge = sum((Decimal(str(p["contracts"])) * (1 if p["side"] == "long" else -1) for p in positions), Decimal(0))
    return Decimal(str(balance["BTC"]["total"] or 0)) + hedge


async def run(cycles: int, seed: int) -> dict[str, Any]:
    rng = random.Random(seed)
    cfg = {
        "primary_symbol": "BTC/USDC",
        "hedge_symbol": "BTC/USDC:USDC",
        "maker_ttl_seconds": 1.0,
        "cooldown_seconds": 0.05,
        "verify_timeout_seconds": 1.0,
        "hedge_margin_per_notional": "0.2",
        "primary_maker_fee": "-0.0001",  # the fake Backpack pays a 1 bp maker rebate (its matcher default)
    }
    strategy = build_hedge("bench-hedge", cfg)
    with remote_venues() as (bp, hl):  # the fakes in their own process (bench.hedge_venues)
        venues = await connect(bp, hl)
        bridge = Bridge(strategy, venues)
        refresh_books(bridge, bp, hl)
        tasks = [
            asyncio.ensure_future(c)
            for c in (
                bridge.watch_backpack(venues["primary"]),
                bridge.watch_hyperliquid_fills(venues["hedge"]),
                bridge.watch_hyperliquid_orders(venues["hedge"]),
                bridge.poll(),
            )
        ]
        await asyncio.sleep(0.5)  # subscriptions up
        strategy.on_start(bridge)  # type: ignore[arg-type]
        tasks += [
            asyncio.ensure_future(timer(bridge, strategy, bp, hl)),
            asyncio.ensure_future(play_market(bridge, bp, hl, rng)),
        ]
        started, cpu0 = time.perf_counter(), time.process_time()
        while len(strategy.records) < cycles and time.perf_counter() - started < 60 + cycles * 5:
            await asyncio.sleep(0.05)
        wall, cpu = time.perf_counter() - started, time.process_time() - cpu0
        for task in tasks:
            task.cancel()
        await asyncio.sleep(0.5)  # let in-flight answers land before reading the venues
        net = await venue_net(venues)
        for venue in venues.values():
            await venue.client.close()
            await venue.order_client.close()
    return result(strategy, bridge, net, wall, cpu)


def sim_figures() -> dict[str, Any]:
    """Cycles, fill rate and mean spread cost of the hedge on the shared captures (spot BTCUSDT maker,
    USD-M BTCUSDT hedge) through `alphatide backtest`'s path: the real engine on `SimulatedVenue`s."""
    import tempfile
    from pathlib import Path

    from bench.common import shared_data_dir
    from pipelines.config import load_settings
    from serving.backtest.runner import BacktestSpec, run_backtest

    ticks = shared_data_dir() / "binance_ticks"
    if not (ticks / "spot").is_dir() or not (ticks / "usdm").is_dir():
        return {"sim_cycles": None, "sim_fill_rate": None, "sim_spread_cost_bps": None,
                "sim_note": f"no captures under {ticks}"}
    started, cpu0 = time.perf_counter(), time.process_time()
    with tempfile.TemporaryDirectory() as tmp:
        os.environ.setdefault("ALPHATIDE_HOME", str(Path(tmp) / "home"))
        spec = BacktestSpec("hedge", ticks / "spot", venues={"binanceusdm": ticks / "usdm"}, out=Path(tmp) / "out",
                            progress=False, phase=3)
        sim = run_backtest(load_settings(), spec).engine.strategies["hedge"]
    assert isinstance(sim, HedgeStrategy)
    summary = summarize(sim.records)
    return {
        "sim_cycles": summary["cycles"],
        "sim_fill_rate": summary["fill_rate"],
        "sim_spread_cost_bps": summary["spread_cost_bps_mean"],
        **sim_costs(sim.records),
        "sim_max_abs_imbalance": float(Decimal(summary["max_abs_imbalance"])),
        "sim_note": "spot/usdm btcusdt captures, engine + SimulatedVenue (reconciling), phase 3",
        "sim_wall_s": round(time.perf_counter() - started, 2),
        "sim_cpu_s": round(time.process_time() - cpu0, 2),
    }


def sim_costs(records: Any) -> dict[str, Any]:
    """Per filled cycle, in bps of the maker notional: spread cost, maker rebate, fees paid (both legs)."""
    filled = [r for r in records if r.maker_size > 0 and r.maker_price]
    if not filled:
        return {"sim_filled_cycles": 0}

    def bps(values: list[Decimal]) -> float:
        return round(statistics.fmean(float(v) for v in values), 3)

    pairs = [(r, r.maker_size * r.maker_price) for r in filled]
    return {
        "sim_filled_cycles": len(filled),
        "sim_rebate_bps_per_cycle": bps([max(-r.maker_fee, Decimal(0)) / n * 10000 for r, n in pairs]),
        "sim_fee_bps_per_cycle": bps([(r.maker_fee + r.hedge_fee + r.unwind_fee) / n * 10000 for r, n in pairs]),
        "sim_spread_cost_bps_per_filled_cycle": bps([Decimal(repr(r.spread_cost_bps)) for r in filled
                                                     if r.spread_cost_bps is not None] or [Decimal(0)]),
    }


def result(strategy: HedgeStrategy, bridge: Bridge, net: Decimal, wall: float, cpu: float) -> dict[str, Any]:
    summary = summarize(strategy.records)
    acks = sorted(bridge.acks)
    return {
        "cycles": summary["cycles"],
        "max_abs_imbalance": float(Decimal(summary["max_abs_imbalance"])),
        "venue_net": float(net),
        "fill_to_hedge_p50_ms": summary["fill_to_hedge_p50_ms"],
        "fill_to_hedge_p99_ms": summary["fill_to_hedge_p99_ms"],
        "hedge_ack_p50_ms": statistics.median(acks) if acks else None,
        "fill_rate": summary["fill_rate"],
        "outcomes": summary["outcomes"],
        "spread_cost_bps_mean": summary["spread_cost_bps_mean"],
        "final_phase_notional": str(strategy.phase.notional(strategy.cfg)),
        "halted": strategy.halted,
        "alerts": sorted({kind for kind, _ in bridge.alerts}),
        **sim_figures(),
        "wall_s": round(wall, 2),
        "cpu_s": round(cpu, 2),
        "load_avg_1m": round(os.getloadavg()[0], 2),
        "load_avg": [round(x, 2) for x in os.getloadavg()],
        "venues_process": "separate (bench.hedge_venues on 127.0.0.1)",
        "signing": {"keccak": install_fast_keccak(), "ecdsa": signer_backend()},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--cycles", type=int, default=60)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    publish("hedge", asyncio.run(run(args.cycles, args.seed)))


if __name__ == "__main__":
    main()
