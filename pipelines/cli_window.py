"""`alphatide window train | windows`: the 5-minute window-market model and venue from the command line.

Registered into the main parser by `pipelines.cli` (`register(sub)`; `run(args, settings)` handles it).

- `window train`: the window model on the nightly chain's validated batch (as the Airflow task does),
  or with `--candles FILE` on a candle parquet file (the shared `binance_spot_candles` layout:
  symbol, open_time ms, OHLCV); registers `alphatide-window` and applies its gate. Prints the summary.
- `window windows [--api-url URL]`: the current and next BTC up/down windows as the venue lists them
  (token ids, tick, fee per market); `--api-url` points at another gamma/clob/data host (a local fake).
"""

from __future__ import annotations

import argparse
import asyncio
import json
from pathlib import Path
from typing import Any

from pipelines.config import Settings

COMMANDS = ("window",)


def register(sub: Any) -> None:
    window = sub.add_parser("window", help="the 5-minute window-market model and venue")
    actions = window.add_subparsers(dest="window_command", required=True)
    train = actions.add_parser("train", help="train, evaluate, register and gate the window model")
    train.add_argument("--candles", type=Path, default=None, help="candle parquet file instead of the lake batch")
    train.add_argument("--timeframe", default="5m", help="bar size of --candles (1m or 5m)")
    listed = actions.add_parser("windows", help="the current and next window markets on Polymarket")
    listed.add_argument("--api-url", default=None, help="base URL serving /gamma, /clob and /data (a fake venue)")


def _train(args: argparse.Namespace, settings: Settings) -> dict[str, Any]:
    from pipelines.window.train import run_window_training

    if args.candles is None:
        return run_window_training(settings)
    import polars as pl

    from pipelines.domain.candles import normalize_candles
    from pipelines.registry import MlflowRegistry
    from pipelines.window.model import WindowModelConfig
    from pipelines.window.train import train_window_model

    cfg = WindowModelConfig()
    raw = pl.read_parquet(args.candles)
    candles = normalize_candles(raw, ts_column="open_time" if "open_time" in raw.columns else "ts")
    registry = MlflowRegistry(
        settings.mlflow_tracking_uri, settings.mlruns_dir / "artifacts", cfg.name, experiment="alphatide-window"
    )
    result = train_window_model(
        candles,
        args.timeframe,
        cfg=cfg,
        promotion=settings.promotion,
        registry=registry,
        tags={"data_snapshot": str(args.candles)},
    )
    return result.summary()


async def _windows(api_url: str | None) -> list[dict[str, Any]]:
    from pipelines.adapters.polymarket import PolymarketWindowVenue, VenueSettings

    urls = {k: f"{api_url}/{k}" for k in ("gamma", "clob", "data")} if api_url else {}
    out = []
    async with PolymarketWindowVenue(VenueSettings(urls=urls)) as venue:
        for window in await venue.current_and_next():
            if window is None:
                continue
            fee = await venue.fee(window.up.token_id)
            out.append(
                {
                    "slug": window.slug,
                    "start": window.start.isoformat(),
                    "end": window.end.isoformat(),
                    "up": window.up.token_id,
                    "down": window.down.token_id,
                    "tick": str(await venue.tick_size(window.up.token_id)),
                    "min_size": str(window.min_size),
                    "fee_rate": str(fee.rate),
                    "resolved": window.resolved,
                }
            )
    return out


def run(args: argparse.Namespace, settings: Settings) -> int:
    if args.window_command == "train":
        print(json.dumps(_train(args, settings), indent=2, default=str))
    elif args.window_command == "windows":
        print(json.dumps(asyncio.run(_windows(args.api_url)), indent=2))
    return 0
