"""The leader lease of serving replicas: who may run the trading engine (`LeaderLease`).

`PostgresLease` is a session-level advisory lock (`pg_try_advisory_lock`) taken on a dedicated
autocommit connection kept open for as long as the process leads. PostgreSQL releases a session lock
when its backend ends, and the backend ends as soon as the holder's socket closes: a holder killed with
``kill -9`` loses the lock at once (the kernel closes its sockets; measured well under 0.1 s on one
machine). A holder whose host or network died is noticed by TCP keepalives on both ends (server side:
``tcp_keepalives_*`` set for this session; client side: libpq keepalives and ``tcp_user_timeout``),
bounded by ``dead_peer_s``; the holder itself sees its connection fail on the next `check()` and stops
trading (`serving.engine.leadership`).

`AlwaysLeader` is the single-process lease (the embedded default): always held.

The lock key is a stable 64-bit hash of the configured name; `holder()` reads the holder's
``application_name`` (``alphatide-leader <host>:<pid>``) from ``pg_locks`` / ``pg_stat_activity``.
"""

from __future__ import annotations

import hashlib
import logging
import os
import socket
from typing import Any, Protocol

import psycopg

log = logging.getLogger("alphatide.engine.leader")

APP_PREFIX = "alphatide-leader"


class LeaderLease(Protocol):
    """One process at a time holds it. Methods never raise on a database outage: they answer False/None."""

    def try_acquire(self) -> bool:
        """Take the lease if it is free; True when this process holds it (idempotent)."""
        ...

    def check(self) -> bool:
        """True while this process still holds the lease (its connection is alive)."""
        ...

    def holder(self) -> str | None:
        """Who holds the lease (a process description), None when nobody or unknown."""
        ...

    def release(self) -> None:
        """Give the lease up (and close the connection that held it)."""
        ...


class AlwaysLeader:
    """The single-process lease: always held, by this process."""

    def __init__(self) -> None:
        self.name = f"{socket.gethostname()}:{os.getpid()}"

    def try_acquire(self) -> bool:
        return True

    def check(self) -> bool:
        return True

    def holder(self) -> str | None:
        return self.name

    def release(self) -> None:
        return None


def lock_key(name: str) -> int:
    """A stable signed 64-bit advisory-lock key for `name` (the same in every process and release)."""
    return int.from_bytes(hashlib.blake2b(name.encode(), digest_size=8).digest(), "big", signed=True)


def connection_kwargs(connect_timeout_s: int, dead_peer_s: int, application_name: str) -> dict[str, Any]:
    """libpq parameters of the lock connection: timeouts and keepalives on both ends of the socket.

    The holder gives up in about half of `dead_peer_s` (client side), the server frees the lock after
    about `dead_peer_s`: on a partition the old leader has stopped before a standby can take over.
    """
    idle = max(1, dead_peer_s // 2)
    count = max(1, dead_peer_s - idle)
    client_ms = max(1000, dead_peer_s * 500)
    server = (
        f"-c tcp_keepalives_idle={idle} -c tcp_keepalives_interval=1 -c tcp_keepalives_count={count} "
        f"-c tcp_user_timeout={dead_peer_s * 1000} -c statement_timeout={client_ms} "
        "-c idle_session_timeout=0 -c idle_in_transaction_session_timeout=0"
    )
    return {
        "autocommit": True,
        "connect_timeout": connect_timeout_s,
        "application_name": application_name,
        "keepalives": 1,
        "keepalives_idle": 1,
        "keepalives_interval": 1,
        "keepalives_count": max(1, client_ms // 1000 - 1),
        "tcp_user_timeout": client_ms,
        "options": server,
    }


class PostgresLease:
    """A session-level advisory lock on a dedicated connection (see the module docstring).

    Not thread-safe: one thread (the leadership loop) calls it.
    """

    def __init__(self, dsn: str, name: str, *, connect_timeout_s: int = 3, dead_peer_s: int = 6) -> None:
        self.dsn = dsn
        self.name = name
        self.key = lock_key(name)
        self.me = f"{APP_PREFIX} {socket.gethostname()}:{os.getpid()}"
        self._kwargs = connection_kwargs(connect_timeout_s, dead_peer_s, self.me)
        self._conn: psycopg.Connection[Any] | None = None
        self._held = False

    def _connection(self) -> psycopg.Connection[Any]:
        if self._conn is None or self._conn.closed:
            self._conn = psycopg.connect(self.dsn, **self._kwargs)
        return self._conn

    def _drop(self) -> None:
        self._held = False
        if self._conn is not None:
            try:
                self._conn.close()
            except psycopg.Error:
                log.debug("closing the lock connection failed", exc_info=True)
        self._conn = None

    def _standby_query(self, sql: str, params: tuple[int, ...]) -> tuple[Any, ...] | None:
        """A standby's query; a connection that died since the last poll is replaced once, at once."""
        for attempt in (1, 2):
            fresh = self._conn is None or self._conn.closed
            try:
                return self._connection().execute(sql, params).fetchone()
            except psycopg.Error:
                self._drop()
                if fresh or attempt == 2:
                    raise
        return None  # unreachable

    def try_acquire(self) -> bool:
        if self._held:
            return self.check()
        try:
            row = self._standby_query("SELECT pg_try_advisory_lock(%s)", (self.key,))
        except psycopg.Error as exc:
            log.warning("leader lock %s: database unavailable (%s)", self.name, type(exc).__name__)
            return False
        self._held = bool(row and row[0])
        return self._held

    def check(self) -> bool:
        if not self._held:
            return False
        try:
            # Our backend is alive, and it is the one holding the lock (an admin may have unlocked it).
            row = self._connection().execute(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted "
                "AND pid = pg_backend_pid() AND classid = %s AND objid = %s AND objsubid = 1 "
                "AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
                self._lock_ids(),
            ).fetchone()
        except psycopg.Error as exc:
            log.error("leader lock %s: lost the lock connection (%s)", self.name, type(exc).__name__)
            self._drop()
            return False
        if not (row and row[0]):
            log.error("leader lock %s: no longer held by this session", self.name)
            self._drop()
            return False
        return True

    def _lock_ids(self) -> tuple[int, int]:
        """`pg_locks` shows a bigint key as classid (high 32 bits) and objid (low 32 bits), both unsigned."""
        unsigned = self.key & 0xFFFF_FFFF_FFFF_FFFF
        return unsigned >> 32, unsigned & 0xFFFF_FFFF

    def holder(self) -> str | None:
        if self._held:
            return self.me
        try:
            row = self._standby_query(
                "SELECT a.application_name, a.client_addr, a.pid FROM pg_locks l "
                "JOIN pg_stat_activity a ON a.pid = l.pid WHERE l.locktype = 'advisory' AND l.granted "
                "AND l.classid = %s AND l.objid = %s AND l.objsubid = 1 "
                "AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())",
                self._lock_ids(),
            )
        except psycopg.Error:
            return None
        if row is None:
            return None
        return str(row[0]) if row[0] else f"backend {row[2]} from {row[1] or 'local socket'}"

    def release(self) -> None:
        if self._held and self._conn is not None and not self._conn.closed:
            try:
                self._conn.execute("SELECT pg_advisory_unlock(%s)", (self.key,))
            except psycopg.Error:
                log.debug("unlock failed (closing the connection releases it)", exc_info=True)
        self._drop()
