"""ccxt client options the hedge needs per venue (DESIGN.md, "Facts about the pinned stack").

- Hyperliquid and GRVT attach a builder fee to every order by default (`options['builderFee']`):
  turned off. With it off ccxt 4.5 still approves its builder once at a 0% rate and tags orders with
  fee 0 (statistics only, nothing charged). Hyperliquid's referrer call (`setReferrer`) is skipped.
- Backpack has no `watchMyTrades`: fills come from `watchOrders` (event `orderFill`, trade id `t`)
  with `fetchMyTrades` (`/wapi/v1/history/fills`) as the REST fallback; its `clientId` is an integer.
Hyperliquid's own market orders are IOC limits 5% away: the hedge never uses them, it sends its own
marketable limit IOC inside `slippage_band`.
"""

from __future__ import annotations

from typing import Any

_OPTIONS: dict[str, dict[str, Any]] = {
    "hyperliquid": {"builderFee": False, "refSet": True},
    "grvt": {"builderFee": False},
}


def ccxt_options(exchange_id: str) -> dict[str, Any]:
    """Options to merge into `ccxt.<exchange_id>({'options': ...})` for hedge trading."""
    return dict(_OPTIONS.get(exchange_id, {}))
