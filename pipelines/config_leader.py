"""Settings of the engine's leader lease (serving replicas): part of `EngineConfig` as `engine.leader`.

Several serving processes may share the stores; exactly one of them runs the trading engine. With
``ALPHATIDE_ENGINE__LEADER__ENABLED=true`` each process takes a PostgreSQL session-level advisory lock
(`serving.engine.leader_lease`) before it builds the engine; the others serve `/signal` on standby and
try the lock every ``poll_interval_s``. Off by default: one process, always the leader.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from pipelines.config_checks import check_uri

POSTGRES_SCHEMES = ("postgresql://", "postgres://")


class LeaderConfig(BaseModel):
    """``ALPHATIDE_ENGINE__LEADER__*``: the lease that makes one replica's engine the active one."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    enabled: bool = Field(False, description="Replicas: trade only while holding the lease (off: always).")
    dsn: SecretStr | None = Field(
        None, description="postgresql://... holding the advisory lock; default: ALPHATIDE_ENGINE__DSN."
    )
    name: str = Field(
        "alphatide-engine", pattern=r"^[A-Za-z0-9_.:-]{1,63}$", description="Lock name: one active engine per name."
    )
    poll_interval_s: float = Field(1.0, gt=0, le=10, description="How often a standby tries the lock.")
    connect_timeout_s: int = Field(3, ge=1, le=60, description="Connecting to the lock's database.")
    dead_peer_s: int = Field(
        6, ge=2, le=120, description="TCP keepalives (both ends): a dead host or network loses the lock within this."
    )

    @field_validator("dsn")
    @classmethod
    def _postgres_only(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            raw = check_uri(value.get_secret_value(), "dsn", "ALPHATIDE_ENGINE__LEADER__DSN")
            if not raw.startswith(POSTGRES_SCHEMES):
                raise ValueError("ALPHATIDE_ENGINE__LEADER__DSN must be a postgresql:// URI (advisory locks)")
        return value

    def lock_dsn(self, engine_dsn: SecretStr | None) -> str | None:
        """The DSN of the lock: its own, else the trading store's when that is PostgreSQL, else None."""
        if self.dsn is not None:
            return self.dsn.get_secret_value()
        if engine_dsn is not None and engine_dsn.get_secret_value().startswith(POSTGRES_SCHEMES):
            return engine_dsn.get_secret_value()
        return None

    def check(self, engine_dsn: SecretStr | None) -> None:
        """ValueError when the lease is on but no PostgreSQL database can hold it."""
        if self.enabled and self.lock_dsn(engine_dsn) is None:
            raise ValueError(
                "ALPHATIDE_ENGINE__LEADER__ENABLED=true needs PostgreSQL: set ALPHATIDE_ENGINE__LEADER__DSN or a "
                "postgresql:// ALPHATIDE_ENGINE__DSN (the trading store the replicas share)"
            )
