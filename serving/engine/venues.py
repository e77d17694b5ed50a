"""The engine's venues besides its default one: `ALPHATIDE_VENUES` entries resolved with their secrets.

`resolve_venues(engine_cfg, entries)` gives one `VenueSpec` per `VenueEntry` (mode and order stream
defaulting to the engine's), its credentials read from `ALPHATIDE_VENUE_<NAME>__API_KEY`,
`..__API_SECRET`, `..__WALLET_ADDRESS`, `..__PRIVATE_KEY`, `..__PASSWORD` (no defaults). A live venue
needs every credential its ccxt class requires (`requiredCredentials`: API key + secret on Binance and
Backpack, wallet address + private key on Hyperliquid); a missing or empty one is a `ConfigError` naming
the variable. `check_strategy_venues` refuses a strategy that names a venue nobody configured.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import SecretStr

from pipelines.config import ENV_PREFIX, EngineConfig, Settings
from pipelines.errors import ConfigError
from serving.engine.config import StrategyEntry, VenueEntry

# ccxt credential name -> suffix of its variable (ALPHATIDE_VENUE_<NAME>__<SUFFIX>).
CREDENTIALS: dict[str, str] = {
    "apiKey": "API_KEY",
    "secret": "API_SECRET",
    "walletAddress": "WALLET_ADDRESS",
    "privateKey": "PRIVATE_KEY",
    "password": "PASSWORD",
}
# Strategy params that name a venue (market making: venue; hedge: primary_venue and hedge_venue).
VENUE_PARAMS = ("venue", "primary_venue", "hedge_venue")


def secret_variable(venue: str, credential: str) -> str:
    """The environment variable of one credential of `venue`, e.g. ALPHATIDE_VENUE_BINANCEUSDM__API_KEY."""
    return f"{ENV_PREFIX}VENUE_{venue.upper()}__{CREDENTIALS[credential]}"


@dataclass(frozen=True)
class VenueSpec:
    """One configured venue, resolved: what `build_broker` needs to build its broker."""

    name: str
    mode: Literal["paper", "live"]
    api_url: str | None = None
    ws_url: str | None = None
    order_stream: bool = False
    credentials: Mapping[str, SecretStr] = field(default_factory=dict)  # ccxt names (apiKey, secret, ...)

    def masked(self) -> dict[str, Any]:
        """For `alphatide settings` and the serve banner: every credential shown as its variable only."""
        return {
            "name": self.name,
            "mode": self.mode,
            "api_url": self.api_url,
            "ws_url": self.ws_url,
            "order_stream": self.order_stream,
            "credentials": {secret_variable(self.name, c): "**********" for c in sorted(self.credentials)},
        }


def _required_credentials(venue: str) -> list[str]:
    import ccxt

    exchange_class = getattr(ccxt, venue, None)
    if exchange_class is None:
        raise ConfigError(f"{ENV_PREFIX}VENUES: unknown ccxt exchange id {venue!r}")
    required = exchange_class().requiredCredentials
    return [name for name in CREDENTIALS if required.get(name)]


def _read_credentials(venue: str, environ: Mapping[str, str]) -> dict[str, SecretStr]:
    upper = {k.upper(): v for k, v in environ.items()}
    out = {}
    for credential in CREDENTIALS:
        value = upper.get(secret_variable(venue, credential), "")
        if value.strip():  # empty counts as missing
            out[credential] = SecretStr(value)
    return out


def resolve_venue(
    engine: EngineConfig, entry: VenueEntry, environ: Mapping[str, str] | None = None
) -> VenueSpec:
    env = os.environ if environ is None else environ
    mode = entry.mode or engine.mode
    credentials = _read_credentials(entry.name, env)
    if mode == "live":
        missing = [secret_variable(entry.name, c) for c in _required_credentials(entry.name) if c not in credentials]
        if missing:
            raise ConfigError(
                f"{ENV_PREFIX}VENUES: venue {entry.name!r} is live and refuses to start without "
                f"{', '.join(missing)} (unset or empty; or give it \"mode\": \"paper\")"
            )
    if mode == "live" and engine.mode == "live" and entry.name == engine.venue:
        raise ConfigError(
            f"{ENV_PREFIX}VENUES: {entry.name!r} is already the engine's live default venue "
            f"({ENV_PREFIX}ENGINE__VENUE, key ''): one account would be traded by two brokers"
        )
    stream = engine.order_stream if entry.order_stream is None else entry.order_stream
    return VenueSpec(entry.name, mode, entry.api_url, entry.ws_url, stream, credentials)


def resolve_venues(
    engine: EngineConfig, entries: Iterable[VenueEntry], environ: Mapping[str, str] | None = None
) -> tuple[VenueSpec, ...]:
    """Every `ALPHATIDE_VENUES` entry with its mode and secrets; `ConfigError` on a live one without keys."""
    return tuple(resolve_venue(engine, entry, environ) for entry in entries)


def strategy_venues(entry: StrategyEntry) -> list[str]:
    """The venues a strategy entry names (its `venue` and the venue params of its kind)."""
    named = [entry.venue] + [str(entry.params[p]) for p in VENUE_PARAMS if p in entry.params]
    return [v for v in dict.fromkeys(named) if v]


def check_strategy_venues(entries: Sequence[StrategyEntry], configured: Iterable[str]) -> None:
    """`ConfigError` naming the strategy and venue when a strategy names a venue that is not configured."""
    known = set(configured) | {""}
    for entry in entries:
        for venue in strategy_venues(entry):
            if venue not in known:
                listed = ", ".join(sorted(v for v in known if v)) or "none"
                raise ConfigError(
                    f"strategy {entry.id!r} names venue {venue!r}, which is not configured: add "
                    f'{{"name": "{venue}"}} to {ENV_PREFIX}VENUES (configured venues: {listed})'
                )


def configured_venues(settings: Settings) -> tuple[VenueSpec, ...]:
    """`ALPHATIDE_VENUES` resolved for `settings` (none when the engine is disabled)."""
    from serving.engine.config import load_extras

    if not settings.engine.enabled:
        return ()
    return resolve_venues(settings.engine, load_extras().venues)


def check_venues_start(settings: Settings) -> tuple[VenueSpec, ...]:
    """What `alphatide serve`/`run` checks before starting: every venue's keys, the strategies' venues,
    and ALPHATIDE_API_KEY when any venue is live (without it POST /kill cannot be called)."""
    from serving.engine.config import load_extras

    venues = configured_venues(settings)
    if settings.engine.enabled:
        check_strategy_venues(load_extras().strategies, [v.name for v in venues])
    live = [v.name for v in venues if v.mode == "live"]
    api_key = settings.api_key
    if live and (api_key is None or not api_key.get_secret_value().strip()):
        raise ConfigError(
            f"{ENV_PREFIX}VENUES: live venue(s) {', '.join(live)} refuse to start without {ENV_PREFIX}API_KEY "
            "(unset or empty): without it POST /kill cannot be called"
        )
    return venues


def banner_lines(venues: Iterable[VenueSpec]) -> list[str]:
    """One line per venue for the serve banner; credentials only by their variable names, masked."""
    lines = []
    for v in venues:
        keys = ", ".join(f"{name}={mask}" for name, mask in v.masked()["credentials"].items()) or "no keys"
        lines.append(f"  venue    {v.name} ({v.mode}; {keys})")
    return lines
