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
