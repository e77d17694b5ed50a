"""Fast request signing for the venues that sign every order (Hyperliquid: EIP-712, secp256k1).

ccxt 4.5 signs Hyperliquid orders in the order's path: Keccak-256 of the typed data (several
hashes per order) and an ECDSA signature. It hashes with OpenSSL's KECCAK-256 when OpenSSL >= 3.2
has it, else with a pure-Python sponge (~2.5 ms a hash, ~10 ms an order); it signs with coincurve
when installed, else with pure-Python ECDSA. `install_fast_keccak()` points ccxt's hash at
pycryptodome's C Keccak-256 (identical output) when OpenSSL lacks it; coincurve needs nothing
(ccxt imports it itself). Both are dependencies (pyproject.toml); without them ccxt's own code runs.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable

log = logging.getLogger(__name__)


def _pycryptodome_keccak() -> Callable[[bytes | bytearray], bytearray] | None:
    try:
        from Crypto.Hash import keccak
    except ImportError:
        return None

    def sha3(data: bytes | bytearray) -> bytearray:
        return bytearray(keccak.new(digest_bits=256, data=bytes(data)).digest())

    return sha3


def install_fast_keccak() -> str:
    """Make ccxt's Keccak-256 a C one; returns which one ccxt now uses ("openssl", "pycryptodome", "python")."""
    try:
        hashlib.new("KECCAK-256")
        return "openssl"
    except ValueError:
        pass
    fast = _pycryptodome_keccak()
    if fast is None:
        return "python"
    from ccxt.static_dependencies import keccak as ccxt_keccak
    from ccxt.static_dependencies.ethabi import typed_data

    if fast(b"") != ccxt_keccak.SHA3(b""):  # never sign with a hash that differs from ccxt's
        log.warning("pycryptodome's Keccak-256 differs from ccxt's: left as it was")
        return "python"
    ccxt_keccak.SHA3 = fast
    typed_data.keccak = fast
    return "pycryptodome"


def signer_backend() -> str:
    try:
        import coincurve  # noqa: F401
    except ImportError:
        return "python-ecdsa"
    return "coincurve"
