"""`alphatide backtest`: a registered strategy on recorded ticks through the real engine (see `runner`).

Registered into the main parser by `pipelines.cli` (`register(sub)`; `run(args, settings)` handles it).
"""

from __future__ import annotations

import argparse
import json
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from pipelines.config import Settings
from pipelines.errors import OperatorError

COMMANDS = ("backtest",)


def register(sub: Any) -> None:
    p = sub.add_parser("backtest", help="run a strategy on recorded ticks through the engine and the simulator")
    p.add_argument("--strategy", required=True, help="registered kind: market_making | hedge | directional | ...")
    p.add_argument("--capture", type=Path, default=None, help="capture folder of the strategy's venue")
    p.add_argument("--venue", action="append", default=[], metavar="NAME=DIR", help="another venue (hedge leg)")
    p.add_argument("--symbol", default="BTCUSDT", help="exchange id of the capture files (<id>_*.gz)")
    p.add_argument("--from", dest="start", default=None, help="ISO start (event time)")
    p.add_argument("--to", dest="end", default=None, help="ISO end (event time)")
    p.add_argument("--out", type=Path, default=Path("backtest"), help="report folder")
    p.add_argument("--mlflow", action="store_true", help="log the run and its report to MLflow")
    p.add_argument("--queue", default="risk_averse", help="risk_averse | power:N | log")
    p.add_argument("--latency-ms", type=float, default=10.0, help="order entry and response latency each")
    p.add_argument("--jitter-ms", type=float, default=0.0, help="uniform extra latency per message")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--phase", type=int, default=None, help="deployment phase for the run (0 = graduated)")
    p.add_argument("--params", default="{}", help="JSON object: the strategy's params (override defaults)")
    w = p.add_argument_group("window markets (--strategy window | window_mm: seeded books, no capture)")
    w.add_argument("--candles", type=Path, default=None, help="BTC candle parquet (symbol, open_time ms, OHLCV)")
    w.add_argument("--signals", type=Path, default=None, help="parquet of the window model's ts, p_up")
    w.add_argument("--windows", type=int, default=None, help="only the last N windows with a signal")
    w.add_argument("--noise", type=float, default=0.01, help="std of the seeded Up mid around its fair value")
    w.add_argument("--fee-bps", type=int, default=2500, help="the window markets' base fee (bps, curve exp 2)")
    for flag, what in (("tick-size", "price step"), ("lot-size", "size step"), ("min-notional", "minimum notional"),
                       ("min-size", "minimum size")):
        p.add_argument(f"--{flag}", type=Decimal, default=None,
                       help=f"the capture market's {what} (default: the lake's cached load_markets row)")
    for flag, what in (("maker-fee", "maker fee"), ("taker-fee", "taker fee")):
        p.add_argument(f"--{flag}", type=float, default=None,
                       help=f"the capture market's {what}, fraction of notional (0.001 = 10 bp; negative = rebate; "
                            "default: the lake's cached load_markets row, else maker 0 / taker 0.0004)")
    p.add_argument("--initial-base-notional", type=Decimal, default=None,
                   help="quote moved into base at the first mid (a spot market maker's target holding; "
                        "default: half the quote starting balance on spot, 0 on a perpetual)")


def _iso(value: str | None) -> datetime | None:
    if value is None:
        return None
    ts = datetime.fromisoformat(value)
    if ts.tzinfo is None:
        raise OperatorError(f"--from/--to need a timezone (e.g. {value}+00:00)")
    return ts


def _venues(items: list[str]) -> dict[str, Path]:
    out: dict[str, Path] = {}
    for item in items:
        name, sep, folder = item.partition("=")
        if not sep or not name or not folder:
            raise OperatorError(f"--venue wants NAME=DIR, got {item!r}")
        out[name] = Path(folder)
    return out


def run(args: argparse.Namespace, settings: Settings) -> int:
    if args.strategy in ("window", "window_mm"):
        from serving.backtest.window import run_cli

        return run_cli(args, settings)
    if args.capture is None:
        raise OperatorError(f"--strategy {args.strategy} needs --capture DIR")
    from pipelines.sim.config import SimVenueConfig
    from serving.backtest.runner import BacktestSpec, run_backtest

    sim = SimVenueConfig(queue=args.queue, entry_ms=args.latency_ms, response_ms=args.latency_ms,
                         jitter_ms=args.jitter_ms, seed=args.seed, tick_size=args.tick_size,
                         lot_size=args.lot_size, min_notional=args.min_notional, min_size=args.min_size,
                         maker_fee=args.maker_fee, taker_fee=args.taker_fee)
    spec = BacktestSpec(
        strategy=args.strategy, capture=args.capture, venues=_venues(args.venue), symbol=args.symbol,
        start=_iso(args.start), end=_iso(args.end), out=args.out, sim=sim, params=json.loads(args.params),
        phase=args.phase, initial_base_notional=args.initial_base_notional,
    )
    signals_factory = None
    if args.strategy == "directional":
        from pipelines.marketdata.binance_capture import binance_symbol
        from pipelines.sim.feed import infer_market
        from serving.backtest.directional import champion_signals

        files = sorted(args.capture.glob(f"{args.symbol.lower()}_*.gz"))
        if not files:
            raise OperatorError(f"no capture files {args.symbol.lower()}_*.gz under {args.capture}")
        unified = binance_symbol(args.symbol, infer_market(files[0]))
        # exits 2 (OperatorError) when no champion is registered
        signals_factory = champion_signals(settings, args.capture, args.symbol, unified)
    try:
        result = run_backtest(settings, spec, signals_factory=signals_factory)
    except FileNotFoundError as exc:
        raise OperatorError(str(exc)) from exc
    if args.mlflow:
        from serving.backtest.tracking import log_run

        print(f"mlflow run {log_run(settings, result.summary, result.out)}")
    print(json.dumps({"out": str(result.out), "total": result.summary["total"]}, indent=2))
    return 0
