"""The C Keccak-256 that `install_fast_keccak` gives ccxt hashes exactly as ccxt's own sponge does."""

from __future__ import annotations

import pytest
from ccxt.static_dependencies.keccak.keccak import SHA3 as pure_python_sha3

from pipelines.trading.hedge.signing import _pycryptodome_keccak, install_fast_keccak


def test_fast_keccak_matches_ccxts_pure_python_one() -> None:
    pytest.importorskip("Crypto.Hash.keccak", reason="pycryptodome is not installed")
    fast = _pycryptodome_keccak()
    assert fast is not None
    for data in (b"", b"abc", bytes(range(256)) * 5):
        assert fast(data) == pure_python_sha3(data)
    assert install_fast_keccak() in ("openssl", "pycryptodome")
