"""ALPHATIDE_VENUES: the engine's extra venues from configuration (serving.engine.venues), their secrets
from ALPHATIDE_VENUE_<NAME>__* variables, readable startup errors, masking, and one broker per venue
built by the project's factory (Backpack + Hyperliquid against their local fakes, the real ccxt)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest

from pipelines.cli import main, serve_banner
from pipelines.config import EngineConfig, load_settings
from pipelines.errors import ConfigError
from serving.engine import build_engine
from serving.engine.config import StrategyEntry, VenueEntry, load_extras
from serving.engine.live_broker import LiveBroker
from serving.engine.store import TradingStore
from serving.engine.venues import banner_lines, check_venues_start, configured_venues, resolve_venues
from tests.fakes.backpack_venue import FakeBackpack
from tests.fakes.hyperliquid_venue import FakeHyperliquid

USDM_LIVE = '[{"name": "binanceusdm", "mode": "live"}]'


def hedge_entry(primary: str = "binance", hedge: str = "binanceusdm") -> StrategyEntry:
    params = {"primary_venue": primary, "primary_symbol": "BTC/USDT", "hedge_venue": hedge,
              "hedge_symbol": "BTC/USDT:USDT"}
    return StrategyEntry(id="hedge", kind="hedge", params=params)


@pytest.fixture(autouse=True)
def _no_venue_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for name in list(os.environ):
        if name.upper().startswith(("ALPHATIDE_VENUE", "ALPHATIDE_STRATEGIES")):
            monkeypatch.delenv(name)


def test_venues_parse_with_the_engines_mode_and_order_stream_as_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ALPHATIDE_VENUES", '[{"name": "binance"}, {"name": "binanceusdm", "order_stream": false}]')
    engine = EngineConfig(order_stream=True)

    spot, usdm = resolve_venues(engine, load_extras().venues, environ={})

    assert (spot.name, spot.mode, spot.order_stream) == ("binance", "paper", True)
    assert (usdm.name, usdm.mode, usdm.order_stream) == ("binanceusdm", "paper", False)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("[{name: binance}]", r"ALPHATIDE_VENUES: not JSON"),
        ('[{"name": "binance", "colour": "red"}]', r"ALPHATIDE_VENUES\[0\]\.colour: Extra inputs are not permitted"),
        ('[{"name": "binance"}, {"name": "x", "mode": "demo"}]', r"ALPHATIDE_VENUES\[1\]\.mode: Input should be"),
        ('[{"name": "Binance!"}]', r"ALPHATIDE_VENUES\[0\]\.name: String should match"),
        ('[{"name": "binance"}, {"name": "binance"}]', r"venue names must be unique: binance"),
    ],
)
def test_bad_venue_configuration_is_a_readable_error(
    monkeypatch: pytest.MonkeyPatch, raw: str, message: str
) -> None:
    monkeypatch.setenv("ALPHATIDE_VENUES", raw)
    with pytest.raises(ConfigError, match=message):
        load_extras()


def test_a_live_venue_without_its_keys_names_the_missing_variable_and_empty_counts_as_missing() -> None:
    [entry] = [VenueEntry(name="binanceusdm", mode="live")]
    env = {"ALPHATIDE_VENUE_BINANCEUSDM__API_KEY": "k", "ALPHATIDE_VENUE_BINANCEUSDM__API_SECRET": " "}

    with pytest.raises(ConfigError, match=r"'binanceusdm' is live .* ALPHATIDE_VENUE_BINANCEUSDM__API_SECRET \("):
        resolve_venues(EngineConfig(), [entry], env)
    hl = VenueEntry(name="hyperliquid", mode="live")
    with pytest.raises(ConfigError, match="HYPERLIQUID__WALLET_ADDRESS, ALPHATIDE_VENUE_HYPERLIQUID__PRIVATE_KEY"):
        resolve_venues(EngineConfig(), [hl], {"ALPHATIDE_VENUE_HYPERLIQUID__API_KEY": "not what it needs"})
    [paper] = resolve_venues(EngineConfig(), [VenueEntry(name="binanceusdm")], {})
    assert paper.mode == "paper" and not paper.credentials


def test_a_strategy_naming_an_unconfigured_venue_is_a_startup_error(tmp_path: Path) -> None:
    settings = load_settings({}, home=tmp_path)

    with pytest.raises(ConfigError, match=r"strategy 'hedge' names venue 'binanceusdm', which is not configured"):
        build_engine(settings, strategies=[hedge_entry()], venues=[VenueEntry(name="binance")])


def test_venue_variables_are_known_to_the_settings_and_typos_are_not() -> None:
    env = {"ALPHATIDE_VENUES": USDM_LIVE, "ALPHATIDE_VENUE_BINANCEUSDM__API_KEY": "k"}
    load_settings(env)
    with pytest.raises(ConfigError, match="ALPHATIDE_VENUE_BINANCEUSDM"):
        load_settings({"ALPHATIDE_VENUE_BINANCEUSDM": "k"})


def test_secrets_are_masked_in_alphatide_settings_and_the_serve_banner(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("ALPHATIDE_VENUES", USDM_LIVE)
    monkeypatch.setenv("ALPHATIDE_VENUE_BINANCEUSDM__API_KEY", "key-s3cret-1")
    monkeypatch.setenv("ALPHATIDE_VENUE_BINANCEUSDM__API_SECRET", "secret-s3cret-2")

    assert main(["settings"]) == 0
    printed = json.loads(capsys.readouterr().out)
    banner = serve_banner(load_settings(), banner_lines(configured_venues(load_settings())))

    [venue] = printed["venues"]
    assert venue["credentials"] == {
        "ALPHATIDE_VENUE_BINANCEUSDM__API_KEY": "**********",
        "ALPHATIDE_VENUE_BINANCEUSDM__API_SECRET": "**********",
    }
    assert "binanceusdm (live; ALPHATIDE_VENUE_BINANCEUSDM__API_KEY=**********" in banner
    assert "s3cret" not in json.dumps(printed) + banner


def test_serve_refuses_a_live_venue_without_the_api_key_of_post_kill(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ALPHATIDE_VENUES", USDM_LIVE)
    monkeypatch.setenv("ALPHATIDE_VENUE_BINANCEUSDM__API_KEY", "k")
    monkeypatch.setenv("ALPHATIDE_VENUE_BINANCEUSDM__API_SECRET", "s")

    with pytest.raises(ConfigError, match="binanceusdm refuse to start without ALPHATIDE_API_KEY"):
        check_venues_start(load_settings({}))
    assert [v.name for v in check_venues_start(load_settings({}, api_key="operator-key"))] == ["binanceusdm"]


@pytest.fixture
def backpack() -> Iterator[FakeBackpack]:
    with FakeBackpack() as venue:
        yield venue


@pytest.fixture
def hyperliquid() -> Iterator[FakeHyperliquid]:
    with FakeHyperliquid() as venue:
        yield venue


@pytest.mark.integration
def test_backpack_and_hyperliquid_from_configuration_each_clean_started(
    tmp_path: Path, backpack: FakeBackpack, hyperliquid: FakeHyperliquid, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Arrange: an order of an earlier run on each venue; keys (Hyperliquid: wallet + private key) by variable.
    old_bp = backpack.matcher.place("BTC_USDC_PERP", "sell", Decimal(61000), Decimal("0.001"), "gtc", True, "1")
    old_hl = hyperliquid.matcher.place("BTC", "sell", Decimal(61000), Decimal("0.001"), "gtc", True, None)
    assert not isinstance(old_bp, str) and not isinstance(old_hl, str)
    for name, value in {
        "ALPHATIDE_VENUE_BACKPACK__API_KEY": backpack.api_key,
        "ALPHATIDE_VENUE_BACKPACK__API_SECRET": backpack.api_secret,
        "ALPHATIDE_VENUE_HYPERLIQUID__WALLET_ADDRESS": hyperliquid.wallet,
        "ALPHATIDE_VENUE_HYPERLIQUID__PRIVATE_KEY": hyperliquid.private_key,
    }.items():
        monkeypatch.setenv(name, value)
    venues = [
        VenueEntry(name="backpack", mode="live", api_url=backpack.base_url),
        VenueEntry(name="hyperliquid", mode="live", api_url=hyperliquid.base_url),
    ]
    params = {"primary_venue": "backpack", "primary_symbol": "BTC/USDC", "hedge_venue": "hyperliquid",
              "hedge_symbol": "BTC/USDC:USDC", "hedge_balance_asset": "USDC"}
    entry = StrategyEntry(id="hedge", kind="hedge", params=params)
    settings = load_settings({}, home=tmp_path, engine=EngineConfig(venue="backpack", api_url=backpack.base_url))

    # Act
    engine = build_engine(
        settings, strategies=[entry], venues=venues, store=TradingStore.sqlite_file(tmp_path / "engine.db")
    )
    engine.start(background=False)

    # Assert
    for name in ("backpack", "hyperliquid"):
        broker = engine.execution(name).broker
        assert isinstance(broker, LiveBroker) and broker.exchange.id == name
        assert engine.execution(name).clean_started
    assert old_bp.status == "canceled" and old_hl.status == "canceled"
    engine.shutdown()


def test_the_live_default_venue_cannot_be_listed_again_as_a_second_live_broker() -> None:
    engine = EngineConfig(mode="live", venue="binance", venue_api_key="k", venue_api_secret="s")  # type: ignore[arg-type]
    env = {"ALPHATIDE_VENUE_BINANCE__API_KEY": "k", "ALPHATIDE_VENUE_BINANCE__API_SECRET": "s"}

    with pytest.raises(ConfigError, match="one account would be traded by two brokers"):
        resolve_venues(engine, [VenueEntry(name="binance")], env)
    [usdm] = resolve_venues(engine, [VenueEntry(name="binanceusdm", mode="paper")], env)
    assert usdm.mode == "paper"
