"""serving.lean_imports: catboost without pandas/pyarrow and ccxt's exchanges on demand, same behaviour.

Each check runs in a fresh interpreter: the steps change the process's imported modules, which the test
process (that has pandas and ccxt loaded already) must not see.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from catboost import CatBoostClassifier

from pipelines.config import load_settings

ROOT = Path(__file__).resolve().parents[2]


def _run(code: str) -> dict[str, object]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def model_and_rows(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(7)
    x = rng.normal(size=(300, 5))
    y = (x[:, 0] + 0.3 * x[:, 1] > 0).astype(int)
    model = CatBoostClassifier(iterations=20, depth=3, random_seed=7, verbose=False, thread_count=1)
    model.fit(x, y)
    path = tmp_path_factory.mktemp("lean") / "model.cbm"
    model.save_model(str(path))
    rows = np.vstack([x[:4], [[0.1, np.nan, -0.2, 0.0, 1.0]]])  # a missing feature, as a cold cache gives
    return path, rows, model.predict_proba(rows)


Fitted = tuple[Path, np.ndarray, np.ndarray]


def test_catboost_predicts_the_same_without_pandas_or_pyarrow(model_and_rows: Fitted) -> None:
    path, rows, expected = model_and_rows
    as_json = json.dumps([[None if np.isnan(v) else float(v) for v in row] for row in rows])
    code = f"""
import json, sys
import numpy as np
from serving.lean_imports import install
applied = install()
from catboost import CatBoostClassifier
model = CatBoostClassifier()
model.load_model({str(path)!r})
rows = np.array(json.loads({as_json!r}), dtype=np.float64)
print(json.dumps({{"applied": applied, "proba": model.predict_proba(rows).tolist(),
                  "loaded": [m for m in ("pandas", "pyarrow") if m in sys.modules]}}))
"""
    out = _run(code)

    assert "catboost without pandas" in out["applied"]  # type: ignore[operator]
    assert out["loaded"] == []
    np.testing.assert_allclose(np.asarray(out["proba"]), expected, rtol=0, atol=1e-12)


def test_ccxt_imports_exchanges_only_when_named() -> None:
    code = """
import json, sys
from serving.lean_imports import install
applied = install()
import ccxt, ccxt.pro
before = sorted(m for m in sys.modules if m in ("ccxt.kraken", "ccxt.pro.binance", "ccxt.async_support.binance"))
binance = ccxt.pro.binance
kraken = getattr(ccxt, "kraken")
print(json.dumps({"applied": applied, "before": before, "binance": f"{binance.__module__}.{binance.__name__}",
                  "kraken": kraken.__module__, "errors": issubclass(ccxt.NetworkError, ccxt.BaseError),
                  "exchanges": len(ccxt.exchanges), "unknown": hasattr(ccxt.pro, "no_such_venue"),
                  "pro_is_attr": ccxt.pro is sys.modules["ccxt.pro"]}))
"""
    out = _run(code)

    assert "ccxt exchanges on demand" in out["applied"]  # type: ignore[operator]
    assert out["before"] == []  # nothing imported an exchange module yet
    assert out["binance"] == "ccxt.pro.binance.binance" and out["kraken"] == "ccxt.kraken"
    assert out["errors"] is True and out["exchanges"] > 50  # type: ignore[operator]
    assert out["unknown"] is False and out["pro_is_attr"] is True


def test_install_leaves_already_imported_libraries_alone() -> None:
    code = """
import json
import pandas, ccxt
import serving.lean_imports as lean
print(json.dumps({"applied": lean.install()}))
"""
    assert _run(code) == {"applied": []}


def test_the_setting_is_on_by_default_and_can_be_turned_off() -> None:
    assert load_settings({}).serving.lean_imports is True
    assert load_settings({"ALPHATIDE_SERVING__LEAN_IMPORTS": "false"}).serving.lean_imports is False
