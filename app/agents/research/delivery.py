"""Step ``delivery``: publish the checked extract with a data dictionary and SHA-256 manifest.

Each staged file is verified against the SHA-256 that extraction reported (and QA
checked) and copied atomically into ``<DELIVERY_DIR>/<request_id>/``; then
``data_dictionary.csv`` and ``manifest.json`` are written and the staging folder removed.
The manifest has no timestamp, so the same extract always has the same manifest digest.

Re-running is safe: a file already delivered with the expected digest is accepted when its
staged copy is gone (an earlier attempt got that far before a crash), and every write
replaces its target with identical bytes.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import uuid
from pathlib import Path
from typing import Any, ClassVar

from pydantic import BaseModel

from app.agents.base import (
    Agent,
    AgentContext,
    CleanupContext,
    DomainWrite,
    PermanentError,
    RemovedFile,
    StepResult,
    remove_files,
)
from app.agents.research.elements import CATALOGUE
from app.agents.research.extraction import ExtractionOutput
from app.agents.research.payload import DataElement, PhiLevel, ResearchPayload
from app.agents.research.qa import QaOutput
from app.agents.research.requirements import RequirementsOutput
from app.agents.research.storage import (
    StoredFile,
    csv_bytes,
    delivered_files,
    delivery_folder,
    prune_empty,
    sha256_hex,
    staging_folder,
    write_atomic,
)

DATA_DICTIONARY = "data_dictionary.csv"
MANIFEST = "manifest.json"


class DeliveryPrevious(BaseModel):
    """Earlier outputs this step reads."""

    requirements: RequirementsOutput
    extraction: ExtractionOutput
    qa: QaOutput


class DeliveryInput(BaseModel):
    """The payload (unused: the normalised criteria are authoritative) and earlier outputs."""

    payload: ResearchPayload
    previous: DeliveryPrevious


class DeliveryOutput(BaseModel):
    """Where the delivery is, its manifest's SHA-256, its files and its data-row count."""

    folder: str
    manifest_sha256: str
    files: list[StoredFile]
    row_count: int


def data_dictionary(elements: list[DataElement], level: PhiLevel) -> tuple[bytes, int]:
    """The data dictionary CSV (file, column, type, description) and its row count."""
    rows = [
        [CATALOGUE[element].file_name, column.name, column.type, column.description]
        for element in elements
        for column in CATALOGUE[element].columns(level)
    ]
    return csv_bytes(["file", "column", "type", "description"], rows), len(rows)


def manifest(request_id: uuid.UUID, level: PhiLevel, files: list[StoredFile]) -> bytes:
    """The manifest JSON: each file's SHA-256, size and row count, keys sorted."""
    document: dict[str, Any] = {
        "request_id": str(request_id),
        "phi_level": level.value,
        "files": {
            stored.name: {"sha256": stored.sha256, "bytes": stored.bytes, "rows": stored.rows}
            for stored in files
        },
    }
    return (json.dumps(document, indent=2, sort_keys=True) + "\n").encode("utf-8")


def _publish(staging: Path, final: Path, expected: list[StoredFile]) -> None:
    final.mkdir(parents=True, exist_ok=True)
    for stored in expected:
        source, target = staging / stored.name, final / stored.name
        if source.is_file():
            data = source.read_bytes()
            if sha256_hex(data) != stored.sha256:
                raise PermanentError(
                    f"staged file {stored.name} changed after extraction; not delivered",
                    detail={"reason": "staged_file_changed", "file": stored.name},
                )
            write_atomic(target, data)
        elif not (target.is_file() and sha256_hex(target.read_bytes()) == stored.sha256):
            raise PermanentError(
                f"staged file {stored.name} is missing; run extraction again",
                detail={"reason": "staged_file_missing", "file": stored.name},
            )


class DeliveryAgent(Agent[DeliveryInput, DeliveryOutput]):
    """Publishes the extract with dictionary and manifest (``research.delivery``)."""

    agent_id: ClassVar[str] = "research.delivery"
    input_model: ClassVar[type[BaseModel]] = DeliveryInput
    output_model: ClassVar[type[BaseModel]] = DeliveryOutput

    async def run(self, context: AgentContext, input: DeliveryInput) -> StepResult[DeliveryOutput]:
        """Copy the verified files, write dictionary and manifest, record the delivery."""
        previous = input.previous
        if not previous.qa.passed:
            raise PermanentError("QA did not pass; nothing is delivered")
        criteria = previous.requirements.criteria
        level = previous.extraction.phi_level
        data_files = previous.extraction.files
        staging = staging_folder(context.settings, context.request_id)
        final = delivery_folder(context.settings, context.request_id)

        dictionary, dictionary_rows = data_dictionary(criteria.data_elements, level)
        dictionary_file = StoredFile(
            name=DATA_DICTIONARY,
            rows=dictionary_rows,
            bytes=len(dictionary),
            sha256=sha256_hex(dictionary),
        )
        files = [*data_files, dictionary_file]
        manifest_data = manifest(context.request_id, level, files)
        manifest_sha256 = sha256_hex(manifest_data)

        def publish() -> None:
            _publish(staging, final, data_files)
            write_atomic(final / DATA_DICTIONARY, dictionary)
            write_atomic(final / MANIFEST, manifest_data)
            shutil.rmtree(staging, ignore_errors=True)

        await asyncio.to_thread(publish)
        row_count = sum(stored.rows for stored in data_files)
        context.log.info(
            "extract_delivered", files=len(files), rows=row_count, manifest_sha256=manifest_sha256
        )
        write = DomainWrite(
            "data_deliveries",
            {
                "request_id": context.request_id,
                "folder": str(final),
                "files": [stored.model_dump() for stored in files],
                "manifest_sha256": manifest_sha256,
                "row_count": row_count,
            },
        )
        output = DeliveryOutput(
            folder=str(final), manifest_sha256=manifest_sha256, files=files, row_count=row_count
        )
        return StepResult(output, writes=(write,))

    async def cleanup(self, context: CleanupContext) -> list[RemovedFile]:
        """On cancel or failure remove whatever was published; before a re-run nothing (the
        re-run checks published files against the manifest and finishes the job)."""
        if context.reason == "recovered":
            return []

        def remove() -> list[RemovedFile]:
            settings, request_id = context.settings, context.request_id
            removed = remove_files(
                delivery_folder(settings, request_id), delivered_files(settings, request_id)
            )
            prune_empty(settings, request_id)
            return removed

        return await asyncio.to_thread(remove)


__all__ = [
    "DATA_DICTIONARY",
    "MANIFEST",
    "DeliveryAgent",
    "DeliveryInput",
    "DeliveryOutput",
    "DeliveryPrevious",
    "data_dictionary",
    "manifest",
]
