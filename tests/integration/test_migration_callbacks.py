"""Migration 0012 (webhook callbacks) on a database that already has API clients: each gets
a webhook secret, and the migration goes down and up again with its data."""

from __future__ import annotations

import uuid

from sqlalchemy import text

from app.database import Database
from app.database import schema as db_schema
from app.database.types import utcnow
from tests.conftest import DatabaseUrlFactory


async def test_clients_made_before_0012_get_a_webhook_secret_and_it_goes_down_and_up(
    database_url_factory: DatabaseUrlFactory,
) -> None:
    database = Database.from_url(await database_url_factory(migrated=False))
    try:
        await db_schema.upgrade(database, "0011")
        async with database.session() as session:
            for name in ("svc-old", "svc-older"):
                await session.execute(
                    text(
                        "INSERT INTO api_clients (id, name, role, key_prefix, key_hash, "
                        "created_at) VALUES (:id, :name, 'submitter', 'lf_00000000', "
                        ":hash, :at)"
                    ),
                    {
                        "id": uuid.uuid4().hex
                        if database.url.get_backend_name() == "sqlite"
                        else uuid.uuid4(),
                        "name": name,
                        "hash": "0" * 64,
                        "at": utcnow().replace(tzinfo=None)
                        if database.url.get_backend_name() == "sqlite"
                        else utcnow(),
                    },
                )
        await db_schema.upgrade(database)
        async with database.read_session() as session:
            secrets = dict(
                (await session.execute(text("SELECT name, webhook_secret FROM api_clients"))).all()
            )
        assert set(secrets) == {"svc-old", "svc-older"}
        assert all(s.startswith("whsec_") and len(s) > 40 for s in secrets.values())
        assert secrets["svc-old"] != secrets["svc-older"]

        await db_schema.downgrade(database, "0011")
        status = await db_schema.schema_status(database)
        assert status.revision == "0011" and "callback_outbox" not in status.tables
        await db_schema.upgrade(database)
        assert (await db_schema.schema_status(database)).at_head
    finally:
        await database.dispose()
