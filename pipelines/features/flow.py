"""Batch order-flow, book, microstructure and liquidation features at given query times (polars).

Inputs (all optional; what is absent gives null features) are the frames of
`pipelines.features.flow_frames` (`EventFrames`, built by `frames_from_events`; those names are
re-exported here):

- trades: `bars.TRADE_SCHEMA` (``symbol``, ``ts``, ``price``, ``qty``, ``is_buy``).
- book: one row per book update as recorded by `frames_from_events` (`book_schema`): ``symbol``, ``ts``,
  ``valid``, ``resync``, levels ``bid_px_1..L``, ``bid_qty_1..L``, ``ask_px_1..L``, ``ask_qty_1..L``, and the
  cancel-rate terms ``added``/``removed``.
- liquidations: ``symbol``, ``ts``, ``price``, ``qty``, ``is_buy`` (the forced order bought: a short was
  liquidated).

How values at a query time ``t`` are formed (the live engine follows the same rules):

- Windowed sums over ``[t - w, t)`` are differences of per-symbol running totals taken at the last
  event strictly before ``t`` and before ``t - w``. The running totals are plain sequential sums
  (polars ``cum_sum``; the engine adds in the same order), so both implementations subtract the same
  numbers.
- A window counts only if the feed covered it: ``t - w >=`` the symbol's first trade (trade features),
  the start of the current valid book run (book windows), or the first trade/liquidation (liquidations).
- Book levels are the last book row strictly before ``t``; null if that row is invalid or older than
  `FeatureParams.book_stale_s`.
"""

from __future__ import annotations

import polars as pl

from pipelines.features.bars import TS_DTYPE, normalize_trades, volume_buckets
from pipelines.features.flow_frames import (
    LIQUIDATION_SCHEMA,
    AnyEvent,
    EventFrames,
    Liquidation,
    book_schema,
    frames_from_events,
    level_columns,
)
from pipelines.features.spec import (
    AGGRESSOR_COLUMNS,
    DEFAULT_PARAMS,
    OFI_LEVELS,
    US_PER_S,
    FeatureParams,
)

__all__ = [
    "LIQUIDATION_SCHEMA",
    "AnyEvent",
    "EventFrames",
    "Liquidation",
    "bar_flow_features",
    "bar_signed_volume",
    "book_features_at",
    "book_schema",
    "flow_features_at",
    "frames_from_events",
    "level_columns",
    "liquidation_features_at",
    "trade_features_at",
]


def _div(num: pl.Expr, den: pl.Expr) -> pl.Expr:
    return pl.when(den != 0.0).then(num / den)


def _us(seconds: float) -> int:
    return round(seconds * US_PER_S)


def _totals_before(
    queries: pl.DataFrame,
    events: pl.DataFrame,
    at: pl.Expr,
    cols: list[str],
    suffix: str,
    fill: float | None = 0.0,
) -> pl.DataFrame:
    """For each query row, the values ``cols`` of ``events`` at its last event strictly before ``at``
    (``fill`` when there is none: 0 for running totals); columns renamed ``<col><suffix>``. Sorted by
    the query id ``_qid``."""
    right = (
        events.select("symbol", "ts", *cols)
        # Several events in one µs: the last one carries the totals after all of them.
        .unique(subset=["symbol", "ts"], keep="last", maintain_order=True)
        .sort("ts", maintain_order=True)
    )
    left = queries.select("_qid", "symbol", at.alias("_at")).sort("_at")
    joined = left.join_asof(
        right,
        left_on="_at",
        right_on="ts",
        by="symbol",
        strategy="backward",
        allow_exact_matches=False,
        check_sortedness=False,
    )
    values = [pl.col(c) if fill is None else pl.col(c).fill_null(fill) for c in cols]
    return joined.select("_qid", *(v.alias(c + suffix) for v, c in zip(values, cols, strict=True))).sort("_qid")


def _first_ts(frame: pl.DataFrame, name: str) -> pl.DataFrame:
    return frame.group_by("symbol").agg(pl.col("ts").min().alias(name))


