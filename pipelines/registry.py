"""The model registry behind a small interface; MLflow is the implementation.

Models are registered under one name with aliases `champion` (in service) and `challenger` (the last
candidate). The serving tier loads the native model (pyfunc checks the input schema on every call, too
slow for the request path): `load_native` returns an object with `predict_proba(X (n, n_features)) ->
(n, 2)`, either the calibrated model (`CalibratedClassifier`: CatBoost + calibrator, saved as files
inside a pyfunc model so MLflow's UI and pyfunc users still work) or, for versions logged before
calibration existed, the bare CatBoost model.

One retrain is one parent run with a nested run per walk-forward fold; pictures go under `plots/`.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import sqlite3
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlparse
from urllib.request import url2pathname

import numpy as np
from catboost import CatBoostClassifier

from pipelines.errors import OperatorError
from pipelines.modeling.calibration import CalibratedClassifier
from pipelines.modeling.fused import FusedModel, is_fused_folder

log = logging.getLogger(__name__)

CHAMPION = "champion"
CHALLENGER = "challenger"
# MLflow 3 opens an experiment in its GenAI view unless told it holds model training.
EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
EXPERIMENT_KIND = "custom_model_development"


@dataclass(frozen=True)
class ModelRef:
    name: str
    version: str
    run_id: str
    feature_columns: tuple[str, ...]
    horizon_bars: int
    tradeable: bool = False  # tag `tradeable`: passed the full promotion gate (a bootstrap champion is not)
    tower: str = "tabular"  # tag `served_tower`: "tabular" or "fused"
    timeframe: str | None = None  # tag `timeframe`: the bars it was trained on (None: not recorded)


class ServedModel(Protocol):
    """What the serving tier calls: P(down), P(up) per row of `ModelRef.feature_columns` values."""

    def predict_proba(self, X: np.ndarray) -> np.ndarray: ...


class ChampionSource(Protocol):
    """The read side the serving tier needs."""

    def champion(self) -> ModelRef | None: ...
    def load_native(self, ref: ModelRef) -> Any: ...


class ModelRegistry(ChampionSource, Protocol):
    def set_alias(self, version: str, alias: str) -> None: ...


CALIBRATED_ARTIFACT = "calibrated"  # the CalibratedClassifier's files inside the pyfunc model
FUSED_ARTIFACT = "fused"  # a FusedModel's folder (its tabular tower is also the `calibrated` artifact)


def _pyfunc_wrapper() -> Any:
    """A pyfunc face for the calibrated model (MLflow UI, `mlflow models serve`); not the hot path."""
    import mlflow.pyfunc

    class CalibratedPyfunc(mlflow.pyfunc.PythonModel):  # type: ignore[misc,name-defined]
        # No type hints on these two: MLflow would try to derive a (wrong) schema from them.
        def load_context(self, context):  # type: ignore[no-untyped-def]
            self.model = CalibratedClassifier.load(context.artifacts[CALIBRATED_ARTIFACT])

        def predict(self, context, model_input, params=None):  # type: ignore[no-untyped-def]
            return self.model.predict_proba(np.asarray(model_input, dtype=np.float64))[:, 1]

    return CalibratedPyfunc()


@dataclass(frozen=True)
class FoldRun:
    """One nested run: a walk-forward fold's params, metrics and tags."""

    name: str
    params: Mapping[str, Any]
    metrics: Mapping[str, float]
    tags: Mapping[str, str] = field(default_factory=dict)


