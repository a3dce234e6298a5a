"""Writing audit records as JSON, JSONL, CSV or FHIR, and reading JSONL and CSV back.

Writers are streaming: each record becomes text as it arrives and nothing is kept, so an
export of any size runs in constant memory. JSON, JSONL and CSV carry each row's canonical
columns and its ``hash`` (``event_data`` as canonical JSON in CSV); reading them back
(:func:`read_export`) gives the same typed events, and the rows re-hash to the same
hashes, which is what ``ledgerflow audit verify --file`` checks offline.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import AsyncIterable, Callable, Iterable, Iterator, Sequence
from datetime import UTC, datetime
from json.encoder import encode_basestring  # C-accelerated with ensure_ascii=False
from pathlib import Path
from typing import Any, Literal, TextIO, get_args

from app.audit.canonical import (
    ACTOR,
    AGENT_ID,
    CHAIN_KEY,
    EVENT_DATA,
    EVENT_TYPE,
    HASH,
    ID,
    OCCURRED_AT,
    PREV_HASH,
    REQUEST_ID,
    SEQ,
    SEVERITY,
    RawRow,
)
from app.audit.chain import canonical_json, format_timestamp
from app.audit.exceptions import BadExportFile, InvalidFilter
from app.audit.fhir import to_fhir
from app.audit.records import COLUMNS, AuditRecord

#: Machine formats (the CLI adds ``table``). ``fhir`` is a Bundle; ``fhir-ndjson`` has one
#: AuditEvent per line (the FHIR bulk-data layout).
Format = Literal["json", "jsonl", "csv", "fhir", "fhir-ndjson"]
FORMATS: tuple[str, ...] = get_args(Format)


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


class _Writer:
    """Turns records into text: :meth:`begin`, then :meth:`row` per record, then :meth:`end`."""

    def begin(self) -> str:
        return ""

    def row(self, record: AuditRecord) -> str:
        raise NotImplementedError

    def end(self) -> str:
        return ""


class _JsonLines(_Writer):
    def row(self, record: AuditRecord) -> str:
        return _dumps(record.to_json()) + "\n"


class _JsonArray(_Writer):
    def __init__(self) -> None:
        self._separator = "\n"

    def begin(self) -> str:
        return "["

    def row(self, record: AuditRecord) -> str:
        text = self._separator + _dumps(record.to_json())
        self._separator = ",\n"
        return text

    def end(self) -> str:
        return "\n]\n"


class _Csv(_Writer):
    def __init__(self) -> None:
        self._buffer = io.StringIO()
        self._csv = csv.writer(self._buffer, lineterminator="\n")

    def _line(self, values: Iterable[Any]) -> str:
        self._buffer.seek(0)
        self._buffer.truncate()
        self._csv.writerow(values)
        return self._buffer.getvalue()

    def begin(self) -> str:
        return self._line(COLUMNS)

    def row(self, record: AuditRecord) -> str:
        data = record.to_json()
        data["event_data"] = canonical_json(record.event_data).decode()
        return self._line("" if data[c] is None else data[c] for c in COLUMNS)


class _FhirNdjson(_Writer):
    def row(self, record: AuditRecord) -> str:
        return _dumps(to_fhir(record)) + "\n"


class _FhirBundle(_Writer):
    # FHIR JSON forbids empty arrays, so "entry" opens with the first row, if any.
    def __init__(self) -> None:
        self._separator = ',"entry":[\n'

    def begin(self) -> str:
        stamp = format_timestamp(datetime.now(UTC))
        return f'{{"resourceType":"Bundle","type":"collection","timestamp":"{stamp}"'

    def row(self, record: AuditRecord) -> str:
        entry = {"fullUrl": f"urn:uuid:{record.id}", "resource": to_fhir(record)}
        text = self._separator + _dumps(entry)
        self._separator = ",\n"
        return text

    def end(self) -> str:
        return "}\n" if self._separator.startswith(',"entry"') else "\n]}\n"


_WRITERS: dict[str, type[_Writer]] = {
    "json": _JsonArray,
    "jsonl": _JsonLines,
    "csv": _Csv,
    "fhir": _FhirBundle,
    "fhir-ndjson": _FhirNdjson,
}


# --------------------------------------------------------------------------- raw rows

#: Formats written straight from raw rows (no typed event per row): the fast export path.
RAW_FORMATS = ("json", "jsonl", "csv")


def canonical_event_data(text: str) -> str:
    """Stored ``event_data`` text in the canonical form exports carry.

    ledgerflow stores canonical text (no whitespace between tokens); text in the form of
    ``json.dumps`` or ``jsonb`` (rows stored before that, which always hold ``": "``) is
    re-encoded. Canonical text holding ``": "`` inside a string is re-encoded too, to the
    same text.
    """
    if ": " not in text:
        return text
    return canonical_json(json.loads(text)).decode()


def raw_json(row: RawRow) -> str:
    """A raw row as the JSON object :meth:`AuditRecord.to_json` describes (same keys, order)."""
    agent, rid = row[AGENT_ID], row[REQUEST_ID]
    return (
        '{"id":'
        + encode_basestring(row[ID])
        + ',"chain_key":'
        + encode_basestring(row[CHAIN_KEY])
        + ',"seq":'
        + str(row[SEQ])
        + ',"request_id":'
        + ("null" if rid is None else encode_basestring(rid))
        + ',"event_type":'
        + encode_basestring(row[EVENT_TYPE])
        + ',"severity":'
        + encode_basestring(row[SEVERITY])
        + ',"actor":'
        + encode_basestring(row[ACTOR])
        + ',"agent_id":'
        + ("null" if agent is None else encode_basestring(agent))
        + ',"occurred_at":'
        + encode_basestring(row[OCCURRED_AT])
        + ',"event_data":'
        + canonical_event_data(row[EVENT_DATA])
        + ',"prev_hash":'
        + encode_basestring(row[PREV_HASH])
        + ',"hash":'
        + encode_basestring(row[HASH])
        + "}"
    )


class _RawWriter:
    """Turns raw rows into text: :meth:`begin`, :meth:`page` per page of rows, :meth:`end`."""

    def begin(self) -> str:
        return ""

    def page(self, rows: Sequence[RawRow]) -> str:
        raise NotImplementedError

    def end(self) -> str:
        return ""


class _RawJsonLines(_RawWriter):
    def page(self, rows: Sequence[RawRow]) -> str:
        return "".join([raw_json(r) + "\n" for r in rows])


class _RawJsonArray(_RawWriter):
    def __init__(self) -> None:
        self._first = True

    def begin(self) -> str:
        return "["

    def page(self, rows: Sequence[RawRow]) -> str:
        if not rows:
            return ""
        text = ("\n" if self._first else ",\n") + ",\n".join(raw_json(r) for r in rows)
        self._first = False
        return text

    def end(self) -> str:
        return "\n]\n"


class _RawCsv(_RawWriter):
    def __init__(self) -> None:
        self._buffer = io.StringIO()
        self._csv = csv.writer(self._buffer, lineterminator="\n")

    def begin(self) -> str:
        self._csv.writerow(COLUMNS)
        return self._take()

    def _take(self) -> str:
        text = self._buffer.getvalue()
        self._buffer.seek(0)
        self._buffer.truncate()
        return text

    def page(self, rows: Sequence[RawRow]) -> str:
        self._csv.writerows(
            (
                r[ID],
                r[CHAIN_KEY],
                r[SEQ],
                "" if r[REQUEST_ID] is None else r[REQUEST_ID],
                r[EVENT_TYPE],
                r[SEVERITY],
                r[ACTOR],
                "" if r[AGENT_ID] is None else r[AGENT_ID],
                r[OCCURRED_AT],
                canonical_event_data(r[EVENT_DATA]),
                r[PREV_HASH],
                r[HASH],
            )
            for r in rows
        )
        return self._take()


_RAW_WRITERS: dict[str, type[_RawWriter]] = {
    "json": _RawJsonArray,
    "jsonl": _RawJsonLines,
    "csv": _RawCsv,
}


async def write_raw_export(
    pages: AsyncIterable[Sequence[RawRow]],
    fmt: str,
    out: TextIO,
    sent: Callable[[int], None] | None = None,
) -> int:
    """Stream pages of raw rows to ``out`` as JSON, JSONL or CSV; return how many rows.

    ``sent(n)`` is called after each page with the rows written so far.
    """
    writer = _RAW_WRITERS[fmt]()
    out.write(writer.begin())
    count = 0
    async for rows in pages:
        out.write(writer.page(rows))
        count += len(rows)
        if sent is not None:
            sent(count)
    out.write(writer.end())
    return count


def check_format(fmt: str, field: str = "format", extra: Iterable[str] = ()) -> str:
    """Return ``fmt`` if it is a known format (or one of ``extra``), else raise naming ``field``."""
    known = (*FORMATS, *extra)
    if fmt not in known:
        raise InvalidFilter(f"unknown format {fmt!r} (one of: {', '.join(known)})", field=field)
    return fmt


def render(records: Iterable[AuditRecord], fmt: str) -> str:
    """A whole (small) set of records as text, e.g. one query page."""
    writer = _WRITERS[check_format(fmt)]()
    return writer.begin() + "".join(writer.row(r) for r in records) + writer.end()


async def write_export(records: AsyncIterable[AuditRecord], fmt: str, out: TextIO) -> int:
    """Stream ``records`` to ``out`` in ``fmt``; return how many were written."""
    writer = _WRITERS[check_format(fmt)]()
    out.write(writer.begin())
    count = 0
    async for record in records:
        out.write(writer.row(record))
        count += 1
    out.write(writer.end())
    return count


# --------------------------------------------------------------------------- reading back


def _row(data: Any, where: str) -> AuditRecord:
    if not isinstance(data, dict):
        raise BadExportFile(f"{where}: not a JSON object")
    try:
        return AuditRecord.from_json(data)
    except BadExportFile as exc:
        raise BadExportFile(f"{where}: {exc.message}") from exc


def read_jsonl(lines: Iterable[str]) -> Iterator[AuditRecord]:
    """Records from JSONL lines (blank lines skipped); a bad line is a ``BadExportFile``."""
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            data = json.loads(line)
        except json.JSONDecodeError as exc:
            raise BadExportFile(f"line {number}: not JSON ({exc.msg})") from exc
        yield _row(data, f"line {number}")


def read_csv(lines: Iterable[str]) -> Iterator[AuditRecord]:
    """Records from the CSV this module writes (header row first)."""
    reader = csv.DictReader(lines)
    if reader.fieldnames is None or tuple(reader.fieldnames) != COLUMNS:
        raise BadExportFile(f"CSV header is not {','.join(COLUMNS)}")
    for number, row in enumerate(reader, 2):
        try:
            data: dict[str, Any] = {**row, "event_data": json.loads(row["event_data"])}
        except (json.JSONDecodeError, TypeError) as exc:
            raise BadExportFile(f"CSV line {number}: event_data is not JSON") from exc
        yield _row(data, f"CSV line {number}")


#: Export file names :func:`read_export` reads, by suffix.
EXPORT_SUFFIXES = (".jsonl", ".ndjson", ".csv", ".json")


def read_export(path: Path) -> Iterator[AuditRecord]:
    """Records from a ``.jsonl``/``.ndjson``, ``.csv`` or ``.json`` export file, streamed.

    Anything else (another suffix, a FHIR export, a file that is not an audit export) is a
    :class:`BadExportFile` naming the file, the line and the problem.
    """
    if path.suffix not in EXPORT_SUFFIXES:
        raise BadExportFile(
            f"{path}: not an audit export ({', '.join(EXPORT_SUFFIXES)} written by "
            "`ledgerflow audit export --format jsonl|csv|json`)"
        )
    try:
        with path.open(encoding="utf-8", newline="") as handle:
            if path.suffix == ".csv":
                yield from _named(path, read_csv(handle))
            elif path.suffix == ".json":
                try:
                    items = json.load(handle)
                except json.JSONDecodeError as exc:
                    raise BadExportFile(f"{path}: not JSON ({exc.msg})") from exc
                if not isinstance(items, list):
                    raise BadExportFile(f"{path}: not a JSON array of audit rows")
                yield from (_row(item, f"{path}: item {i}") for i, item in enumerate(items, 1))
            else:
                yield from _named(path, read_jsonl(handle))
    except OSError as exc:
        raise BadExportFile(f"{path}: cannot read ({exc.strerror})") from exc
    except UnicodeDecodeError:
        raise BadExportFile(f"{path}: not a text file") from None


def _named(path: Path, records: Iterator[AuditRecord]) -> Iterator[AuditRecord]:
    try:
        yield from records
    except BadExportFile as exc:
        if exc.message.startswith(str(path)):
            raise
        raise BadExportFile(f"{path}: {exc.message}") from exc
