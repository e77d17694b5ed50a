from __future__ import annotations

from pathlib import Path

import pytest

from pipelines.config import PROJECT_ROOT, load_settings
from pipelines.errors import ConfigError


def test_defaults_put_everything_under_the_project_root() -> None:
    settings = load_settings({})
    assert settings.source == "auto"
    assert settings.port == 8000
    assert settings.home == PROJECT_ROOT
    assert settings.mlflow_tracking_uri == f"sqlite:///{PROJECT_ROOT / 'mlruns' / 'mlflow.db'}"


def test_environment_overrides_including_nested_fields(tmp_path: Path) -> None:
    settings = load_settings(
        {"ALPHATIDE_HOME": str(tmp_path), "ALPHATIDE_PORT": "9001", "ALPHATIDE_MODEL__ITERATIONS": "77"}
    )
    assert settings.home == tmp_path.resolve()
    assert settings.port == 9001
    assert settings.model.iterations == 77
    assert settings.lake_dir == tmp_path.resolve() / "lake"


def test_unknown_variable_is_rejected_by_name() -> None:
    with pytest.raises(ConfigError, match="ALPHATIDE_PROT"):
        load_settings({"ALPHATIDE_PROT": "8000"})


def test_bad_value_names_the_variable() -> None:
    with pytest.raises(ConfigError, match="ALPHATIDE_PORT"):
        load_settings({"ALPHATIDE_PORT": "eighty"})


def test_unknown_source_is_rejected() -> None:
    with pytest.raises(ConfigError, match="ALPHATIDE_SOURCE"):
        load_settings({"ALPHATIDE_SOURCE": "kraken-ftp"})


def test_replay_needs_an_existing_folder(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="ALPHATIDE_REPLAY_DIR"):
        load_settings({"ALPHATIDE_SOURCE": "replay"})
    with pytest.raises(ConfigError, match="not a folder"):
        load_settings({"ALPHATIDE_SOURCE": "replay", "ALPHATIDE_REPLAY_DIR": str(tmp_path / "missing")})


def test_settings_are_frozen() -> None:
    settings = load_settings({})
    with pytest.raises(Exception, match="frozen"):
        settings.port = 1  # type: ignore[misc]


def test_thresholds_are_validated() -> None:
    with pytest.raises(ConfigError, match="SIGNAL__BUY_THRESHOLD"):
        load_settings({"ALPHATIDE_SIGNAL__BUY_THRESHOLD": "0.4"})


LIVE = {"ALPHATIDE_ENGINE__MODE": "live", "ALPHATIDE_API_KEY": "k-123"}


@pytest.mark.parametrize("empty", ["", "   "])
def test_live_mode_refuses_empty_venue_keys(empty: str) -> None:
    env = {**LIVE, "ALPHATIDE_ENGINE__VENUE_API_KEY": empty, "ALPHATIDE_ENGINE__VENUE_API_SECRET": "s"}
    with pytest.raises(ConfigError, match="refuses to start without venue keys: ALPHATIDE_ENGINE__VENUE_API_KEY"):
        load_settings(env)


def test_trading_an_ungated_model_is_for_paper_only() -> None:
    keys = {"ALPHATIDE_ENGINE__VENUE_API_KEY": "k", "ALPHATIDE_ENGINE__VENUE_API_SECRET": "s"}
    with pytest.raises(ConfigError, match="PAPER_TRADES_UNGATED_MODEL=true is for paper mode only"):
        load_settings({**LIVE, **keys, "ALPHATIDE_ENGINE__PAPER_TRADES_UNGATED_MODEL": "true"})

    paper = load_settings({"ALPHATIDE_ENGINE__PAPER_TRADES_UNGATED_MODEL": "true"})

    assert paper.engine.paper_trades_ungated_model and paper.engine.mode == "paper"