class MlflowRegistry:
    """MLflow tracking + registry in `<home>/mlruns` (SQLite) by default, or any tracking URI."""

    def __init__(
        self, tracking_uri: str, artifact_root: Path | None, model_name: str, experiment: str = "alphatide"
    ):
        import mlflow
        from mlflow import MlflowClient

        self._mlflow = mlflow
        self.tracking_uri = tracking_uri
        self.model_name = model_name
        if artifact_root is not None:
            artifact_root.mkdir(parents=True, exist_ok=True)
        mlflow.set_tracking_uri(tracking_uri)
        mlflow.set_registry_uri(tracking_uri)
        self.client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
        existing = self.client.get_experiment_by_name(experiment)
        if existing is None:
            self.experiment_id = self.client.create_experiment(
                experiment,
                artifact_location=artifact_root.as_uri() if artifact_root else None,
                tags={EXPERIMENT_KIND_TAG: EXPERIMENT_KIND},
            )
        else:
            self.experiment_id = existing.experiment_id
            if existing.tags.get(EXPERIMENT_KIND_TAG) != EXPERIMENT_KIND:
                self.client.set_experiment_tag(self.experiment_id, EXPERIMENT_KIND_TAG, EXPERIMENT_KIND)

    # ---- read ---------------------------------------------------------------------------------
    def _ref(self, version: Any) -> ModelRef:
        return _model_ref(self.model_name, version.version, version.run_id, version.tags or {})

    def get(self, version: str) -> ModelRef:
        from mlflow.exceptions import MlflowException

        try:
            return self._ref(self.client.get_model_version(self.model_name, str(version)))
        except MlflowException as exc:
            raise OperatorError(
                f"model {self.model_name} version {version} not found in the registry"
            ) from exc

    def alias(self, alias: str) -> ModelRef | None:
        from mlflow.exceptions import MlflowException

        try:
            return self._ref(self.client.get_model_version_by_alias(self.model_name, alias))
        except MlflowException:
            return None

    def champion(self) -> ModelRef | None:
        return self.alias(CHAMPION)

    def versions(self) -> list[tuple[ModelRef, list[str]]]:
        """Every registered version with its aliases, newest first."""
        from mlflow.exceptions import MlflowException

        try:
            found = self.client.search_model_versions(f"name='{self.model_name}'")
            aliases = self.client.get_registered_model(self.model_name).aliases or {}
        except MlflowException:
            return []
        by_version: dict[str, list[str]] = {}
        for alias, version in aliases.items():
            by_version.setdefault(str(version), []).append(alias)
        return [
            (self._ref(v), sorted(by_version.get(str(v.version), [])))
            for v in sorted(found, key=lambda v: -int(v.version))
        ]

    def load_native(self, ref: ModelRef) -> Any:
        """The registered model itself (no pyfunc): a `CalibratedClassifier` or a bare CatBoost model.

        Both answer `predict_proba(np.ndarray (n, len(ref.feature_columns))) -> (n, 2)`.
        """
        import mlflow.artifacts

        uri = f"models:/{ref.name}/{ref.version}"
        with tempfile.TemporaryDirectory() as tmp:
            return _load_model_folder(Path(mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=tmp)), ref)

    # ---- write --------------------------------------------------------------------------------
    def set_alias(self, version: str, alias: str) -> None:
        self.client.set_registered_model_alias(self.model_name, alias, str(version))

    def log_candidate(
        self,
        model: CatBoostClassifier | CalibratedClassifier | FusedModel,
        *,
        feature_columns: tuple[str, ...],
        horizon_bars: int,
        params: dict[str, Any],
        metrics: dict[str, float],
        tags: dict[str, str],
        input_example: Any,
        folds: Sequence[FoldRun] = (),
        figures: Mapping[str, Any] | None = None,
        texts: Mapping[str, str] | None = None,
        run_name: str | None = None,
        version_tags: Mapping[str, str] | None = None,
    ) -> tuple[str, ModelRef]:
        """Log one retrain as a parent run (a nested run per fold) and register its model.

        `figures` maps an artifact path (`plots/reliability.png`) to a matplotlib Figure; `texts` maps
        an artifact path to text (JSON reports); `run_name` is what MLflow lists (`retrain 2024-07-01 5m
        h1`); `version_tags` go on the registered version (what the serving tier reads, e.g. `timeframe`).
        Returns (parent run_id, the new version, alias `challenger`). What MLflow prints to stderr
        while registering (seen as red ERROR lines in an Airflow task log) is logged at INFO instead.
        """
        with _stderr_as_info():
            return self._log_candidate(
                model, feature_columns=feature_columns, horizon_bars=horizon_bars, params=params,
                metrics=metrics, tags=tags, input_example=input_example, folds=folds, figures=figures,
                texts=texts, run_name=run_name, version_tags=version_tags or {},
            )

    def _log_candidate(
        self,
        model: CatBoostClassifier | CalibratedClassifier,
        *,
        feature_columns: tuple[str, ...],
        horizon_bars: int,
        params: dict[str, Any],
        metrics: dict[str, float],
        tags: dict[str, str],
        input_example: Any,
        folds: Sequence[FoldRun],
        figures: Mapping[str, Any] | None,
        texts: Mapping[str, str] | None,
        run_name: str | None,
        version_tags: Mapping[str, str],
    ) -> tuple[str, ModelRef]:
        import mlflow.catboost
        import mlflow.pyfunc
        from mlflow.models import infer_signature

        example = np.asarray(input_example, dtype=np.float64)
        with self._mlflow.start_run(experiment_id=self.experiment_id, run_name=run_name) as run:
            self._mlflow.log_params(_flat_params(params))
            self._mlflow.log_metrics(metrics)
            self._mlflow.set_tags(tags)
            for fold in folds:
                with self._mlflow.start_run(
                    experiment_id=self.experiment_id,
                    run_name=f"{run_name} {fold.name}" if run_name else fold.name,
                    nested=True,
                ):
                    self._mlflow.log_params(_flat_params(dict(fold.params)))
                    self._mlflow.log_metrics(dict(fold.metrics))
                    self._mlflow.set_tags({**tags, **fold.tags, "fold": fold.name})
            for path, figure in (figures or {}).items():
                self._mlflow.log_figure(figure, path)
            for path, text in (texts or {}).items():
                self._mlflow.log_text(text, path)
            signature = infer_signature(input_example, model.predict_proba(example)[:, 1])
            if isinstance(model, CalibratedClassifier | FusedModel):
                with tempfile.TemporaryDirectory() as tmp:
                    tabular = model.tabular if isinstance(model, FusedModel) else model
                    artifacts = {CALIBRATED_ARTIFACT: str(tabular.save(Path(tmp) / CALIBRATED_ARTIFACT))}
                    if isinstance(model, FusedModel):  # pyfunc's face is its tabular tower
                        artifacts[FUSED_ARTIFACT] = str(model.save(Path(tmp) / FUSED_ARTIFACT))
                    info = mlflow.pyfunc.log_model(
                        name="model",
                        python_model=_pyfunc_wrapper(),
                        artifacts=artifacts,
                        signature=signature,
                        registered_model_name=self.model_name,
                        # Listed, not inferred: inference loads the model in a subprocess (seconds).
                        pip_requirements=["catboost==1.2.10", "numpy", "scipy", "scikit-learn"],
                    )
            else:
                info = mlflow.catboost.log_model(
                    model, name="model", signature=signature, registered_model_name=self.model_name
                )
        version = str(info.registered_model_version)
        self.client.set_model_version_tag(
            self.model_name, version, "feature_columns", json.dumps(feature_columns)
        )
        self.client.set_model_version_tag(self.model_name, version, "horizon_bars", str(horizon_bars))
        tower = "fused" if isinstance(model, FusedModel) else "tabular"
        self.client.set_model_version_tag(self.model_name, version, "served_tower", tower)
        for key, value in version_tags.items():
            self.client.set_model_version_tag(self.model_name, version, key, value)
        self.set_alias(version, CHALLENGER)
        return run.info.run_id, self.get(version)

    def run_artifacts(self, run_id: str) -> list[str]:
        """Artifact paths of a run, recursively (for checks and the CLI)."""
        found: list[str] = []
        pending = [""]
        while pending:
            folder = pending.pop()
            for item in self.client.list_artifacts(run_id, folder or None):
                (pending if item.is_dir else found).append(item.path)
        return sorted(found)

    def record_decision(self, run_id: str, version: str, promoted: bool, summary: str) -> None:
        self.client.set_tag(run_id, "promotion.decision", "promoted" if promoted else "rejected")
        self.client.set_tag(run_id, "promotion.reason", summary[:5000])
        self.client.set_model_version_tag(self.model_name, version, "promotion", summary[:5000])

    def record_tradeable(self, version: str, tradeable: bool) -> None:
        """Tag `tradeable`: whether the version passed the full gate (signals only when false)."""
        self.client.set_model_version_tag(self.model_name, version, "tradeable", str(tradeable).lower())


