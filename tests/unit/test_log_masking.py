"""PHI and secrets never reach a log line: every key, every log path, both renderers."""

from __future__ import annotations

import logging
from typing import Any

import pytest
import structlog

from app.logging import DEFAULT_MASK_KEYS, MASK, MaskSensitive, configure_logging, parse_mask_keys

#: One sensitive value per kind of sensitive key, each unique enough to grep for.
SECRETS: dict[str, str] = {
    "patient_id": "PX-93817",
    "first_name": "Adaline",
    "last_name": "Lovelacey",
    "name": "Adaline Lovelacey",
    "address": "12 Elmwood Street",
    "email": "adaline@example.org",
    "mrn": "MRN-55120",
    "transcript": "the patient reports crushing chest pain",
    "api_key": "lfk_live_AbC123xyz",
    "token": "tok-789-QWERTY",
    "password": "hunter2-pw",
}
DB_URL = "postgresql+asyncpg://ledger:s3cretPassw0rd@db.internal:5432/ledgerflow"
LEAKS = (*SECRETS.values(), "s3cretPassw0rd")


def _emit_everywhere() -> None:
    """Push every sensitive value through every log path there is."""
    log = structlog.get_logger("masking.test")
    # 1. bound logger
    log.bind(**SECRETS).info("bound_values")
    # 2. event keyword arguments, nested dicts and lists, and a URL anywhere in a string
    log.info(
        "event_kwargs",
        **SECRETS,
        nested={"patient": {"last_name": SECRETS["last_name"], "zip_code": "02139"}},
        rows=[{"email": SECRETS["email"]}, {"transcript_text": SECRETS["transcript"]}],
        database_url=DB_URL,
        note=f"connecting with {DB_URL} for patient_id={SECRETS['patient_id']}",
        headers={"Authorization": f"Bearer {SECRETS['token']}"},
    )
    # 3. contextvars
    with structlog.contextvars.bound_contextvars(patient_id=SECRETS["patient_id"]):
        log.info("contextvars")
    # 4. the event text itself
    log.info(f"event text mentions {DB_URL} and password={SECRETS['password']}")
    # 5. exceptions, through structlog and through the standard library
    try:
        raise ValueError(
            f"cannot load patient_id={SECRETS['patient_id']} name='{SECRETS['name']}' "
            f"from {DB_URL} (api_key: {SECRETS['api_key']})"
        )
    except ValueError:
        log.exception("structlog_exception")
        logging.getLogger("stdlib.lib").exception("stdlib_exception")
    # 6. plain standard-library logging, bridged through structlog's formatter
    logging.getLogger("stdlib.lib").warning(
        "stdlib connecting to %s as token=%s", DB_URL, SECRETS["token"]
    )
    # 7. an exception object as a value
    log.warning("exception_value", error=RuntimeError(f"email={SECRETS['email']}"))


@pytest.mark.parametrize("fmt", ["json", "console"])
def test_no_sensitive_value_reaches_any_log_line(
    fmt: str, capsys: pytest.CaptureFixture[str], restore_logging: None
) -> None:
    configure_logging("DEBUG", fmt, force=True, mask=True, mask_keys=DEFAULT_MASK_KEYS)
    _emit_everywhere()
    out = capsys.readouterr().err
    for event in ("bound_values", "event_kwargs", "contextvars", "structlog_exception"):
        assert event in out
    assert "stdlib_exception" in out and "stdlib connecting to" in out
    assert "Traceback" in out and "ValueError" in out  # exceptions are still there...
    assert out.count(MASK) > len(SECRETS)  # ...and masked
    assert "ledger:[masked]@db.internal" in out  # URLs keep everything but the password
    leaked = [value for value in LEAKS if value in out]
    assert leaked == [], f"{fmt} output leaked {leaked}:\n{out}"


def test_the_same_lines_leak_with_masking_off(
    capsys: pytest.CaptureFixture[str], restore_logging: None
) -> None:
    # Proves the test above would see a leak.
    configure_logging("DEBUG", "json", force=True, mask=False)
    _emit_everywhere()
    out = capsys.readouterr().err
    assert all(value in out for value in LEAKS)


def test_masking_is_on_by_default_and_keys_come_from_the_setting(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], restore_logging: None
) -> None:
    from app.config import get_settings

    monkeypatch.setenv("LOG_MASK_KEYS", "case_number, Favourite-Colour")
    get_settings.cache_clear()
    try:
        configure_logging("INFO", "json", force=True)
        structlog.get_logger("t").info(
            "custom", case_number="CN-1", favourite_colour="teal", other="visible", password="p"
        )
    finally:
        get_settings.cache_clear()
    out = capsys.readouterr().err
    assert "CN-1" not in out and "teal" not in out and "visible" in out
    assert '"password": "[masked]"' in out  # credentials are masked whatever the list says
    assert parse_mask_keys("") == DEFAULT_MASK_KEYS


def test_keys_that_name_patients_or_transcripts_are_masked_in_any_form() -> None:
    masker = MaskSensitive(DEFAULT_MASK_KEYS)
    event = {
        "patient_ids": ["P000123"],
        "ref_patient_id": "P000124",
        "transcript_preview": "mild chest pain",
        "step": "verify",
    }
    assert masker.mask_value(event) == {
        "patient_ids": MASK,
        "ref_patient_id": MASK,
        "transcript_preview": MASK,
        "step": "verify",
    }
    masked = masker.mask_text("seen ref_patient_id=P000124 today")
    assert masked == f"seen ref_patient_id={MASK} today"


def test_the_processor_copies_instead_of_changing_the_callers_data() -> None:
    mask = MaskSensitive()
    data: dict[str, Any] = {"patient": {"patient_id": "P1"}, "ids": ["x"]}
    out = mask(None, "info", {"event": "e", "payload": data})
    assert out["payload"] == {"patient": MASK, "ids": ["x"]}
    assert data == {"patient": {"patient_id": "P1"}, "ids": ["x"]}
    assert mask.mask_text("db_password=abc x=1") == f"db_password={MASK} x=1"
    assert mask.mask_text('{"patient_id": "P9", "step": "a"}') == (
        f'{{"patient_id": "{MASK}", "step": "a"}}'
    )
    assert mask.mask_text("filename=report.csv") == "filename=report.csv"
