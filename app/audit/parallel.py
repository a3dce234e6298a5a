"""Verification across processes: request partitions in parallel, in one snapshot.

Hashing is CPU work in Python, so one process verifies at the speed of one core. On
PostgreSQL the partitions of :mod:`app.audit.verify` are handed to worker processes that
each import the verifying transaction's snapshot (``pg_export_snapshot()`` / ``SET
TRANSACTION SNAPSHOT``): every process sees exactly the rows the first one saw, so the
result is the same as verifying in one process. SQLite offers no way to share a read
snapshot between connections, so it verifies in one process.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import uuid
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor

import asyncpg  # type: ignore[import-untyped]  # asyncpg publishes no type stubs
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from app.audit.checkpoint import CheckpointSet
from app.audit.problems import Report
from app.audit.query import snapshot_session
from app.audit.reader import Partition, PostgresPages, pages_of
from app.audit.verify import (
    Context,
    PartitionResult,
    Plan,
    absorb,
    prepare,
    verify_partition,
    verify_session,
)
from app.database import Database

#: Below this many rows a second process costs more (start-up, imports) than it saves.
PARALLEL_FROM_ROWS = 200_000


def default_workers(dialect: str, expected_rows: int) -> int:
    """Processes worth using: 1 on SQLite or small ledgers, else up to the CPU count (max 4)."""
    if dialect != "postgresql" or expected_rows < PARALLEL_FROM_ROWS:
        return 1
    return max(1, min(4, os.cpu_count() or 1))


async def _partition_in_snapshot(
    dsn: str, snapshot: str, partition: Partition, context: Context
) -> PartitionResult:
    connection = await asyncpg.connect(dsn)
    try:
        await connection.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        await connection.execute(f"SET TRANSACTION SNAPSHOT '{snapshot}'")
        result = await verify_partition(
            PostgresPages(connection), partition, context, lambda n: None
        )
        await connection.execute("ROLLBACK")
        return result
    finally:
        await connection.close()


def run_partition(
    dsn: str, snapshot: str, partition: Partition, context: Context
) -> PartitionResult:
    """Worker-process entry point: verify one partition in the exported snapshot."""
    return asyncio.run(_partition_in_snapshot(dsn, snapshot, partition, context))


async def verify_database(
    database: Database,
    request_id: uuid.UUID | None = None,
    *,
    given: CheckpointSet | None = None,
    hmac_key: str | None = None,
    allow_unsigned: bool = False,
    progress: Callable[[int, int | None], None] | None = None,
    workers: int | None = None,
) -> Report:
    """Verify ``database`` in one snapshot, in ``workers`` processes (default: see above)."""
    async with snapshot_session(database) as session:
        if database.dialect != "postgresql" or request_id is not None or workers == 1:
            return await verify_session(
                session,
                request_id,
                given=given,
                hmac_key=hmac_key,
                allow_unsigned=allow_unsigned,
                progress=progress,
            )
        snapshot = str((await session.execute(text("SELECT pg_export_snapshot()"))).scalar_one())
        read = 0

        def advance(n: int) -> None:
            nonlocal read
            read += n
            if progress is not None:
                progress(read, None)

        plan = await prepare(
            session, given=given, hmac_key=hmac_key, allow_unsigned=allow_unsigned, progress=advance
        )
        count = workers or default_workers(database.dialect, plan.expected)
        if count <= 1:
            return await _in_process(session, plan, progress, read)
        dsn = database.url.set(drivername="postgresql").render_as_string(hide_password=False)
        report = plan.report
        spawn = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=count, mp_context=spawn) as pool:
            futures = [
                asyncio.wrap_future(
                    pool.submit(run_partition, dsn, snapshot, p, plan.context.narrowed(p))
                )
                for p in plan.partitions
            ]
            for next_done in asyncio.as_completed(futures):
                part = await next_done
                absorb(report, part)
                read += part.rows
                if progress is not None:
                    progress(read, plan.expected)
        return report


async def _in_process(
    session: AsyncSession,
    plan: Plan,
    progress: Callable[[int, int | None], None] | None,
    read: int,
) -> Report:
    pages = await pages_of(session)

    def advance(n: int) -> None:
        nonlocal read
        read += n
        if progress is not None:
            progress(read, plan.expected)

    for partition in plan.partitions:
        narrowed = plan.context.narrowed(partition)
        absorb(plan.report, await verify_partition(pages, partition, narrowed, advance))
    return plan.report


__all__ = ["default_workers", "run_partition", "verify_database"]
