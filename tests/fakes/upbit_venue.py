"""A fake Upbit REST venue (KRW spot) on 127.0.0.1 for driving the real ccxt `upbit` client in tests.

Serves `/v1/market/all`, `/v1/candles/minutes/{unit}` and `/v1/candles/days` (Upbit pages *backwards*:
the `count` newest bars strictly before `to`, newest first), `/v1/trades/ticks` (the most recent trades,
newest first; no seeking by time, like the real endpoint without a cursor) and `/v1/orderbook`.
Candles come as a polars frame in the candle schema with symbols like "BTC/KRW"; trades as a frame with
symbol, ts, price, qty, buyer_is_maker, trade_id. `fail_429` answers the next N data requests with
Upbit's rate-limit error body.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from typing import Any

import polars as pl

from tests.fakes.json_http import LocalJsonVenue


def _market_id(symbol: str) -> str:
    base, quote = symbol.split("/")
    return f"{quote}-{base}"


class FakeUpbit(LocalJsonVenue):
    def __init__(self, candles: pl.DataFrame, trades: pl.DataFrame | None = None):
        self.candles = candles.sort("symbol", "ts")
        self.trades = trades.sort("symbol", "ts") if trades is not None else None
        self.requests: list[tuple[str, dict[str, str]]] = []
        self.fail_429 = 0
        self._lock = threading.Lock()
        super().__init__()

    def ccxt_urls(self) -> dict[str, str]:
        """Values for ccxt's `urls['api']` (ccxt appends `/v1/<path>`)."""
        return {"public": self.base_url, "private": self.base_url}

    def _symbol(self, market_id: str | None) -> str | None:
        return next((s for s in self.candles["symbol"].unique().to_list() if _market_id(s) == market_id), None)

    def handle(self, path: str, query: dict[str, str]) -> tuple[int, Any]:
        if path == "/v1/market/all":
            return 200, [
                {"market": _market_id(s), "korean_name": s, "english_name": s, "market_warning": "NONE"}
                for s in self.candles["symbol"].unique().sort().to_list()
            ]
        with self._lock:
            self.requests.append((path, query))
            if self.fail_429 > 0:
                self.fail_429 -= 1
                return 429, {"error": {"name": "too_many_requests", "message": "Too many requests"}}
        if path.startswith("/v1/candles/"):
            return 200, self._candles(path, query)
        if path == "/v1/trades/ticks":
            return 200, self._trades(query)
        if path == "/v1/orderbook":
            return 200, self._orderbook(query)
        return 404, {"error": {"name": "not_found", "message": f"no route {path}"}}

    def _candles(self, path: str, query: dict[str, str]) -> list[dict[str, Any]]:
        symbol = self._symbol(query.get("market"))
        if symbol is None:
            return []
        count = min(int(query.get("count", 200)), 200)
        frame = self.candles.filter(pl.col("symbol") == symbol)
        if "to" in query:
            to = datetime.fromisoformat(query["to"].replace("Z", "+00:00"))
            if to.tzinfo is None:
                to = to.replace(tzinfo=UTC)
            frame = frame.filter(pl.col("ts") < to)
        rows = frame.sort("ts", descending=True).head(count)
        unit = path.rsplit("/", 1)[-1]
        return [
            {
                "market": _market_id(symbol),
                "candle_date_time_utc": r["ts"].strftime("%Y-%m-%dT%H:%M:%S"),
                "candle_date_time_kst": r["ts"].strftime("%Y-%m-%dT%H:%M:%S"),
                "opening_price": r["open"],
                "high_price": r["high"],
                "low_price": r["low"],
                "trade_price": r["close"],
                "timestamp": int(r["ts"].timestamp() * 1000),
                "candle_acc_trade_price": r["close"] * r["volume"],
                "candle_acc_trade_volume": r["volume"],
                "unit": int(unit) if unit.isdigit() else None,
            }
            for r in rows.iter_rows(named=True)
        ]

    def _trades(self, query: dict[str, str]) -> list[dict[str, Any]]:
        symbol = self._symbol(query.get("market"))
        if symbol is None or self.trades is None:
            return []
        count = int(query.get("count", 200))
        rows = self.trades.filter(pl.col("symbol") == symbol).sort("ts", descending=True).head(count)
        return [
            {
                "market": _market_id(symbol),
                "trade_date_utc": r["ts"].strftime("%Y-%m-%d"),
                "trade_time_utc": r["ts"].strftime("%H:%M:%S"),
                "timestamp": int(r["ts"].timestamp() * 1000),
                "trade_price": r["price"],
                "trade_volume": r["qty"],
                "prev_closing_price": r["price"],
                "change_price": 0.0,
                "ask_bid": "ASK" if r["buyer_is_maker"] else "BID",
                "sequential_id": int(r["trade_id"]),
            }
            for r in rows.iter_rows(named=True)
        ]

    def _orderbook(self, query: dict[str, str]) -> list[dict[str, Any]]:
        out = []
        for market_id in query.get("markets", "").split(","):
            symbol = self._symbol(market_id)
            if symbol is None:
                continue
            last = self.candles.filter(pl.col("symbol") == symbol).row(-1, named=True)
            close = float(last["close"])
            out.append(
                {
                    "market": market_id,
                    "timestamp": int(last["ts"].timestamp() * 1000) + 300_000,
                    "total_ask_size": 15.0,
                    "total_bid_size": 15.0,
                    "orderbook_units": [
                        {
                            "ask_price": close + 1000 * (i + 1),
                            "bid_price": close - 1000 * (i + 1),
                            "ask_size": 1.0 + i,
                            "bid_size": 0.5 + i,
                        }
                        for i in range(15)
                    ],
                }
            )
        return out
