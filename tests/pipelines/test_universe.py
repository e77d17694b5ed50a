"""Universe selection as SPEC section 3: exclusions, 30-day filters, score, tiers, new listings, point in time."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipelines.config import UniverseConfig
from pipelines.domain.candles import normalize_candles
from pipelines.universe import DAILY_STATS_SCHEMA, daily_stats, select_universe, universe_symbols

DAY = date(2026, 5, 1)


def _daily(
    symbol: str,
    *,
    quote_volume: float = 5e7,
    vol: float = 0.02,
    drift: float = 0.0,
    spread: float = 0.0005,
    listed_days: int = 60,
    trades: int | None = None,
) -> pl.DataFrame:
    """Daily stats ending the day before DAY: returns alternate drift +- vol (std ~ vol)."""
    rows, close = [], 100.0
    for i in range(listed_days):
        day = DAY - timedelta(days=listed_days - i)
        open_ = close
        close = close * (1 + drift + (vol if i % 2 else -vol))
        rows.append((symbol, day, open_, close, quote_volume, spread, 288))
    frame = pl.DataFrame(rows, schema=DAILY_STATS_SCHEMA, orient="row")
    if trades is not None:
        frame = frame.with_columns(pl.lit(trades, pl.Int64).alias("trade_count"))
    return frame


def _select(frames: list[pl.DataFrame], config: UniverseConfig | None = None, **kwargs: object) -> dict[str, dict]:
    daily = pl.concat(frames, how="diagonal_relaxed")
    candidates = daily["symbol"].unique(maintain_order=True).to_list()
    table = select_universe(daily, candidates, DAY, config or UniverseConfig(), **kwargs)  # type: ignore[arg-type]
    return {r["symbol"]: r for r in table.iter_rows(named=True)}


def test_each_filter_rejects_with_its_value_in_the_reason() -> None:
    rows = _select(
        [
            _daily("GOOD/USDT"),
            _daily("THIN/USDT", quote_volume=1e6),
            _daily("WILD/USDT", vol=0.08),
            _daily("CALM/USDT", vol=0.002),
            _daily("WIDE/USDT", spread=0.004),
            _daily("FEW/USDT", trades=10_000),
            _daily("MANY/USDT", trades=90_000),
        ]
    )
    assert rows["GOOD/USDT"]["tier"] == 2 and rows["GOOD/USDT"]["passed_filters"]
    assert rows["MANY/USDT"]["tier"] == 2  # trade counts exist and clear the bar
    assert rows["THIN/USDT"]["reasons"] == "rejected: avg daily quote volume 1e+06 < 5e+06 USDT"
    assert rows["WILD/USDT"]["tier"] is None and "daily volatility 8." in rows["WILD/USDT"]["reasons"]
    assert rows["CALM/USDT"]["tier"] is None and "outside [0.80%, 3.50%]" in rows["CALM/USDT"]["reasons"]
    assert rows["WIDE/USDT"]["reasons"] == "rejected: spread 0.400% (corwin_schultz) > 0.150%"
    assert rows["FEW/USDT"]["reasons"] == "rejected: avg 10000 trades a day < 50000"
    assert rows["GOOD/USDT"]["avg_daily_trades"] is None  # no trade counts: the filter does not apply
    assert rows["THIN/USDT"]["avg_quote_volume"] == pytest.approx(1e6)
    assert rows["THIN/USDT"]["score"] is None and rows["GOOD/USDT"]["score"] is not None


def test_book_spread_replaces_the_candle_estimate_where_present() -> None:
    book = pl.DataFrame(
        {"symbol": ["WIDE/USDT"] * 3, "day": [DAY - timedelta(days=d) for d in (1, 2, 3)], "spread": [0.0004] * 3}
    )
    rows = _select([_daily("WIDE/USDT", spread=0.004), _daily("OTHER/USDT", spread=0.004)], book_spreads=book)
    assert rows["WIDE/USDT"]["tier"] == 2 and rows["WIDE/USDT"]["spread_source"] == "book"
    assert rows["WIDE/USDT"]["spread"] == pytest.approx(0.0004)
    assert rows["OTHER/USDT"]["tier"] is None and rows["OTHER/USDT"]["spread_source"] == "corwin_schultz"


def test_score_weights_momentum_sharpe_and_liquidity_and_keeps_the_top_size() -> None:
    # UP leads momentum and sharpe, RICH only liquidity: 0.5 + 0.3 beats 0.2.
    rows = _select(
        [
            _daily("UP/USDT", drift=0.004, quote_volume=2e7),
            _daily("RICH/USDT", drift=-0.002, quote_volume=9e8),
            _daily("MID/USDT", drift=0.001, quote_volume=6e7),
        ],
        UniverseConfig(size=2),
    )
    scores = {s: r["score"] for s, r in rows.items()}
    assert scores["UP/USDT"] == pytest.approx(0.5 * 1 + 0.3 * 1 + 0.2 * 1 / 3)
    assert scores["RICH/USDT"] == pytest.approx(0.5 / 3 + 0.3 / 3 + 0.2 * 1)
    assert rows["UP/USDT"]["tier"] == 2 and rows["MID/USDT"]["tier"] == 2
    assert rows["RICH/USDT"]["reasons"] == "rejected: passes every filter but score rank 3 is beyond the top 2"


def test_majors_are_tier_one_whenever_listed_even_when_failing_filters_or_new() -> None:
    rows = _select([_daily("BTC/USDT", vol=0.06), _daily("ETH/USDT", listed_days=3), _daily("AAA/USDT")])
    assert rows["BTC/USDT"]["tier"] == 1 and "tier 1: major" in rows["BTC/USDT"]["reasons"]
    assert "daily volatility 6." in rows["BTC/USDT"]["reasons"]
    assert rows["ETH/USDT"]["tier"] == 1
    table = select_universe(_daily("BTC/USDT"), ["BTC/USDT", "SOL/USDT"], DAY, UniverseConfig())
    sol = table.filter(pl.col("symbol") == "SOL/USDT").row(0, named=True)
    assert sol["tier"] is None and sol["reasons"].startswith("rejected: no bars")


def test_new_listings_are_tier_three_by_recent_volume_at_most_three() -> None:
    rows = _select(
        [
            _daily("N1/USDT", listed_days=10, quote_volume=9e7),
            _daily("N2/USDT", listed_days=20, quote_volume=8e7),
            _daily("N3/USDT", listed_days=5, quote_volume=7e7),
            _daily("N4/USDT", listed_days=12, quote_volume=6e7),
            _daily("NQUIET/USDT", listed_days=12, quote_volume=1e6),
            _daily("OLD/USDT"),
        ]
    )
    assert [s for s, r in rows.items() if r["tier"] == 3] == ["N1/USDT", "N2/USDT", "N3/USDT"]
    assert rows["N1/USDT"]["reasons"] == "tier 3: new listing, listed 10 days, 7-day avg quote volume 9e+07 >= 2e+07"
    assert rows["N4/USDT"]["reasons"] == "rejected: new listing, listed 12 days, but tier 3 already holds 3"
    assert "7-day avg quote volume 1e+06 < 2e+07" in rows["NQUIET/USDT"]["reasons"]
    assert rows["OLD/USDT"]["tier"] == 2 and rows["N1/USDT"]["listed_days"] == 10


def test_stablecoins_fiat_and_leveraged_tokens_are_rejected_with_a_reason() -> None:
    rows = _select([_daily("USDC/USDT"), _daily("BTC/USDT"), _daily("BTCUP/USDT"), _daily("SYRUP/USDT")])
    assert rows["USDC/USDT"]["tier"] is None and "stablecoin" in rows["USDC/USDT"]["reasons"]
    assert rows["BTCUP/USDT"]["tier"] is None and "leveraged" in rows["BTCUP/USDT"]["reasons"]
    assert rows["SYRUP/USDT"]["tier"] == 2  # ends in "UP" but is no leveraged token


def test_universe_symbols_lists_the_tiered_ones() -> None:
    daily = pl.concat([_daily("BTC/USDT"), _daily("AAA/USDT"), _daily("ZZZ/USDT", quote_volume=10.0)])
    table = select_universe(daily, ["BTC/USDT", "AAA/USDT", "ZZZ/USDT"], DAY, UniverseConfig())
    assert universe_symbols(table) == ["BTC/USDT", "AAA/USDT"]


@settings(max_examples=25, deadline=None)
@given(
    later_days=st.integers(min_value=1, max_value=40),
    scale=st.floats(min_value=1e-3, max_value=1e6),
    extra_symbol=st.booleans(),
)
def test_point_in_time_later_data_never_changes_a_past_universe(
    later_days: int, scale: float, extra_symbol: bool
) -> None:
    base = pl.concat([_daily("BTC/USDT"), _daily("AAA/USDT", drift=0.002), _daily("BBB/USDT", quote_volume=2e7)])
    candidates = ["BTC/USDT", "AAA/USDT", "BBB/USDT", "CCC/USDT"]
    before = select_universe(base, candidates, DAY, UniverseConfig(size=1))
    # Later rows (on and after DAY) with any volume and price, even for a symbol unseen before.
    later_symbols = ["BBB/USDT", "CCC/USDT"] if extra_symbol else ["BBB/USDT"]
    later = pl.DataFrame(
        [
            (s, DAY + timedelta(days=d), 100.0, 100.0 * scale, 1e12 * scale, 0.0, 288)
            for s in later_symbols
            for d in range(later_days)
        ],
        schema=DAILY_STATS_SCHEMA,
        orient="row",
    )
    after = select_universe(pl.concat([base, later]), candidates, DAY, UniverseConfig(size=1))
    assert before.equals(after)


# ---- the shared 51-pair sample ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def sample_daily(shared_data: Path) -> pl.DataFrame:
    raw = pl.read_parquet(shared_data / "binance_spot_candles" / "binance_spot_5m_2024H1.parquet")
    return daily_stats(normalize_candles(raw, ts_column="open_time"))


@pytest.mark.realdata
def test_sample_universe_of_2024_04_01(sample_daily: pl.DataFrame) -> None:
    candidates = sorted(sample_daily["symbol"].unique().to_list())
    table = select_universe(sample_daily, candidates, date(2024, 4, 1), UniverseConfig())
    rows = {r["symbol"]: r for r in table.iter_rows(named=True)}
    assert len(rows) == 51 and all(r["reasons"] for r in rows.values())
    assert {s for s, r in rows.items() if r["tier"] == 1} == {"BTC/USDT", "ETH/USDT", "SOL/USDT", "XRP/USDT"}
    # WIF (listed 2024-03-05) and BOME (2024-03-16) are new listings with heavy volume: tier 3.
    for symbol, age in (("WIF/USDT", 27), ("BOME/USDT", 16)):
        assert rows[symbol]["tier"] == 3 and rows[symbol]["listed_days"] == age
        assert rows[symbol]["reasons"].startswith(f"tier 3: new listing, listed {age} days")
    # STRK (listed 2024-02-20) is 41 days old: a regular candidate, judged by the filters.
    assert rows["STRK/USDT"]["listed_days"] == 41 and "new listing" not in rows["STRK/USDT"]["reasons"]
    # The thinnest pairs fail the volume floor, and say so with their figure.
    for thin in ("BIFI/USDT", "PORTO/USDT", "VITE/USDT", "ASR/USDT", "SUN/USDT", "LAZIO/USDT"):
        assert rows[thin]["tier"] is None
        assert "avg daily quote volume" in rows[thin]["reasons"] and "< 5e+06 USDT" in rows[thin]["reasons"]
    assert rows["BTC/USDT"]["spread_source"] == "corwin_schultz" and rows["BTC/USDT"]["spread"] < 0.0015


@pytest.mark.realdata
def test_sample_universe_does_not_change_when_later_data_is_added(sample_daily: pl.DataFrame) -> None:
    candidates = sorted(sample_daily["symbol"].unique().to_list())
    day = date(2024, 4, 1)
    known_then = sample_daily.filter(pl.col("day") < day)
    assert select_universe(known_then, candidates, day, UniverseConfig()).equals(
        select_universe(sample_daily, candidates, day, UniverseConfig())
    )


def test_thresholds_are_validated_configuration() -> None:
    from pipelines.config import load_settings
    from pipelines.errors import ConfigError

    settings = load_settings({"ALPHATIDE_UNIVERSE__MIN_QUOTE_VOLUME": '{"USDT": 1e7, "KRW": 5e9}'})
    assert settings.universe.min_quote_volume["USDT"] == 1e7
    with pytest.raises(ConfigError, match="min_quote_volume has no figure for quote 'EUR'"):
        load_settings({"ALPHATIDE_UNIVERSE__QUOTE": "EUR"})
    with pytest.raises(ConfigError, match="must be 1"):
        load_settings({"ALPHATIDE_UNIVERSE__WEIGHT_MOMENTUM": "0.6"})
    with pytest.raises(ConfigError, match="min_daily_volatility must be below"):
        load_settings({"ALPHATIDE_UNIVERSE__MIN_DAILY_VOLATILITY": "0.05"})
