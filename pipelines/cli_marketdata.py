"""`alphatide backfill ...` and `alphatide universe --date ...`: market data from the command line.

Registered into the main parser by `pipelines.cli` (`register(sub)`; `run(args, settings)` handles them).
"""

from __future__ import annotations

import argparse
import json
import uuid
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any

from pipelines.config import Settings
from pipelines.errors import OperatorError

if TYPE_CHECKING:  # the CLI starts fast: polars, ccxt and the lake load only when a command needs them
    import polars as pl

    from pipelines.sources import CandleSource

COMMANDS = ("backfill", "universe")
_KIND_ALIASES = {"trades": "trades", "book": "book_snapshots", "book_snapshots": "book_snapshots"}


def register(sub: Any) -> None:
    """Add the market-data subcommands to the main parser's subparsers."""
    backfill = sub.add_parser(
        "backfill",
        help="backfill candles, trades or order-book snapshots of a venue into the lake (incremental, resumable)",
        description="Incremental from the watermark of each (venue, kind, symbol); re-running is safe.",
    )
    backfill.add_argument("--venue", help="ccxt exchange id (default ALPHATIDE_VENUE)")
    which = backfill.add_mutually_exclusive_group(required=True)
    which.add_argument("--symbols", help="comma-separated ccxt symbols, e.g. BTC/USDT,ETH/USDT")
    which.add_argument("--universe", action="store_true", help="the tiered symbols of the newest stored universe")
    backfill.add_argument("--kinds", default="candles", help="comma-separated: candles, trades, book (default candles)")
    backfill.add_argument(
        "--timeframe", choices=("1m", "5m", "1h"), help="candle timeframe (default ALPHATIDE_DATA__TIMEFRAME)"
    )
    backfill.add_argument("--since", help="UTC date or ISO time (default: ALPHATIDE_DATA__HISTORY_DAYS before --until)")
    backfill.add_argument("--until", help="UTC date or ISO time, exclusive (default: now)")
    backfill.add_argument("--no-progress", action="store_true", help="no progress bar")
    backfill.add_argument("--refresh-markets", action="store_true", help="re-read market metadata now")

    universe = sub.add_parser(
        "universe",
        help="the universe of a date (stored, or selected point in time and stored)",
        description="Prints every candidate with its tier (1, 2, 3 or none), score and reasons.",
    )
    universe.add_argument("--date", required=True, help="selection date, YYYY-MM-DD (UTC)")
    universe.add_argument("--json", action="store_true", help="one JSON object per candidate")
    universe.add_argument("--recompute", action="store_true", help="select again even when the date is stored")


def _instant(text: str, name: str) -> datetime:
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise OperatorError(f"--{name} {text!r} is not a date (YYYY-MM-DD) or an ISO time") from None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _kinds(text: str, timeframe: str) -> tuple[str, ...]:
    from pipelines.backfill import parse_kinds

    names = []
    for raw in (k.strip() for k in text.split(",") if k.strip()):
        names.append(f"candles_{timeframe}" if raw == "candles" else _KIND_ALIASES.get(raw, raw))
    return parse_kinds(names)


def _source(settings: Settings, venue: str | None) -> CandleSource:
    """Recorded or synthetic sources when configured; otherwise the named ccxt venue."""
    from pipelines.sources import CcxtCandleSource, make_source

    if settings.source in ("replay", "synthetic") and venue in (None, settings.venue):
        return make_source(settings)
    data = settings.data
    return CcxtCandleSource(
        venue or settings.venue,
        timeout_s=data.request_timeout_s,
        max_retries=data.max_retries,
        backoff_s=data.backoff_s,
        max_backoff_s=data.max_backoff_s,
    )


