"""Generate ``docs/compliance.md`` from the code: ``python -m app.audit.docs > docs/compliance.md``.

The event reference is built from the pydantic models in :mod:`app.audit.events` (names,
types, defaults, severities, docstrings), so the page cannot drift from what is written:
a test compares the committed file with this output. A field without a pydantic
``description`` takes its meaning from :data:`FIELD_NOTES`; a field in neither fails that
test, so a new field cannot go undocumented.
"""

from __future__ import annotations

import inspect
import sys
import types
import typing
from datetime import datetime
from typing import Any

from pydantic import BaseModel
from pydantic.fields import FieldInfo

from app.audit.events import EVENT_TYPES, AuditEvent
from app.audit.export import FORMATS
from app.audit.fhir import EVENT_TYPE_SYSTEM
from app.audit.problems import PROBLEM_KINDS

#: What each event field means, for fields whose model gives no ``description``.
FIELD_NOTES: dict[str, str] = {
    "kind": "the request kind (`research`, `transcription`, …)",
    "priority": "claim priority given at submission (higher runs first)",
    "payload_digest": "SHA-256 of the canonical JSON of the submitted payload (never the payload)",
    "idempotency_key": "the submitter's idempotency key, if one was given",
    "from_state": "state before the change (`null` when the request was created)",
    "to_state": "state after the change",
    "step": "the workflow step concerned",
    "reason": "why, as a short machine-readable reason or operator note",
    "attempt": "attempt number of the step (1 for the first try)",
    "input_digest": "SHA-256 of the agent's input",
    "worker_id": "the worker process that ran (or lost) the attempt",
    "output_digest": "SHA-256 of the agent's output",
    "duration_ms": "wall-clock time of the attempt in milliseconds",
    "error_type": "the exception class the agent raised",
    "error": "the agent's error message (agents must not put clinical content in it)",
    "retryable": "whether the error allows another attempt",
    "timeout_seconds": "the step's timeout that was exceeded",
    "next_attempt": "the attempt number that will run next",
    "not_before": "UTC time before which the retry will not start",
    "delay_seconds": "backoff before the retry",
    "previous_attempt": "the attempt that was interrupted",
    "previous_worker": "the worker whose lease expired",
    "approval_id": "id of the `approvals` row",
    "decision": "`approve` or `reject`",
    "note": "the person's note",
    "escalation_id": "id of the `escalations` row",
    "resolution": "`retry`, `skip` or `fail`",
    "steps": "how many steps the request ran",
    "result_digest": "SHA-256 of the request's final result",
    "action": "`query`, `trail`, `export`, `verify` or `checkpoint`",
    "filters": "the filters (and page options) the reader gave",
    "row_count": "rows returned, exported or verified (chains, for a checkpoint)",
    "format": "output format asked for (`table`, `json`, `jsonl`, `csv`, `fhir`, …)",
    "denied": "true when access was refused (then `row_count` is 0)",
}


def _type_name(annotation: Any) -> str:
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Literal:
        return " \\| ".join(f"`{a!r}`".replace("'", '"') for a in args)
    if origin in (typing.Union, types.UnionType):
        return " \\| ".join(_type_name(a) for a in args)
    if annotation is type(None):
        return "null"
    if annotation is datetime:
        return "UTC timestamp"
    if origin is dict:
        return "object"
    if origin is list:
        return f"array of {_type_name(args[0])}"
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return "object"
    if isinstance(annotation, type):
        return {"str": "string", "int": "integer", "float": "number", "bool": "boolean"}.get(
            annotation.__name__, annotation.__name__
        )
    return str(annotation)


def _default(info: FieldInfo) -> str:
    if info.is_required():
        return "required"
    value = {None: "null", True: "true", False: "false"}.get(info.default, repr(info.default))
    return f"default `{value}`"


def field_description(name: str, info: FieldInfo) -> str | None:
    """The model's description of a field, else :data:`FIELD_NOTES`'s."""
    return info.description or FIELD_NOTES.get(name)


def _event_section(event_type: str, model: type[AuditEvent]) -> list[str]:
    doc = inspect.cleandoc(model.__doc__ or "").replace("\n", " ")
    lines = [f"### `{event_type}`", "", f"{doc} Severity: **{model.severity}**.", ""]
    fields = [(n, f) for n, f in model.model_fields.items() if n != "event_type"]
    if not fields:
        return [*lines, "No fields.", ""]
    lines += ["| field | type | | meaning |", "|---|---|---|---|"]
    for name, info in fields:
        meaning = field_description(name, info) or ""
        lines.append(f"| `{name}` | {_type_name(info.annotation)} | {_default(info)} | {meaning} |")
    return [*lines, ""]


