"""An export of 200,000 audit rows streams: the exporting process's memory does not grow.

Peak memory is the exporting process's own high-water mark (``VmHWM``, see
:func:`tests.support.audit_rows.run_cli_measured`), exporting everything versus exporting
one request's rows from the same database. tracemalloc would measure the same thing from
inside but slows an export of this size five- to sevenfold (about 50 s per backend; its
peak was 4.7 MB for 200k rows).
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select

from app.audit import AuditRecord
from app.database import Database
from app.database.models import AuditLog
from tests.support.audit_rows import Dataset, build_dataset, load_dataset, run_cli_measured

ROWS = 200_000
#: How much more the whole export may take than a one-request export. Holding 200k parsed
#: records would take several hundred MB.
GROWTH_LIMIT_MB = 40


@pytest.fixture(scope="session")
def audit_dataset(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dataset]:
    """200k chained rows built once per run (hashing is the slow part), loaded per backend."""

    path = tmp_path_factory.mktemp("audit-rows") / "rows.pickle"
    yield build_dataset(path, ROWS)
    path.unlink()


def _count_lines(path: Path) -> int:
    with path.open("rb") as handle:
        return sum(chunk.count(b"\n") for chunk in iter(lambda: handle.read(1 << 20), b""))


@pytest.mark.slow
async def test_exporting_200k_rows_runs_in_constant_memory(
    database: Database,
    audit_dataset: Dataset,
    subprocess_env: dict[str, str],
    tmp_path: Path,
) -> None:
    info = await load_dataset(database, audit_dataset)
    async with database.read_session() as session:
        total = (await session.execute(select(func.count()).select_from(AuditLog))).scalar_one()
    assert total == info.rows >= ROWS

    one = str(info.request_ids[len(info.request_ids) // 2])
    export = ["audit", "export", "--format", "jsonl", "-o"]
    small_code, small_mb = await asyncio.to_thread(
        run_cli_measured,
        [*export, str(tmp_path / "one.jsonl"), "--request-id", one],
        subprocess_env,
        tmp_path,
    )
    code, big_mb = await asyncio.to_thread(
        run_cli_measured, [*export, str(tmp_path / "all.jsonl")], subprocess_env, tmp_path
    )
    assert (small_code, code) == (0, 0)
    assert _count_lines(tmp_path / "one.jsonl") == 20
    assert _count_lines(tmp_path / "all.jsonl") == total + 1  # and the first export's record
    assert big_mb - small_mb < GROWTH_LIMIT_MB, (small_mb, big_mb)

    with (tmp_path / "all.jsonl").open(encoding="utf-8") as handle:
        first = AuditRecord.from_json(json.loads(handle.readline()))
    assert first.hash_ok and isinstance(first.id, uuid.UUID)
