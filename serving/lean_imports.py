"""Import two libraries without the parts the serving process never runs (about 100 MB of its memory).

`install()` is called by the serving entry points (`alphatide serve`, `bench.serve_target fast`) before
`serving.app` is imported, when `serving.lean_imports` is on (the default):

- **CatBoost without pandas.** `catboost.core` imports pandas (and pandas imports pyarrow) only to
  recognize DataFrame inputs; together about 100 MB of RSS. The serving tier hands CatBoost float64 numpy
  arrays only (`serving.scorer.LoadedModel.predict_up`), so catboost is imported with pandas hidden; its
  own stand-in classes (`catboost.core.pd`, whose `DataFrame`/`Series` nothing is an instance of) are
  given to `_catboost` too, which otherwise has `pd = None` there and fails on `isinstance(x, pd.DataFrame)`.
  Predictions are unchanged (tests compare them with a normal import). A process that imports pandas
  later (a remote MLflow client) still works, as long as it passes CatBoost numpy arrays, as serving does.
- **ccxt with exchanges on demand.** `import ccxt` (and `ccxt.pro`, `ccxt.async_support`) executes every
  exchange module (about 100 each, 700 modules, about 55 MB) although serving uses one or two (`binance`;
  a Polymarket venue). The three package `__init__` files are executed without their exchange import
  lines, and a module `__getattr__` imports an exchange the first time it is named
  (`ccxt.pro.binance`, `getattr(ccxt, venue_id)`); everything else in them (errors, `Exchange`,
  `exchanges`, `__version__`) is as ccxt wrote it.

Each step is skipped when its library is already imported (a test process, a CLI command that got there
first): it never replaces a module someone holds.
"""

from __future__ import annotations

import importlib
import importlib.util
import re
import sys
from types import ModuleType
from typing import Any

# Lines like `from ccxt.kraken import kraken` (with a noqa comment) and their async_support/pro variants.
_EXCHANGE_IMPORT = re.compile(r"^from ccxt\.(?:async_support\.|pro\.)?([a-z0-9_]+) import \1\b.*$", re.M)
CCXT_PACKAGES = ("ccxt", "ccxt.async_support", "ccxt.pro")


def install() -> list[str]:
    """Apply both steps (each only if its library is not imported yet); returns the steps applied."""
    applied = []
    if catboost_without_pandas():
        applied.append("catboost without pandas")
    if ccxt_exchanges_on_demand():
        applied.append("ccxt exchanges on demand")
    return applied


def catboost_without_pandas() -> bool:
    """Import catboost with pandas hidden; False (nothing done) if catboost or pandas is already imported."""
    if "catboost" in sys.modules or "pandas" in sys.modules:
        return False
    sys.modules["pandas"] = None  # type: ignore[assignment]  # makes `import pandas` raise ImportError
    try:
        import catboost.core
        from catboost import _catboost  # type: ignore[attr-defined]
    finally:
        del sys.modules["pandas"]
    _catboost.pd = catboost.core.pd  # the stand-in classes instead of None (see the module docstring)
    return True


def ccxt_exchanges_on_demand() -> bool:
    """Load ccxt's three packages with exchanges imported on first use; False if ccxt is already imported."""
    if any(name in sys.modules for name in CCXT_PACKAGES):
        return False
    for name in CCXT_PACKAGES:
        _lazy_package(name)
    return True


def _lazy_package(name: str) -> ModuleType:
    spec = importlib.util.find_spec(name)
    if spec is None or spec.origin is None:
        raise ImportError(f"no module named {name!r}")
    with open(spec.origin, encoding="utf-8") as f:
        source = f.read()
    exchanges = frozenset(_EXCHANGE_IMPORT.findall(source))
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module

    def __getattr__(attr: str) -> Any:  # PEP 562: only called for names the package does not hold yet
        if attr not in exchanges:
            raise AttributeError(f"module {name!r} has no attribute {attr!r}")
        value = getattr(importlib.import_module(f"{name}.{attr}"), attr)
        setattr(module, attr, value)
        return value

    module.__getattr__ = __getattr__  # type: ignore[method-assign]
    try:
        exec(compile(_EXCHANGE_IMPORT.sub("", source), spec.origin, "exec"), module.__dict__)
    except BaseException:
        del sys.modules[name]
        raise
    parent, _, child = name.rpartition(".")
    if parent:
        setattr(sys.modules[parent], child, module)  # `import ccxt.pro` then `ccxt.pro` works as usual
    return module
