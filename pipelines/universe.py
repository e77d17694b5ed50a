"""Universe selection, point in time (SPEC section 3): only data dated strictly before the selection date.

Per quote currency, for a selection date D and the trailing `lookback_days` days before it:

1. Candidates: the active spot markets of the quote; stablecoins, fiat and leveraged tokens are excluded.
2. Filters, all must hold: average daily quote volume >= `min_quote_volume[quote]`; std of daily returns
   in [`min_daily_volatility`, `max_daily_volatility`]; average relative spread <= `max_spread`, from book
   snapshots when the lake has them for the symbol, else the Corwin-Schultz (2012) high-low estimator on
   `stats_timeframe` bars; listed (first bar) >= `min_listing_days` before D; average trades a day >=
   `min_daily_trades` where trade counts exist (candles alone have none: the filter then does not apply).
3. Score = 0.5 momentum_30d + 0.3 sharpe_30d + 0.2 liquidity, each rank-normalized to (0, 1] among the
   candidates that pass every filter (the ones competing); the top `size` non-majors are tier 2.
4. Majors are tier 1 whenever listed (any bar before D), whatever the filters say.
5. Tier 3, new listings: listed < `min_listing_days`, average daily quote volume over their last
   `new_listing_days` days >= `new_listing_min_quote_volume[quote]`; at most `new_listing_max`, by that volume.

Every candidate gets a row (kept or rejected) with its filter values and the reasons, so the table of a
date explains itself and is reproducible: rows dated on or after D are ignored, so adding later data never
changes a past universe.
"""

from __future__ import annotations

import math
from datetime import UTC, date, datetime, timedelta

import polars as pl

from pipelines.config import UniverseConfig
from pipelines.sources.base import is_excluded_base

UNIVERSE_SCHEMA: dict[str, pl.DataType] = {
    "date": pl.Date(),
    "symbol": pl.String(),
    "tier": pl.Int8(),  # 1 major, 2 top score, 3 new listing; null: rejected
    "score": pl.Float64(),  # null unless the candidate passed every filter
    "reasons": pl.String(),  # "; "-separated
    "passed_filters": pl.Boolean(),
    "avg_quote_volume": pl.Float64(),  # quote currency a day, trailing window
    "daily_volatility": pl.Float64(),  # std of daily simple returns
    "spread": pl.Float64(),  # relative, 0.001 = 0.1%
    "spread_source": pl.String(),  # "book" | "corwin_schultz"
    "listed_days": pl.Int32(),  # days from the first bar to D (at most the history given)
    "avg_daily_trades": pl.Float64(),  # null where trade counts do not exist
    "momentum": pl.Float64(),
    "sharpe": pl.Float64(),  # mean / std of daily returns (not annualized)
    "recent_quote_volume": pl.Float64(),  # average daily quote volume over the last `new_listing_days`
    "days_with_data": pl.Int32(),
}
DAILY_STATS_SCHEMA: dict[str, pl.DataType] = {
    "symbol": pl.String(),
    "day": pl.Date(),
    "open": pl.Float64(),
    "close": pl.Float64(),
    "quote_volume": pl.Float64(),
    "cs_spread": pl.Float64(),
    "bars": pl.Int32(),
}
_CS_K = 3.0 - 2.0 * math.sqrt(2.0)


def daily_stats(candles: pl.DataFrame) -> pl.DataFrame:
    """Per (symbol, UTC day) from candles of any timeframe: open, close, quote volume and the mean
    Corwin-Schultz spread of the day's consecutive bar pairs (negative estimates count as 0).

    A day's figures use only that day's bars (and the bar just before it for the first pair), so the
    statistics of a day never depend on later data.
    """
    if candles.is_empty():
        return pl.DataFrame(schema=DAILY_STATS_SCHEMA)
    log_h, log_l = pl.col("high").log(), pl.col("low").log()
    prev_h, prev_l = pl.col("high").shift(1).over("symbol"), pl.col("low").shift(1).over("symbol")
    beta = (log_h - log_l) ** 2 + (prev_h.log() - prev_l.log()) ** 2
    gamma = (pl.max_horizontal("high", prev_h).log() - pl.min_horizontal("low", prev_l).log()) ** 2
    alpha = ((2 * beta).sqrt() - beta.sqrt()) / _CS_K - (gamma / _CS_K).sqrt()
    spread = (2 * (alpha.exp() - 1) / (1 + alpha.exp())).clip(lower_bound=0.0)
    return (
        candles.sort("symbol", "ts")
        .with_columns(spread.alias("_cs"), pl.col("ts").dt.date().alias("day"))
        .group_by("symbol", "day")
        .agg(
            pl.col("open").first(),
            pl.col("close").last(),
            (pl.col("close") * pl.col("volume")).sum().alias("quote_volume"),
            pl.col("_cs").mean().alias("cs_spread"),
            pl.len().cast(pl.Int32).alias("bars"),
        )
        .select(pl.col(n).cast(t) for n, t in DAILY_STATS_SCHEMA.items())
        .sort("symbol", "day")
    )