def trade_features_at(
    queries: pl.DataFrame, trades: pl.DataFrame, params: FeatureParams = DEFAULT_PARAMS
) -> pl.DataFrame:
    """cumdelta_5m, vw_momentum_1m, aggressor ratios and VPIN at each query (``_qid``, ``symbol``, ``t``).

    Returns ``_qid`` plus those columns.
    """
    p = params
    t = normalize_trades(trades)
    quote = pl.col("price") * pl.col("qty")
    prev_price = pl.col("price").shift(1).over("symbol")
    has_prev = prev_price.is_not_null()
    cum = t.with_columns(
        pl.when(pl.col("is_buy")).then(quote).otherwise(-quote).alias("_sq"),
        quote.alias("_q"),
        pl.when(pl.col("is_buy")).then(quote).otherwise(0.0).alias("_bq"),
        # Tick return x qty, only for trades with a previous trade (the first has no return).
        pl.when(has_prev).then((pl.col("price") / prev_price - 1.0) * pl.col("qty")).otherwise(0.0).alias("_rq"),
        pl.when(has_prev).then(pl.col("qty")).otherwise(0.0).alias("_qv"),
    ).with_columns(pl.col(c).cum_sum().over("symbol") for c in ("_sq", "_q", "_bq", "_rq", "_qv"))
    cols = ["_sq", "_q", "_bq", "_rq", "_qv"]
    windows = sorted({p.cumdelta_window_s, p.vw_momentum_window_s, *p.aggressor_windows_s})
    out = queries.join(_first_ts(t, "_start"), on="symbol", how="left")
    out = out.join(_totals_before(queries, cum, pl.col("t"), cols, "@0"), on="_qid")
    for w in windows:
        shifted = pl.col("t") - pl.duration(microseconds=_us(w))
        out = out.join(_totals_before(queries, cum, shifted, cols, f"@{w}"), on="_qid")

    def window(col: str, w: int) -> pl.Expr:
        return pl.col(f"{col}@0") - pl.col(f"{col}@{w}")

    def covered(w: int) -> pl.Expr:
        return pl.col("t") - pl.duration(microseconds=_us(w)) >= pl.col("_start")

    exprs = {
        "cumdelta_5m": pl.when(covered(p.cumdelta_window_s)).then(window("_sq", p.cumdelta_window_s)),
        "vw_momentum_1m": pl.when(covered(p.vw_momentum_window_s)).then(
            _div(window("_rq", p.vw_momentum_window_s), window("_qv", p.vw_momentum_window_s))
        ),
    }
    for name, w in zip(AGGRESSOR_COLUMNS, p.aggressor_windows_s, strict=True):
        exprs[name] = pl.when(covered(w)).then(_div(window("_bq", w), window("_q", w)))
    out = out.select("_qid", *(e.alias(n) for n, e in exprs.items()))

    # VPIN: mean imbalance of the last n completed buckets, as known strictly before t.
    sizes = {s: p.vpin_bucket_for(s) for s in t["symbol"].unique().to_list()}
    buckets = volume_buckets(t, sizes).with_columns(
        pl.col("imbalance").rolling_mean(p.vpin_buckets).over("symbol").alias("vpin")
    )
    vpin = _totals_before(queries, buckets.filter(pl.col("vpin").is_not_null()), pl.col("t"), ["vpin"], "", fill=None)
    return out.join(vpin, on="_qid")


def book_features_at(queries: pl.DataFrame, book: pl.DataFrame, params: FeatureParams = DEFAULT_PARAMS) -> pl.DataFrame:
    """Book features (spread, imbalances, microprice, OFI L1/L5/L10, cancel rate) at each query.

    ``book``: rows of `book_schema` in update order per symbol. Returns ``_qid`` plus the columns.
    """
    p = params
    cum, cum_cols = _book_totals(book)
    out = _book_levels(_book_state(queries, cum, p.book_levels), p)
    windows = sorted({p.ofi_window_s, p.cancel_window_s})
    out = out.join(_totals_before(queries, cum, pl.col("t"), cum_cols, "@0"), on="_qid")
    for w in windows:
        shifted = pl.col("t") - pl.duration(microseconds=_us(w))
        out = out.join(_totals_before(queries, cum, shifted, cum_cols, f"@{w}"), on="_qid")

    def window(col: str, w: int) -> pl.Expr:
        return pl.col(f"{col}@0") - pl.col(f"{col}@{w}")

    def covered(w: int) -> pl.Expr:
        return pl.col("_fresh") & (pl.col("t") - pl.duration(microseconds=_us(w)) >= pl.col("_since"))

    ofi = {
        name: pl.when(covered(p.ofi_window_s)).then(_div(window(f"_ofi{d}", p.ofi_window_s), pl.col(f"_depth{d}")))
        for name, d in OFI_LEVELS
    }
    cancel = pl.when(covered(p.cancel_window_s)).then(
        _div(window("_removed", p.cancel_window_s), window("_added", p.cancel_window_s))
    )
    return out.select(
        "_qid",
        "spread_pct",
        "bid_ask_imbalance",
        "lob_depth_imbalance",
        "microprice_dev",
        cancel.alias("cancel_rate_1m"),
        *(e.alias(n) for n, e in ofi.items()),
    )


