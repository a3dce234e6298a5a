"""``ledgerflow recordings list|show|transcript|correct``: recordings and their transcripts.

Every command goes through :class:`app.results.Recordings` with the person at the command
line as an admin on channel ``cli`` (:func:`app.cli.common.operator`), so the records are
the API's: each transcript read is ``phi_accessed``, each correction a new version and a
``transcript_corrected`` event (digests, never text). ``list`` and ``show`` print metadata
only: no text is read, so nothing is recorded.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Annotated, TypeVar

import typer

from app.cli.common import (
    DatabaseUrlOption,
    JsonOption,
    ReadAsOption,
    Refused,
    WideOption,
    actor_of,
    command_group,
    database_for,
    id_argument,
    id_shortener,
    one_of,
    operator,
    print_json,
    resolve,
    run_with,
    say,
    stdout,
)
from app.cli.tables import Column, add_row, new_table, show, when

if TYPE_CHECKING:
    from datetime import datetime

    from app.database import Database
    from app.results import (
        Recordings,
        RecordingsPage,
        RecordingSummary,
        TranscriptPublic,
        TranscriptVersionInfo,
    )

T = TypeVar("T")

recordings_cli = command_group("List recordings, show one, read and correct its transcript.")

RecordingIdArgument = Annotated[str, id_argument("recording", "RECORDING_ID")]
_ID_FIELD = "RECORDING_ID"


def run_recordings(
    database_url: str | None, work: Callable[[Recordings, Database], Awaitable[T]]
) -> T:
    """Run ``work`` with the recordings service on the command's database."""
    from app.config import get_settings
    from app.results import Recordings

    async def go(database: Database) -> T:
        return await work(Recordings(database, get_settings()), database)

    return run_with(database_for(database_url), go)


@recordings_cli.command("list")
def recordings_list(
    patient_id: Annotated[
        str | None, typer.Option("--patient-id", help="Only this patient.")
    ] = None,
    clinician_id: Annotated[
        str | None, typer.Option("--clinician-id", help="Only this clinician.")
    ] = None,
    status: Annotated[
        str | None,
        typer.Option("--status", help="uploaded | validated | transcribed | verified | failed"),
    ] = None,
    since: Annotated[
        str | None, typer.Option("--since", help="Uploaded at or after (ISO).")
    ] = None,
    until: Annotated[str | None, typer.Option("--until", help="Uploaded before (ISO).")] = None,
    cursor: Annotated[str | None, typer.Option("--cursor", help="Next page of a list.")] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, max=500, help="At most this many.")] = 50,
    wide: WideOption = False,
    as_json: JsonOption = False,
    database_url: DatabaseUrlOption = None,
) -> None:
    """List recordings, newest first.

    Metadata only (no transcript text); one page at a time (--cursor continues).
    """
    if status is not None:
        from app.results.recordings import STATUSES

        one_of(status, sorted(STATUSES), "--status")
    created_after = _time(since, "--since")
    created_before = _time(until, "--until")
    viewer = operator(actor_of(None), "recordings list", "")

    async def work(recordings: Recordings, _: Database) -> RecordingsPage:
        return await recordings.list(
            viewer,
            patient_id=patient_id,
            clinician_id=clinician_id,
            status=status,
            created_after=created_after,
            created_before=created_before,
            cursor=cursor,
            limit=limit,
        )

    page = run_recordings(database_url, work)
    if as_json:
        print_json(page)
        return
    columns = [
        Column("id", whole=True),
        Column("patient", max_width=12),
        Column("clinician", max_width=12),
        Column("status"),
        Column("version"),
        Column("audio"),
        Column("by", max_width=14),
        Column("uploaded (UTC)"),
    ]
    if wide:
        columns += [Column("request state"), Column("confidence"), Column("audio SHA-256")]
    table = new_table("recordings, newest first", columns)
    shorten = id_shortener((r.id for r in page.items), wide)
    for r in page.items:
        row = [
            shorten(r.id),
            r.patient_id,
            r.clinician_id,
            r.status,
            str(r.transcript_version or ""),
            _seconds(r.duration_seconds),
            r.submitted_by,
            when(r.uploaded_at, seconds=wide),
        ]
        if wide:
            row += [r.request_state, _confidence(r.confidence), r.audio_sha256 or ""]
        add_row(table, *row)
    show(table, wide=wide)
    if page.next_cursor:
        say(f"next page: --cursor {page.next_cursor}")


def _time(value: str | None, option: str) -> datetime | None:
    if value is None:
        return None
    from app.audit.query import parse_time

    return parse_time(value, option)


def _seconds(value: float | None) -> str:
    return "" if value is None else f"{value:.1f} s"


def _confidence(value: float | None) -> str:
    return "" if value is None else f"{value:.2f}"


@recordings_cli.command("show")
def recordings_show(
    recording_id: RecordingIdArgument,
    as_json: JsonOption = False,
    database_url: DatabaseUrlOption = None,
) -> None:
    """Show a recording's metadata and transcript versions.

    Status, audio, confidence, who made each version; the text itself is read by
    `ledgerflow recordings transcript`.
    """

    async def work(
        recordings: Recordings, database: Database
    ) -> tuple[RecordingSummary, list[TranscriptVersionInfo]]:
        rid = await resolve(database, "recording", recording_id, _ID_FIELD)
        viewer = operator(actor_of(None), "recordings show", str(rid))
        return await recordings.summary(viewer, rid), await recordings.versions(viewer, rid)

    summary, versions = run_recordings(database_url, work)
    if as_json:
        print_json({**summary.model_dump(mode="json"), "versions": versions})
        return
    _print_recording(summary, versions)


