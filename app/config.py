"""Settings from the environment (pydantic-settings), behind a cached ``get_settings()``."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, ValidationError, field_validator
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
    #: SQLite: WAL pages before a COMMIT checkpoints by itself (a safety net: workers
    #: checkpoint in the background every SQLITE_CHECKPOINT_SECONDS; see app/database/wal.py).
    sqlite_wal_autocheckpoint: int = Field(default=20_000, ge=0)
    #: SQLite: seconds between a worker's background WAL checkpoints (0: none).
    sqlite_checkpoint_seconds: float = Field(default=1.0, ge=0)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["auto", "console", "json"] = "auto"

    worker_concurrency: int = 8
    #: PostgreSQL: a worker's batches committing at once (SQLite always commits one at a time).
    commit_parallelism: int = Field(default=2, ge=1, le=8)
    lease_seconds: float = 30.0
    heartbeat_seconds: float = 10.0
    poll_seconds: float = 0.5
    shutdown_grace_seconds: float = 10.0
    #: How often a worker looks for owed file cleanups (cancelled or failed requests).
    cleanup_poll_seconds: float = Field(default=2.0, gt=0)

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
    #: Longest corrected transcript a clinician may save (characters).
    transcript_max_chars: int = Field(default=100_000, ge=1)

    # secrets (never logged, never in the database)
    #: Mixed into the HMAC of research pseudonyms (``person_id``): without it, anyone who
    #: knows a request id and a patient id can recompute the mapping. Set it in production.
    pseudonym_secret: SecretStr | None = None
    #: Signs audit checkpoints (HMAC-SHA256); unset, checkpoints are unsigned.
    audit_hmac_key: SecretStr | None = None

    # HTTP API (issue 6)
    #: Where ``ledgerflow serve`` listens unless ``--host`` / ``--port`` say otherwise.
    api_host: str = "127.0.0.1"
    api_port: int = Field(default=8000, ge=0, le=65535)
    #: Largest JSON request body the API reads (recordings use ``AUDIO_MAX_BYTES``).
    api_max_body_bytes: int = Field(default=1024 * 1024, ge=1024)
    #: How long ``/readyz`` waits for the database before answering 503.
    readyz_timeout_seconds: float = Field(default=2.0, gt=0)
    #: ``/metrics``: window of the step, retry and recovery figures, and how long one
    #: scrape's database figures are reused.
    metrics_window_seconds: int = Field(default=900, ge=1)
    metrics_cache_seconds: float = Field(default=5.0, ge=0)

    # web console (issue 14)
    #: A console session ends after this long without a page view.
    console_idle_seconds: float = Field(default=30 * 60, gt=0)
    #: ... and at the latest this long after sign-in, however active.
    console_session_seconds: float = Field(default=12 * 3600, gt=0)

    # operations (issue 7)
    #: Where backups go (default ``<data>/backups``).
    backup_dir: Path | None = None
    #: How many verified backups of a database to keep (newest first); 0 keeps them all.
    backup_keep: int = 14
    #: Folder holding ``pg_dump``/``pg_restore``/``psql`` when they are not on ``PATH``.
    pg_bin_dir: Path | None = None
    #: Mask sensitive keys and URL passwords in every log line (see ``app.logging``).
    log_mask_enabled: bool = True
    #: Comma-separated log keys whose values are masked (matched case-insensitively, also
    #: as ``key=value`` inside strings). Replaces the default list when set.
    log_mask_keys: str = ""
    #: Days after a request finished before its payload bodies are purged (0: never).
    retention_payload_days: int = 365
    #: Days after a transcription finished before its audio file is deleted (0: never).
    retention_audio_days: int = 90
    #: Days after a research request finished before its delivery files go (0: never).
    retention_delivery_days: int = 180
    #: Hours after which ``retention purge`` removes staging files a crash left behind for a
    #: finished (or unknown) request (0: never).
    retention_staging_hours: int = 24
    #: Years audit rows are kept; ``retention purge`` never deletes audit rows, it reports
    #: those past this age for a separate, deliberate archive.
    audit_retention_years: int = 6
    #: Seconds between the signed checkpoints ``serve`` takes (0: none are taken).
    checkpoint_every: float = Field(default=3600.0, ge=0)
    #: Where ``serve`` writes each scheduled checkpoint as a file (default
    #: ``<data>/checkpoints``): outside the database, the folder to mirror to WORM storage.
    checkpoint_dir: Path | None = None
    #: Pending requests past which ``submit`` raises ``QueueFull`` (0: no limit).
    max_queued_requests: int = 10_000
    #: The Retry-After hint (seconds) a ``QueueFull`` carries.
    queue_full_retry_after_seconds: int = 30

    # knowing when a request is done (issue 13)
    #: How often one shared poller per process reads the state of every watched request
    #: (long polls of ``GET /v1/requests/{id}?wait=``, event streams, ``requests wait``).
    watch_poll_seconds: float = Field(default=0.25, gt=0, le=10)
    #: Long polls and event streams one process serves at once; past it, 503.
    watch_max_waiters: int = Field(default=1000, ge=1)
    #: Seconds between comment heartbeats on ``GET /v1/requests/{id}/events``.
    sse_heartbeat_seconds: float = Field(default=15.0, gt=0)
    #: An event stream is closed after this long (the client resumes with Last-Event-ID).
    sse_max_seconds: float = Field(default=1800.0, gt=0)
    #: Allow ``http`` callback URLs to a loopback host (local receivers, tests); otherwise
    #: callback URLs must be ``https``.
    webhook_allow_http_loopback: bool = False
    #: Seconds a webhook receiver has to answer one attempt.
    webhook_timeout_seconds: float = Field(default=5.0, gt=0, le=60)
    #: Attempts per callback before it is recorded as failed for good.
    webhook_max_attempts: int = Field(default=10, ge=1)
    #: ... or once the callback is this old, whichever comes first.
    webhook_max_age_seconds: float = Field(default=24 * 3600, gt=0)
    #: Wait before the second attempt; doubled each time (with jitter) up to the maximum.
    webhook_backoff_seconds: float = Field(default=5.0, gt=0)
    webhook_backoff_max_seconds: float = Field(default=3600.0, gt=0)
    #: How often a worker looks for callbacks due (a read; a write only when one is).
    webhook_poll_seconds: float = Field(default=1.0, gt=0)
    #: Callbacks one worker sends at once.
    webhook_concurrency: int = Field(default=8, ge=1)

    @field_validator(
        "backup_keep",
        "retention_payload_days",
        "retention_audio_days",
        "retention_delivery_days",
        "retention_staging_hours",
        "max_queued_requests",
    )
    @classmethod
    def _check_ops_non_negative(cls, value: int) -> int:
        if value < 0:
            raise ValueError("must be zero or more")
        return value

    @field_validator("audit_retention_years", "queue_full_retry_after_seconds")
    @classmethod
    def _check_ops_positive(cls, value: int) -> int:
        if value < 1:
            raise ValueError("must be at least 1")
        return value

    @property
    def checkpoints_path(self) -> Path:
        """Folder for scheduled checkpoint files (``CHECKPOINT_DIR``, default
        ``<data>/checkpoints``)."""
        return self.checkpoint_dir or self.data_dir / "checkpoints"

    @property
    def backups_path(self) -> Path:
        """Folder for backups (``BACKUP_DIR``, default ``<data>/backups``)."""
        return self.backup_dir or self.data_dir / "backups"

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
