"""A throwaway database on the local PostgreSQL (127.0.0.1:5432, trust auth) for the replica tests."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
import pytest

ADMIN_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"


@contextmanager
def throwaway_database(prefix: str = "alphatide_replicas") -> Iterator[str]:
    """Create a uniquely named database, yield its DSN, drop it (with its sessions); skip without a server."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    try:
        admin = psycopg.connect(ADMIN_DSN, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as exc:
        pytest.skip(f"PostgreSQL not reachable at 127.0.0.1:5432: {exc}")
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
        try:
            yield f"postgresql://postgres@127.0.0.1:5432/{name}"
        finally:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def terminate_backends(dsn: str, application_prefix: str) -> int:
    """pg_terminate_backend every session of `dsn`'s database whose application_name starts with the prefix."""
    database = dsn.rsplit("/", 1)[1]
    with psycopg.connect(ADMIN_DSN, autocommit=True) as admin:
        rows = admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s AND application_name LIKE %s",
            (database, application_prefix + "%"),
        ).fetchall()
    return len(rows)
