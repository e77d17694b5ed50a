"""The fused two-tower model (SPEC 7) as one servable object, and its fit on the last walk-forward fold.

`FusedModel` = the calibrated tabular tower + the sequence tower (LSTM context over the last 200 bars) +
the context readout + the regime boost + the fusion weights (majors vs alts). Two ways to score:

- `predict_proba(X)`: the tabular tower alone. Any caller that has one feature row and no history (the
  degrade switch, old callers) gets a valid probability.
- `fuse_one(...)` with a context from `context_one(window)` (numpy, no torch: the serving tier), or
  `predict_frame(history, rows)` in batch (torch; champion scoring in the nightly retrain).

Saved as a folder: `tabular/` (CalibratedClassifier), `sequence/` (torch weights + state, and the numpy
export), `fusion.json` (readout, regime boost, weights, majors).
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from pipelines.modeling.calibration import CalibratedClassifier
from pipelines.modeling.fusion import ContextReadout, FusionWeights, RegimeBoost, fuse
from pipelines.modeling.sequence_numpy import NumpySequenceTower

FUSION_FILE = "fusion.json"
MARKER = "fused_model.json"


@dataclass
class FusedModel:
    tabular: CalibratedClassifier[Any]
    sequence: NumpySequenceTower
    readout: ContextReadout
    regime: RegimeBoost
    weights: dict[str, FusionWeights]
    majors: tuple[str, ...]
    feature_columns: tuple[str, ...]
    torch_tower: Any = field(default=None, repr=False)  # SequenceTower, for batch scoring only
    _folder: Path | None = field(default=None, repr=False)

    tower_name = "fused"

    @property
    def window(self) -> int:
        return self.sequence.window

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """The tabular tower alone: (n, features) -> (n, 2)."""
        return np.asarray(self.tabular.predict_proba(X))

    def context_one(self, window_inputs: np.ndarray) -> np.ndarray:
        return self.sequence.context(window_inputs)

    def fuse_one(
        self, p_tab: float, context: np.ndarray | None, vol_regime: float | None, trend_regime: float | None,
        symbol: str,
    ) -> float:
        """Fused P(up) of one row, in plain floats (the serving hot path); the same arithmetic as `fuse`:
        a missing context or regime drops that term and the remaining weights are renormalized."""
        w = self.weights["majors" if symbol.split("/")[0] in self.majors else "alts"].as_tuple()
        terms = [(w[0], p_tab)]
        if context is not None and all(math.isfinite(v) for v in context):
            z = self.readout.intercept + sum(a * float(v) for a, v in zip(self.readout.coef, context, strict=True))
            terms.append((w[1], 1.0 / (1.0 + math.exp(-min(max(z, -50.0), 50.0)))))
        if vol_regime is not None and trend_regime is not None and math.isfinite(vol_regime) and math.isfinite(
            trend_regime
        ):
            trend = int(np.sign(trend_regime)) + 1
            vol = sum(vol_regime >= edge for edge in self.regime.vol_edges)
            terms.append((w[2], self.regime.up_rate[trend][vol]))
        total = sum(weight for weight, _ in terms)
        if total <= 0:
            return min(max(p_tab, 0.0), 1.0)
        return min(max(sum(weight * value for weight, value in terms) / total, 0.0), 1.0)

    def predict_frame(self, history: pl.DataFrame, rows: pl.DataFrame) -> np.ndarray:
        """Fused P(up) for each row of `rows` (in order); `history` holds the bars before them (same columns)."""
        from pipelines.modeling.sequence import CONTEXT_COLUMNS, SequenceTower

        tower = self.torch_tower
        if tower is None:
            if self._folder is None:
                raise RuntimeError("FusedModel without its torch tower cannot score a frame")
            tower = self.torch_tower = SequenceTower.load(self._folder / "sequence")
        start: datetime = rows["ts"].min()  # type: ignore[assignment]
        frame = pl.concat([history.filter(pl.col("ts") < start), rows], how="diagonal_relaxed")
        frame = frame.unique(["symbol", "ts"], keep="last")
        context = tower.context(frame, start=start)
        joined = rows.select("symbol", "ts").join(context, on=["symbol", "ts"], how="left", maintain_order="left")
        p_tab = self.tabular.predict_proba(rows.select(self.feature_columns).to_numpy().astype(np.float64))[:, 1]
        major = np.array([s.split("/")[0] in self.majors for s in rows["symbol"].to_list()])
        return fuse(
            self.weights,
            p_tab,
            self.readout.score(joined.select(CONTEXT_COLUMNS).to_numpy()),
            self.regime.value(rows["vol_regime"].to_numpy(), rows["trend_regime"].to_numpy()),
            major,
        )

    def save(self, directory: str | Path) -> Path:
        target = Path(directory)
        target.mkdir(parents=True, exist_ok=True)
        self.tabular.save(target / "tabular")
        if self.torch_tower is not None:
            self.torch_tower.save(target / "sequence")
        (target / "sequence").mkdir(exist_ok=True)
        self.sequence.save(target / "sequence")
        (target / FUSION_FILE).write_text(
            json.dumps(
                {
                    "readout": self.readout.to_dict(),
                    "regime": self.regime.to_dict(),
                    "weights": {k: w.to_dict() for k, w in self.weights.items()},
                    "majors": list(self.majors),
                    "feature_columns": list(self.feature_columns),
                }
            )
        )
        (target / MARKER).write_text(json.dumps({"format_version": 1, "tower": "fused"}))
        return target

    @classmethod
    def load(cls, directory: str | Path) -> FusedModel:
        """Load without torch (the numpy sequence export); `predict_frame` loads the torch tower lazily."""
        source = Path(directory)
        spec = json.loads((source / FUSION_FILE).read_text())
        return cls(
            tabular=CalibratedClassifier.load(source / "tabular"),
            sequence=NumpySequenceTower.load(source / "sequence"),
            readout=ContextReadout.from_dict(spec["readout"]),
            regime=RegimeBoost.from_dict(spec["regime"]),
            weights={k: FusionWeights.from_dict(v) for k, v in spec["weights"].items()},
            majors=tuple(spec["majors"]),
            feature_columns=tuple(spec["feature_columns"]),
            _folder=source,
        )


def is_fused_folder(directory: Path) -> bool:
    return (directory / MARKER).is_file()


@dataclass(frozen=True)
class FusionFit:
    """The fused model fitted on a fold, its forecast on the fold's test rows and how long it took."""

    model: FusedModel
    p_test: np.ndarray  # aligned with the test rows as given
    seconds: float
    fit_seconds: float


