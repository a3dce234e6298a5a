"""Audit rows as FHIR R4 ``AuditEvent`` resources (https://hl7.org/fhir/R4/auditevent.html).

Mapping of one row:

* ``type`` — DICOM ``110100`` Application Activity for orchestrator events; ``110112``
  Query, or ``110106`` Export, for ``audit_accessed``;
* ``subtype`` — the ledgerflow ``event_type`` (code system ``urn:ledgerflow:audit-event-type``);
* ``action`` — C (submitted, checkpoint), E (agent work, verify), R (audit reads),
  D (retention purge), E (a denied API call: the attempted operation), U (every other
  change of a request);
* ``recorded`` — ``occurred_at``; ``outcome`` — from the severity (info 0, warning 4,
  error 8, critical 12; a denied access is 4) with ``outcomeDesc`` giving the reason;
* ``agent`` — the actor (requestor) and, when an agent acted, the agent as an application;
* ``source`` — ledgerflow, an application server;
* ``entity`` — the request (role Job) when there is one; for ``audit_accessed`` the query
  (role Query, its filters base64 canonical JSON); always the audit row itself, whose
  ``detail`` carries ``chain_key``, ``seq``, ``prev_hash``, ``hash`` and the canonical
  ``event_data``, so a FHIR export keeps everything needed to re-hash the row.
"""

from __future__ import annotations

import base64
from typing import Any

from app.audit.chain import canonical_json, format_timestamp
from app.audit.events import AuditAccessed
from app.audit.records import AuditRecord

DCM = "http://dicom.nema.org/resources/ontology/DCM"
EVENT_TYPE_SYSTEM = "urn:ledgerflow:audit-event-type"
ACTOR_SYSTEM = "urn:ledgerflow:actor"
AGENT_SYSTEM = "urn:ledgerflow:agent"
REQUEST_SYSTEM = "urn:ledgerflow:request"
ROW_SYSTEM = "urn:ledgerflow:audit-row"
_ENTITY_TYPE = "http://terminology.hl7.org/CodeSystem/audit-entity-type"
_OBJECT_ROLE = "http://terminology.hl7.org/CodeSystem/object-role"
_SOURCE_TYPE = "http://terminology.hl7.org/CodeSystem/security-source-type"

_APPLICATION_ACTIVITY = {"system": DCM, "code": "110100", "display": "Application Activity"}
_QUERY = {"system": DCM, "code": "110112", "display": "Query"}
_EXPORT = {"system": DCM, "code": "110106", "display": "Export"}
_SYSTEM_OBJECT = {"system": _ENTITY_TYPE, "code": "2", "display": "System Object"}
_AUTHENTICATION = {"system": DCM, "code": "110114", "display": "User Authentication"}
#: Event types that are sign-ins and sign-outs (FHIR type "User Authentication").
_AUTHENTICATION_EVENTS = frozenset({"session_started", "session_ended"})

_OUTCOME = {"info": "0", "warning": "4", "error": "8", "critical": "12"}
_ACTION_BY_EVENT = {
    "request_submitted": "C",
    "agent_started": "E",
    "agent_succeeded": "E",
    "agent_failed": "E",
    "agent_timed_out": "E",
    "agent_retry_scheduled": "E",
    "step_recovered": "E",
    "stale_result_discarded": "E",
    "data_purged": "D",
    "chains_registered": "C",
    "files_removed": "D",
    "access_denied": "E",
    "phi_accessed": "R",
    "data_accessed": "R",
    "transcript_corrected": "U",
    "callback_sent": "E",
    "callback_failed": "E",
    "session_started": "E",
    "session_ended": "E",
}
_ACTION_BY_ACCESS = {"checkpoint": "C", "verify": "E"}
#: Event fields that explain a failure, in order of preference, for ``outcomeDesc``.
_REASON_FIELDS = ("reason", "error_type", "resolution", "decision")


def _action(record: AuditRecord) -> str:
    event = record.event
    if isinstance(event, AuditAccessed):
        return _ACTION_BY_ACCESS.get(event.action, "R")
    return _ACTION_BY_EVENT.get(record.event_type, "U")


def _outcome_desc(record: AuditRecord) -> str | None:
    if isinstance(record.event, AuditAccessed) and record.event.denied:
        return f"{record.event.action} denied"
    for name in _REASON_FIELDS:
        value = record.event_data.get(name)
        if isinstance(value, str) and value:
            return value
    return None


def _detail(name: str, value: str) -> dict[str, Any]:
    return {"type": name, "valueString": value}


def to_fhir(record: AuditRecord) -> dict[str, Any]:
    """The R4 ``AuditEvent`` JSON for one audit row."""
    access = record.event if isinstance(record.event, AuditAccessed) else None
    if access is None:
        kind = (
            _AUTHENTICATION
            if record.event_type in _AUTHENTICATION_EVENTS
            else _APPLICATION_ACTIVITY
        )
    else:
        kind = _EXPORT if access.action == "export" else _QUERY
    resource: dict[str, Any] = {
        "resourceType": "AuditEvent",
        "id": str(record.id),
        "type": kind,
        "subtype": [{"system": EVENT_TYPE_SYSTEM, "code": record.event_type}],
        "action": _action(record),
        "recorded": format_timestamp(record.occurred_at),
        "outcome": "4" if access and access.denied else _OUTCOME[record.severity],
    }
    if desc := _outcome_desc(record):
        resource["outcomeDesc"] = desc
    agents: list[dict[str, Any]] = [
        {
            "who": {"identifier": {"system": ACTOR_SYSTEM, "value": record.actor}},
            "name": record.actor,
            "requestor": True,
        }
    ]
    if record.agent_id:
        agents.append(
            {
                "type": {"coding": [{"system": DCM, "code": "110150", "display": "Application"}]},
                "who": {"identifier": {"system": AGENT_SYSTEM, "value": record.agent_id}},
                "name": record.agent_id,
                "requestor": False,
            }
        )
    resource["agent"] = agents
    resource["source"] = {
        "site": "ledgerflow",
        "observer": {"display": "ledgerflow"},
        "type": [{"system": _SOURCE_TYPE, "code": "4", "display": "Application Server"}],
    }
    entities: list[dict[str, Any]] = []
    if record.request_id is not None:
        entities.append(
            {
                "what": {"identifier": {"system": REQUEST_SYSTEM, "value": str(record.request_id)}},
                "type": _SYSTEM_OBJECT,
                "role": {"system": _OBJECT_ROLE, "code": "20", "display": "Job"},
            }
        )
    if access is not None:
        entities.append(
            {
                "type": _SYSTEM_OBJECT,
                "role": {"system": _OBJECT_ROLE, "code": "24", "display": "Query"},
                "query": base64.b64encode(canonical_json(access.filters)).decode(),
                "detail": [_detail("row_count", str(access.row_count))]
                + ([_detail("format", access.format)] if access.format else []),
            }
        )
    entities.append(
        {
            "what": {"identifier": {"system": ROW_SYSTEM, "value": str(record.id)}},
            "type": _SYSTEM_OBJECT,
            "detail": [
                _detail("chain_key", record.chain_key),
                _detail("seq", str(record.seq)),
                _detail("prev_hash", record.prev_hash),
                _detail("hash", record.hash),
                _detail("event_data", canonical_json(record.event_data).decode()),
            ],
        }
    )
    resource["entity"] = entities
    return resource
