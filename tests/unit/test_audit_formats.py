"""Export formats, FHIR mapping, filters, cursors and the generated compliance page."""

from __future__ import annotations

import asyncio
import base64
import io
import json
import uuid
from collections.abc import AsyncIterator, Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fhir.resources.R4B.auditevent import AuditEvent as FhirAuditEvent
from fhir.resources.R4B.bundle import Bundle

from app.audit import docs
from app.audit.canonical import from_typed
from app.audit.chain import SYSTEM_CHAIN, ChainHead
from app.audit.events import (
    EVENT_TYPES,
    AccessDenied,
    AgentFailed,
    AgentRetryScheduled,
    AgentStarted,
    AgentSucceeded,
    AgentTimedOut,
    ApprovalDecided,
    ApprovalRequested,
    AuditAccessed,
    AuditEvent,
    CallbackFailed,
    CallbackSent,
    ChainsRegistered,
    DataAccessed,
    DataPurged,
    EscalationOpened,
    EscalationResolved,
    FilesRemoved,
    LegalHoldPlaced,
    LegalHoldReleased,
    PhiAccessed,
    RegisteredEnd,
    RequestCancelled,
    RequestCompleted,
    RequestFailed,
    RequestSubmitted,
    SessionEnded,
    SessionStarted,
    StaleResultDiscarded,
    StateChanged,
    StepRecovered,
    TranscriptCorrected,
)
from app.audit.exceptions import BadExportFile, InvalidFilter
from app.audit.export import read_csv, read_jsonl, render, write_export
from app.audit.fhir import to_fhir
from app.audit.offline import verify_rows_offline
from app.audit.query import AuditFilter, decode_cursor, encode_cursor
from app.audit.records import AuditRecord

T0 = datetime(2026, 11, 23, 9, 0, 0, 123456, tzinfo=UTC)
DIGEST = "ab" * 32

#: One event of every type, with awkward values (unicode, floats, nulls, nested filters).
SAMPLES: list[AuditEvent] = [
    RequestSubmitted(kind="transcription", priority=2, payload_digest=DIGEST),
    StateChanged(from_state=None, to_state="pending", reason="submitted"),
    AgentStarted(step="transcribe", attempt=1, input_digest=DIGEST, worker_id="w-1"),
    AgentSucceeded(step="transcribe", attempt=1, output_digest=DIGEST, duration_ms=12),
    AgentFailed(
        step="validate",
        attempt=2,
        error_type="RetryableError",
        error="upstream 503 — try later",
        retryable=True,
        duration_ms=7,
    ),
    AgentTimedOut(step="transcribe", attempt=3, timeout_seconds=1.0),
    AgentRetryScheduled(step="validate", next_attempt=3, not_before=T0, delay_seconds=0.25),
    StepRecovered(step="transcribe", attempt=2, previous_attempt=1, previous_worker=None),
    StaleResultDiscarded(step="transcribe", attempt=1, worker_id="w-2", reason="lease lost"),
    ApprovalRequested(approval_id=str(uuid.uuid4()), step="requirements"),
    ApprovalDecided(approval_id=str(uuid.uuid4()), step="requirements", decision="reject"),
    EscalationOpened(escalation_id=str(uuid.uuid4()), step="feasibility", reason="infeasible"),
    EscalationResolved(escalation_id=str(uuid.uuid4()), step="feasibility", resolution="skip"),
    RequestCancelled(reason="duplicate", step="transcribe"),
    RequestCompleted(steps=4, result_digest=DIGEST),
    RequestFailed(step="qa", reason="identifiers left in the extract"),
    AuditAccessed(
        action="export",
        filters={"event_types": ["agent_failed"], "since": "2026-11-01T00:00:00.000000Z"},
        row_count=3,
        format="fhir",
    ),
    AuditAccessed(action="query", filters={}, row_count=0, format="json", denied=True),
    AccessDenied(
        method="GET",
        route="/v1/audit-logs",
        path="/v1/audit-logs",
        status=403,
        reason="role submitter may not call this route",
        role="submitter",
        key_prefix="lf_0123abcd",
    ),
    LegalHoldPlaced(reason="matter 2026-17 — préservation"),
    LegalHoldReleased(held_since=T0, reason=None),
    DataPurged(
        category="audio",
        finished_at=T0,
        retention_days=90,
        files_deleted=1,
        bytes_deleted=2048,
        sha256=DIGEST,
    ),
    PhiAccessed(
        recording_id=str(uuid.uuid4()), resource="audio", byte_range="0-99/2048", channel="http"
    ),
    TranscriptCorrected(
        recording_id=str(uuid.uuid4()),
        version=2,
        previous_version=1,
        old_digest=DIGEST,
        new_digest=DIGEST,
        channel="console",
    ),
    DataAccessed(file="conditions.csv", sha256=DIGEST, bytes_sent=120, channel="cli"),
    CallbackSent(
        callback_id=str(uuid.uuid4()),
        state="completed",
        host="hooks.example.org",
        status=204,
        attempt=1,
    ),
    CallbackFailed(
        callback_id=str(uuid.uuid4()),
        state="completed",
        host="hooks.example.org",
        error_type="timeout",
        attempt=3,
        final=False,
    ),
    FilesRemoved(
        reason="cancelled",
        steps=["extraction"],
        files_removed=2,
        bytes_removed=4096,
        sha256=[DIGEST, DIGEST],
    ),
    SessionStarted(session_id=str(uuid.uuid4()), role="reviewer", key_prefix="lf_0123abcd"),
    SessionEnded(session_id=str(uuid.uuid4()), reason="idle"),
    ChainsRegistered(
        opened=[str(uuid.uuid4())],
        closed=[RegisteredEnd(request_id=str(uuid.uuid4()), seq=9, hash=DIGEST, state="completed")],
    ),
]


