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
from collections.abc import AsyncIterable, Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, TextIO, get_args

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


def read_jsonl(lines: Iterable[str]) -> Iterator[AuditRecord]:
    """Records from JSONL lines (blank lines skipped); a bad line is a ``BadExportFile``."""
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            data = json.loads(line)
        except json.JSONDecodeError as exc:
            raise BadExportFile(f"line {number}: not JSON ({exc.msg})") from exc
        if not isinstance(data, dict):
            raise BadExportFile(f"line {number}: not a JSON object")
        yield AuditRecord.from_json(data)


def read_csv(lines: Iterable[str]) -> Iterator[AuditRecord]:
    """Records from the CSV this module writes (header row first)."""
    reader = csv.DictReader(lines)
    if reader.fieldnames is None or tuple(reader.fieldnames) != COLUMNS:
        raise BadExportFile(f"CSV header is not {','.join(COLUMNS)}")
    for number, row in enumerate(reader, 2):
        try:
            data: dict[str, Any] = {**row, "event_data": json.loads(row["event_data"])}
        except json.JSONDecodeError as exc:
            raise BadExportFile(f"CSV line {number}: event_data is not JSON") from exc
        yield AuditRecord.from_json(data)


def read_export(path: Path) -> Iterator[AuditRecord]:
    """Records from a ``.jsonl``/``.ndjson``, ``.csv`` or ``.json`` export file, streamed."""
    try:
        with path.open(encoding="utf-8", newline="") as handle:
            if path.suffix == ".csv":
                yield from read_csv(handle)
            elif path.suffix == ".json":
                try:
                    items = json.load(handle)
                except json.JSONDecodeError as exc:
                    raise BadExportFile(f"{path}: not JSON ({exc.msg})") from exc
                if not isinstance(items, list):
                    raise BadExportFile(f"{path}: not a JSON array of audit rows")
                yield from (AuditRecord.from_json(item) for item in items)
            else:
                yield from read_jsonl(handle)
    except OSError as exc:
        raise BadExportFile(f"{path}: cannot read ({exc.strerror})") from exc
