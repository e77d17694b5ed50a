from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import torch
from pydantic import ValidationError
from sklearn.metrics import roc_auc_score

from pipelines.modeling.sequence import CONTEXT_COLUMNS, SequenceTower, SequenceTowerConfig

START = datetime(2024, 1, 1, tzinfo=UTC)
BAR = timedelta(minutes=5)
N_BARS = 900
SYMBOLS = ("AAA/USDT", "BBB/USDT", "CCC/USDT")
TRAIN_END = START + 600 * BAR
FEATURES = ("signal", "noise", "atr_pct", "roc_1", "volume_regime")
CONFIG = SequenceTowerConfig(
    window=40, patch=4, embed=8, hidden=12, epochs=6, batch_size=64, lr=1e-2, max_train_windows=1500,
    seed=3, torch_threads=1, inference_batch=512, feature_columns=FEATURES,
)


def planted_frame(seed: int = 0) -> pl.DataFrame:
    """The next-bar return follows the mean of `signal` over the last 20 bars: only a sequence model sees it.

    A single bar's `signal` says little (it is white noise); its 20-bar mean says a lot.
    """
    rng = np.random.default_rng(seed)
    parts = []
    for symbol in SYMBOLS:
        signal = rng.normal(size=N_BARS)
        trailing = np.convolve(signal, np.ones(20) / 20, mode="full")[:N_BARS] * np.sqrt(20)  # unit variance
        forward = 0.01 * (0.7 * trailing + 0.7 * rng.normal(size=N_BARS))
        roc_1 = np.r_[np.nan, forward[:-1]]  # a bar's own return is the previous bar's forward return
        signal_with_gaps = np.where(rng.random(N_BARS) < 0.03, np.nan, signal)  # nulls must be handled
        parts.append(
            pl.DataFrame(
                {
                    "symbol": [symbol] * N_BARS,
                    "ts": [START + i * BAR for i in range(N_BARS)],
                    "signal": signal_with_gaps,
                    "noise": rng.normal(size=N_BARS),
                    "atr_pct": 0.01 * np.exp(0.1 * rng.normal(size=N_BARS)),
                    "roc_1": roc_1,
                    "volume_regime": np.exp(0.3 * rng.normal(size=N_BARS)),
                    "forward_return": forward,
                },
                strict=False,
            ).with_columns(pl.col("signal").fill_nan(None), pl.col("roc_1").fill_nan(None))
        )
    return pl.concat(parts).sort("ts", "symbol")  # time-major, as the training set is


@pytest.fixture(scope="module")
def frame() -> pl.DataFrame:
    return planted_frame()


@pytest.fixture(scope="module")
def tower(frame: pl.DataFrame) -> SequenceTower:
    return SequenceTower(CONFIG).fit(frame, TRAIN_END)


@pytest.fixture(scope="module")
def context(tower: SequenceTower, frame: pl.DataFrame) -> pl.DataFrame:
    return tower.context(frame)


def test_context_is_null_before_a_full_window_and_known_after(context: pl.DataFrame) -> None:
    ranked = context.with_columns(pl.int_range(pl.len()).over("symbol").alias("position"))
    early = ranked.filter(pl.col("position") < CONFIG.window - 1)
    late = ranked.filter(pl.col("position") >= CONFIG.window - 1)
    assert context.columns == ["symbol", "ts", *CONTEXT_COLUMNS]
    assert context.height == N_BARS * len(SYMBOLS)
    assert early.height == (CONFIG.window - 1) * len(SYMBOLS)
    assert all(early[c].null_count() == early.height for c in CONTEXT_COLUMNS)
    assert all(late[c].null_count() == 0 for c in CONTEXT_COLUMNS)
    assert all(late[c].is_finite().all() for c in CONTEXT_COLUMNS)


def test_fit_is_deterministic_for_a_seed(frame: pl.DataFrame, context: pl.DataFrame) -> None:
    again = SequenceTower(CONFIG).fit(frame, TRAIN_END).context(frame)
    assert again.equals(context)


def test_changing_data_after_t_does_not_change_context_at_or_before_t(
    tower: SequenceTower, frame: pl.DataFrame, context: pl.DataFrame
) -> None:
    for cut_bar in (CONFIG.window + 5, 700):
        # Arrange: scramble every feature after the cut
        cut = START + cut_bar * BAR
        rng = np.random.default_rng(cut_bar)
        later = pl.col("ts") > cut
        scrambled = frame.with_columns(
            [pl.when(later).then(pl.lit(rng.normal()) * 10).otherwise(pl.col(c)).alias(c) for c in FEATURES]
        )
        # Act
        changed = tower.context(scrambled)
        # Assert
        assert changed.filter(pl.col("ts") <= cut).equals(context.filter(pl.col("ts") <= cut))
        assert not changed.filter(pl.col("ts") > cut).equals(context.filter(pl.col("ts") > cut))


