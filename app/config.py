"""Settings from the environment (pydantic-settings), behind a cached ``get_settings()``."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from app.exceptions import ConfigurationError

DEFAULT_DATABASE_URL = "sqlite+aiosqlite:///./data/ledgerflow.db"
SUPPORTED_DRIVERS = frozenset({"sqlite+aiosqlite", "postgresql+asyncpg"})


def parse_database_url(raw: str) -> URL:
    """Parse ``raw`` into a SQLAlchemy URL, accepting only the two supported async drivers.

    ``postgresql://`` and ``postgres://`` are read as ``postgresql+asyncpg://`` and
    ``sqlite://`` as ``sqlite+aiosqlite://`` so that ops can paste ordinary URLs.
    """
    try:
        url = make_url(raw)
    except ArgumentError as exc:
        raise ConfigurationError(f"DATABASE_URL: cannot parse {raw!r} as a database URL") from exc
    if url.drivername in ("postgresql", "postgres"):
        url = url.set(drivername="postgresql+asyncpg")
    elif url.drivername == "sqlite":
        url = url.set(drivername="sqlite+aiosqlite")
    if url.drivername not in SUPPORTED_DRIVERS:
        raise ConfigurationError(
            f"DATABASE_URL: unsupported driver {url.drivername!r}; "
            f"use one of {', '.join(sorted(SUPPORTED_DRIVERS))}"
        )
    if url.drivername.startswith("sqlite") and not url.database:
        raise ConfigurationError("DATABASE_URL: a SQLite URL needs a file path")
    return url


class Settings(BaseSettings):
    """Every setting ledgerflow reads, each from the environment variable of the same name."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore")

    database_url: str = DEFAULT_DATABASE_URL
    db_pool_size: int = 10
    db_max_overflow: int = 20
    db_echo: bool = False
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["auto", "console", "json"] = "auto"

    worker_concurrency: int = 8
    lease_seconds: float = 30.0
    heartbeat_seconds: float = 10.0
    poll_seconds: float = 0.5
    shutdown_grace_seconds: float = 10.0

    #: Where the synthetic clinical warehouse lives (default: the orchestrator database).
    warehouse_url: str | None = None
    #: Extra agents to register: comma-separated ``package.module:Class`` paths.
    agents: str = ""

    delivery_dir: Path | None = None
    audio_dir: Path | None = None
    min_cohort_size: int = 10
    audio_max_bytes: int = 50 * 1024 * 1024
    audio_max_seconds: float = 600.0
    audio_min_seconds: float = 0.5
    transcript_min_confidence: float = 0.40

    @field_validator("database_url")
    @classmethod
    def _check_database_url(cls, value: str) -> str:
        parse_database_url(value)
        return value

    @field_validator("db_pool_size", "db_max_overflow", "worker_concurrency")
    @classmethod
    def _check_non_negative(cls, value: int) -> int:
        if value < 0:
            raise ValueError("must be zero or more")
        return value

    @property
    def database(self) -> URL:
        """The parsed ``DATABASE_URL``."""
        return parse_database_url(self.database_url)

    @property
    def warehouse(self) -> URL:
        """The parsed ``WAREHOUSE_URL``, or the orchestrator database when unset."""
        return parse_database_url(self.warehouse_url) if self.warehouse_url else self.database

    @property
    def deliveries_path(self) -> Path:
        """Folder for research deliveries (``DELIVERY_DIR``, default ``<data>/deliveries``)."""
        return self.delivery_dir or self.data_dir / "deliveries"

    @property
    def audio_path(self) -> Path:
        """Folder for uploaded recordings (``AUDIO_DIR``, default ``<data>/audio``)."""
        return self.audio_dir or self.data_dir / "audio"

    @property
    def data_dir(self) -> Path:
        """The folder for local files (SQLite database, deliveries, audio) next to the DB."""
        url = self.database
        if url.drivername.startswith("sqlite") and url.database not in (None, ":memory:"):
            return Path(str(url.database)).resolve().parent
        return Path("data").resolve()


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Return the process-wide settings, read once from the environment."""
    try:
        return Settings()
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"]).upper() or "settings"
        raise ConfigurationError(f"{field}: {first['msg']}") from exc
