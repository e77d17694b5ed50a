"""What every benchmark shares: where the recorded data is, and how a result is published."""

from __future__ import annotations

import json
import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"


def shared_data_dir() -> Path:
    """`SHARED_DATA_DIR`, or `../shared/data` beside the checkout (the same rule as the tests)."""
    env = os.environ.get("SHARED_DATA_DIR")
    return Path(env) if env else ROOT.parent / "shared" / "data"


def publish(name: str, result: dict[str, object]) -> None:
    """Write `bench/results/<name>.json` and print the same JSON as the last line of output."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{name}.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result))