def _book_totals(book: pl.DataFrame) -> tuple[pl.DataFrame, list[str]]:
    """``book`` sorted per symbol with running totals of the multi-level OFI and the cancel-rate terms
    (counted only on valid, non-resync updates) and ``_since``, the start of the current valid run;
    returns the frame and the running-total column names."""
    b = book.sort("symbol", "ts", maintain_order=True)
    counted = pl.col("valid") & ~pl.col("resync")

    def prev(name: str) -> pl.Expr:
        return pl.col(name).shift(1).over("symbol")

    # Per-update multi-level OFI (book.ofi_terms in Python): same formula, same order of additions.
    max_depth = OFI_LEVELS[-1][1]
    acc: pl.Expr = pl.lit(0.0)
    ofi_cols: dict[int, pl.Expr] = {}
    for m in range(1, max_depth + 1):
        pbn, pbo = pl.col(f"bid_px_{m}").fill_null(float("-inf")), prev(f"bid_px_{m}").fill_null(float("-inf"))
        pan, pao = pl.col(f"ask_px_{m}").fill_null(float("inf")), prev(f"ask_px_{m}").fill_null(float("inf"))
        qbn, qbo = pl.col(f"bid_qty_{m}"), prev(f"bid_qty_{m}")
        qan, qao = pl.col(f"ask_qty_{m}"), prev(f"ask_qty_{m}")
        e_bid = pl.when(pbn >= pbo).then(qbn).otherwise(0.0) - pl.when(pbn <= pbo).then(qbo).otherwise(0.0)
        e_ask = pl.when(pan >= pao).then(qao).otherwise(0.0) - pl.when(pan <= pao).then(qan).otherwise(0.0)
        acc = acc + (e_bid + e_ask)
        ofi_cols[m] = acc
    cum_cols = [f"_ofi{d}" for _, d in OFI_LEVELS] + ["_added", "_removed"]
    cum = b.with_columns(
        *(pl.when(counted).then(ofi_cols[d]).otherwise(0.0).alias(f"_ofi{d}") for _, d in OFI_LEVELS),
        pl.when(counted).then(pl.col("added")).otherwise(0.0).alias("_added"),
        pl.when(counted).then(pl.col("removed")).otherwise(0.0).alias("_removed"),
        # Start of the current valid run (null while invalid): book windows must lie inside one run.
        pl.when(pl.col("valid"))
        .then(pl.when(pl.col("resync")).then(pl.col("ts")).forward_fill().over("symbol"))
        .alias("_since"),
    ).with_columns(pl.col(c).cum_sum().over("symbol") for c in cum_cols)
    return cum, cum_cols


def _book_state(queries: pl.DataFrame, cum: pl.DataFrame, levels: int) -> pl.DataFrame:
    """For each query, the last book row strictly before t (its levels and validity, ``_bts`` its
    time); sorted by ``_qid``."""
    state_cols = ["valid", "_since", *level_columns(levels)]
    return (
        queries.select("_qid", "symbol", "t")
        .sort("t")
        .join_asof(
            cum.select("symbol", pl.col("ts").alias("_bts"), *state_cols)
            .unique(subset=["symbol", "_bts"], keep="last", maintain_order=True)
            .sort("_bts", maintain_order=True),
            left_on="t",
            right_on="_bts",
            by="symbol",
            strategy="backward",
            allow_exact_matches=False,
            check_sortedness=False,
        )
        .sort("_qid")
    )


