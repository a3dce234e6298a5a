"""Property-based fuzzing of the OpenAPI schema (schemathesis): no 5xx, no schema violations.

Every operation gets generated inputs (valid and invalid) sent as an admin through the ASGI
client against the real database; each response is checked against the schema (status
codes, content types, headers, bodies) and must not be a server error.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from app.api import create_app
from app.config import Settings
from tests.api.conftest import bearer

SCHEMA = schemathesis.openapi.from_dict(
    create_app(settings=Settings(database_url="sqlite+aiosqlite:///unused.db")).openapi()
)
OPERATIONS = {result.ok().label: result.ok() for result in SCHEMA.get_all_operations()}
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
#: Examples per operation and backend: enough to find shallow crashes, quick enough for CI.
EXAMPLES = 20


def _multipart(body: Any) -> dict[str, Any]:
    """httpx form arguments for a generated multipart body (text fields as text)."""
    if not isinstance(body, dict):
        return {"files": None, "data": None, "content": json.dumps(body, default=str).encode()}
    files, data = {}, {}
    for name, value in body.items():
        if name == "file":
            raw = value if isinstance(value, bytes) else str(value).encode()
            files[name] = ("note.wav", raw, "audio/wav")
        else:
            data[name] = value if isinstance(value, str) else json.dumps(value, default=str)
    return {"files": files or None, "data": data or None}


@pytest.mark.parametrize("label", sorted(OPERATIONS))
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
)
@given(data=st.data())
async def test_generated_requests_get_no_server_error_and_match_the_schema(
    client: httpx.AsyncClient, keys: dict[str, str], label: str, data: st.DataObject
) -> None:
    case = data.draw(OPERATIONS[label].as_strategy())
    kwargs: dict[str, Any] = case.as_transport_kwargs(base_url=str(client.base_url))
    headers = {**(kwargs.pop("headers", None) or {}), **bearer(keys["admin"])}
    kwargs.pop("base_url", None)
    # We send no cookies (the API reads none); httpx deprecates per-request cookies.
    kwargs.pop("cookies", None)
    if isinstance(kwargs.get("data"), bytes | str):
        kwargs["content"] = kwargs.pop("data")
    if case.media_type == "multipart/form-data":
        kwargs.update(_multipart(case.body))
    request = client.build_request(headers=headers, **kwargs)
    await request.aread()  # multipart bodies stream; the checks want the bytes sent
    response = await client.send(request)
    case.validate_response(response, checks=CHECKS)
