"""Tables for people: 100 columns wide at most, ids short and whole, and what matters shown
(an approval's summary, an escalation's reason and detail, a request's timeline)."""

from __future__ import annotations

import re
import uuid

from app.agents.summaries import approval_line, escalation_line
from app.bootstrap import Services
from app.cli.common import id_shortener
from app.orchestrator.views import History
from tests.cli.conftest import WIDTH, Run, escalated_request, gated_request, research, typed

UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def flat(text: str) -> str:
    """The text with every run of whitespace made one space (wrapped cells read as one)."""
    return " ".join(text.split())


def assert_fits(output: str) -> None:
    for line in output.splitlines():
        assert len(line.rstrip()) <= WIDTH, line


async def test_lists_fit_100_columns_with_whole_short_ids(
    run: Run, url: str, services: Services
) -> None:
    gated = await gated_request(services, by="a-submitter-with-a-really-long-service-name")
    escalated = await escalated_request(services)
    await run("clients", "create", "svc-reader", "--role", "reviewer", "--database-url", url)
    for command in (
        ["requests", "list"],
        ["approvals", "list"],
        ["approvals", "list", "--status", "all"],
        ["escalations", "list"],
        ["clients", "list"],
        ["requests", "show", typed(gated)],
        ["requests", "show", typed(escalated)],
        ["audit", "trail", typed(escalated)],
        ["audit", "query", "--limit", "20"],
    ):
        result = await run(*command, "--database-url", url)
        assert result.code == 0, (command, result.err)
        assert_fits(result.out)
        body = result.out.split("─\n", 1)[-1]
        assert not UUID.search(body), (command, result.out)  # short ids in the table body
    listed = (await run("requests", "list", "--database-url", url)).out
    for request_id in (gated, escalated):
        # Each short id is on one line, whole: it can be copied and typed back.
        assert re.search(rf"^{str(request_id)[:8]}\S*\s", listed, re.M), listed

    wide = await run("requests", "list", "--wide", "--database-url", url)
    for request_id in (gated, escalated):
        assert re.search(rf"^{request_id}\s", wide.out, re.M), wide.out
    assert "completed (UTC)" in wide.out


async def test_approvals_and_escalations_show_what_a_reviewer_decides_on(
    run: Run, url: str, services: Services
) -> None:
    await gated_request(services)
    await escalated_request(services)
    approvals = flat((await run("approvals", "list", "--database-url", url)).out)
    assert (
        "E11 excluding E10.9; ages 30-80; 2010-01-01 to 2024-12-31; demographics, "
        "conditions, encounters, observations; deidentified"
    ) in approvals
    escalations = flat((await run("escalations", "list", "--database-url", url)).out)
    assert "incomplete_requirements: 1 problem(s) in the request's criteria; " in escalations
    assert "irb_number: an IRB approval number is required" in escalations


async def test_requests_show_tells_the_story_in_order(
    run: Run, url: str, services: Services
) -> None:
    request_id = await gated_request(services)
    history: History = await services.orchestrator.history(request_id)
    [approval] = history.approvals
    decided = await run(
        "approvals", "decide", str(approval.id)[:8], "reject", "--note", "wrong window",
        "--as", "dr-review", "--database-url", url,
    )  # fmt: skip
    assert decided.code == 0, decided.err
    shown = await run("requests", "show", typed(request_id), "--database-url", url)
    assert shown.code == 0
    story = flat(shown.out)
    assert story.startswith(f"request {request_id} (research) state failed submitted")
    assert "submitted" in story and "finished" in story
    expected = [
        "submitted: pending, by svc-cli",
        "pending -> running at requirements (claimed by",
        "requirements attempt 1 started on",
        "requirements attempt 1 succeeded in",
        "running -> awaiting_approval at requirements (gate)",
        f"approval {str(approval.id)[:8]} requested after requirements: E11 excluding E10.9;",
        f'approval {str(approval.id)[:8]} rejected by dr-review "wrong window"',
        "awaiting_approval -> failed",
    ]
    positions = [story.find(line) for line in expected]
    assert -1 not in positions and positions == sorted(positions), (positions, story)


def test_one_line_summaries_of_the_reference_agents() -> None:
    assert approval_line(None) == ""
    transcript = {
        "reason": "low_confidence_transcript",
        "reasons": ["confidence_below_minimum"],
        "confidence": 0.314,
        "min_confidence": 0.4,
        "speech_coverage": 0.92,
        "output": {"passed": False},
    }
    assert approval_line(transcript) == (
        "low_confidence_transcript; confidence 0.31 (minimum 0.40); speech covered 92%; "
        "confidence_below_minimum"
    )
    criteria = {"output": {"criteria": research(exclusion_codes=[], min_cohort_size=25)}}
    assert approval_line(criteria).startswith("E11; ages 30-80; ")
    assert approval_line(criteria).endswith("; deidentified; cohort >= 25")
    assert approval_line({"reason": "custom", "score": 3}) == "custom; score=3"
    assert escalation_line("attempts_exhausted", {"attempts": 3, "last_error": "TimeoutError"}) == (
        "3 attempt(s); last error: TimeoutError"
    )
    cohort = {
        "message": "cohort of 4 is below the minimum of 10",
        "cohort_size": 4,
        "min_cohort_size": 10,
        "element_availability": {"demographics": 4},
    }
    assert escalation_line("cohort_below_minimum", cohort) == cohort["message"]
    assert escalation_line("agent_review", {"message": "look", "n": 2}) == "look; n=2"


def test_ids_that_share_eight_digits_are_shown_longer() -> None:
    a = uuid.UUID("0190d3a2-7b11-7000-8000-000000000001")
    b = uuid.UUID("0190d3a2-7b12-7000-8000-000000000002")
    c = uuid.UUID("22bd48de-0000-4000-8000-000000000000")
    assert id_shortener([c])(c) == "22bd48de"
    both = id_shortener([a, b, c])
    assert (both(a), both(b), both(c)) == ("0190d3a2-7b11", "0190d3a2-7b12", "22bd48de-0000")
    assert id_shortener([a, b], wide=True)(a) == str(a)