def _book_levels(state: pl.DataFrame, p: FeatureParams) -> pl.DataFrame:
    """The level features of each query's book row (null unless valid and at most `book_stale_s` old),
    plus ``_fresh``, ``_since`` and the OFI depths ``_depth<d>`` the windowed features need."""
    levels = p.book_levels
    stale_us = _us(p.book_stale_s)
    max_depth = OFI_LEVELS[-1][1]
    fresh = pl.col("valid").fill_null(False) & (pl.col("t") - pl.col("_bts") <= pl.duration(microseconds=stale_us))
    bp1, ap1, bq1, aq1 = (pl.col(c) for c in ("bid_px_1", "ask_px_1", "bid_qty_1", "ask_qty_1"))
    mid = (bp1 + ap1) / 2.0
    micro = _div(bp1 * aq1 + ap1 * bq1, bq1 + aq1)
    bid_sum: pl.Expr = pl.lit(0.0)
    ask_sum: pl.Expr = pl.lit(0.0)
    for m in range(1, levels + 1):
        bid_sum = bid_sum + pl.col(f"bid_qty_{m}")
        ask_sum = ask_sum + pl.col(f"ask_qty_{m}")
    depths: dict[int, pl.Expr] = {}
    dsum: pl.Expr = pl.lit(0.0)
    for m in range(1, max_depth + 1):
        dsum = dsum + (pl.col(f"bid_qty_{m}") + pl.col(f"ask_qty_{m}"))
        depths[m] = dsum
    return state.select(
        "_qid",
        "symbol",
        "t",
        "_since",
        fresh.alias("_fresh"),
        *(depths[d].alias(f"_depth{d}") for _, d in OFI_LEVELS),
        pl.when(fresh).then(_div(ap1 - bp1, mid)).alias("spread_pct"),
        pl.when(fresh).then(_div(bq1 - aq1, bq1 + aq1)).alias("bid_ask_imbalance"),
        pl.when(fresh).then(_div(bid_sum - ask_sum, bid_sum + ask_sum)).alias("lob_depth_imbalance"),
        pl.when(fresh).then(_div(micro - mid, mid)).alias("microprice_dev"),
    )


def liquidation_features_at(
    queries: pl.DataFrame,
    liquidations: pl.DataFrame,
    trades: pl.DataFrame | None,
    params: FeatureParams = DEFAULT_PARAMS,
) -> pl.DataFrame:
    """liquidation_imbalance at each query: (forced buy - forced sell) / total quote volume over the
    window, null without liquidations in it. Coverage starts at the symbol's first trade or liquidation."""
    w = params.liquidation_window_s
    liq = normalize_trades(liquidations)
    quote = pl.col("price") * pl.col("qty")
    cum = liq.with_columns(
        pl.when(pl.col("is_buy")).then(quote).otherwise(0.0).alias("_lb"),
        pl.when(pl.col("is_buy")).then(0.0).otherwise(quote).alias("_ls"),
    ).with_columns(pl.col(c).cum_sum().over("symbol") for c in ("_lb", "_ls"))
    starts = _first_ts(liq, "_start")
    if trades is not None:
        starts = (
            pl.concat([starts, _first_ts(normalize_trades(trades), "_start")])
            .group_by("symbol")
            .agg(pl.col("_start").min())
        )
    out = queries.join(starts, on="symbol", how="left")
    out = out.join(_totals_before(queries, cum, pl.col("t"), ["_lb", "_ls"], "@0"), on="_qid")
    shifted = pl.col("t") - pl.duration(microseconds=_us(w))
    out = out.join(_totals_before(queries, cum, shifted, ["_lb", "_ls"], "@w"), on="_qid")
    buy, sell = pl.col("_lb@0") - pl.col("_lb@w"), pl.col("_ls@0") - pl.col("_ls@w")
    covered = shifted >= pl.col("_start")
    return out.select("_qid", pl.when(covered).then(_div(buy - sell, buy + sell)).alias("liquidation_imbalance"))