def _window_figures(
    daily: pl.DataFrame, as_of: date, config: UniverseConfig, book_spreads: pl.DataFrame | None
) -> pl.DataFrame:
    past = daily.filter(pl.col("day") < as_of)
    first_day = past.group_by("symbol").agg(pl.col("day").min().alias("first_day"))
    window = past.filter(pl.col("day") >= as_of - timedelta(days=config.lookback_days)).sort("symbol", "day")
    recent_from = as_of - timedelta(days=config.new_listing_days)
    has_trades = "trade_count" in window.columns
    returns = (pl.col("close") / pl.col("close").shift(1) - 1).over("symbol")
    figures = (
        window.with_columns(returns.alias("_ret"))
        .group_by("symbol")
        .agg(
            pl.col("quote_volume").mean().alias("avg_quote_volume"),
            pl.col("_ret").std().alias("daily_volatility"),
            (pl.col("close").last() / pl.col("open").first() - 1).alias("momentum"),
            (pl.col("_ret").mean() / pl.col("_ret").std()).alias("sharpe"),
            pl.col("cs_spread").mean().alias("cs_spread"),
            pl.col("quote_volume").filter(pl.col("day") >= recent_from).mean().alias("recent_quote_volume"),
            pl.len().cast(pl.Int32).alias("days_with_data"),
            (pl.col("trade_count").cast(pl.Float64).mean() if has_trades else pl.lit(None, pl.Float64)).alias(
                "avg_daily_trades"
            ),
        )
        .join(first_day, on="symbol", how="left")
    )
    book = None
    if book_spreads is not None and not book_spreads.is_empty():
        book = (
            book_spreads.filter(
                (pl.col("day") < as_of) & (pl.col("day") >= as_of - timedelta(days=config.lookback_days))
            )
            .group_by("symbol")
            .agg(pl.col("spread").mean().alias("book_spread"))
        )
    if book is not None:
        figures = figures.join(book, on="symbol", how="left")
    else:
        figures = figures.with_columns(pl.lit(None, pl.Float64).alias("book_spread"))
    return figures.with_columns(
        pl.coalesce("book_spread", "cs_spread").alias("spread"),
        pl.when(pl.col("book_spread").is_not_null())
        .then(pl.lit("book"))
        .when(pl.col("cs_spread").is_not_null())
        .then(pl.lit("corwin_schultz"))
        .alias("spread_source"),
        (pl.lit(as_of) - pl.col("first_day")).dt.total_days().cast(pl.Int32).alias("listed_days"),
    )


def _pct(x: float) -> str:
    return f"{100 * x:.2f}%"


def _failed_filters(row: dict[str, object], config: UniverseConfig) -> list[str]:
    """The filters a candidate with data fails, each as a readable reason with its value."""
    reasons = []
    min_volume = config.min_quote_volume[config.quote]
    volume = row["avg_quote_volume"]
    if not isinstance(volume, float) or volume < min_volume:
        reasons.append(f"avg daily quote volume {volume or 0:.3g} < {min_volume:.3g} {config.quote}")
    vol = row["daily_volatility"]
    if not isinstance(vol, float) or math.isnan(vol):
        reasons.append("daily volatility unknown (fewer than 2 daily returns)")
    elif not config.min_daily_volatility <= vol <= config.max_daily_volatility:
        reasons.append(
            f"daily volatility {_pct(vol)} outside [{_pct(config.min_daily_volatility)}, "
            f"{_pct(config.max_daily_volatility)}]"
        )
    spread = row["spread"]
    if not isinstance(spread, float):
        reasons.append("spread unknown")
    elif spread > config.max_spread:
        reasons.append(f"spread {spread * 100:.3f}% ({row['spread_source']}) > {config.max_spread * 100:.3f}%")
    listed = row["listed_days"]
    if not isinstance(listed, int) or listed < config.min_listing_days:
        reasons.append(f"listed {listed} days < {config.min_listing_days}")
    trades = row["avg_daily_trades"]
    if isinstance(trades, float) and trades < config.min_daily_trades:
        reasons.append(f"avg {trades:.0f} trades a day < {config.min_daily_trades}")
    return reasons


def _rank_normalized(values: dict[str, float]) -> dict[str, float]:
    """Average rank / n in (0, 1]: 1 is the highest value. NaN ranks lowest."""
    series = pl.Series(list(values.values()), dtype=pl.Float64).fill_nan(None)
    ranks = series.rank("average").fill_null(0.0) / max(len(values), 1)
    return dict(zip(values, ranks.to_list(), strict=True))