_INTRO = """\
# Compliance guide: the audit trail

<!-- Generated by `python -m app.audit.docs > docs/compliance.md`; do not edit by hand. -->

Every state change and every agent action of every request is recorded in `audit_logs`
as a typed event. Rows are **append-only** (database triggers refuse `UPDATE` and
`DELETE`, and `TRUNCATE` on PostgreSQL; `audit_checkpoints` likewise) and
**hash-chained**: one chain per request plus one `system` chain, so a changed, removed,
added or reordered row is detected by `ledgerflow audit verify`. Reading the trail is
itself audited: every query, trail, export, verification and checkpoint appends one
`audit_accessed` event (who, what filters, how many rows, which format), and so does a
refused attempt (`denied: true`). Events record identifiers and digests, never clinical
content: no transcript text, no patient names, no payloads.

Every command takes `--as NAME` (who is asking; default `cli:$USER`) and
`--database-url URL` (default `DATABASE_URL`). Bad input (an unknown event type, a time
that is not ISO 8601, an id that is not a UUID) prints one line naming the option and
exits 2 without touching the database; database trouble exits 3.

## Query

```bash
ledgerflow audit query --event-type agent_failed --since 2026-11-01 --until 2026-12-01
ledgerflow audit query --request-id 3f1c…  --format json
ledgerflow audit query --patient-id P00042 --severity warning --limit 100
ledgerflow audit query --actor svc-research --newest-first --cursor <printed by the last page>
```

Filters combine with AND: `--request-id`, `--actor` (who caused the event), `--agent`
(agent id), `--event-type` (repeatable), `--severity` (info, warning, error, critical),
`--since` (inclusive) and `--until` (exclusive) as ISO 8601 (no zone means UTC),
`--patient-id` (requests whose recording names that patient; research requests have no
single patient and never match). Pages are keyset-paginated on `(occurred_at, id)`: the
command prints `next page: --cursor …` on standard error while more rows match; a cursor
only works with the filters that produced it. Every filter is served by an index.

One request's timeline, readably:

```bash
ledgerflow audit trail 3f1c…            # table; --format json|jsonl|csv|fhir|fhir-ndjson
```

## Export

```bash
ledgerflow audit export --format jsonl -o audit.jsonl          # everything, oldest first
ledgerflow audit export --since 2026-11-01 --format csv -o november.csv
ledgerflow audit export --request-id 3f1c… --format fhir -o request.json
```

Exports stream in constant memory whatever their size. Formats:

{formats}

JSON, JSONL and CSV rows carry the canonical columns plus `hash`, so they can be re-hashed
and verified without the database (CSV holds `event_data` as canonical JSON; an empty
`request_id` or `agent_id` cell means null). FHIR exports map each row to an R4
[AuditEvent](https://hl7.org/fhir/R4/auditevent.html): `type` DICOM 110100 Application
Activity (110112 Query, 110106 Export for `audit_accessed`), `subtype` the event type in
`{system}`, `action` C/R/U/E, `recorded` = `occurred_at`, `outcome` from the severity
(info 0, warning 4, error 8, critical 12; denied 4), `agent` = the actor (requestor) and
the agent application, `source` ledgerflow, `entity` = the request (role Job), the query
of an access (role Query) and the audit row with its chain fields in `detail`.

## Verify

```bash
ledgerflow audit verify                              # the whole ledger
ledgerflow audit verify --request-id 3f1c…           # one request's chain and rows
ledgerflow audit verify --checkpoint 9b0e…c1         # also hold it to a stored checkpoint
ledgerflow audit verify --checkpoint cp.json         # … or a checkpoint file
ledgerflow audit verify --checkpoint data/checkpoints  # … or the folder of scheduled files
ledgerflow audit verify --file audit.jsonl --checkpoint cp.json   # offline, no database
ledgerflow audit verify --file filtered.jsonl --checkpoint cp.json --partial
```

Plain `verify` checks everything it can without being told:

* **every chain** re-hashed, row by row, against its recorded head;
* **the newest stored checkpoint**: the stored checkpoints are checked as a chain of their
  own (each links to the one before; a deleted or edited one is named), then every chain
  must still hold the head the newest one recorded, so a tail cut with its head rewound,
  or a row changed with every later hash recomputed, is found. With `AUDIT_HMAC_KEY` set,
  that checkpoint must be signed with it (`--allow-unsigned` turns an unsigned one into a
  note). The report says which checkpoint it used;
* **the chain registry**: every request chain's creation and end is itself on the record
  (see below), so a whole request erased — its `requests` row, its chain and its other
  rows — is named (`chain_missing`, `request_missing`), as is a request or chain the
  registry never recorded (`unregistered`) and a finished chain cut back before its
  registered terminal head (`deleted`), without any checkpoint;
* **the tables beside the chains**: each `state_transitions` row against exactly one
  `state_changed` event (every column), `requests.state` against the last `state_changed`,
  `requests.payload` and `payload_digest` against `request_submitted`'s digest,
  `requests.result` against the step outputs recorded (`agent_succeeded`, a skipped
  step's marker) and `request_completed`'s digest; a payload emptied by retention must
  have its `data_purged` event. These run on chains that verify (a broken chain is named
  first; its facts prove nothing).

`state_transitions` is append-only like `audit_logs` (triggers refuse `UPDATE`, `DELETE`
and, on PostgreSQL, `TRUNCATE`). Prints `OK: N rows in M chains verified` and exits 0, or
one line per problem and exits 1 (`--json` prints a machine-readable report with the
checkpoint used). Problems name the chain, the table, the row and, for cross-checks, the
column:

{kinds}

Every verification is recorded as an `audit_accessed` event (`action: verify`) with its
`outcome` (`ok` or `failed`) and `problems` count: "did the last verify pass?" is a query
of the trail itself (`GET /v1/audit/status`, the console's overview,
`app.audit.status.last_verify`).

Offline (`--file`), each chain in the file must start at seq 1 without gaps, and the file
is held strictly to what the checkpoint (and the chain registry rows in the file) record:
a chain they record that is not in the file is a problem (exit 1), unless `--partial` says
the export was filtered on purpose; then the chains and gaps it could not check are listed
as notes, and every row present is still hashed and linked to its neighbours. The
`requests` and `state_transitions` cross-checks need the database. Offline verification
writes no access record (there is no database). Bad input (a checkpoint file that is not
JSON or has a digest of the wrong length, an export of another format) prints one line
naming the problem and exits 2.

On PostgreSQL a large ledger is verified by several processes sharing one snapshot
(`pg_export_snapshot`), partitioned by the leading hex digits of the request ids.

## Chain registry

Every batch of state changes that creates request chains (a submit) or ends them (a
transition into `completed`, `failed` or `cancelled`) appends, in the same transaction, one
`chains_registered` event to a registry chain: the ids of the chains created, and for each
request that ended its terminal head (`seq`, `hash`) and state. There are 16 registry
chains (`registry-0` … `registry-f`, heads in `audit_chains`); a batch takes whichever is
free, so concurrent commits of several worker processes never queue on one row. Registry
chains are hash chains like the others, covered by verification and by every checkpoint.
Nothing appends to a request's own chain after it ends (later events about it, such as
retention purges, go to the system chain), and a chain must always contain its registered
terminal head.

## Checkpoint

```bash
ledgerflow audit checkpoint                  # prints the digest on standard output
ledgerflow audit checkpoint -o cp-2026-11-24.json
```

A checkpoint reads every chain head in one statement (each request's
`audit_seq`/`audit_head`, the system chain's `audit_chains` row), and stores it in
`audit_checkpoints` as the next link of the checkpoint chain: `seq` numbers checkpoints
from 1, `prev_digest` is the previous one's digest, `heads` holds only the heads changed
since the previous checkpoint (the first holds all of them), `heads_digest` is the digest
of the full set. The digest is SHA-256 over the canonical JSON of `{{"version": 2, "seq",
"prev_digest", "created_at", "created_by", "chain_count", "heads_digest", "heads":
[[chain_key, seq, hash], …]}}` (heads sorted by chain key); with `AUDIT_HMAC_KEY` set it is
also signed (HMAC-SHA256 of the digest; `--no-sign` skips). `-o` writes the checkpoint with
every head (`all_heads`), so one file verifies an export offline.

`ledgerflow serve` takes a signed checkpoint every `CHECKPOINT_EVERY` seconds (default
3600; 0 turns it off) and writes each to `CHECKPOINT_DIR` (default `data/checkpoints`) as
`checkpoint-<seq>-<UTC time>.json`, atomically. Those files are outside the database:
**mirror the folder to WORM storage** (an object-lock bucket, a write-once share). Each
scheduled file holds the heads changed since the previous one, so the folder grows with
activity, not with the ledger; `verify --checkpoint FOLDER` folds the files back together
and names a missing or edited one. Keep digests or files where the database administrator
cannot write: verification against them proves that every chain still holds the
checkpointed head at its seq, so nothing up to the checkpoint was rewritten or truncated,
even by someone who could disable the triggers and recompute hashes.

## Hash chain and canonical form

Each row's `hash` is SHA-256 over the canonical JSON of the object with exactly the keys
`id, chain_key, seq, request_id, event_type, severity, actor, agent_id, occurred_at,
event_data, prev_hash`: keys sorted at every level, no insignificant whitespace, UTF-8
without escaping, UUIDs as lower-case hyphenated text, `occurred_at` as UTC ISO 8601 with
exactly six fractional digits and `Z` (`2026-11-23T09:00:00.000001Z`). The first row of
a chain has `prev_hash` = 64 zeros. `chain_key` is the request id, or `system` for events
no request's lease holder writes (audit access, results discarded after a lost lease).
The same row hashes the same on SQLite, PostgreSQL and in an export file.

## SQL views

For staff who query with SQL (read-only role recommended). Timestamps are UTC
(`timestamptz` on PostgreSQL; `YYYY-MM-DD HH:MM:SS.ffffff` text on SQLite, where UUIDs
are 32 hex digits).

{views}

```sql
-- Who looked at the audit trail this month, and how much did they take?
SELECT actor, action, count(*), sum(row_count) FROM audit_access_v
WHERE occurred_at >= '2026-11-01' GROUP BY actor, action;
-- Every failed agent attempt on transcriptions for one patient
SELECT occurred_at, request_id, event_data FROM audit_events_v
WHERE patient_id = 'P00042' AND event_type = 'agent_failed' ORDER BY occurred_at;
```

## Event types

Every row's `event_type` names one model below; `event_data` holds its fields (validated
on write, parsed back on read). Severity is fixed per type.
"""