def records() -> list[AuditRecord]:
    """The samples on one request chain and the system chain, as read back."""
    rid = uuid.uuid4()
    request = ChainHead(str(rid))
    system = ChainHead(SYSTEM_CHAIN)
    out = []
    for i, event in enumerate(SAMPLES):
        moment = T0 + timedelta(microseconds=i)
        if isinstance(event, AuditAccessed):
            row = system.append(event, actor="dr-audit", occurred_at=moment)
        else:
            row = request.append(
                event,
                actor="svc-clinic",
                occurred_at=moment,
                request_id=rid,
                agent_id="transcription.transcribe" if "Agent" in type(event).__name__ else None,
            )
        out.append(AuditRecord.from_row(row))
    return out


async def aiter(items: Iterable[AuditRecord]) -> AsyncIterator[AuditRecord]:
    for item in items:
        yield item


def test_samples_cover_every_event_type() -> None:
    assert {e.event_type for e in SAMPLES} == set(EVENT_TYPES)


@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
def test_jsonl_and_csv_round_trip_typed_events_and_hashes(fmt: str) -> None:
    original = records()
    out = io.StringIO()
    count = asyncio.run(write_export(aiter(original), fmt, out))
    assert count == len(original)
    lines = io.StringIO(out.getvalue(), newline="")
    back = list(read_jsonl(lines) if fmt == "jsonl" else read_csv(lines))
    assert [r.event for r in back] == [r.event for r in original]
    assert [r.hash for r in back] == [r.hash for r in original]
    assert all(r.hash_ok for r in back)
    assert back == original
    rows = [from_typed(r.row()) for r in back]
    report = verify_rows_offline(rows, reread=lambda: rows)
    assert report.ok, report.problems


def test_json_array_is_the_same_rows() -> None:
    original = records()
    rows = json.loads(render(original, "json"))
    assert [AuditRecord.from_json(r) for r in rows] == original
    assert json.loads(render([], "json")) == []


def test_every_fhir_audit_event_validates_against_r4() -> None:
    for record in records():
        resource = to_fhir(record)
        FhirAuditEvent.model_validate(resource)  # raises on any schema violation
        # R4 cardinalities and value sets the model leaves to the profile:
        assert resource["type"]["system"] and resource["type"]["code"]
        assert resource["action"] in {"C", "R", "U", "D", "E"}
        assert resource["outcome"] in {"0", "4", "8", "12"}
        assert resource["recorded"].endswith("Z")
        assert [a["requestor"] for a in resource["agent"]].count(True) == 1
        assert resource["source"]["observer"]
        for entity in resource["entity"]:
            assert not ("name" in entity and "query" in entity)  # sev-1
        details = {d["type"]: d["valueString"] for d in resource["entity"][-1]["detail"]}
        assert details["hash"] == record.hash and details["seq"] == str(record.seq)
        assert json.loads(details["event_data"]) == record.event_data


