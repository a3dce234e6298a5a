"""Errors that help: every wrong field of a payload named at once, in the same words from the
HTTP API, the Python API and the CLI; data-free rules checked at submit; strict types; an
OpenAPI document whose every ``$ref`` resolves."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from app.bootstrap import Services
from app.cli import main
from app.database import Database
from app.database.models import AuditLog, Request
from app.orchestrator.exceptions import InvalidRequest
from tests.api.conftest import bearer, research_body

TRANSCRIPTION = {"clinician_id": "C007", "audio_file_path": "uploads/x.wav"}

#: (kind, payload, every problem expected, in order).
CASES: list[tuple[str, dict[str, Any], list[tuple[str, str]]]] = [
    (
        "research",
        research_body(age_range={"min": 80, "max": 30})["payload"],  # type: ignore[dict-item]
        [("payload.age_range", "min 80 is above max 30")],
    ),
    ("transcription", TRANSCRIPTION, [("payload.patient_id", "required")]),
    (
        "research",
        {
            "study_title": "All wrong at once",
            "inclusion_codes": ["E11", "E1"],
            "age_range": {"min": -5, "max": 30},
            "time_window": {"start": "2024-01-01", "end": "2020-01-01"},
            "data_elements": ["labs"],
            "phi_level": "full",
            "sponsor": "ACME",
        },
        [
            ("payload.researcher", "required"),
            (
                "payload.inclusion_codes.1",
                "'E1' is not shaped like an ICD-10-CM code (e.g. E11.9)",
            ),
            ("payload.age_range", "min -5 is below 0"),
            ("payload.time_window", "start 2024-01-01 is after end 2020-01-01"),
            (
                "payload.data_elements.0",
                "'labs' is not one of: demographics, conditions, encounters, observations",
            ),
            ("payload.phi_level", "'full' is not one of: deidentified, limited"),
            ("payload.sponsor", "unknown field"),
        ],
    ),
    (
        "research",
        research_body(
            age_range={"min": True, "max": 80.0}, time_window={"start": 0, "end": "2020-01-01"}
        )["payload"],  # type: ignore[dict-item]
        [
            ("payload.age_range.min", "must be an integer"),
            ("payload.age_range.max", "must be an integer"),
            ("payload.time_window.start", "must be ISO 8601 text"),
        ],
    ),
    ("reserch", {}, [("kind", "unknown kind 'reserch' (known: research, transcription)")]),
]


async def _nothing_written(database: Database) -> None:
    async with database.read_session() as session:
        assert (await session.execute(select(func.count()).select_from(Request))).scalar() == 0
        assert (
            await session.execute(
                select(func.count()).select_from(AuditLog).where(AuditLog.chain_key != "system")
            )
        ).scalar() == 0


@pytest.mark.parametrize(("kind", "payload", "expected"), CASES)
async def test_the_api_the_python_api_and_the_cli_name_every_problem_in_the_same_words(
    client: httpx.AsyncClient,
    keys: dict[str, str],
    services: Services,
    database: Database,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    kind: str,
    payload: dict[str, Any],
    expected: list[tuple[str, str]],
) -> None:
    words = "; ".join(f"{field}: {message}" for field, message in expected)

    response = await client.post(
        "/v1/requests", json={"kind": kind, "payload": payload}, headers=bearer(keys["submitter"])
    )
    assert response.status_code == 422, response.text
    problem = response.json()
    assert [(e["field"], e["message"]) for e in problem["errors"]] == expected
    assert problem["detail"] == words and problem["field"] == expected[0][0]

    with pytest.raises(InvalidRequest) as raised:
        await services.orchestrator.submit(kind, payload, "svc-python")
    assert raised.value.message == words
    assert [(p.field, p.message) for p in raised.value.problems] == expected

    file = tmp_path / "payload.json"
    file.write_text(json.dumps(payload), encoding="utf-8")
    url = database.url.render_as_string(hide_password=False)
    capsys.readouterr()
    with pytest.raises(SystemExit) as exited:
        await asyncio.to_thread(main, ["submit", kind, str(file), "--database-url", url])
    assert exited.value.code == 2
    assert capsys.readouterr().err == f"error: {words}\n"
    await _nothing_written(database)


async def _row_counts(database: Database) -> tuple[int, int]:
    async with database.read_session() as session:
        requests = (await session.execute(select(func.count()).select_from(Request))).scalar()
        audit = (await session.execute(select(func.count()).select_from(AuditLog))).scalar()
    return int(requests or 0), int(audit or 0)


def _outside_paths(audio: Path) -> list[str]:
    """Ways out of ``audio``: ``..``, absolute, a sibling sharing its prefix, a symlink."""
    audio.mkdir(parents=True, exist_ok=True)
    secret = audio.parent / "secret.wav"
    secret.write_bytes(b"RIFF")
    (audio / "link.wav").symlink_to(secret)
    (audio / "out").symlink_to(audio.parent)
    return [
        "../secret.wav",
        "uploads/../../secret.wav",
        "/etc/passwd",
        str(secret),
        str(audio.parent / f"{audio.name}-other" / "x.wav"),
        "link.wav",
        "out/secret.wav",
    ]


async def test_an_audio_path_outside_audio_dir_is_refused_at_submit_by_the_api_and_python_api(
    client: httpx.AsyncClient, keys: dict[str, str], services: Services, database: Database
) -> None:
    audio = services.settings.audio_path
    before = await _row_counts(database)
    for raw in _outside_paths(audio):
        payload = {"patient_id": "P000123", "clinician_id": "C007", "audio_file_path": raw}
        response = await client.post(
            "/v1/requests",
            json={"kind": "transcription", "payload": payload},
            headers=bearer(keys["submitter"]),
        )
        assert response.status_code == 422, (raw, response.text)
        problem = response.json()
        assert problem["field"] == "payload.audio_file_path"
        assert problem["detail"] == "payload.audio_file_path: lies outside AUDIO_DIR"
        assert raw not in response.text  # the path may name a patient; it is not repeated
        with pytest.raises(InvalidRequest) as raised:
            await services.orchestrator.submit("transcription", payload, "svc-python")
        assert [(p.field, p.message) for p in raised.value.problems] == [
            ("payload.audio_file_path", "lies outside AUDIO_DIR")
        ]
    assert await _row_counts(database) == before

    # Inside AUDIO_DIR (relative, absolute, not there yet) is accepted as before.
    for raw in ("later.wav", "a/../b.wav", str(audio / "nested" / "c.wav")):
        payload = {"patient_id": "P000123", "clinician_id": "C007", "audio_file_path": raw}
        response = await client.post(
            "/v1/requests",
            json={"kind": "transcription", "payload": payload},
            headers=bearer(keys["submitter"]),
        )
        assert response.status_code == 201, (raw, response.text)


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        ({**research_body(), "priority": False}, "priority", "must be an integer"),
        ({**research_body(), "priority": 2.5}, "priority", "must be an integer"),
        ({**research_body(), "priority": "5"}, "priority", "must be an integer"),
        ({**research_body(), "priority": 101}, "priority", "must be at most 100"),
        (research_body(min_cohort_size=True), "payload.min_cohort_size", "must be an integer"),
        (research_body(researcher=42), "payload.researcher", "must be a string"),
        ({"payload": research_body()["payload"]}, "kind", "required"),
    ],
)
async def test_body_fields_are_strictly_typed(
    client: httpx.AsyncClient, keys: dict[str, str], body: object, field: str, message: str
) -> None:
    response = await client.post("/v1/requests", json=body, headers=bearer(keys["submitter"]))
    assert response.status_code == 422, response.text
    assert (response.json()["field"], response.json()["errors"][0]["message"]) == (field, message)


@pytest.mark.parametrize(
    ("path", "params", "field"),
    [
        ("/v1/requests", {"created_before": "0.5"}, "created_before"),
        ("/v1/requests", {"created_after": "1700000000"}, "created_after"),
        ("/v1/requests", {"limit": "true"}, "limit"),
        ("/v1/audit-logs", {"since": "0.5"}, "since"),
    ],
)
async def test_query_fields_are_strictly_typed(
    client: httpx.AsyncClient, keys: dict[str, str], path: str, params: dict[str, str], field: str
) -> None:
    response = await client.get(path, params=params, headers=bearer(keys["admin"]))
    assert response.status_code == 422, response.text
    assert response.json()["field"] == field
    fine = await client.get(
        "/v1/requests",
        params={"created_before": "2030-01-01T00:00:00Z"},
        headers=bearer(keys["admin"]),
    )
    assert fine.status_code == 200, fine.text


async def test_a_recording_without_its_form_fields_names_each_as_required(
    client: httpx.AsyncClient, keys: dict[str, str], database: Database
) -> None:
    audio = Path(__file__).resolve().parents[1] / "fixtures" / "audio" / "medication.wav"
    response = await client.post(
        "/v1/recordings",
        files={"file": ("medication.wav", audio.read_bytes(), "audio/wav")},
        headers=bearer(keys["submitter"]),
    )
    assert response.status_code == 422, response.text
    assert [(e["field"], e["message"]) for e in response.json()["errors"]] == [
        ("patient_id", "required"),
        ("clinician_id", "required"),
    ]
    await _nothing_written(database)


async def test_every_ref_in_the_openapi_document_resolves(client: httpx.AsyncClient) -> None:
    document = (await client.get("/v1/openapi.json")).json()
    refs: list[str] = []

    def walk(node: object) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "$ref" and isinstance(value, str):
                    refs.append(value)
                else:
                    walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(document)
    assert "#/components/schemas/AuditLogPage" in refs
    for ref in refs:
        assert ref.startswith("#/"), ref
        target: Any = document
        for part in ref[2:].split("/"):
            assert isinstance(target, dict) and part in target, f"dangling {ref}"
            target = target[part]