def select_universe(
    daily: pl.DataFrame,
    candidates: list[str],
    as_of: date,
    config: UniverseConfig,
    *,
    book_spreads: pl.DataFrame | None = None,
) -> pl.DataFrame:
    """Tiers for `candidates` on `as_of` (UTC date) from data dated strictly before it.

    `daily` is `daily_stats(...)` output (optionally with a `trade_count` column), or candles of any
    timeframe (aggregated here). `book_spreads` (symbol, day, spread) overrides the candle-based spread
    estimate for the symbols it covers. Returns one row per candidate (`UNIVERSE_SCHEMA`), tiered first.
    """
    if "quote_volume" not in daily.columns:
        daily = daily_stats(daily)
    figures = {str(r["symbol"]): r for r in _window_figures(daily, as_of, config, book_spreads).iter_rows(named=True)}
    bases = {s.split("/")[0] for s in candidates}
    majors = set(config.majors)
    rows: dict[str, dict[str, object]] = {}
    failed: dict[str, list[str]] = {}
    for symbol in dict.fromkeys(candidates):
        base = symbol.split("/")[0]
        row: dict[str, object] = {"symbol": symbol, "tier": None, "score": None, "passed_filters": False}
        row |= {k: v for k, v in figures.get(symbol, {}).items() if k in UNIVERSE_SCHEMA}
        rows[symbol] = row
        if is_excluded_base(base, bases):
            failed[symbol] = ["rejected: stablecoin, fiat or leveraged token"]
        elif symbol not in figures:
            failed[symbol] = [f"rejected: no bars in the {config.lookback_days} days before {as_of}"]
        else:
            failed[symbol] = _failed_filters(row, config)
            row["passed_filters"] = not failed[symbol]

    passing = [s for s, r in rows.items() if r["passed_filters"]]
    if passing:
        momentum = _rank_normalized({s: float(rows[s]["momentum"]) for s in passing})  # type: ignore[arg-type]
        sharpe = _rank_normalized({s: float(rows[s]["sharpe"]) for s in passing})  # type: ignore[arg-type]
        liquidity = _rank_normalized({s: float(rows[s]["avg_quote_volume"]) for s in passing})  # type: ignore[arg-type]
        for s in passing:
            rows[s]["score"] = (
                config.weight_momentum * momentum[s]
                + config.weight_sharpe * sharpe[s]
                + config.weight_liquidity * liquidity[s]
            )
    reasons: dict[str, list[str]] = {}
    for symbol, row in rows.items():
        if symbol.split("/")[0] in majors and symbol in figures:
            row["tier"] = 1
            notes = "passes every filter" if row["passed_filters"] else "; ".join(failed[symbol])
            reasons[symbol] = [f"tier 1: major, traded whenever listed ({notes})"]
    contenders = sorted(
        (s for s in passing if rows[s]["tier"] is None),
        key=lambda s: (-float(rows[s]["score"]), s),  # type: ignore[arg-type]
    )
    for rank, symbol in enumerate(contenders, 1):
        if rank <= config.size:
            rows[symbol]["tier"] = 2
            reasons[symbol] = [f"tier 2: score {rows[symbol]['score']:.3f}, rank {rank} of top {config.size}"]
        else:
            reasons[symbol] = [f"rejected: passes every filter but score rank {rank} is beyond the top {config.size}"]

    threshold = config.new_listing_min_quote_volume[config.quote]
    newcomers = [
        s
        for s, r in rows.items()
        if r["tier"] is None
        and s in figures
        and not is_excluded_base(s.split("/")[0], bases)
        and int(r["listed_days"]) < config.min_listing_days  # type: ignore[call-overload]
    ]
    newcomers.sort(key=lambda s: (-(rows[s]["recent_quote_volume"] or 0.0), s))  # type: ignore[operator]
    slot = 0
    for symbol in newcomers:
        row = rows[symbol]
        recent = float(row["recent_quote_volume"] or 0.0)  # type: ignore[arg-type]
        listed = f"new listing, listed {row['listed_days']} days"
        if recent < threshold:
            reasons[symbol] = [
                f"rejected: {listed}, {config.new_listing_days}-day avg quote volume {recent:.3g} < {threshold:.3g}"
            ]
        elif slot >= config.new_listing_max:
            reasons[symbol] = [f"rejected: {listed}, but tier 3 already holds {config.new_listing_max}"]
        else:
            slot += 1
            row["tier"] = 3
            reasons[symbol] = [
                f"tier 3: {listed}, {config.new_listing_days}-day avg quote volume {recent:.3g} >= {threshold:.3g}"
            ]
    for symbol in rows:
        if symbol not in reasons:
            own = failed[symbol]
            reasons[symbol] = own if own and own[0].startswith("rejected") else ["rejected: " + "; ".join(own)]
        rows[symbol]["reasons"] = "; ".join(reasons[symbol])
        rows[symbol]["date"] = as_of

    frame = pl.DataFrame(
        [{name: row.get(name) for name in UNIVERSE_SCHEMA} for row in rows.values()], schema=UNIVERSE_SCHEMA
    )
    return frame.sort(
        pl.col("tier").fill_null(99), pl.col("score").fill_null(-1.0), "symbol", descending=[False, True, False]
    )


def universe_symbols(universe: pl.DataFrame) -> list[str]:
    """Symbols with a tier, in table order."""
    return universe.filter(pl.col("tier").is_not_null())["symbol"].to_list()


def universe_window(as_of: date, config: UniverseConfig) -> tuple[datetime, datetime]:
    """[start, end) of the bars `select_universe` needs for `as_of` (UTC): enough to tell listing age."""
    end = datetime(as_of.year, as_of.month, as_of.day, tzinfo=UTC)
    days = max(config.lookback_days, config.min_listing_days, config.new_listing_days) + 1
    return end - timedelta(days=days), end
