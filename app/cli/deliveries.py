"""``ledgerflow requests delivery ID [-o DIR]``: save a research delivery's files, each checked.

Through :class:`app.results.Deliveries` with the person at the command line as an admin
on channel ``cli`` (:func:`app.cli.common.operator`), so each file handed out is recorded
as ``data_accessed``, exactly as over HTTP. Every file (and ``manifest.json``) is written
to a temporary name, its SHA-256 and size compared with the manifest's, and only then
renamed into place; one that does not match is removed and the command fails (exit 2).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from app.cli.common import (
    DatabaseUrlOption,
    JsonOption,
    ReadAsOption,
    Refused,
    RequestIdArgument,
    actor_of,
    command_group,
    database_for,
    operator,
    print_json,
    resolve,
    run_with,
    say,
    stdout,
)

if TYPE_CHECKING:
    from app.auth import Principal
    from app.database import Database
    from app.results import Deliveries, DeliveryManifest, OpenFile

delivery_cli = command_group()

_MANIFEST = "manifest.json"


@dataclass(frozen=True)
class Saved:
    """One file written and checked."""

    name: str
    path: Path
    bytes: int
    sha256: str


class DigestMismatch(Refused):
    """A delivered file does not match its manifest entry; nothing of it was kept."""

    code = "digest_mismatch"


@delivery_cli.command("delivery")
def requests_delivery(
    request_id: RequestIdArgument,
    output: Annotated[
        Path | None,
        typer.Option(
            "-o",
            "--output",
            help="Folder to write the files in (made if missing); default ./delivery-<id>.",
            show_default=False,
        ),
    ] = None,
    reader: ReadAsOption = None,
    as_json: JsonOption = False,
    database_url: DatabaseUrlOption = None,
) -> None:
    """Download a research request's delivery and check every file's SHA-256.

    The files, the data dictionary and manifest.json; each download is recorded
    (data_accessed).
    """
    who = actor_of(reader)
    if output is not None and output.exists() and not output.is_dir():
        raise Refused(f"-o: {output} is a file, not a folder")

    async def work(database: Database) -> tuple[DeliveryManifest, Path, list[Saved]]:
        from app.config import get_settings
        from app.results import Deliveries

        rid = await resolve(database, "request", request_id, "REQUEST_ID")
        viewer = operator(who, "requests delivery", str(rid))
        deliveries = Deliveries(database, get_settings())
        manifest = await deliveries.manifest(viewer, rid)
        folder = output if output is not None else Path(f"delivery-{rid}")
        saved = await _save_all(deliveries, viewer, manifest, folder)
        return manifest, folder, saved

    manifest, folder, saved = run_with(database_for(database_url), work)
    if as_json:
        files = [
            {"name": s.name, "path": str(s.path), "bytes": s.bytes, "sha256": s.sha256}
            for s in saved
        ]
        print_json({"folder": str(folder), "manifest": manifest, "files": files})
        return
    for s in saved:
        say(f"wrote {s.path} ({s.bytes} bytes, SHA-256 matches the manifest)")
    stdout().print(
        f"delivery of request {manifest.request_id}: {len(saved)} files in {folder}, "
        f"{manifest.row_count} data rows, every SHA-256 checked",
        highlight=False,
        soft_wrap=True,
    )


async def _save_all(
    deliveries: Deliveries, viewer: Principal, manifest: DeliveryManifest, folder: Path
) -> list[Saved]:
    """Each listed file, then ``manifest.json``, written into ``folder`` and checked."""
    wanted: list[tuple[str, str, int | None]] = [
        (f.name, f.sha256, f.bytes) for f in manifest.files
    ]
    wanted.append((_MANIFEST, manifest.manifest_sha256, None))
    folder.mkdir(parents=True, exist_ok=True)
    saved = []
    for name, sha256, size in wanted:
        target = folder / _safe_name(name)
        opened = await deliveries.open_file(viewer, manifest.request_id, name)
        saved.append(await _write_checked(opened, target, sha256, size))
    return saved


def _safe_name(name: str) -> str:
    """``name`` if it is a plain file name (the manifest is ours, but a path is refused)."""
    if not name or name in (".", "..") or Path(name).name != name or "\\" in name:
        raise Refused(f"the manifest names a file {name!r} that is not a plain file name")
    return name


async def _write_checked(opened: OpenFile, target: Path, sha256: str, size: int | None) -> Saved:
    """Stream ``opened`` to a temporary file beside ``target``, check it, rename it."""
    import hashlib
    import os

    partial = target.with_name(f".{target.name}.{uuid.uuid4().hex[:8]}.part")
    digest = hashlib.sha256()
    written = 0
    try:
        with partial.open("wb") as sink:
            async for chunk in opened.chunks():
                sink.write(chunk)
                digest.update(chunk)
                written += len(chunk)
        got = digest.hexdigest()
        if got != sha256 or (size is not None and written != size):
            raise DigestMismatch(
                f"{target.name}: received {written} bytes with SHA-256 {got}; the manifest "
                f"says {size if size is not None else 'its'} bytes with SHA-256 {sha256}; "
                "nothing of it was kept"
            )
        os.replace(partial, target)
    except BaseException:
        opened.close()
        partial.unlink(missing_ok=True)
        raise
    return Saved(target.name, target, written, got)