def _print_recording(r: RecordingSummary, versions: list[TranscriptVersionInfo]) -> None:
    from rich.table import Table

    facts = Table.grid(padding=(0, 2))
    facts.add_column(no_wrap=True)
    facts.add_column(overflow="fold")
    add_row(facts, "recording", str(r.id))
    add_row(facts, "request", f"{r.request_id} ({r.request_state})")
    add_row(facts, "patient", f"{r.patient_id}, clinician {r.clinician_id}")
    add_row(facts, "status", r.status + (f": {r.error_message}" if r.error_message else ""))
    audio = f"{r.audio_file_size} bytes, {_seconds(r.duration_seconds) or 'duration unknown'}"
    add_row(facts, "audio", audio + (", purged" if r.audio_purged_at else ""))
    add_row(facts, "audio SHA-256", r.audio_sha256 or "")
    if r.confidence is not None:
        add_row(facts, "confidence", _confidence(r.confidence))
    add_row(facts, "uploaded", f"{when(r.uploaded_at)} UTC by {r.submitted_by}")
    if r.processed_at is not None:
        add_row(facts, "processed", f"{when(r.processed_at)} UTC")
    current = f"version {r.transcript_version}" if r.transcript_version else "none yet"
    if r.transcript_purged_at is not None:
        current += f" (text purged {when(r.transcript_purged_at)} UTC)"
    add_row(facts, "transcript", current)
    out = stdout()
    out.print(facts)
    if not versions:
        return
    table = new_table(
        None,
        [
            Column("version"),
            Column("source"),
            Column("by", max_width=24),
            Column("at (UTC)"),
            Column("SHA-256 of the text", wrap=True),
        ],
    )
    for v in versions:
        digest = v.digest + (" (text purged)" if v.purged else "")
        add_row(table, str(v.version), v.source, v.created_by, when(v.created_at), digest)
    out.print(table)


@recordings_cli.command("transcript")
def recordings_transcript(
    recording_id: RecordingIdArgument,
    version: Annotated[
        int | None, typer.Option("--version", min=1, help="An earlier version (default: current).")
    ] = None,
    reader: ReadAsOption = None,
    as_json: JsonOption = False,
    database_url: DatabaseUrlOption = None,
) -> None:
    """Print a transcript's text (the current version, or --version).

    The read is recorded in the audit trail (phi_accessed), as over HTTP.
    """
    who = actor_of(reader)

    async def work(recordings: Recordings, database: Database) -> TranscriptPublic:
        rid = await resolve(database, "recording", recording_id, _ID_FIELD)
        viewer = operator(who, "recordings transcript", str(rid))
        return await recordings.transcript(viewer, rid, version)

    transcript = run_recordings(database_url, work)
    if as_json:
        print_json(transcript)
        return
    import sys

    say(
        f"recording {transcript.recording_id}: transcript version {transcript.version} of "
        f"{transcript.current_version} ({transcript.source}, by {transcript.created_by}, "
        f"{when(transcript.created_at)} UTC)"
    )
    sys.stdout.write(transcript.text.rstrip("\n") + "\n")


@recordings_cli.command("correct")
def recordings_correct(
    recording_id: RecordingIdArgument,
    version: Annotated[
        int,
        typer.Option(
            "--version",
            min=1,
            help="The version you corrected (its number in `recordings transcript`).",
            show_default=False,
        ),
    ],
    text: Annotated[
        str | None, typer.Option("--text", help="The whole corrected transcript.")
    ] = None,
    text_file: Annotated[
        str | None,
        typer.Option("--file", help="Read the corrected transcript from a file ('-': stdin)."),
    ] = None,
    author: Annotated[
        str | None,
        typer.Option("--as", help="Who corrects it (recorded); default cli:$USER."),
    ] = None,
    as_json: JsonOption = False,
    database_url: DatabaseUrlOption = None,
) -> None:
    """Save a corrected transcript as the next version.

    Only if --version is still the current one; every version is kept, the recogniser's
    stays version 1, and the correction is recorded (transcript_corrected: digests, no text).
    """
    corrected = _corrected_text(text, text_file)
    who = actor_of(author)

    async def work(recordings: Recordings, database: Database) -> tuple[TranscriptPublic, bool]:
        from app.results import VersionMismatch

        rid = await resolve(database, "recording", recording_id, _ID_FIELD)
        viewer = operator(who, "recordings correct", str(rid))
        try:
            return await recordings.correct(viewer, rid, corrected, version)
        except VersionMismatch as exc:
            raise Refused(
                f"--version: the transcript of recording {rid} is at version {exc.current}, "
                f"not {version}; read it again (ledgerflow recordings transcript "
                f"{str(rid)[:8]}) and correct that version"
            ) from None

    saved, created = run_recordings(database_url, work)
    if as_json:
        print_json({**saved.model_dump(mode="json"), "created": created})
        return
    if created:
        message = f"saved as version {saved.version} (corrected from version {version})"
    else:
        message = f"nothing saved: version {saved.version} already holds this text"
    stdout().print(f"recording {saved.recording_id}: {message}", highlight=False)


def _corrected_text(text: str | None, path: str | None) -> str:
    """The text of ``--text`` or of ``--file`` (exactly one of them)."""
    if (text is None) == (path is None):
        raise Refused("give the corrected transcript with --text TEXT or --file FILE (one)")
    if text is not None:
        return text
    assert path is not None
    return _read_text(path)


def _read_text(path: str) -> str:
    import sys

    try:
        if path == "-":
            return sys.stdin.read()
        with open(path, encoding="utf-8") as file:
            return file.read()
    except OSError as exc:
        raise Refused(f"--file: cannot read {path} ({exc.strerror or exc})") from None
    except UnicodeDecodeError:
        raise Refused(f"--file: {path} is not UTF-8 text") from None