def backfill(args: argparse.Namespace, settings: Settings) -> dict[str, Any]:
    from pipelines.backfill import Backfiller, load_market_metadata
    from pipelines.batch_gate import gate_batch
    from pipelines.lake import Lake
    from pipelines.lake_staging import StagedLake
    from pipelines.sources import CcxtCandleSource
    from pipelines.universe import universe_symbols

    lake = Lake(settings.lake_dir)
    source = _source(settings, args.venue)
    timeframe = args.timeframe or settings.data.timeframe
    kinds = _kinds(args.kinds, timeframe)
    if args.universe:
        table = lake.read_universe()
        if table is None:
            raise OperatorError(f"no universe stored in {lake.root}: run `alphatide universe --date ...` first")
        symbols = universe_symbols(table)
    else:
        symbols = [s.strip() for s in args.symbols.split(",") if s.strip()]
    until = _instant(args.until, "until") if args.until else source.as_of()
    since = _instant(args.since, "since") if args.since else until - timedelta(days=settings.data.history_days)
    if isinstance(source, CcxtCandleSource):
        load_market_metadata(
            source, lake, ttl=timedelta(hours=settings.data.markets_ttl_h), refresh=args.refresh_markets
        )
        unknown = sorted(set(symbols) - set(source.exchange.markets or {}))
        if unknown:
            raise OperatorError(f"{source.venue} lists no market named {', '.join(unknown)}")
    # Staged, then committed only when the candles pass the validation gate (as in the nightly chain).
    batch_id = f"cli-{datetime.now(UTC):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:6]}"
    staged = StagedLake(lake, batch_id)
    staged.root.mkdir(parents=True, exist_ok=True)
    engine = Backfiller(source, staged, settings.data, progress=False if args.no_progress else None)
    report = engine.run(symbols, kinds, since, until).to_dict()
    if f"candles_{timeframe}" in kinds:
        manifest = {"batch_id": batch_id, "venue": source.venue, "timeframe": timeframe, "symbols": symbols,
                    "start": since.isoformat(), "end": until.isoformat()}
        committed = gate_batch(lake, staged, manifest, settings)  # DataValidationError: quarantined
    else:
        committed = staged.commit()
    return {**report, "batch_id": batch_id, "committed_partitions": committed["partitions"]}


def universe_rows(table: pl.DataFrame) -> list[dict[str, Any]]:
    """The JSON form: symbol, tier (1, 2, 3 or None), score, reasons (a list), and the filter values."""
    out = []
    for row in table.iter_rows(named=True):
        filters = {
            k: (v.isoformat() if isinstance(v, date) else v)
            for k, v in row.items()
            if k not in ("symbol", "tier", "score", "reasons", "date")
        }
        out.append(
            {
                "symbol": row["symbol"],
                "tier": row["tier"],
                "score": row["score"],
                "reasons": [r for r in str(row["reasons"] or "").split("; ") if r],
                "date": row["date"].isoformat() if isinstance(row.get("date"), date) else row.get("date"),
                "filters": filters,
            }
        )
    return out


def universe(args: argparse.Namespace, settings: Settings) -> pl.DataFrame:
    from pipelines.lake import Lake
    from pipelines.nightly import select_universe_from
    from pipelines.sources import make_source
    from pipelines.universe import universe_symbols

    try:
        day = date.fromisoformat(args.date)
    except ValueError:
        raise OperatorError(f"--date {args.date!r} is not a date (YYYY-MM-DD)") from None
    lake = Lake(settings.lake_dir)
    table = None if args.recompute else lake.read_universe(day)
    if table is None:
        source = make_source(settings)
        candidates = source.list_symbols(settings.universe.quote)
        if not candidates:
            raise OperatorError(f"source {source.name} lists no {settings.universe.quote} symbols")
        table = select_universe_from(source, lake, candidates, day, settings)
        if not universe_symbols(table):
            # An empty universe usually means the source has no history for that date (e.g. `auto` fell
            # back to synthetic candles for a past day): storing it would shadow a real selection later.
            raise OperatorError(
                f"no candidate of source {source.name} qualifies on {day} (no bars or every filter failed): "
                "nothing stored; check ALPHATIDE_SOURCE"
            )
        lake.write_universe(table, day)
    return table


def run(args: argparse.Namespace, settings: Settings) -> int:
    if args.command == "backfill":
        print(json.dumps(backfill(args, settings), indent=2, default=str))
        return 0
    table = universe(args, settings)
    if args.json:
        print(json.dumps(universe_rows(table), default=str))
        return 0
    for row in table.iter_rows(named=True):
        tier = "-" if row["tier"] is None else str(row["tier"])
        score = "" if row["score"] is None else f"{row['score']:.3f}"
        print(f"{row['symbol']:<14} tier {tier:<2} {score:>6}  {row['reasons']}")
    return 0
