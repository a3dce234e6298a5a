"""Refusals from a real ``ledgerflow serve`` (each backend) raised as typed errors that carry
the server's RFC 9457 problem."""

from __future__ import annotations

import uuid

import pytest

from app.agents.research import sample_research_payloads
from app.client import Client, InvalidInput, NotFound, Unauthorized
from tests.client.conftest import Served

pytestmark = pytest.mark.slow


def test_refusals_raise_typed_errors_carrying_the_problem(served: Served) -> None:
    with Client(served.base_url, served.keys["submitter"]) as lf:
        missing = uuid.uuid4()
        with pytest.raises(NotFound) as not_found:
            lf.get(missing)
        problem = not_found.value.problem
        assert (problem.status, problem.title, problem.code) == (404, "Not found", "not_found")
        assert str(missing) in not_found.value.detail

        bad = {**sample_research_payloads()["type2_diabetes_adults"]}
        bad["age_range"] = {"min": 80, "max": 30}
        with pytest.raises(InvalidInput) as invalid:
            lf.submit("research", bad)
        assert invalid.value.status == 422 and invalid.value.problem.field == "payload.age_range"
        assert "min 80 is above max 30" in str(invalid.value)

    with Client(served.base_url, "lf_nobody_0000") as stranger, pytest.raises(Unauthorized):
        stranger.get(missing)
