"""Research deliveries: the manifest, and each file streamed with its recorded SHA-256.

Readable by the request's submitter, reviewers and admins (:mod:`app.results.access`).
Every file handed out appends ``data_accessed`` (file, SHA-256, bytes) before it is
returned; the manifest itself holds names, counts and digests only and is not a data
read. A delivery purged by retention answers :class:`~app.results.exceptions.Gone` naming
when and why.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path
from typing import Any

from sqlalchemy import select

from app.agents.research.delivery import DATA_DICTIONARY, MANIFEST
from app.agents.research.storage import read_csv, sha256_hex
from app.audit.events import DataAccessed
from app.auth import Principal
from app.config import Settings
from app.database import Database
from app.database.models import DataDelivery, Request
from app.orchestrator.exceptions import NotFound
from app.results.access import READERS, hide_unless_owner, record, require_role
from app.results.exceptions import FileCorrupt, NotReady
from app.results.files import OpenFile, open_slice
from app.results.models import DeliveryFile, DeliveryManifest, DictionaryEntry
from app.results.purges import gone

_MEDIA_TYPES = {".csv": "text/csv; charset=utf-8", ".json": "application/json"}


def file_url(request_id: uuid.UUID, name: str) -> str:
    """Where a delivery file is downloaded, relative to the API root."""
    return f"/v1/requests/{request_id}/delivery/{name}"


class Deliveries:
    """The deliveries service: what the API, the CLI and the console call."""

    def __init__(self, database: Database, settings: Settings) -> None:
        self.database = database
        self.settings = settings

    async def _delivery(self, viewer: Principal, request_id: uuid.UUID, operation: str) -> Any:
        """The request and its newest delivery row (a recorded 404 for another submitter's)."""
        await require_role(
            self.database,
            viewer,
            READERS,
            what="deliveries",
            operation=operation,
            target=str(request_id),
        )
        missing = f"no request {request_id}"
        async with self.database.read_session() as session:
            request = (
                await session.execute(
                    select(Request.id, Request.kind, Request.state, Request.submitted_by).where(
                        Request.id == request_id
                    )
                )
            ).one_or_none()
            if request is None:
                raise NotFound(missing)
            delivery = (
                await session.execute(
                    select(DataDelivery)
                    .where(DataDelivery.request_id == request_id)
                    .order_by(DataDelivery.created_at.desc())
                    .limit(1)
                )
            ).scalar_one_or_none()
        await hide_unless_owner(
            self.database,
            viewer,
            request.submitted_by,
            missing=missing,
            operation=operation,
            target=str(request_id),
            request_id=request_id,
        )
        if delivery is None:
            what = "research requests deliver files" if request.kind != "research" else "not yet"
            raise NotReady(f"request {request_id} has no delivery ({what}; state {request.state})")
        if delivery.purged_at is not None:
            async with self.database.read_session() as session:
                raise await gone(
                    session,
                    request_id,
                    "delivery",
                    f"the delivery of request {request_id}",
                    delivery.purged_at,
                )
        return delivery

    def _folder(self, delivery: DataDelivery) -> Path:
        root = self.settings.deliveries_path.resolve()
        folder = Path(delivery.folder)
        path = (folder if folder.is_absolute() else root / folder).resolve()
        if not path.is_relative_to(root) or path == root:
            raise FileCorrupt(
                f"the delivery folder of request {delivery.request_id} is not in DELIVERY_DIR"
            )
        return path

    async def manifest(self, viewer: Principal, request_id: uuid.UUID) -> DeliveryManifest:
        """The delivery's files (name, rows, bytes, SHA-256, URL) and data dictionary."""
        delivery = await self._delivery(viewer, request_id, "deliveries.manifest")
        folder = self._folder(delivery)
        files = [
            DeliveryFile(
                name=f["name"],
                rows=f["rows"],
                bytes=f["bytes"],
                sha256=f["sha256"],
                url=file_url(request_id, f["name"]),
            )
            for f in delivery.files
        ]
        dictionary, phi_level = await asyncio.to_thread(self._read_extras, folder, delivery, files)
        return DeliveryManifest(
            request_id=request_id,
            manifest_sha256=delivery.manifest_sha256,
            phi_level=phi_level,
            row_count=delivery.row_count,
            created_at=delivery.created_at,
            files=files,
            data_dictionary=dictionary,
        )

    def _read_extras(
        self, folder: Path, delivery: DataDelivery, files: list[DeliveryFile]
    ) -> tuple[list[DictionaryEntry], str | None]:
        """The data dictionary's rows and the PHI level, each checked against its digest."""
        try:
            manifest_bytes = (folder / MANIFEST).read_bytes()
            dictionary_bytes = (folder / DATA_DICTIONARY).read_bytes()
        except FileNotFoundError as exc:
            raise FileCorrupt(
                f"the delivery of request {delivery.request_id} lacks {Path(exc.filename).name}"
            ) from exc
        if sha256_hex(manifest_bytes) != delivery.manifest_sha256:
            raise FileCorrupt(f"{MANIFEST} of request {delivery.request_id} changed on disk")
        expected = next((f.sha256 for f in files if f.name == DATA_DICTIONARY), None)
        if expected is not None and sha256_hex(dictionary_bytes) != expected:
            raise FileCorrupt(f"{DATA_DICTIONARY} of request {delivery.request_id} changed")
        _, rows = read_csv(dictionary_bytes)
        entries = [
            DictionaryEntry(file=r[0], column=r[1], type=r[2], description=r[3]) for r in rows
        ]
        level = json.loads(manifest_bytes).get("phi_level")
        return entries, level if isinstance(level, str) else None

    async def open_file(
        self,
        viewer: Principal,
        request_id: uuid.UUID,
        name: str,
        range_header: str | None = None,
    ) -> OpenFile:
        """Open one delivery file (or ``manifest.json``), record the read, return it open.

        Only names the manifest lists are served, from the delivery's own folder. The file's
        size is checked against the manifest before anything is sent.
        """
        operation = "deliveries.file"
        delivery = await self._delivery(viewer, request_id, operation)
        if name == MANIFEST:
            sha256, size = delivery.manifest_sha256, None
        else:
            listed = next((f for f in delivery.files if f["name"] == name), None)
            if listed is None:
                raise NotFound(f"no file {name!r} in the delivery of request {request_id}")
            sha256, size = listed["sha256"], listed["bytes"]
        path = self._folder(delivery) / name
        try:
            handle, byte_range = await asyncio.to_thread(open_slice, path, range_header)
        except FileNotFoundError:
            raise FileCorrupt(
                f"{name} of the delivery of request {request_id} is missing on the server"
            ) from None
        try:
            if size is not None and byte_range.size != size:
                raise FileCorrupt(
                    f"{name} of request {request_id} has {byte_range.size} bytes on disk; "
                    f"the manifest says {size}"
                )
            async with self.database.session() as session:
                event = DataAccessed(
                    file=name,
                    sha256=sha256,
                    bytes_sent=byte_range.length,
                    byte_range=byte_range.describe() if byte_range.partial else None,
                    channel=viewer.channel,
                )
                await record(session, viewer, [event], request_id)
        except BaseException:
            handle.close()
            raise
        suffix = Path(name).suffix
        return OpenFile(
            name=name,
            media_type=_MEDIA_TYPES.get(suffix, "application/octet-stream"),
            range=byte_range,
            sha256=sha256,
            handle=handle,
        )


__all__ = ["Deliveries", "file_url"]
