"""The data-validation gate (SPEC section 4) as Great Expectations suites.

`validate_candles` runs the candle suite on each symbol's batch (GX takes pandas; we convert at this
boundary) and returns a report naming, for every failed rule, the rows that broke it:
- low <= open, close <= high; prices > 0; volume >= 0; unique, strictly increasing timestamps;
- with a `timeframe`: bar spacing equals the timeframe except across a recorded venue outage
  (`Lake.venue_outages`), checked on a derived column `bar_spacing_s` (seconds since the previous bar);
- no price jump beyond `jump_sigmas` x the recent volatility (std of log returns over the previous
  `jump_window_bars` bars) on a bar whose volume is below `jump_volume_fraction` of their mean volume
  (derived column `jump_without_volume`).
`validate_book` checks book data (best bid/ask per snapshot): spread < `max_spread_pct`, bid > 0.
The nightly stage quarantines a failing batch and stops the chain; nothing downstream runs on it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import polars as pl

from pipelines.config import ValidationConfig
from pipelines.domain.candles import timeframe_delta

SUITE_NAME = "candles_ohlcv"
BOOK_SUITE_NAME = "book_top"
SPACING_RULE = "bar spacing equals the timeframe except recorded venue outages"
JUMP_RULE = "no price jump beyond the configured multiple of recent volatility without volume"


@dataclass(frozen=True)
class RuleFailure:
    symbol: str
    rule: str
    column: str
    rows: list[dict[str, Any]]  # offending rows (symbol, ts and the checked values), at most 20
    count: int
    description: str = ""  # the SPEC rule in words, for the derived-column checks


@dataclass(frozen=True)
class ValidationReport:
    rows: int
    symbols: int
    failures: list[RuleFailure] = field(default_factory=list)
    suite: str = SUITE_NAME

    @property
    def success(self) -> bool:
        return not self.failures

    def summary(self) -> str:
        """One line per failed rule: symbol, rule, column, how many rows, and the first rows themselves."""
        if self.success:
            return f"{self.rows} rows of {self.symbols} symbols passed {self.suite}"
        parts = [
            f"{f.symbol}: {f.rule} ({f.column}) failed on {f.count} row(s)"
            + (f", e.g. {'; '.join(_row_text(r) for r in f.rows[:2])}" if f.rows else "")
            for f in self.failures
        ]
        return f"{len(self.failures)} rule failure(s): " + " | ".join(parts)

    def to_dict(self) -> dict[str, Any]:
        return {
            "suite": self.suite,
            "success": self.success,
            "rows": self.rows,
            "symbols": self.symbols,
            "failures": [f.__dict__ for f in self.failures],
        }


SHOWN_COLUMNS = ("open", "high", "low", "close", "volume", "bar_spacing_s", "bid", "ask", "spread")


def _row_text(row: dict[str, Any]) -> str:
    values = ", ".join(f"{k}={row[k]:.8g}" for k in SHOWN_COLUMNS if isinstance(row.get(k), int | float))
    return f"ts={row.get('ts')} ({values})"


def _suite(step_s: float | None, max_spread_pct: float | None = None) -> Any:
    import great_expectations as gx

    e = gx.expectations
    if max_spread_pct is not None:  # book suite
        return gx.ExpectationSuite(
            name=BOOK_SUITE_NAME,
            expectations=[
                e.ExpectColumnValuesToNotBeNull(column="spread"),
                e.ExpectColumnValuesToBeBetween(
                    column="spread", max_value=max_spread_pct, strict_max=True, meta={"rule": "spread < max"}
                ),
                e.ExpectColumnValuesToBeBetween(column="bid", min_value=0, strict_min=True),
            ],
        )
    expectations = [
        e.ExpectColumnValuesToNotBeNull(column="ts"),
        *(e.ExpectColumnValuesToNotBeNull(column=c) for c in ("open", "high", "low", "close", "volume")),
        *(
            e.ExpectColumnValuesToBeBetween(column=c, min_value=0, strict_min=True)
            for c in ("open", "high", "low", "close")
        ),
        e.ExpectColumnValuesToBeBetween(column="volume", min_value=0),
        e.ExpectColumnPairValuesAToBeGreaterThanB(column_A="high", column_B="low", or_equal=True),
        e.ExpectColumnPairValuesAToBeGreaterThanB(column_A="high", column_B="open", or_equal=True),
        e.ExpectColumnPairValuesAToBeGreaterThanB(column_A="high", column_B="close", or_equal=True),
        e.ExpectColumnPairValuesAToBeGreaterThanB(column_A="open", column_B="low", or_equal=True),
        e.ExpectColumnPairValuesAToBeGreaterThanB(column_A="close", column_B="low", or_equal=True),
        e.ExpectColumnValuesToBeUnique(column="ts"),
        e.ExpectColumnValuesToBeIncreasing(column="ts", strictly=True),
    ]
    if step_s is not None:
        expectations += [
            e.ExpectColumnValuesToBeBetween(
                column="bar_spacing_s", min_value=step_s, max_value=step_s, meta={"rule": SPACING_RULE}
            ),
            e.ExpectColumnValuesToBeInSet(column="jump_without_volume", value_set=[False], meta={"rule": JUMP_RULE}),
        ]
    return gx.ExpectationSuite(name=SUITE_NAME, expectations=expectations)


def _context() -> Any:
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    return context


def _excused(symbol_outages: list[tuple[datetime, datetime]], prev: datetime, ts: datetime, step: Any) -> bool:
    """True when every bar missing between `prev` and `ts` lies in one recorded venue outage."""
    return any(start <= prev + step and ts <= end for start, end in symbol_outages)


def with_derived_columns(
    candles: pl.DataFrame, timeframe: str, outages: pl.DataFrame | None, config: ValidationConfig
) -> pl.DataFrame:
    """Add `bar_spacing_s` and `jump_without_volume` (per symbol, in the given row order).

    `bar_spacing_s` is the seconds since the previous bar; the first bar of a symbol and a gap covered by
    a recorded venue outage count as one bar length, since neither is a fault of the data.
    """
    step = timeframe_delta(timeframe)
    step_s = step.total_seconds()
    log_ret = (pl.col("close") / pl.col("close").shift(1)).log().over("symbol")
    window = config.jump_window_bars
    min_periods = max(window // 4, 2)
    sigma = log_ret.shift(1).rolling_std(window, min_samples=min_periods).over("symbol")
    mean_volume = pl.col("volume").shift(1).rolling_mean(window, min_samples=min_periods).over("symbol")
    out = candles.with_columns(
        ((pl.col("ts") - pl.col("ts").shift(1)).dt.total_microseconds() / 1e6).over("symbol").alias("bar_spacing_s"),
        pl.col("ts").shift(1).over("symbol").alias("_prev_ts"),
        ((log_ret.abs() > config.jump_sigmas * sigma) & (pl.col("volume") < config.jump_volume_fraction * mean_volume))
        .fill_null(False)
        .alias("jump_without_volume"),
    ).with_columns(pl.col("bar_spacing_s").fill_null(step_s))
    if outages is not None and not outages.is_empty():
        by_symbol: dict[str, list[tuple[datetime, datetime]]] = {}
        for row in outages.iter_rows(named=True):
            by_symbol.setdefault(str(row["symbol"]), []).append((row["start"], row["end"]))
        gaps = out.with_row_index("_i").filter(pl.col("bar_spacing_s") > step_s)
        excused = [
            r["_i"]
            for r in gaps.iter_rows(named=True)
            if _excused(by_symbol.get(str(r["symbol"]), []), r["_prev_ts"], r["ts"], step)
        ]
        if excused:
            out = (
                out.with_row_index("_i")
                .with_columns(
                    pl.when(pl.col("_i").is_in(excused))
                    .then(pl.lit(step_s))
                    .otherwise(pl.col("bar_spacing_s"))
                    .alias("bar_spacing_s")
                )
                .drop("_i")
            )
    return out.drop("_prev_ts")


def _run_suite(frame_pl: pl.DataFrame, suite: Any, group: str = "symbol") -> list[RuleFailure]:
    context = _context()
    batch_definition = (
        context.data_sources.add_pandas("lake").add_dataframe_asset("batch").add_batch_definition_whole_dataframe("all")
    )
    suite = context.suites.add(suite)
    failures: list[RuleFailure] = []
    for (symbol,), part in frame_pl.group_by(group, maintain_order=True):
        frame = part.to_pandas()
        result = batch_definition.get_batch(batch_parameters={"dataframe": frame}).validate(
            suite, result_format="COMPLETE"
        )
        for outcome in result.results:
            if outcome.success:
                continue
            config = outcome.expectation_config
            kwargs = config.kwargs
            column = kwargs.get("column") or f"{kwargs.get('column_A')} >= {kwargs.get('column_B')}"
            index = outcome.result.get("unexpected_index_list") or []
            shown = frame.iloc[[i for i in index[:20] if isinstance(i, int)]] if index else frame.iloc[0:0]
            failures.append(
                RuleFailure(
                    symbol=str(symbol),
                    rule=config.type,
                    column=str(column),
                    rows=[
                        {k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in row.items()}
                        for row in shown.to_dict(orient="records")
                    ],
                    count=int(outcome.result.get("unexpected_count") or len(index)),
                    description=str((config.meta or {}).get("rule", "")),
                )
            )
    return failures


def validate_candles(
    candles: pl.DataFrame,
    *,
    timeframe: str | None = None,
    outages: pl.DataFrame | None = None,
    config: ValidationConfig | None = None,
) -> ValidationReport:
    """Run the candle suite per symbol, in the order the rows were given (order is what is checked).

    Without `timeframe` only the per-bar rules run; with it, bar spacing (excusing recorded venue
    `outages`, rows of `GAPS_SCHEMA`) and jumps without volume are checked too.
    """
    config = config or ValidationConfig()
    step_s = timeframe_delta(timeframe).total_seconds() if timeframe else None
    frame = with_derived_columns(candles, timeframe, outages, config) if timeframe else candles
    failures = _run_suite(frame, _suite(step_s))
    return ValidationReport(rows=len(candles), symbols=candles["symbol"].n_unique(), failures=failures)


def validate_book(book_top: pl.DataFrame, config: ValidationConfig | None = None) -> ValidationReport:
    """Book data (symbol, ts, bid, ask, spread as from `Lake.book_top`): spread < max, bid > 0."""
    config = config or ValidationConfig()
    failures = _run_suite(book_top, _suite(None, config.max_spread_pct))
    return ValidationReport(
        rows=len(book_top), symbols=book_top["symbol"].n_unique(), failures=failures, suite=BOOK_SUITE_NAME
    )


def merge_reports(first: ValidationReport, *others: ValidationReport) -> ValidationReport:
    """One report for a batch checked by several suites (candles, then book data)."""
    failures = list(first.failures)
    for other in others:
        failures += other.failures
    return ValidationReport(rows=first.rows, symbols=first.symbols, failures=failures, suite=first.suite)