def test_fhir_mapping_of_an_access_and_a_failure() -> None:
    by_type = {r.event_type: r for r in records()}
    denied = next(r for r in records() if isinstance(r.event, AuditAccessed) and r.event.denied)
    resource = to_fhir(denied)
    assert resource["outcome"] == "4" and resource["outcomeDesc"] == "query denied"
    assert resource["type"]["code"] == "110112"
    query = resource["entity"][0]
    assert query["role"]["code"] == "24" and json.loads(base64.b64decode(query["query"])) == {}
    export = [r for r in records() if isinstance(r.event, AuditAccessed) and not r.event.denied]
    assert to_fhir(export[0])["type"]["code"] == "110106"
    failed = to_fhir(by_type["request_failed"])
    assert failed["outcome"] == "8" and failed["outcomeDesc"] == "identifiers left in the extract"
    assert failed["entity"][0]["role"]["code"] == "20"  # the request is a Job
    started = to_fhir(by_type["agent_started"])
    assert started["action"] == "E" and started["agent"][1]["requestor"] is False


@pytest.mark.parametrize("fmt", ["fhir", "fhir-ndjson"])
@pytest.mark.parametrize("empty", [False, True])
def test_fhir_exports_validate_whole(fmt: str, empty: bool) -> None:
    text = render([] if empty else records(), fmt)
    if fmt == "fhir":
        bundle = Bundle.model_validate_json(text)
        assert bundle.type == "collection"
        assert len(bundle.entry or []) == (0 if empty else len(SAMPLES))
        assert ('"entry"' in text) is not empty  # FHIR JSON has no empty arrays
    else:
        for line in text.splitlines():
            FhirAuditEvent.model_validate_json(line)


def test_a_file_that_is_not_an_export_is_refused() -> None:
    with pytest.raises(BadExportFile, match="line 1"):
        list(read_jsonl(["not json"]))
    with pytest.raises(BadExportFile, match="header"):
        list(read_csv(["a,b\n", "1,2\n"]))
    with pytest.raises(BadExportFile):
        list(read_jsonl(['{"id": "x"}']))


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        ({"event_types": ("nope",)}, "event_types"),
        ({"since": "yesterday"}, "since"),
        ({"request_id": "123"}, "request_id"),
        ({"severity": "fatal"}, "severity"),
        ({"since": "2026-02-01", "until": "2026-01-01"}, "since"),
        ({"actor": "  "}, "actor"),
    ],
)
def test_bad_filters_name_their_field(raw: dict[str, object], field: str) -> None:
    with pytest.raises(InvalidFilter) as caught:
        AuditFilter.parse(**raw)
    assert caught.value.field == field


def test_filters_read_loose_input_as_utc() -> None:
    f = AuditFilter.parse(since="2026-11-01", until="2026-11-02T10:00:00+02:00", actor="a")
    assert f.since == datetime(2026, 11, 1, tzinfo=UTC)
    assert f.until == datetime(2026, 11, 2, 8, tzinfo=UTC)
    assert f.to_json() == {
        "actor": "a",
        "since": "2026-11-01T00:00:00.000000Z",
        "until": "2026-11-02T08:00:00.000000Z",
    }


def test_a_cursor_only_works_with_its_filters() -> None:
    record = records()[0]
    f = AuditFilter(actor="svc-clinic")
    cursor = encode_cursor(record, f)
    assert decode_cursor(cursor, f) == (record.occurred_at, record.id)
    with pytest.raises(InvalidFilter, match="different filters"):
        decode_cursor(cursor, AuditFilter(actor="someone-else"))
    with pytest.raises(InvalidFilter, match="not a cursor"):
        decode_cursor("garbage!", f)


def test_compliance_doc_is_generated_from_the_models() -> None:
    committed = Path(__file__).resolve().parents[2] / "docs" / "compliance.md"
    assert committed.read_text(encoding="utf-8") == docs.generate(), (
        "docs/compliance.md is stale: run `python -m app.audit.docs > docs/compliance.md`"
    )
    assert docs.undocumented_fields() == []
    for event_type in EVENT_TYPES:
        assert f"### `{event_type}`" in committed.read_text(encoding="utf-8")


def test_queries_select_the_columns_records_unpack() -> None:
    from app.audit.query import COLUMNS as SELECTED
    from app.audit.records import COLUMNS

    assert tuple(c.key for c in SELECTED) == COLUMNS
