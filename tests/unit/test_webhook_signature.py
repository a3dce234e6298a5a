"""Signing, verifying and which callback URLs are called: pure functions, no database."""

from __future__ import annotations

import hashlib
import hmac
import random
import re
from pathlib import Path
from typing import Any

import pytest

from app.client import verify_webhook as client_verify_webhook
from app.config import Settings
from app.webhooks import (
    CallbackUrlRefused,
    WebhookVerificationError,
    check_callback_url,
    signed_headers,
    url_host,
    verify_webhook,
)
from app.webhooks.sender import backoff

SECRET = "whsec_test-secret"
BODY = (
    b'{"at":"2026-01-01T00:00:00.000000Z","id":"x","kind":"research",'
    b'"request_id":"r","state":"completed"}'
)
NOW = 1_800_000_000


def test_the_signature_is_hmac_sha256_of_timestamp_dot_body_as_documented() -> None:
    headers = signed_headers(SECRET, "cb-1", BODY, timestamp=NOW)
    expected = hmac.new(SECRET.encode(), f"{NOW}.".encode() + BODY, hashlib.sha256).hexdigest()
    assert headers == {
        "Webhook-Id": "cb-1",
        "Webhook-Timestamp": str(NOW),
        "Webhook-Signature": f"v1={expected}",
    }


def test_a_genuine_callback_verifies_and_its_body_comes_back() -> None:
    headers = signed_headers(SECRET, "cb-1", BODY, timestamp=NOW)
    assert verify_webhook(SECRET, headers, BODY, now=NOW + 10)["state"] == "completed"
    lower = {k.lower(): v for k, v in headers.items()}
    assert verify_webhook(SECRET.encode(), lower, BODY.decode(), now=NOW)["id"] == "x"
    several = {**headers, "Webhook-Signature": f"v1=00ff {headers['Webhook-Signature']}"}
    assert verify_webhook(SECRET, several, BODY, now=NOW)["kind"] == "research"


@pytest.mark.parametrize(
    ("secret", "change", "body", "now", "why"),
    [
        ("whsec_other", {}, BODY, NOW, "no v1 signature matches"),
        (SECRET, {}, BODY.replace(b"completed", b"failed"), NOW, "no v1 signature matches"),
        (SECRET, {}, BODY, NOW + 301, "too old"),
        (SECRET, {}, BODY, NOW - 301, "from now"),
        (SECRET, {"Webhook-Signature": ""}, BODY, NOW, "missing"),
        (SECRET, {"Webhook-Timestamp": "soon"}, BODY, NOW, "Unix seconds"),
        (SECRET, {"Webhook-Signature": "v1=é"}, BODY, NOW, "no v1 signature matches"),
    ],
)
def test_a_forged_tampered_or_replayed_callback_is_refused(
    secret: str, change: dict[str, str], body: bytes, now: int, why: str
) -> None:
    headers = {**signed_headers(SECRET, "cb-1", BODY, timestamp=NOW), **change}
    with pytest.raises(WebhookVerificationError, match=why):
        verify_webhook(secret, headers, body, now=now)


def test_the_client_library_uses_the_same_verifier() -> None:
    headers = signed_headers(SECRET, "cb-1", BODY)
    assert client_verify_webhook(SECRET, headers, BODY)["request_id"] == "r"
    with pytest.raises(WebhookVerificationError):
        client_verify_webhook("whsec_other", headers, BODY)


@pytest.mark.parametrize(
    ("url", "loopback_ok", "why"),
    [
        ("http://hooks.example.org/x", True, "must use https"),
        ("http://127.0.0.1:9/x", False, "WEBHOOK_ALLOW_HTTP_LOOPBACK"),
        ("ftp://hooks.example.org/x", True, "absolute https URL"),
        ("hooks.example.org/x", True, "absolute https URL"),
        ("https://a:b@hooks.example.org/x", True, "user name or password"),
        ("https://hooks.example.org/a b", True, "spaces"),
        ("https://hooks.example.org:99999999/x", True, "not a valid URL"),
        ("https://" + "a" * 2050 + ".org", True, "at most 2048"),
        ("", True, "absolute https URL"),
    ],
)
def test_callback_urls_ledgerflow_will_not_call(url: str, loopback_ok: bool, why: str) -> None:
    with pytest.raises(CallbackUrlRefused, match=why):
        check_callback_url(url, allow_http_loopback=loopback_ok)


@pytest.mark.parametrize(
    ("url", "loopback_ok"),
    [
        ("https://hooks.example.org/x?t=1", False),
        ("https://127.0.0.1/x", False),
        ("http://127.0.0.1:8080/x", True),
        ("http://localhost/x", True),
        ("http://[::1]:8080/x", True),
    ],
)
def test_callback_urls_ledgerflow_calls(url: str, loopback_ok: bool) -> None:
    assert check_callback_url(url, allow_http_loopback=loopback_ok) == url


def test_audit_records_name_only_the_host() -> None:
    assert url_host("https://hooks.example.org:8443/p?token=secret") == "hooks.example.org"


def test_backoff_doubles_with_jitter_up_to_the_maximum() -> None:
    settings = Settings(webhook_backoff_seconds=1, webhook_backoff_max_seconds=8)
    rng = random.Random(7)
    for attempt, ceiling in [(1, 1), (2, 2), (3, 4), (4, 8), (5, 8), (40, 8)]:
        delays = [backoff(attempt, settings, rng) for _ in range(50)]
        assert all(ceiling / 2 <= d <= ceiling for d in delays), (attempt, delays)
        assert len(set(delays)) > 1  # jittered


def test_the_standard_library_verifier_in_docs_webhooks_md_works() -> None:
    docs = (Path(__file__).resolve().parents[2] / "docs" / "webhooks.md").read_text()
    [snippet] = [b for b in re.findall(r"```python\n(.*?)```", docs, re.S) if "def verify(" in b]
    namespace: dict[str, Any] = {}
    exec(snippet, namespace)  # the receiver's code exactly as documented
    headers = signed_headers(SECRET, "cb-1", BODY)
    assert namespace["verify"](SECRET, headers, BODY)["state"] == "completed"
    with pytest.raises(ValueError, match="bad signature"):
        namespace["verify"]("whsec_other", headers, BODY)