def flow_features_at(
    queries: pl.DataFrame,
    *,
    trades: pl.DataFrame | None = None,
    book: pl.DataFrame | None = None,
    liquidations: pl.DataFrame | None = None,
    params: FeatureParams = DEFAULT_PARAMS,
) -> pl.DataFrame:
    """Every non-bar flow feature at arbitrary times: ``queries`` has ``symbol`` and ``t`` (Datetime µs
    UTC). Returns ``symbol``, ``t`` and the trade, book and liquidation columns (null where an input is
    absent), in the query order."""
    q = queries.select(
        pl.int_range(pl.len(), dtype=pl.Int64).alias("_qid"),
        pl.col("symbol").cast(pl.String),
        pl.col("t").cast(TS_DTYPE),
    )
    out = q
    parts: list[tuple[list[str], pl.DataFrame | None]] = [
        (
            ["cumdelta_5m", "vw_momentum_1m", *AGGRESSOR_COLUMNS, "vpin"],
            None if trades is None else trade_features_at(q, trades, params),
        ),
        (
            [
                "spread_pct",
                "bid_ask_imbalance",
                "lob_depth_imbalance",
                "microprice_dev",
                "cancel_rate_1m",
                *(n for n, _ in OFI_LEVELS),
            ],
            None if book is None else book_features_at(q, book, params),
        ),
        (
            ["liquidation_imbalance"],
            None if liquidations is None else liquidation_features_at(q, liquidations, trades, params),
        ),
    ]
    for names, frame in parts:
        if frame is None:
            out = out.with_columns(pl.lit(None, dtype=pl.Float64).alias(n) for n in names)
        else:
            out = out.join(frame, on="_qid", how="left")
    return out.sort("_qid").drop("_qid")


def bar_signed_volume(bars: pl.DataFrame, trades: pl.DataFrame, bar_us: int) -> pl.DataFrame:
    """Aggressive buy minus sell quote volume per bar (``symbol``, ``ts``, ``signed_quote``), as the
    difference of running totals at the bar's close and open; null for bars before the first trade."""
    t = normalize_trades(trades)
    quote = pl.col("price") * pl.col("qty")
    cum = t.with_columns(pl.when(pl.col("is_buy")).then(quote).otherwise(-quote).cum_sum().over("symbol").alias("_sq"))
    q = bars.select(pl.int_range(pl.len(), dtype=pl.Int64).alias("_qid"), "symbol", "ts")
    at_open = _totals_before(q, cum, pl.col("ts"), ["_sq"], "@open")
    at_close = _totals_before(q, cum, pl.col("ts") + pl.duration(microseconds=bar_us), ["_sq"], "@close")
    return (
        q.join(_first_ts(t, "_start"), on="symbol", how="left")
        .join(at_open, on="_qid")
        .join(at_close, on="_qid")
        .sort("_qid")
        .select(
            "symbol",
            "ts",
            pl.when(pl.col("ts") >= pl.col("_start"))
            .then(pl.col("_sq@close") - pl.col("_sq@open"))
            .alias("signed_quote"),
        )
    )


def bar_flow_features(
    base: pl.DataFrame,
    timeframe_bar_us: int,
    *,
    trades: pl.DataFrame | None,
    book: pl.DataFrame | None,
    liquidations: pl.DataFrame | None,
    params: FeatureParams = DEFAULT_PARAMS,
) -> pl.DataFrame:
    """``base`` (candle features with ``symbol``, ``ts``, ``event_ts``, ``roc_1``) plus every flow column
    evaluated at each bar's ``event_ts``, and Kyle's lambda over the bars."""
    flow = flow_features_at(
        base.select("symbol", pl.col("event_ts").alias("t")),
        trades=trades,
        book=book,
        liquidations=liquidations,
        params=params,
    ).drop("symbol", "t")
    out = pl.concat([base, flow], how="horizontal")
    if trades is None:
        return out.with_columns(pl.lit(None, dtype=pl.Float64).alias("kyle_lambda"))
    sv = bar_signed_volume(base.select("symbol", "ts"), trades, timeframe_bar_us)
    n = params.kyle_window
    out = pl.concat([out, sv.select("signed_quote")], how="horizontal")
    cov = pl.rolling_cov("roc_1", "signed_quote", window_size=n, ddof=1).over("symbol")
    signed = pl.col("signed_quote")
    var = signed.rolling_var(n, ddof=1).over("symbol")
    # A constant window (e.g. bars without trades) has no variance: exactly, not up to rounding.
    constant = ((signed != signed.shift(1)).cast(pl.Int32).rolling_sum(n - 1) == 0).over("symbol")
    kyle = pl.when(~constant & (var != 0.0)).then(cov / var)
    return out.with_columns(pl.when(kyle.is_finite()).then(kyle).alias("kyle_lambda")).drop("signed_quote")
