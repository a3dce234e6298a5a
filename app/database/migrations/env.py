"""Alembic environment: the async engine from app.database, batch mode on SQLite.

Run from the command line (``alembic upgrade head``), it connects to ``DATABASE_URL``.
Run from ``app.database.schema`` it reuses the connection placed in
``config.attributes["connection"]`` so that migrations can run inside an event loop.
"""

from __future__ import annotations

import asyncio
import warnings
from typing import Any, Literal

from alembic import context
from sqlalchemy.engine import Connection

from app.database.engine import create_engine
from app.database.models import ALL_METADATA
from app.database.types import UTCDateTime

config = context.config


def _render_item(type_: str, obj: Any, autogen_context: Any) -> str | Literal[False]:
    # Keep migrations free of app imports: our UTC type is a plain timestamptz in the schema.
    if type_ == "type" and isinstance(obj, UTCDateTime):
        return "sa.DateTime(timezone=True)"
    return False


#: Indexes autogenerate cannot compare (expression-based); their migrations own them.
_UNCOMPARED_INDEXES = frozenset({"ix_requests_claim"})


def _include_object(
    obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any
) -> bool:
    return not (type_ == "index" and name in _UNCOMPARED_INDEXES)


def _configure(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=list(ALL_METADATA),
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
        render_item=_render_item,
        include_object=_include_object,
    )


def _run(connection: Connection) -> None:
    _configure(connection)
    with warnings.catch_warnings():
        # Alembic warns that it cannot compare ix_requests_claim; _include_object says so.
        warnings.filterwarnings("ignore", message=".*expression-based index 'ix_requests_claim'")
        with context.begin_transaction():
            context.run_migrations()


async def _run_online() -> None:
    url = config.attributes.get("database_url")
    engine = create_engine(url)
    try:
        async with engine.connect() as connection:
            await connection.run_sync(_run)
            await connection.commit()
    finally:
        await engine.dispose()


def run_migrations_offline() -> None:
    """Emit SQL to stdout (``alembic upgrade head --sql``)."""
    from app.config import get_settings

    context.configure(
        url=get_settings().database.render_as_string(hide_password=False),
        target_metadata=list(ALL_METADATA),
        literal_binds=True,
        render_item=_render_item,
    )
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
elif (shared := config.attributes.get("connection")) is not None:
    _run(shared)
else:
    asyncio.run(_run_online())