#: The SQL views migration 0003 creates: name, one row per, columns.
VIEWS: tuple[tuple[str, str, str], ...] = (
    (
        "audit_events_v",
        "audit event",
        "id, occurred_at, event_type, severity, actor, agent_id, request_id, request_kind, "
        "request_state, request_submitted_by, patient_id, event_data, chain_key, seq, "
        "prev_hash, hash",
    ),
    (
        "audit_chain_heads_v",
        "chain",
        "chain_key, chain_kind (request, system or registry), seq, head_hash, updated_at",
    ),
    (
        "audit_access_v",
        "read of the trail",
        "id, occurred_at, actor, action, row_count, format, denied, filters",
    ),
)


def _table(header: str, rows: list[str]) -> str:
    columns = header.count("|") - 1
    return "\n".join([header, "|" + "---|" * columns, *rows])


def generate() -> str:
    """The whole of ``docs/compliance.md``."""
    formats = "\n".join(
        f"- `{name}`" + (" (CLI `query` and `trail` only)" if name == "table" else "")
        for name in ("table", *FORMATS)
    )
    kinds = _table(
        "| kind | meaning |", [f"| `{kind}` | {text} |" for kind, text in PROBLEM_KINDS.items()]
    )
    views = _table(
        "| view | one row per | columns |",
        [f"| `{name}` | {per} | `{columns}` |" for name, per, columns in VIEWS],
    )
    lines = [_INTRO.format(formats=formats, system=EVENT_TYPE_SYSTEM, kinds=kinds, views=views)]
    lines += ["| event type | severity | meaning |", "|---|---|---|"]
    for event_type, model in sorted(EVENT_TYPES.items()):
        summary = inspect.cleandoc(model.__doc__ or "").splitlines()[0]
        lines.append(f"| [`{event_type}`](#{event_type}) | {model.severity} | {summary} |")
    lines.append("")
    for event_type, model in sorted(EVENT_TYPES.items()):
        lines += _event_section(event_type, model)
    return "\n".join(lines).rstrip() + "\n"


def undocumented_fields() -> list[str]:
    """``event_type.field`` for every field with no description anywhere."""
    return [
        f"{event_type}.{name}"
        for event_type, model in sorted(EVENT_TYPES.items())
        for name, info in model.model_fields.items()
        if name != "event_type" and field_description(name, info) is None
    ]


if __name__ == "__main__":
    sys.stdout.write(generate())
