"""Fees of binary window markets, charged in outcome tokens on buys (SPEC 13b). Pure, Decimal.

Polymarket's taker fee on its fee-enabled crypto markets is a curve in the price that peaks at 0.5:

    fee (USDC) = shares x price x rate x (price x (1 - price)) ** exponent

with `rate` the market's base fee as the venue reports it (`GET /fee-rate` -> `base_fee` in bps, read
per market through ccxt's `fetchTradingFee`, never a constant) and `exponent` the curve's shape
(configuration; 2 for the crypto up/down markets: 0.25 x 0.5 x 0.0625 = 1.56% of notional at 0.5).
The fee is taken from what the taker receives: on a BUY in outcome tokens (fee USDC / price tokens),
on a SELL in USDC. Makers pay nothing.

Why it matters: after buying 100 Up tokens at 0.50 the wallet holds 100 - 1.5625 tokens, so a sell of
"the full position" of 100 fails at the venue for lack of balance. `TokenLedger` keeps the balance the
venue sees and `sellable` rounds it DOWN to the venue's size step.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal

TOKEN_UNIT = Decimal("0.000001")  # outcome tokens and USDC both have 6 decimals on-chain


def fee_usdc(shares: Decimal, price: Decimal, rate: Decimal, exponent: int) -> Decimal:
    """The taker fee in USDC of trading `shares` at `price` (0 < price < 1)."""
    if not Decimal(0) < price < Decimal(1):
        raise ValueError(f"outcome price must be inside (0, 1), got {price}")
    if shares < 0 or rate < 0 or exponent < 0:
        raise ValueError("shares, rate and exponent must not be negative")
    return shares * price * rate * (price * (Decimal(1) - price)) ** exponent


def buy_fee_tokens(shares: Decimal, price: Decimal, rate: Decimal, exponent: int) -> Decimal:
    """Tokens withheld from a taker BUY of `shares` at `price`, rounded UP to the token unit.

    Rounded up so the ledger never believes it holds more than the venue credited.
    """
    tokens = fee_usdc(shares, price, rate, exponent) / price
    return tokens.quantize(TOKEN_UNIT, rounding=ROUND_CEILING)


def sell_fee_usdc(shares: Decimal, price: Decimal, rate: Decimal, exponent: int) -> Decimal:
    """USDC withheld from a taker SELL, rounded UP to the USDC unit."""
    return fee_usdc(shares, price, rate, exponent).quantize(TOKEN_UNIT, rounding=ROUND_CEILING)


def effective_fee_fraction(price: Decimal, rate: Decimal, exponent: int) -> Decimal:
    """Fee as a fraction of notional (price x shares) at `price`: rate x (p(1-p))^exponent."""
    return rate * (price * (Decimal(1) - price)) ** exponent


def peak_fee_rate(taker_fee: Decimal, exponent: int) -> Decimal:
    """The venue's base fee rate from a window market's `MarketInfo.taker_fee`, its peak fee fraction.

    Window-market instruments report as `taker_fee` the fee fraction at price 0.5 (rate x 0.25^exp),
    the most they charge; this turns it back into the curve's rate.
    """
    return taker_fee / (Decimal("0.25") ** exponent) if exponent else taker_fee


@dataclass
class TokenLedger:
    """Outcome-token balances and USDC cash as the venue keeps them, fees included (mutable)."""

    cash: Decimal = Decimal(0)
    tokens: dict[str, Decimal] = field(default_factory=dict)
    fees_paid_usdc: Decimal = Decimal(0)

    def balance(self, token_id: str) -> Decimal:
        return self.tokens.get(token_id, Decimal(0))

    def apply_fill(
        self, token_id: str, side: str, shares: Decimal, price: Decimal, *, taker: bool, rate: Decimal, exponent: int
    ) -> Decimal:
        """Book one fill; returns the fee taken (tokens on a buy, USDC on a sell; 0 for a maker)."""
        if shares <= 0:
            raise ValueError(f"fill size must be positive, got {shares}")
        if side == "buy":
            fee = buy_fee_tokens(shares, price, rate, exponent) if taker else Decimal(0)
            self.cash -= shares * price
            self.tokens[token_id] = self.balance(token_id) + shares - fee
            self.fees_paid_usdc += fee * price
            return fee
        if side == "sell":
            if shares > self.balance(token_id):
                raise ValueError(f"sell of {shares} {token_id} exceeds the balance {self.balance(token_id)}")
            fee = sell_fee_usdc(shares, price, rate, exponent) if taker else Decimal(0)
            self.tokens[token_id] = self.balance(token_id) - shares
            self.cash += shares * price - fee
            self.fees_paid_usdc += fee
            return fee
        raise ValueError(f"side must be buy or sell, got {side!r}")

    def sellable(self, token_id: str, size_step: Decimal) -> Decimal:
        """The largest sell the venue accepts for this token: the balance rounded DOWN to `size_step`."""
        if size_step <= 0:
            raise ValueError("size_step must be positive")
        units = (self.balance(token_id) / size_step).to_integral_value(rounding=ROUND_FLOOR)
        return units * size_step

    def settle(self, winning_token: str, losing_token: str) -> Decimal:
        """Resolution: each winning token pays 1 USDC, each losing token 0. Returns the USDC credited."""
        credited = self.balance(winning_token)
        self.cash += credited
        self.tokens[winning_token] = Decimal(0)
        self.tokens[losing_token] = Decimal(0)
        return credited