@contextlib.contextmanager
def _stderr_as_info() -> Any:
    buffer = io.StringIO()
    try:
        with contextlib.redirect_stderr(buffer):
            yield
    finally:
        for line in buffer.getvalue().splitlines():
            if line.strip():
                log.info("mlflow: %s", line.strip())


def _model_ref(name: str, version: object, run_id: object, tags: Mapping[str, str]) -> ModelRef:
    """A version's reference from its registry row and tags (`feature_columns` JSON, `horizon_bars`)."""
    return ModelRef(
        name=name,
        version=str(version),
        run_id=str(run_id),
        feature_columns=tuple(json.loads(tags.get("feature_columns", "[]"))),
        horizon_bars=int(tags.get("horizon_bars", "1")),
        tradeable=tags.get("tradeable", "false") == "true",
        tower=tags.get("served_tower", "tabular"),
        timeframe=tags.get("timeframe"),
    )


def _load_model_folder(folder: Path, ref: ModelRef) -> Any:
    """The native model in a version's artifact folder (`MLmodel` + files): the calibrated model of a
    pyfunc version, or the CatBoost classifier of a `catboost`-flavor version. Loaded into memory, so the
    folder may be deleted afterwards."""
    import yaml

    flavors = yaml.safe_load((folder / "MLmodel").read_text()).get("flavors", {})
    fused = folder / "artifacts" / FUSED_ARTIFACT
    if "catboost" not in flavors and is_fused_folder(fused):
        return FusedModel.load(fused)
    calibrated = folder / "artifacts" / CALIBRATED_ARTIFACT
    if "catboost" not in flavors and calibrated.is_dir():
        return CalibratedClassifier.load(calibrated)
    if "catboost" not in flavors:
        raise OperatorError(f"model {ref.name} version {ref.version} is neither CatBoost nor calibrated")
    flavor = flavors["catboost"]
    if flavor.get("model_type", "CatBoostClassifier") != "CatBoostClassifier":
        raise OperatorError(f"model {ref.name} version {ref.version} is a {flavor['model_type']}")
    model = CatBoostClassifier()
    model.load_model(str(folder / flavor["data"]), format=flavor.get("save_format", "cbm"))
    return model