def fit_fused_model(
    dataset: pl.DataFrame,
    *,
    train_start: datetime,
    calibration_start: datetime,
    validation_start: datetime,
    train_end: datetime,
    test: pl.DataFrame,
    tabular: CalibratedClassifier[Any],
    feature_columns: tuple[str, ...],
    label: str,
    embargo: timedelta,
    bar: timedelta,
    majors: frozenset[str],
    seed: int,
    max_windows: int,
    epochs: int,
) -> FusionFit:
    """Sequence tower + fusion on one fold (SPEC 7), every part fitted on rows before the test period.

    The tower trains on `[train_start, calibration_start - embargo)`; the context readout and the fusion
    weights on the labelled validation rows `[validation_start, train_end)`; the regime boost on the
    tower's training rows. Raises ValueError when the history is too short for the tower.
    """
    from pipelines.modeling.fusion import fit_context_readout, fit_fusion, fit_regime_boost
    from pipelines.modeling.sequence import CONTEXT_COLUMNS, SequenceTower, SequenceTowerConfig

    started = time.perf_counter()
    tower_cfg = SequenceTowerConfig(
        feature_columns=feature_columns, seed=seed, max_train_windows=max_windows, epochs=epochs
    )
    fit_end = calibration_start - embargo
    tower = SequenceTower(tower_cfg).fit(
        dataset.filter((pl.col("ts") >= train_start) & (pl.col("ts") < fit_end)), fit_end
    )
    history = bar * tower_cfg.window
    frame = dataset.filter((pl.col("ts") >= validation_start - history) & (pl.col("ts") < train_end))
    validation = frame.join(tower.context(frame, start=validation_start), on=["symbol", "ts"], how="left")
    validation = validation.filter((pl.col("ts") >= validation_start) & pl.col(label).is_not_null())
    fit_rows = dataset.filter((pl.col("ts") >= train_start) & (pl.col("ts") < fit_end) & pl.col(label).is_not_null())
    regime = fit_regime_boost(
        fit_rows["vol_regime"].to_numpy(), fit_rows["trend_regime"].to_numpy(), fit_rows[label].to_numpy()
    )
    ctx = validation.select(CONTEXT_COLUMNS).to_numpy()
    readout = fit_context_readout(ctx, validation[label].to_numpy())
    major = np.array([s.split("/")[0] in majors for s in validation["symbol"].to_list()])
    weights = fit_fusion(
        tabular.predict_proba(validation.select(feature_columns).to_numpy().astype(np.float64))[:, 1],
        readout.score(ctx),
        regime.value(validation["vol_regime"].to_numpy(), validation["trend_regime"].to_numpy()),
        validation[label].to_numpy(),
        major,
    )
    model = FusedModel(
        tabular=tabular,
        sequence=NumpySequenceTower.from_tower(tower),
        readout=readout,
        regime=regime,
        weights=weights,
        majors=tuple(sorted(majors)),
        feature_columns=feature_columns,
        torch_tower=tower,
    )
    test_start: datetime = test["ts"].min()  # type: ignore[assignment]
    before = dataset.filter((pl.col("ts") >= test_start - history) & (pl.col("ts") < test_start))
    p_test = model.predict_frame(before, test)
    return FusionFit(model, p_test, time.perf_counter() - started, tower.fit_seconds)
