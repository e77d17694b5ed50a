"""Probability calibration of the tabular tower (SPEC section 7).

`fit_calibrator` fits isotonic regression and Platt scaling on the earlier part of out-of-sample
validation predictions, keeps the one with the lower Brier score on the later (held-back) part, and refits
that method on all of them. `CalibratedClassifier` wraps a CatBoost model with its calibrator; it saves to
and loads from a directory (CatBoost's native ``model.cbm`` + ``calibrator.json``) so the serving tier can
load it without MLflow's pyfunc (which checks the input schema on every call).

Contracts:
- Probabilities are P(up) = P(label == 1), floats in [0, 1] in; calibrated ones are in
  [`PROB_EPS`, 1 - `PROB_EPS`] (strictly inside (0, 1), so log loss stays finite).
- Every calibrator is monotone non-decreasing in the raw probability: it never reorders forecasts,
  so AUC is unchanged up to ties that isotonic regression creates.
- `Calibrator.transform` costs a few microseconds for one row (numpy ``interp`` or one logistic).
- Loading and applying a calibrated model needs numpy and catboost only (scipy/sklearn are imported by
  the fitting functions), which keeps the serving process small.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, Literal, Protocol, TypeVar

import numpy as np

CalibrationMethod = Literal["isotonic", "platt"]

PROB_EPS = 1e-6  # calibrated probabilities stay in [PROB_EPS, 1 - PROB_EPS]
MIN_CALIBRATION_ROWS = 20  # below this neither method can be fitted and compared meaningfully
CALIBRATOR_FILE = "calibrator.json"
MODEL_FILE = "model.cbm"
META_FILE = "calibrated_classifier.json"
_FORMAT_VERSION = 1


def _logit(p: np.ndarray) -> np.ndarray:
    clipped = np.clip(p, PROB_EPS, 1.0 - PROB_EPS)
    return np.log(clipped) - np.log1p(-clipped)


def _sigmoid(z: np.ndarray) -> np.ndarray:
    # Overflow-free logistic: exp of a non-positive number only.
    e = np.exp(-np.abs(z))
    return np.where(z >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


def _brier(p: np.ndarray, y: np.ndarray) -> float:
    return float(np.mean((p - y) ** 2))


@dataclass(frozen=True, eq=False)
class Calibrator:
    """A fitted, monotone map from raw P(up) to calibrated P(up).

    ``method == "platt"``: p = sigmoid(platt_a * logit(p_raw) + platt_b) with ``platt_a >= 0``.
    ``method == "isotonic"``: piecewise-linear interpolation through (``x_thresholds``, ``y_thresholds``)
    (both non-decreasing), constant beyond the ends — the same map as sklearn's ``IsotonicRegression``
    with ``out_of_bounds="clip"``.
    """

    method: CalibrationMethod
    platt_a: float = 1.0
    platt_b: float = 0.0
    x_thresholds: np.ndarray = field(default_factory=lambda: np.array([0.0, 1.0]))
    y_thresholds: np.ndarray = field(default_factory=lambda: np.array([0.0, 1.0]))

    def __post_init__(self) -> None:
        if self.method not in ("isotonic", "platt"):
            raise ValueError(f"Calibrator.method must be 'isotonic' or 'platt', got {self.method!r}")
        if self.method == "platt":
            if not (np.isfinite(self.platt_a) and np.isfinite(self.platt_b)) or self.platt_a < 0:
                raise ValueError(
                    f"Platt parameters must be finite with a >= 0 (monotone), got a={self.platt_a}, b={self.platt_b}"
                )
            return
        x = np.asarray(self.x_thresholds, dtype=np.float64)
        y = np.asarray(self.y_thresholds, dtype=np.float64)
        if x.ndim != 1 or x.shape != y.shape or len(x) < 1:
            raise ValueError("isotonic thresholds must be two 1-d arrays of the same non-zero length")
        if not (np.all(np.isfinite(x)) and np.all(np.isfinite(y))):
            raise ValueError("isotonic thresholds must be finite")
        if np.any(np.diff(x) < 0) or np.any(np.diff(y) < 0):
            raise ValueError("isotonic thresholds must be non-decreasing")
        object.__setattr__(self, "x_thresholds", x)
        object.__setattr__(self, "y_thresholds", y)

    def transform(self, p_raw: np.ndarray) -> np.ndarray:
        """Calibrated P(up) for raw P(up) ``p_raw`` (any shape; values in [0, 1]); same shape, float64."""
        p = np.asarray(p_raw, dtype=np.float64)
        if self.method == "platt":
            out = _sigmoid(self.platt_a * _logit(p) + self.platt_b)
        else:
            out = np.interp(p, self.x_thresholds, self.y_thresholds)
        return np.clip(out, PROB_EPS, 1.0 - PROB_EPS)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able description (round-trips through `from_dict`)."""
        if self.method == "platt":
            return {"method": "platt", "a": float(self.platt_a), "b": float(self.platt_b)}
        return {
            "method": "isotonic",
            "x_thresholds": [float(v) for v in self.x_thresholds],
            "y_thresholds": [float(v) for v in self.y_thresholds],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Calibrator:
        """Inverse of `to_dict`; a malformed description raises ValueError naming what is wrong."""
        method = data.get("method")
        try:
            if method == "platt":
                return cls(method="platt", platt_a=float(data["a"]), platt_b=float(data["b"]))
            if method == "isotonic":
                return cls(
                    method="isotonic",
                    x_thresholds=np.asarray(data["x_thresholds"], dtype=np.float64),
                    y_thresholds=np.asarray(data["y_thresholds"], dtype=np.float64),
                )
        except KeyError as missing:
            raise ValueError(f"calibrator description lacks {missing} for method {method!r}") from None
        raise ValueError(f"calibrator description has unknown method {method!r} (isotonic or platt)")


def _check_inputs(p_raw: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    p = np.asarray(p_raw, dtype=np.float64).ravel()
    labels = np.asarray(y, dtype=np.float64).ravel()
    if p.shape != labels.shape:
        raise ValueError(f"p_raw and y differ in length ({len(p)} vs {len(labels)})")
    if not np.all(np.isfinite(p)) or np.any((p < 0) | (p > 1)):
        raise ValueError("p_raw must be finite probabilities in [0, 1]")
    if not np.all((labels == 0) | (labels == 1)):
        raise ValueError("y must hold 0/1 labels only")
    return p, labels


def fit_platt(p_raw: np.ndarray, y: np.ndarray) -> Calibrator:
    """Platt scaling on the logit of the raw probability: minimizes log loss over (a >= 0, b).

    With a single class in ``y`` the optimum is unbounded; a tiny ridge (1e-6) keeps it finite.
    """
    from scipy.optimize import minimize  # fitting only: serving imports this module for `transform`

    p, labels = _check_inputs(p_raw, y)
    z = _logit(p)

    def loss_and_grad(params: np.ndarray) -> tuple[float, np.ndarray]:
        a, b = params
        s = a * z + b
        # log(1 + exp(s)) - y s, computed stably; gradient (sigmoid(s) - y) * (z, 1)
        loss = np.mean(np.logaddexp(0.0, s) - labels * s) + 1e-6 * (a * a + b * b)
        r = _sigmoid(s) - labels
        grad = np.array([np.mean(r * z) + 2e-6 * a, np.mean(r) + 2e-6 * b])
        return float(loss), grad

    result = minimize(
        loss_and_grad, x0=np.array([1.0, 0.0]), jac=True, method="L-BFGS-B", bounds=[(0.0, None), (None, None)]
    )
    a, b = (float(v) for v in result.x)
    return Calibrator(method="platt", platt_a=max(a, 0.0), platt_b=b)


def fit_isotonic(p_raw: np.ndarray, y: np.ndarray) -> Calibrator:
    """Isotonic regression (non-decreasing) of y on the raw probability."""
    from sklearn.isotonic import IsotonicRegression  # fitting only, as above

    p, labels = _check_inputs(p_raw, y)
    iso = IsotonicRegression(y_min=PROB_EPS, y_max=1.0 - PROB_EPS, increasing=True, out_of_bounds="clip")
    iso.fit(p, labels)
    return Calibrator(
        method="isotonic",
        x_thresholds=np.asarray(iso.X_thresholds_, dtype=np.float64),
        y_thresholds=np.asarray(iso.y_thresholds_, dtype=np.float64),
    )


def fit_calibrator(
    p_raw: np.ndarray, y: np.ndarray, *, holdout_fraction: float = 0.3
) -> tuple[Calibrator, dict[str, float]]:
    """Choose and fit the calibrator of a model from its out-of-sample validation predictions.

    ``p_raw``/``y``: raw P(up) of the model and 0/1 outcomes on rows the model did NOT train on, in time
    order (oldest first). Isotonic and Platt are fitted on the first ``1 - holdout_fraction`` of the rows
    and scored (Brier) on the rest; the winner (Platt on a tie: fewer parameters) is refitted on all rows.

    Returns the calibrator and ``{"brier_isotonic", "brier_platt", "brier_raw"}``: Brier scores on the
    held-back part of the isotonic fit, the Platt fit and the uncalibrated probabilities. Raises
    ValueError for mismatched or malformed inputs, fewer than `MIN_CALIBRATION_ROWS` rows, or a fit part
    or held-back part without both classes.
    """
    if not 0.05 <= holdout_fraction <= 0.95:
        raise ValueError(f"holdout_fraction must be in [0.05, 0.95], got {holdout_fraction}")
    p, labels = _check_inputs(p_raw, y)
    if len(p) < MIN_CALIBRATION_ROWS:
        raise ValueError(f"need at least {MIN_CALIBRATION_ROWS} validation rows to calibrate, got {len(p)}")
    cut = round(len(p) * (1.0 - holdout_fraction))
    cut = min(max(cut, 1), len(p) - 1)
    fit_y, held_y = labels[:cut], labels[cut:]
    for name, part in (("fit", fit_y), ("held-back", held_y)):
        if part.min() == part.max():
            raise ValueError(f"the {name} part of the calibration data has a single class; need both 0 and 1")
    isotonic = fit_isotonic(p[:cut], fit_y)
    platt = fit_platt(p[:cut], fit_y)
    scores = {
        "brier_isotonic": _brier(isotonic.transform(p[cut:]), held_y),
        "brier_platt": _brier(platt.transform(p[cut:]), held_y),
        "brier_raw": _brier(p[cut:], held_y),
    }
    if scores["brier_isotonic"] < scores["brier_platt"]:
        return fit_isotonic(p, labels), scores
    return fit_platt(p, labels), scores


class ProbabilisticModel(Protocol):
    def predict_proba(self, X: Any) -> np.ndarray: ...


ModelT = TypeVar("ModelT", bound=ProbabilisticModel)


class CalibratedClassifier(Generic[ModelT]):
    """A binary classifier whose P(up) (column 1 of ``predict_proba``) goes through a `Calibrator`.

    ``model`` is anything with ``predict_proba(X) -> (n, 2)`` (its type is kept: ``.model`` of a wrapped
    CatBoost model is a ``CatBoostClassifier``); `save`/`load` need a ``CatBoostClassifier``. Latency:
    ``predict_proba`` on one row adds a few microseconds to the model's own call (one numpy
    interp/logistic and a small array fill).
    """

    def __init__(
        self,
        model: ModelT,
        calibrator: Calibrator,
        feature_names: tuple[str, ...] | None = None,
    ) -> None:
        self.model = model
        self.calibrator = calibrator
        self.feature_names = feature_names

    def predict_raw(self, X: np.ndarray) -> np.ndarray:
        """The wrapped model's uncalibrated P(up), shape (n,)."""
        return np.asarray(self.model.predict_proba(X))[:, 1]

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """Calibrated ``[P(down), P(up)]`` per row, shape (n, 2); rows sum to 1."""
        p = self.calibrator.transform(self.predict_raw(X))
        out = np.empty((p.shape[0], 2), dtype=np.float64)
        out[:, 1] = p
        out[:, 0] = 1.0 - p
        return out

    def save(self, directory: str | Path) -> Path:
        """Write ``model.cbm`` (CatBoost native), ``calibrator.json`` and a small metadata file."""
        from catboost import CatBoostClassifier

        if not isinstance(self.model, CatBoostClassifier):
            raise TypeError(f"save needs a CatBoostClassifier, got {type(self.model).__name__}")
        target = Path(directory)
        target.mkdir(parents=True, exist_ok=True)
        self.model.save_model(str(target / MODEL_FILE), format="cbm")
        (target / CALIBRATOR_FILE).write_text(json.dumps(self.calibrator.to_dict()))
        meta = {
            "format_version": _FORMAT_VERSION,
            "feature_names": list(self.feature_names) if self.feature_names is not None else None,
        }
        (target / META_FILE).write_text(json.dumps(meta))
        return target

    @staticmethod
    def load(directory: str | Path) -> CalibratedClassifier[Any]:
        """Inverse of `save` (the model is a ``CatBoostClassifier``); a missing file raises
        FileNotFoundError naming it."""
        from catboost import CatBoostClassifier

        source = Path(directory)
        for name in (MODEL_FILE, CALIBRATOR_FILE):
            if not (source / name).is_file():
                raise FileNotFoundError(f"calibrated model directory {source} lacks {name}")
        model = CatBoostClassifier()
        model.load_model(str(source / MODEL_FILE), format="cbm")
        calibrator = Calibrator.from_dict(json.loads((source / CALIBRATOR_FILE).read_text()))
        names: tuple[str, ...] | None = None
        if (source / META_FILE).is_file():
            meta = json.loads((source / META_FILE).read_text())
            if meta.get("feature_names") is not None:
                names = tuple(meta["feature_names"])
        return CalibratedClassifier(model, calibrator, feature_names=names)
