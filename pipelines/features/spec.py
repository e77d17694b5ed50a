"""The one definition of every feature (SPEC section 5): names, parameters, units, and what each needs.

Both implementations read this module: `pipelines.features.batch` (polars, history) and
`pipelines.features.incremental` (per-event state, live stream). Parameters live in `FeatureParams`;
nothing in either implementation repeats a window length or a constant.

Conventions shared by every feature:

- Time is UTC. Bars are labelled by their open time ``ts``; a bar's values become known at its close,
  ``event_ts = ts + timeframe``. Windows "in bars" end at (and include) the bar being closed.
- A value at time ``t`` uses only data with an exchange time strictly before ``t`` (the bar ``[ts, t)``
  and earlier). Time windows of length ``w`` cover ``[t - w, t)``.
- Missing inputs give null (no book in a candle backfill, a window not yet fully observed since the feed
  started, a ratio whose denominator is 0). Never NaN or inf, never 0 standing in for "unknown".
- Feature names are the SPEC's names; they describe the default parameters (``rsi_14`` is RSI over
  `FeatureParams.rsi_period` bars, 14 by default).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Literal

from pipelines.domain.candles import TIMEFRAME_SECONDS

Group = Literal["trend", "flow", "regime", "micro", "window"]
Source = Literal["candles", "trades", "book", "liquidations"]

# time_regime codes (a categorical encoded as Float64 so the frame is all-numeric for CatBoost/Feast).
SESSION_ASIA = 0.0
SESSION_EUROPE = 1.0
SESSION_US = 2.0

US_PER_S = 1_000_000

# Order-flow imbalance columns and the book depth (levels 1..d) each sums over.
OFI_LEVELS: tuple[tuple[str, int], ...] = (("ofi_l1", 1), ("ofi_l5", 5), ("ofi_l10", 10))


@dataclass(frozen=True, slots=True)
class FeatureParams:
    """Every number the features use. Frozen and validated: a bad value fails at construction.

    Bar windows are counts of bars; ``*_s`` windows are seconds of exchange time.
    """

    # Trend / TA (bars)
    rsi_period: int = 14
    roc_short: int = 1
    roc_long: int = 5
    bb_period: int = 20
    bb_sigmas: float = 2.0
    atr_period: int = 14
    adx_period: int = 14
    mfi_period: int = 14
    # Typical prices (h + l + c) / 3 of equal bars can differ in the last bit depending on the order of
    # the additions; a change below this fraction of the price is a tie (no money flow), as in TA-Lib.
    mfi_tie_rel: float = 1e-12
    obv_slope_window: int = 20
    # Regime (bars)
    regime_fast: int = 20
    regime_slow: int = 60
    # |SMA fast - SMA slow| below this fraction of SMA slow counts as equal: floating-point noise must
    # not flip the sign (batch and stream sum in different orders).
    trend_dead_band: float = 1e-9
    # Session start hours (UTC) and their codes, ascending; a session lasts until the next start.
    sessions: tuple[tuple[int, float], ...] = (
        (0, SESSION_ASIA),
        (8, SESSION_EUROPE),
        (13, SESSION_US),
        (22, SESSION_ASIA),  # Sydney/Tokyo open before midnight UTC
    )
    # Microstructure (bars)
    hurst_window: int = 128  # log closes; SPEC asks for 100+ prices
    hurst_lags: tuple[int, ...] = (1, 2, 4, 8, 16)
    kyle_window: int = 20
    # Flow / book (seconds of exchange time)
    cumdelta_window_s: int = 300
    cancel_window_s: int = 60
    vw_momentum_window_s: int = 60
    ofi_window_s: int = 60
    aggressor_windows_s: tuple[int, int, int] = (30, 60, 120)
    liquidation_window_s: int = 300
    book_levels: int = 10  # lob_depth_imbalance, ofi_l10 and the cancel-rate band
    book_stale_s: float = 3.0  # a book whose last update is older than this is not trusted (SPEC 2)
    # VPIN: bucket size in quote currency (per symbol override, else the default) and buckets averaged.
    vpin_bucket_quote: float = 100_000.0
    vpin_bucket_quote_by_symbol: tuple[tuple[str, float], ...] = ()
    vpin_buckets: int = 50
    # Window markets (5-minute up/down): window length in seconds.
    window_market_s: int = 300
    _bucket_map: dict[str, float] = field(init=False, repr=False, compare=False, hash=False)

    def __post_init__(self) -> None:
        positive_ints = {
            "rsi_period": self.rsi_period,
            "roc_short": self.roc_short,
            "roc_long": self.roc_long,
            "bb_period": self.bb_period,
            "atr_period": self.atr_period,
            "adx_period": self.adx_period,
            "mfi_period": self.mfi_period,
            "regime_fast": self.regime_fast,
            "kyle_window": self.kyle_window,
            "cumdelta_window_s": self.cumdelta_window_s,
            "cancel_window_s": self.cancel_window_s,
            "vw_momentum_window_s": self.vw_momentum_window_s,
            "ofi_window_s": self.ofi_window_s,
            "liquidation_window_s": self.liquidation_window_s,
            "book_levels": self.book_levels,
            "vpin_buckets": self.vpin_buckets,
            "window_market_s": self.window_market_s,
        }
        for name, value in positive_ints.items():
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"FeatureParams.{name} must be an int >= 1, got {value!r}")
        if self.adx_period < 2 or self.obv_slope_window < 2 or self.kyle_window < 2:
            raise ValueError("adx_period, obv_slope_window and kyle_window must be >= 2")
        if self.regime_slow <= self.regime_fast:
            raise ValueError("regime_slow must exceed regime_fast")
        if not (self.bb_sigmas > 0 and math.isfinite(self.bb_sigmas)):
            raise ValueError("bb_sigmas must be a positive number")
        if not 0 <= self.trend_dead_band < 1e-3 or not 0 <= self.mfi_tie_rel < 1e-3:
            raise ValueError("trend_dead_band and mfi_tie_rel must be in [0, 1e-3)")
        lags = self.hurst_lags
        if len(set(lags)) < 2 or list(lags) != sorted(set(lags)) or lags[0] < 1:
            raise ValueError("hurst_lags must be >= 2 distinct ascending positive ints")
        if self.hurst_window < 100 or lags[-1] > self.hurst_window - 2:
            raise ValueError("hurst_window must be >= 100 and leave >= 2 differences at the largest lag")
        if len(self.aggressor_windows_s) != 3 or any(w < 1 for w in self.aggressor_windows_s):
            raise ValueError("aggressor_windows_s must be three positive second counts (30/60/120 names)")
        if self.book_levels < OFI_LEVELS[-1][1]:
            raise ValueError(f"book_levels must be >= {OFI_LEVELS[-1][1]} (ofi_l10, lob_depth_imbalance)")
        if not (self.book_stale_s > 0 and math.isfinite(self.book_stale_s)):
            raise ValueError("book_stale_s must be positive")
        hours = [h for h, _ in self.sessions]
        if not self.sessions or hours[0] != 0 or hours != sorted(set(hours)) or hours[-1] > 23:
            raise ValueError("sessions must start at hour 0 with strictly ascending hours < 24")
        buckets = dict(self.vpin_bucket_quote_by_symbol)
        if not all(v > 0 and math.isfinite(v) for v in (self.vpin_bucket_quote, *buckets.values())):
            raise ValueError("VPIN bucket sizes must be positive quote amounts")
        object.__setattr__(self, "_bucket_map", buckets)

    def vpin_bucket_for(self, symbol: str) -> float:
        """VPIN bucket size (quote currency) for ``symbol``."""
        return self._bucket_map.get(symbol, self.vpin_bucket_quote)

    def session_code(self, hour: int) -> float:
        """time_regime code of a UTC hour (0-23)."""
        code = self.sessions[0][1]
        for start, value in self.sessions:
            if hour >= start:
                code = value
        return code

    def hurst_weights(self) -> tuple[float, ...]:
        """Least-squares slope weights over log(lag): H = sum(w_L * ln(std of lag-L differences)).

        The weights sum to zero, so the slope does not depend on the level of the log-stds.
        """
        logs = [math.log(lag) for lag in self.hurst_lags]
        mean = sum(logs) / len(logs)
        sxx = sum((u - mean) ** 2 for u in logs)
        return tuple((u - mean) / sxx for u in logs)

    def obv_slope_weights(self) -> tuple[float, ...]:
        """Weights turning the last N-1 signed volumes into the least-squares slope of OBV over N bars.

        With OBV_p = OBV_0 + sum_{m<=p} s_m over window positions p = 0..N-1, the slope
        sum_p (p - c) OBV_p / Sxx equals sum_m s_m * m (N - m) / 2 / Sxx: it does not depend on OBV_0, so it
        needs no running cumulative (which would lose precision over months). Oldest first.
        """
        n = self.obv_slope_window
        sxx = n * (n * n - 1) / 12.0
        return tuple(m * (n - m) / 2.0 / sxx for m in range(1, n))


DEFAULT_PARAMS = FeatureParams()


@dataclass(frozen=True, slots=True)
class FeatureSpec:
    """One feature: its name, group, the input it needs, whether it is in the core 20, unit and meaning."""

    name: str
    group: Group
    source: Source
    core: bool
    unit: str
    doc: str


FEATURES: tuple[FeatureSpec, ...] = (
    # ---- core 20: trend / TA (candles) ----
    FeatureSpec("rsi_14", "trend", "candles", True, "0-100", "RSI, Wilder smoothing seeded as TA-Lib"),
    FeatureSpec("roc_1", "trend", "candles", True, "fraction", "close / close 1 bar ago - 1"),
    FeatureSpec("roc_5", "trend", "candles", True, "fraction", "close / close 5 bars ago - 1"),
    FeatureSpec("bb_width", "trend", "candles", True, "fraction", "(upper - lower) / middle, 20 bars 2 sigma"),
    FeatureSpec("atr_pct", "trend", "candles", True, "fraction", "Wilder ATR 14 / close"),
    FeatureSpec("adx_14", "trend", "candles", True, "0-100", "ADX 14 as TA-Lib"),
    FeatureSpec("mfi_14", "trend", "candles", True, "0-100", "money flow index 14"),
    FeatureSpec(
        "obv_slope",
        "trend",
        "candles",
        True,
        "1/bar",
        "least-squares slope of OBV over 20 bars / mean volume of those bars",
    ),
    # ---- core 20: order flow / book (trades, book) ----
    FeatureSpec("spread_pct", "flow", "book", True, "fraction", "(ask1 - bid1) / mid"),
    FeatureSpec("bid_ask_imbalance", "flow", "book", True, "-1..1", "(bid1 qty - ask1 qty) / sum"),
    FeatureSpec("lob_depth_imbalance", "flow", "book", True, "-1..1", "(bid - ask qty) / sum over levels 1-10"),
    FeatureSpec("microprice_dev", "flow", "book", True, "fraction", "(microprice - mid) / mid"),
    FeatureSpec(
        "cumdelta_5m",
        "flow",
        "trades",
        True,
        "quote",
        "aggressive buy minus sell quote volume over the last 300 s",
    ),
    FeatureSpec(
        "cancel_rate_1m",
        "flow",
        "book",
        True,
        "ratio",
        "book quantity removed / added within the top 10 levels over the last 60 s",
    ),
    FeatureSpec(
        "vw_momentum_1m",
        "flow",
        "trades",
        True,
        "fraction",
        "sum(tick return * qty) / sum(qty) over trades of the last 60 s",
    ),
    FeatureSpec(
        "ofi_l1",
        "flow",
        "book",
        True,
        "fraction",
        "order-flow imbalance at level 1 over the last 60 s / current level-1 depth",
    ),
    # ---- core 20: regime (candles) ----
    FeatureSpec("vol_regime", "regime", "candles", True, "ratio", "Wilder ATR 20 / ATR 60"),
    FeatureSpec("trend_regime", "regime", "candles", True, "-1,0,1", "sign(SMA 20 - SMA 60)"),
    FeatureSpec("volume_regime", "regime", "candles", True, "ratio", "mean volume 20 / mean volume 60"),
    FeatureSpec(
        "time_regime",
        "regime",
        "candles",
        True,
        "code",
        "session of the bar's open hour: 0 Asia, 1 Europe, 2 US (FeatureParams.sessions)",
    ),
    # ---- microstructure extras ----
    FeatureSpec(
        "vpin",
        "micro",
        "trades",
        False,
        "0-1",
        "mean |buy - sell| / bucket volume over the last 50 completed quote-volume buckets",
    ),
    FeatureSpec(
        "kyle_lambda",
        "micro",
        "trades",
        False,
        "1/quote",
        "cov(bar return, bar signed quote volume) / var(signed volume) over 20 bars",
    ),
    FeatureSpec(
        "hurst",
        "micro",
        "candles",
        False,
        "exponent",
        "slope of ln std(lag-L log-price differences) on ln L over the last 128 closes",
    ),
    FeatureSpec("ofi_l5", "micro", "book", False, "fraction", "multi-level OFI, levels 1-5, 60 s / depth 1-5"),
    FeatureSpec("ofi_l10", "micro", "book", False, "fraction", "multi-level OFI, levels 1-10, 60 s / depth 1-10"),
    FeatureSpec("aggressor_ratio_30s", "micro", "trades", False, "0-1", "buy / total quote volume, 30 s"),
    FeatureSpec("aggressor_ratio_60s", "micro", "trades", False, "0-1", "buy / total quote volume, 60 s"),
    FeatureSpec("aggressor_ratio_120s", "micro", "trades", False, "0-1", "buy / total quote volume, 120 s"),
    FeatureSpec(
        "liquidation_imbalance",
        "micro",
        "liquidations",
        False,
        "-1..1",
        "(forced buy - forced sell) / total liquidation quote volume over 300 s (perpetuals)",
    ),
    # ---- window-market extras (5-minute up/down) ----
    FeatureSpec(
        "price_vs_open", "window", "candles", False, "fraction", "close / open of the current 5-minute window - 1"
    ),
    FeatureSpec("time_decay", "window", "candles", False, "0-1", "seconds left in the 5-minute window / 300"),
)

FEATURE_COLUMNS: tuple[str, ...] = tuple(f.name for f in FEATURES)
CORE_FEATURES: tuple[str, ...] = tuple(f.name for f in FEATURES if f.core)
CANDLE_FEATURES: tuple[str, ...] = tuple(f.name for f in FEATURES if f.source == "candles")
TRADE_FEATURES: tuple[str, ...] = tuple(f.name for f in FEATURES if f.source == "trades")
BOOK_FEATURES: tuple[str, ...] = tuple(f.name for f in FEATURES if f.source == "book")
LIQUIDATION_FEATURES: tuple[str, ...] = tuple(f.name for f in FEATURES if f.source == "liquidations")
AGGRESSOR_COLUMNS: tuple[str, str, str] = ("aggressor_ratio_30s", "aggressor_ratio_60s", "aggressor_ratio_120s")

_TIMEFRAME = re.compile(r"^(\d+)([smhd])$")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86_400}


def timeframe_us(timeframe: str) -> int:
    """Bar length in microseconds of a ccxt-style timeframe ("5m", "1h"; also "5s" for tick bars)."""
    if timeframe in TIMEFRAME_SECONDS:
        return TIMEFRAME_SECONDS[timeframe] * US_PER_S
    match = _TIMEFRAME.match(timeframe)
    if not match or int(match.group(1)) == 0:
        raise ValueError(f"unknown timeframe {timeframe!r}: expected <n>s, <n>m, <n>h or <n>d")
    return int(match.group(1)) * _UNIT_S[match.group(2)] * US_PER_S


def window_market_applies(bar_us: int, params: FeatureParams = DEFAULT_PARAMS) -> bool:
    """price_vs_open/time_decay are defined only for bars that tile the window market's window."""
    window_us = params.window_market_s * US_PER_S
    return bar_us <= window_us and window_us % bar_us == 0


assert len(FEATURE_COLUMNS) == len(set(FEATURE_COLUMNS)), "duplicate feature name"
assert len(CORE_FEATURES) == 20, "SPEC section 5 has 20 core features"