def test_context_depends_on_the_last_window_bars_only(tower: SequenceTower, frame: pl.DataFrame) -> None:
    # a bar's context uses that bar and the window - 1 before it: dropping older history changes nothing
    t = START + 500 * BAR
    full = tower.context(frame).filter(pl.col("ts") == t)
    recent = tower.context(frame.filter(pl.col("ts") > t - CONFIG.window * BAR)).filter(pl.col("ts") == t)
    np.testing.assert_allclose(recent.select(CONTEXT_COLUMNS).to_numpy(), full.select(CONTEXT_COLUMNS).to_numpy(),
                               rtol=1e-5, atol=1e-6)


def test_fast_scoring_path_matches_the_training_forward_pass(tower: SequenceTower, frame: pl.DataFrame) -> None:
    # context() shares patch embeddings across windows; the training path embeds each window itself
    prepared = tower._prepare(frame)
    rows = np.flatnonzero(prepared.position >= CONFIG.window - 1)[::97]
    windows = torch.from_numpy(prepared.inputs[rows[:, None] + np.arange(-CONFIG.window + 1, 1)[None, :]])
    assert tower.net is not None
    with torch.inference_mode():
        direct = tower.net(windows).numpy()
    fast = tower.context(frame).select(CONTEXT_COLUMNS).to_numpy()[rows]
    np.testing.assert_allclose(fast, direct, rtol=1e-4, atol=1e-5)


def test_tower_learns_the_planted_signal_out_of_sample(context: pl.DataFrame, frame: pl.DataFrame) -> None:
    scored = context.join(frame, on=["symbol", "ts"]).filter(pl.col("ts") >= TRAIN_END + BAR)
    up = (scored["forward_return"] >= 0).to_numpy()
    auc = roc_auc_score(up, scored["ctx_trend"].to_numpy())
    assert auc > 0.65  # chance is 0.5; the planted signal allows ~0.75
    assert scored.select(pl.corr("ctx_trend", "forward_return")).item() > 0.3


def test_start_limits_scoring_and_keeps_values(
    tower: SequenceTower, frame: pl.DataFrame, context: pl.DataFrame
) -> None:
    partial = tower.context(frame, start=TRAIN_END)
    assert partial.filter(pl.col("ts") < TRAIN_END)["ctx_trend"].null_count() == 600 * len(SYMBOLS)
    # same values up to float32 rounding (matrix products of other shapes round differently)
    np.testing.assert_allclose(
        partial.filter(pl.col("ts") >= TRAIN_END).select(CONTEXT_COLUMNS).to_numpy(),
        context.filter(pl.col("ts") >= TRAIN_END).select(CONTEXT_COLUMNS).to_numpy(),
        rtol=1e-5, atol=1e-6,
    )
    assert partial.select("symbol", "ts").equals(context.select("symbol", "ts"))


def test_save_and_load_round_trip(tower: SequenceTower, frame: pl.DataFrame, context: pl.DataFrame,
                                  tmp_path: Path) -> None:
    tower.save(tmp_path / "seq")
    loaded = SequenceTower.load(tmp_path / "seq")
    assert loaded.config == CONFIG
    assert loaded.context(frame).equals(context)
    state = tower.state_dict()
    assert state["state"]["columns"] == list(FEATURES)
    assert set(state["weights"]) >= {"embed.weight", "lstm.weight_ih_l0", "head.weight"}


def test_scaler_uses_training_rows_only(frame: pl.DataFrame) -> None:
    # rows after train_end, however extreme, do not move the scaler
    shifted = frame.with_columns(
        pl.when(pl.col("ts") >= TRAIN_END).then(pl.col("noise") + 100).otherwise(pl.col("noise")).alias("noise")
    )
    a = SequenceTower(CONFIG.model_copy(update={"epochs": 1})).fit(frame, TRAIN_END)
    b = SequenceTower(CONFIG.model_copy(update={"epochs": 1})).fit(shifted, TRAIN_END)
    np.testing.assert_array_equal(a.means, b.means)
    np.testing.assert_array_equal(a.stds, b.stds)


def test_bad_config_and_input_are_named(frame: pl.DataFrame) -> None:
    with pytest.raises(ValidationError, match="multiple of patch"):
        SequenceTowerConfig(window=50, patch=4)
    with pytest.raises(ValidationError, match="extra"):
        SequenceTowerConfig(windwo=10)  # type: ignore[call-arg]
    with pytest.raises(ValueError, match="lacks columns"):
        SequenceTower(CONFIG).fit(frame.drop("noise"), TRAIN_END)
    with pytest.raises(ValueError, match="full window"):
        SequenceTower(CONFIG).fit(frame, START + 10 * BAR)
    with pytest.raises(RuntimeError, match="not fitted"):
        SequenceTower(CONFIG).context(frame)


def test_fit_never_reads_rows_after_train_end(frame: pl.DataFrame, context: pl.DataFrame) -> None:
    # Arrange: the same history, with everything from train_end on scrambled
    later = pl.col("ts") >= TRAIN_END
    scrambled = frame.with_columns(
        [pl.when(later).then(pl.col(c) * -3 + 1).otherwise(pl.col(c)).alias(c) for c in (*FEATURES, "forward_return")]
    )
    # Act
    tower = SequenceTower(CONFIG).fit(scrambled, TRAIN_END)
    # Assert: same fitted tower, so the same context on the original frame
    assert tower.context(frame).equals(context)