def _flat_params(params: dict[str, Any]) -> dict[str, Any]:
    """MLflow params are strings of at most 6000 characters: long values are cut, not refused."""
    return {key: (str(value)[:6000]) for key, value in params.items()}


class SqliteRegistryReader:
    """The registry's read side for the serving tier, straight from MLflow's SQLite tracking database and
    its local artifact folder, without importing MLflow.

    Why: the MLflow SDK with its SQLAlchemy store costs the serving process about 140 MB of memory, and the
    tier only needs "which version holds the champion alias" (a read every few seconds) and "load that
    version's native model". It reads the registry tables of MLflow 3 (`registered_model_aliases`,
    `model_versions` and its `storage_location`, `model_version_tags`) read-only; writes (register, move
    an alias) stay with `MlflowRegistry`. tests/pipelines/test_registry_reader.py checks it against the
    SDK on a real registry, so a schema change in an MLflow upgrade fails the tests.

    Only `sqlite:///` tracking URIs with `file:` artifact storage; `serving_registry` picks the SDK for
    anything else (a tracking server, PostgreSQL, object storage).
    """

    def __init__(self, database: Path, model_name: str):
        self.database = database
        self.model_name = model_name

    def _query(self, sql: str, args: Sequence[object]) -> list[tuple[Any, ...]]:
        if not self.database.is_file():
            return []
        uri = f"{self.database.resolve().as_uri()}?mode=ro"
        with contextlib.closing(sqlite3.connect(uri, uri=True, timeout=5.0)) as connection:
            try:
                return connection.execute(sql, tuple(args)).fetchall()
            except sqlite3.OperationalError as exc:
                if "no such table" in str(exc):  # MLflow has not created its schema yet
                    return []
                raise

    def alias(self, alias: str) -> ModelRef | None:
        """The version holding `alias`, or None (no such model or alias)."""
        rows = self._query(
            "SELECT v.version, v.run_id, v.status FROM registered_model_aliases a "
            "JOIN model_versions v ON v.name = a.name AND v.version = a.version AND v.workspace = a.workspace "
            "WHERE a.name = ? AND a.alias = ? AND a.workspace = 'default'",
            (self.model_name, alias),
        )
        if not rows:
            return None
        version, run_id, status = rows[0]
        if status != "READY":
            raise OperatorError(f"model {self.model_name} version {version} holds {alias!r} but is {status}")
        tags = dict(
            self._query(
                "SELECT key, value FROM model_version_tags WHERE name = ? AND version = ? AND workspace = 'default'",
                (self.model_name, int(version)),
            )
        )
        return _model_ref(self.model_name, version, run_id, tags)

    def champion(self) -> ModelRef | None:
        return self.alias(CHAMPION)

    def load_native(self, ref: ModelRef) -> Any:
        """As `MlflowRegistry.load_native`, from the version's local artifact folder."""
        rows = self._query(
            "SELECT storage_location FROM model_versions WHERE name = ? AND version = ? AND workspace = 'default'",
            (self.model_name, int(ref.version)),
        )
        if not rows or not str(rows[0][0]).startswith("file:"):
            raise OperatorError(f"model {self.model_name} version {ref.version}: no local artifact folder")
        return _load_model_folder(Path(url2pathname(urlparse(str(rows[0][0])).path)), ref)


def serving_registry(tracking_uri: str, artifact_root: Path | None, model_name: str) -> ChampionSource:
    """What the serving tier reads the champion from: the SDK-free reader for the embedded SQLite registry
    with local artifacts (`sqlite:///<home>/mlruns/mlflow.db`), MLflow's client for any other URI."""
    if tracking_uri.startswith("sqlite:///"):
        return SqliteRegistryReader(Path(tracking_uri.removeprefix("sqlite:///")), model_name)
    return MlflowRegistry(tracking_uri, artifact_root, model_name)
