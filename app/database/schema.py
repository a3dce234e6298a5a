"""Bring a database to the head migration, report its state, or drop everything.

Everything goes through Alembic (never ``metadata.create_all``), so a database set up by
``init_database.py`` is exactly the one the migrations describe.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection

from app.database.engine import Database, create_sqlite_file
from app.database.exceptions import SchemaNotReady, describe_url, translated_errors
from app.database.models import ALL_METADATA

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"


def alembic_config(database: Database | None = None) -> Config:
    """An Alembic config pointing at our migrations, independent of the working directory."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    if database is not None:
        config.attributes["database_url"] = database.url
    return config


def head_revision() -> str:
    """The newest migration's revision id."""
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None, "no migrations found"
    return head


@dataclass(frozen=True)
class SchemaStatus:
    """What is in a database: its Alembic revision, its tables and how many requests it holds."""

    revision: str | None
    head: str
    tables: tuple[str, ...]
    request_count: int

    @property
    def at_head(self) -> bool:
        """True when the database is at the newest migration."""
        return self.revision == self.head


def _status(connection: Connection) -> SchemaStatus:
    revision = MigrationContext.configure(connection).get_current_revision()
    tables = tuple(sorted(inspect(connection).get_table_names()))
    count = 0
    if "requests" in tables:
        count = int(connection.execute(text("SELECT count(*) FROM requests")).scalar_one())
    return SchemaStatus(revision, head_revision(), tables, count)


async def schema_status(database: Database) -> SchemaStatus:
    """Read the revision, the tables and the request count."""
    with translated_errors(database.url):
        async with database.engine.connect() as connection:
            return await connection.run_sync(_status)


def _revision(connection: Connection) -> tuple[str | None, bool]:
    revision = MigrationContext.configure(connection).get_current_revision()
    has_tables = bool(revision) or bool(inspect(connection).get_table_names())
    return revision, has_tables


async def require_head(database: Database) -> str:
    """Refuse (``SchemaNotReady``) a database not at the head migration; return its revision.

    What ``serve`` and ``worker`` check before they start: the database answers (else the
    translated error: ``DatabaseMissing``, ``DatabaseLoginRefused``, ``DatabaseUnavailable``
    ...), it has ledgerflow's tables, and it is at the migration this code expects. One
    connection, two small reads; the message names the fix.
    """
    with translated_errors(database.url):
        async with database.engine.connect() as connection:
            revision, has_tables = await connection.run_sync(_revision)
    where = describe_url(database.url)
    head = head_revision()
    if revision is None:
        what = "no ledgerflow tables" if has_tables else "no tables"
        raise SchemaNotReady(f"DATABASE_URL: {what} in {where}; run: ledgerflow db init")
    if revision == head:
        return revision
    known = {
        script.revision for script in ScriptDirectory.from_config(alembic_config()).walk_revisions()
    }
    if revision not in known:
        raise SchemaNotReady(
            f"DATABASE_URL: {where} is at migration {revision}, which this ledgerflow does "
            f"not know (its newest is {head}); upgrade ledgerflow"
        )
    raise SchemaNotReady(
        f"DATABASE_URL: {where} is at migration {revision}, not the head {head}; "
        "run: ledgerflow db upgrade"
    )


def _run_command(connection: Connection, action: str, target: str) -> None:
    config = alembic_config()
    config.attributes["connection"] = connection
    if action == "upgrade":
        command.upgrade(config, target)
    else:
        command.downgrade(config, target)


async def upgrade(database: Database, target: str = "head") -> None:
    """Apply migrations up to ``target`` in one transaction (PostgreSQL DDL is transactional).

    A SQLite file that does not exist yet is created first: migrating is asking for it.
    """
    create_sqlite_file(database.url)
    with translated_errors(database.url):
        async with database.engine.begin() as connection:
            await connection.run_sync(_run_command, "upgrade", target)


async def downgrade(database: Database, target: str = "base") -> None:
    """Revert migrations down to ``target``."""
    with translated_errors(database.url):
        async with database.engine.begin() as connection:
            await connection.run_sync(_run_command, "downgrade", target)


#: Views the migrations create; they depend on tables, so they are dropped first.
_VIEWS = ("audit_access_v", "audit_chain_heads_v", "audit_events_v")


def _drop_all(connection: Connection) -> None:
    for view in _VIEWS:
        connection.execute(text(f"DROP VIEW IF EXISTS {view}"))
    if connection.dialect.name == "postgresql":
        connection.execute(text("DROP FUNCTION IF EXISTS audit_logs_refuse_change() CASCADE"))
        connection.execute(
            text("DROP FUNCTION IF EXISTS audit_checkpoints_refuse_change() CASCADE")
        )
        connection.execute(text("DROP FUNCTION IF EXISTS transcript_versions_guard() CASCADE"))
        connection.execute(
            text("DROP FUNCTION IF EXISTS state_transitions_refuse_change() CASCADE")
        )
    for metadata in ALL_METADATA:
        metadata.drop_all(connection)
    connection.execute(text("DROP TABLE IF EXISTS alembic_version"))


async def drop_everything(database: Database) -> None:
    """Drop every ledgerflow table, trigger function and the Alembic version table."""
    with translated_errors(database.url):
        async with database.engine.begin() as connection:
            await connection.run_sync(_drop_all)
