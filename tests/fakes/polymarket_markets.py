"""The fake Polymarket's market records: windows, orders, and the gamma event JSON of a window."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any


@dataclass
class FakeOrder:
    order_id: str
    token_id: str
    side: str  # BUY / SELL
    price: Decimal
    size: Decimal
    owner: str
    created_s: int
    matched: Decimal = Decimal(0)
    status: str = "LIVE"  # LIVE, MATCHED, CANCELED


@dataclass
class Window:
    start: int
    up: str
    down: str
    tick: Decimal = Decimal("0.01")
    base_fee_bps: int = 2500
    winner: str | None = None  # token id once resolved
    books: dict[str, dict[str, list[list[Decimal]]]] = field(default_factory=dict)


def event_json(window_s: int, w: Window) -> dict[str, Any]:
    """The gamma event of a window (one binary market, outcomes Up/Down) as the venue lists it."""
    slug = f"btc-updown-5m-{w.start}"
    start = datetime.fromtimestamp(w.start, UTC).isoformat().replace("+00:00", "Z")
    end = datetime.fromtimestamp(w.start + window_s, UTC).isoformat().replace("+00:00", "Z")
    closed = w.winner is not None
    prices = ["0.5", "0.5"] if not closed else (["1", "0"] if w.winner == w.up else ["0", "1"])
    market = {
        "id": str(w.start),
        "question": f"Bitcoin Up or Down - {start}",
        "conditionId": "0x" + hashlib.sha256(slug.encode()).hexdigest(),
        "slug": slug,
        "startDate": start,
        "endDate": end,
        "outcomes": json.dumps(["Up", "Down"]),
        "outcomePrices": json.dumps(prices),
        "clobTokenIds": json.dumps([w.up, w.down]),
        "active": True,
        "closed": closed,
        "acceptingOrders": not closed,
        "enableOrderBook": True,
        "orderPriceMinTickSize": str(w.tick),
        "orderMinSize": "5",
        "negRisk": False,
        "feesEnabled": True,
        "umaResolutionStatus": "resolved" if closed else None,
    }
    return {
        "id": str(w.start),
        "slug": slug,
        "title": market["question"],
        "startDate": start,
        "endDate": end,
        "active": True,
        "closed": closed,
        "markets": [market],
        "tags": [{"label": "Crypto", "slug": "crypto"}],
    }