def test_selective_ssm_cell_learns_is_causal_deterministic_and_round_trips(
    frame: pl.DataFrame, tmp_path: Path
) -> None:
    # Arrange
    config = CONFIG.model_copy(update={"cell": "selective_ssm"})
    # Act
    tower = SequenceTower(config).fit(frame, TRAIN_END)
    context = tower.context(frame)
    # Assert: learns the planted signal out of sample
    scored = context.join(frame, on=["symbol", "ts"]).filter(pl.col("ts") >= TRAIN_END + BAR)
    assert roc_auc_score((scored["forward_return"] >= 0).to_numpy(), scored["ctx_trend"].to_numpy()) > 0.65
    # deterministic
    assert SequenceTower(config).fit(frame, TRAIN_END).context(frame).equals(context)
    # causal: scrambling the future leaves the past alone
    cut = START + 450 * BAR
    scrambled = frame.with_columns([pl.when(pl.col("ts") > cut).then(7.0).otherwise(pl.col(c)).alias(c)
                                    for c in FEATURES])
    assert tower.context(scrambled).filter(pl.col("ts") <= cut).equals(context.filter(pl.col("ts") <= cut))
    # the fast scoring path matches the training forward pass, and save/load keeps the values
    prepared = tower._prepare(frame)
    rows = np.flatnonzero(prepared.position >= config.window - 1)[::101]
    windows = torch.from_numpy(prepared.inputs[rows[:, None] + np.arange(-config.window + 1, 1)[None, :]])
    assert tower.net is not None
    with torch.inference_mode():
        np.testing.assert_allclose(context.select(CONTEXT_COLUMNS).to_numpy()[rows], tower.net(windows).numpy(),
                                   rtol=1e-4, atol=1e-5)
    tower.save(tmp_path / "ssm")
    assert SequenceTower.load(tmp_path / "ssm").context(frame).equals(context)


def test_nan_and_inf_in_features_never_reach_the_model(frame: pl.DataFrame) -> None:
    # Arrange: NaN/inf sprinkled into a feature (the feature contract forbids them; the tower must not care)
    dirty = frame.with_columns(
        pl.when(pl.int_range(pl.len()) % 17 == 0).then(float("nan"))
        .when(pl.int_range(pl.len()) % 23 == 0).then(float("inf"))
        .otherwise(pl.col("noise")).alias("noise")
    )
    # Act
    tower = SequenceTower(CONFIG.model_copy(update={"epochs": 1})).fit(dirty, TRAIN_END)
    context = tower.context(dirty)
    # Assert
    assert np.all(np.isfinite(tower.means)) and np.all(np.isfinite(tower.stds))
    late = context.filter(pl.col("ctx_trend").is_not_null())
    assert late.height == (N_BARS - CONFIG.window + 1) * len(SYMBOLS)
    assert all(late[c].is_finite().all() for c in CONTEXT_COLUMNS)


@pytest.mark.realdata
def test_tower_forecasts_volatility_and_activity_on_the_real_sample(shared_data: Path) -> None:
    """12 real pairs: fitted on April-May 2024, scored on June; the vol/liquidity contexts carry signal."""
    from pipelines.features import FEATURE_COLUMNS, build_features
    from pipelines.training import build_training_set

    # Arrange
    pairs = (shared_data / "binance_spot_candles" / "pairs.txt").read_text().split()[:12]
    candles = (
        pl.scan_parquet(shared_data / "binance_spot_candles" / "binance_spot_5m_2024H1.parquet")
        .filter(pl.col("symbol").is_in(pairs) & (pl.col("open_time") >= datetime(2024, 4, 1, tzinfo=UTC)))
        .rename({"open_time": "ts"})
        .with_columns(pl.col("ts").dt.cast_time_unit("us"))
        .collect()
    )
    data = build_training_set(candles, build_features(candles), FEATURE_COLUMNS, 1)
    split = datetime(2024, 6, 1, tzinfo=UTC)
    config = SequenceTowerConfig(max_train_windows=10_000, epochs=2)
    # Act
    tower = SequenceTower(config).fit(data, split - BAR)
    context = tower.context(data, start=split)
    # Assert
    scored = (
        context.join(data, on=["symbol", "ts"])
        .with_columns(pl.col("volume_regime").shift(-1).over("symbol").log().alias("next_log_volume_regime"))
        .filter(pl.col("ts") >= split)
        .drop_nulls(["ctx_volatility", "next_log_volume_regime"])
    )
    assert scored.height > 50_000
    assert scored.select(pl.corr("ctx_volatility", (pl.col("forward_return").abs() + 1e-5).log())).item() > 0.2
    assert scored.select(pl.corr("ctx_liquidity", "next_log_volume_regime")).item() > 0.5