def test_live_mode_refuses_to_start_without_an_api_key(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from pipelines.cli import main
    from pipelines.config import check_live_start

    keys = {"ALPHATIDE_ENGINE__VENUE_API_KEY": "k", "ALPHATIDE_ENGINE__VENUE_API_SECRET": "s"}
    for api_key in (None, ""):
        env = {"ALPHATIDE_ENGINE__MODE": "live", **keys}
        if api_key is not None:
            env["ALPHATIDE_API_KEY"] = api_key
        with pytest.raises(ConfigError, match="without ALPHATIDE_API_KEY"):
            check_live_start(load_settings(env))
    check_live_start(load_settings({**LIVE, **keys}))  # both present: starts
    for key, value in {"ALPHATIDE_ENGINE__MODE": "live", **keys}.items():
        monkeypatch.setenv(key, value)
    assert main(["serve"]) == 2  # refused before anything is started
    assert "refuses to start without ALPHATIDE_API_KEY" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("ALPHATIDE_STREAM__SYMBOLS", "BTC/USDT,ETH/USDT"),
        ("ALPHATIDE_UNIVERSE__MAJORS", "BTC"),
        ("ALPHATIDE_UNIVERSE__MIN_QUOTE_VOLUME", "USDT=5e6"),
    ],
)
def test_a_list_variable_that_is_not_json_is_named(
    variable: str, value: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from pipelines.cli import main

    with pytest.raises(ConfigError, match=f"{variable}: not JSON"):
        load_settings({variable: value})
    monkeypatch.setenv(variable, value)
    assert main(["settings"]) == 2  # the CLI prints the message, no traceback
    err = capsys.readouterr().err
    assert err.startswith(f"alphatide: invalid configuration: {variable}: not JSON") and "Traceback" not in err


@pytest.mark.parametrize(
    ("variable", "value", "reason"),
    [
        ("ALPHATIDE_REDIS_URL", "redis://:s3cret@127.0.0.1:notaport/0", "not a valid URI"),
        ("ALPHATIDE_REDIS_URL", "http://127.0.0.1:6379/0", "scheme 'http'"),
        ("ALPHATIDE_REDIS_URL", "redis://:s3cret@127.0.0.1:6379/zero", "must be a number"),
        ("ALPHATIDE_ENGINE__DSN", "postgresql://trader:s3cret@/alphatide", "names no host"),
        ("ALPHATIDE_ENGINE__DSN", "mysql://trader:s3cret@db/alphatide", "scheme 'mysql'"),
        ("ALPHATIDE_MLFLOW_URI", "htp://bob:s3cret@mlflow:5000", "scheme 'htp'"),
        ("ALPHATIDE_MLFLOW_URI", "sqlite://", "names no database"),
    ],
)
def test_bad_uris_give_a_readable_error_that_hides_the_secret(variable: str, value: str, reason: str) -> None:
    with pytest.raises(ConfigError, match=variable) as raised:
        load_settings({variable: value})
    assert reason in str(raised.value)
    assert "s3cret" not in str(raised.value)


def test_credentials_in_uris_are_masked_in_the_printed_settings(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from pipelines.cli import main

    monkeypatch.setenv("ALPHATIDE_MLFLOW_URI", "https://bob:hunter2@mlflow.example:443/?token=t0ken")
    monkeypatch.setenv("ALPHATIDE_REDIS_URL", "redis://:redispw@127.0.0.1:6379/0")
    monkeypatch.setenv("ALPHATIDE_ENGINE__DSN", "postgresql://trader:pgpw@127.0.0.1:5432/alphatide")

    assert main(["settings"]) == 0

    out = capsys.readouterr().out
    assert "https://bob:***@mlflow.example:443/?token=***" in out
    assert all(secret not in out for secret in ("hunter2", "t0ken", "redispw", "pgpw"))


def test_mask_uri_keeps_what_holds_no_secret() -> None:
    from pipelines.config import mask_uri

    assert mask_uri("sqlite:////tmp/mlruns/mlflow.db") == "sqlite:////tmp/mlruns/mlflow.db"
    assert mask_uri("postgresql://u:p@h:5432/d") == "postgresql://u:***@h:5432/d"
    assert mask_uri("https://token@host/x") == "https://***@host/x"


def test_the_serve_banner_masks_the_tracking_uri() -> None:
    from pipelines.cli import serve_banner

    banner = serve_banner(load_settings({"ALPHATIDE_MLFLOW_URI": "postgresql://ml:pw0rd@db:5432/mlflow"}))

    assert "postgresql://ml:***@db:5432/mlflow" in banner and "pw0rd" not in banner


def test_research_settings_are_read_from_the_environment() -> None:
    from pipelines.research_config import research_settings

    settings = load_settings({"ALPHATIDE_RESEARCH__LABEL__MODE": "cost_aware"})

    assert research_settings(settings).label.mode == "cost_aware"
    with pytest.raises(ConfigError, match="RESEARCH__LABEL__MODE"):
        load_settings({"ALPHATIDE_RESEARCH__LABEL__MODE": "ties_are_up"})
