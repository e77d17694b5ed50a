"""Market data of any ccxt exchange through ccxt REST (the real client; tests point its URLs at local fakes).

Candles, trades with the aggressor side, order-book snapshots and market metadata (tick, lot, min
notional, fees) from `load_markets`. Every call goes through ccxt's own rate limiter
(`enableRateLimit`) and, on a rate-limit answer (HTTP 429/418, ccxt `RateLimitExceeded`/`DDoSProtection`
or any error saying "too many requests") or a network error, backs off exponentially before retrying:
never hammer a venue after an error.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import ccxt
import polars as pl

from pipelines.domain.candles import empty_candles, normalize_candles, timeframe_delta
from pipelines.errors import OperatorError, SourceUnavailableError
from pipelines.lake import BOOK_SNAPSHOT_SCHEMA, MARKETS_SCHEMA, TRADES_SCHEMA
from pipelines.sources.base import is_excluded_base

# Largest page each venue's klines endpoint returns (a venue fact, like ccxt's own tables).
OHLCV_PAGE_LIMITS = {"binance": 1000, "binanceusdm": 1500, "binancecoinm": 1500, "upbit": 200}
TRADES_PAGE_LIMITS = {"binance": 1000, "binanceusdm": 1000, "binancecoinm": 1000, "upbit": 500}
DEFAULT_PAGE_LIMIT = 500
# Venues whose public trades endpoint can seek by time (ccxt `since` + `until`). Others only serve the most
# recent trades, so a trades backfill there keeps whatever is newer than the watermark.
TIME_SEEKABLE_TRADES = frozenset({"binance", "binanceusdm", "binancecoinm"})

_SEEK_WINDOW_MS = 3_600_000
_RATE_LIMITED = (ccxt.RateLimitExceeded, ccxt.DDoSProtection)


def _is_rate_limit_message(exc: Exception) -> bool:
    text = str(exc).lower()
    return "too many requests" in text or "too_many_requests" in text or " 429 " in f" {text} "


class CcxtCandleSource:
    """Any ccxt exchange id; Binance by default. Respects ccxt's rate limiter and backs off on errors.

    `urls` overrides the venue's API addresses (a local fake venue in tests). `sleep` and `clock` are
    injectable so tests observe the backoff and fix "now".
    """

    name = "ccxt"

    def __init__(
        self,
        venue: str = "binance",
        *,
        timeout_s: float = 10.0,
        urls: dict[str, Any] | None = None,
        max_retries: int = 5,
        backoff_s: float = 1.0,
        max_backoff_s: float = 60.0,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ):
        try:
            exchange_class = getattr(ccxt, venue)
        except AttributeError:
            raise OperatorError(f"unknown ccxt exchange id {venue!r}") from None
        options: dict[str, Any] = {"defaultType": "spot"}
        if venue == "binance":
            options["fetchMarkets"] = {"types": ["spot"]}
        self.exchange = exchange_class({"enableRateLimit": True, "timeout": int(timeout_s * 1000), "options": options})
        if urls:
            self.exchange.urls["api"] = {**self.exchange.urls["api"], **urls}
        self.venue = venue
        self.name = venue
        self._max_retries = max_retries
        self._backoff_s = backoff_s
        self._max_backoff_s = max_backoff_s
        self._sleep = sleep
        self._clock = clock
        self.ohlcv_page_limit = OHLCV_PAGE_LIMITS.get(venue, DEFAULT_PAGE_LIMIT)
        self.trades_page_limit = TRADES_PAGE_LIMITS.get(venue, DEFAULT_PAGE_LIMIT)

    # ---- calls ---------------------------------------------------------------------------------
    def _call(self, what: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Call ccxt, backing off exponentially (capped) on rate limits and network errors.

        Raises `SourceUnavailableError` (retryable) once the retries are spent, `OperatorError` when the
        venue refuses the request for any other reason.
        """
        delay = self._backoff_s
        for attempt in range(self._max_retries + 1):
            try:
                return fn(*args, **kwargs)
            except (*_RATE_LIMITED, ccxt.NetworkError, ccxt.ExchangeError) as exc:
                transient = isinstance(exc, (*_RATE_LIMITED, ccxt.NetworkError)) or _is_rate_limit_message(exc)
                if not transient:
                    raise OperatorError(f"{self.venue} {what} refused: {exc}") from exc
                if attempt == self._max_retries:
                    raise SourceUnavailableError(f"{self.venue} {what}: {type(exc).__name__}: {exc}") from exc
                self._sleep(delay)
                delay = min(delay * 2, self._max_backoff_s)
        raise AssertionError("unreachable")

    def _markets(self) -> dict[str, Any]:
        return self._call("load_markets", self.exchange.load_markets)  # type: ignore[no-any-return]

    def as_of(self) -> datetime:
        return self._clock()

    def list_symbols(self, quote: str) -> list[str]:
        markets = self._markets()
        spot = [m for m in markets.values() if m.get("spot") and m.get("active", True) and m.get("quote") == quote]
        bases = {m["base"] for m in spot}
        return sorted(m["symbol"] for m in spot if not is_excluded_base(m["base"], bases))

    # ---- candles -------------------------------------------------------------------------------
    def fetch_candles(self, symbols: list[str], timeframe: str, start: datetime, end: datetime) -> pl.DataFrame:
        """Closed bars with open time in [start, end), paged forward from `start`.

        A page with nothing at or after the cursor (a hole in the venue's data, or a venue that pages
        backwards from an end time like Upbit) moves the cursor one page length on, so a hole never ends
        the walk early; the bars after it are still fetched.
        """
        step_ms = int(timeframe_delta(timeframe).total_seconds() * 1000)
        end_ms = int(end.timestamp() * 1000)
        now_ms = int(self._clock().timestamp() * 1000)
        limit = self.ohlcv_page_limit
        self._markets()
        rows: list[tuple[str, int, float, float, float, float, float]] = []
        for symbol in symbols:
            since = int(start.timestamp() * 1000)
            while since < min(end_ms, now_ms):
                page = self._call(f"fetch_ohlcv {symbol}", self.exchange.fetch_ohlcv, symbol, timeframe, since, limit)
                fresh = [bar for bar in page if int(bar[0]) >= since]
                if not fresh:
                    since += limit * step_ms
                    continue
                for t, o, h, low, c, v in fresh:
                    # Only closed bars inside the window: the bar still forming changes until it closes.
                    if int(t) < end_ms and int(t) + step_ms <= now_ms:
                        rows.append((symbol, int(t), float(o), float(h), float(low), float(c), float(v or 0.0)))
                since = max(int(bar[0]) for bar in fresh) + step_ms
        if not rows:
            return empty_candles()
        frame = pl.DataFrame(
            rows, schema=["symbol", "ts", "open", "high", "low", "close", "volume"], orient="row"
        # Exact copies (a page boundary the venue repeats) go; the same bar sent twice with different values
        # stays, so validation fails on it and names both rows instead of one being kept silently.
        ).unique(maintain_order=True)
        return normalize_candles(frame)

    # ---- trades --------------------------------------------------------------------------------
    def fetch_trades(self, symbol: str, start: datetime, end: datetime) -> pl.DataFrame:
        """Public trades with exchange time in [start, end), with the aggressor (taker) side.

        On venues that seek by time the window is paged forward; elsewhere only the venue's most recent
        trades are available and those inside the window are kept. Rows follow `TRADES_SCHEMA`
        (`recv_ts` is null: REST trades have no receive time worth keeping).
        """
        self._markets()
        start_ms, end_ms = int(start.timestamp() * 1000), int(end.timestamp() * 1000)
        limit = self.trades_page_limit
        collected: dict[str, dict[str, Any]] = {}
        if self.venue in TIME_SEEKABLE_TRADES:
            since = start_ms
            while since < end_ms:
                # Binance refuses aggTrades windows longer than an hour.
                until = min(end_ms, since + _SEEK_WINDOW_MS)
                page = self._call(
                    f"fetch_trades {symbol}",
                    self.exchange.fetch_trades,
                    symbol,
                    since,
                    limit,
                    {"until": until},
                )
                inside = [t for t in page if since <= int(t["timestamp"]) < until]
                for t in inside:
                    collected[str(t["id"])] = t
                if len(page) < limit or not inside:
                    since = until
                    continue
                last = max(int(t["timestamp"]) for t in inside)
                # Resume at the last millisecond seen (its other trades may be on the next page; ids dedupe),
                # but always move on so a page full of one millisecond cannot loop forever.
                since = last if last > since else last + 1
        else:
            page = self._call(f"fetch_trades {symbol}", self.exchange.fetch_trades, symbol, None, limit)
            for t in page:
                if start_ms <= int(t["timestamp"]) < end_ms:
                    collected[str(t["id"])] = t
        trades = sorted(collected.values(), key=lambda t: (int(t["timestamp"]), str(t["id"])))
        frame = pl.DataFrame(
            {
                "venue": [self.venue] * len(trades),
                "symbol": [symbol] * len(trades),
                "ts": pl.Series([int(t["timestamp"]) * 1000 for t in trades], dtype=pl.Int64),
                "price": [float(t["price"]) for t in trades],
                "qty": [float(t["amount"]) for t in trades],
                "aggressor_side": [t.get("side") for t in trades],
                "trade_id": [str(t["id"]) for t in trades],
                "recv_ts": pl.Series([None] * len(trades), dtype=pl.Int64),
            },
            schema_overrides={"aggressor_side": pl.String, "price": pl.Float64, "qty": pl.Float64},
        )
        return frame.select(pl.col(name).cast(dtype) for name, dtype in TRADES_SCHEMA.items())

    # ---- order book ----------------------------------------------------------------------------
    def fetch_book_snapshot(self, symbol: str, depth: int) -> pl.DataFrame:
        """The venue's current book, top `depth` levels per side, as long rows (`BOOK_SNAPSHOT_SCHEMA`).

        `ts` is the venue's book time when it sends one, else our clock at the call (Binance spot REST
        depth carries no time); `update_id` is the venue's sequence number (ccxt `nonce`) when present.
        """
        self._markets()
        book = self._call(f"fetch_order_book {symbol}", self.exchange.fetch_order_book, symbol, depth)
        ts_ms = book.get("timestamp") or int(self._clock().timestamp() * 1000)
        rows: list[tuple[Any, ...]] = []
        for side, key in (("bid", "bids"), ("ask", "asks")):
            for level, entry in enumerate(book.get(key, [])[:depth]):
                rows.append((self.venue, symbol, int(ts_ms) * 1000, book.get("nonce"), side, level, entry[0], entry[1]))
        raw = {
            k: (pl.Int64() if isinstance(v, pl.Datetime) else pl.String() if isinstance(v, pl.Enum) else v)
            for k, v in BOOK_SNAPSHOT_SCHEMA.items()
        }
        frame = pl.DataFrame(rows, schema=raw, orient="row")
        return frame.select(pl.col(name).cast(dtype) for name, dtype in BOOK_SNAPSHOT_SCHEMA.items())

    # ---- metadata ------------------------------------------------------------------------------
    def market_metadata(self) -> pl.DataFrame:
        """Instrument metadata as the venue states it (`load_markets`): tick, lot, minimums and fees.

        Tick and lot are absolute sizes (0.01), converted from digit counts on venues whose ccxt
        precision mode counts decimals. Missing figures are null, never guessed.
        """
        markets = self._call("load_markets", self.exchange.load_markets, True)
        fetched_at = self._clock()
        digits = self.exchange.precisionMode != ccxt.TICK_SIZE

        def size(value: Any) -> float | None:
            if value is None:
                return None
            return float(10.0 ** -float(value)) if digits else float(value)

        rows = []
        for m in markets.values():
            limits = m.get("limits") or {}
            precision = m.get("precision") or {}
            rows.append(
                {
                    "venue": self.venue,
                    "symbol": m["symbol"],
                    "venue_symbol": str(m.get("id")),
                    "base": m.get("base"),
                    "quote": m.get("quote"),
                    "type": m.get("type"),
                    "active": bool(m.get("active", True)) if m.get("active") is not None else None,
                    "tick_size": size(precision.get("price")),
                    "lot_size": size(precision.get("amount")),
                    "min_qty": (limits.get("amount") or {}).get("min"),
                    "min_notional": (limits.get("cost") or {}).get("min"),
                    "maker_fee": m.get("maker"),
                    "taker_fee": m.get("taker"),
                    "fetched_at": fetched_at,
                }
            )
        frame = pl.DataFrame(rows, schema=MARKETS_SCHEMA) if rows else pl.DataFrame(schema=MARKETS_SCHEMA)
        return frame.sort("symbol")

    def reachable(self) -> bool:
        """True when the venue answers a cheap public call in time."""
        try:
            self.exchange.fetch_time()
            return True
        except Exception:
            return False
