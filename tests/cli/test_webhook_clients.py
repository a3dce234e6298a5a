"""``ledgerflow clients create`` shows a client's webhook secret once; ``clients webhook``
sets its default callback URL and rotates the secret."""

from __future__ import annotations

import json

from tests.cli.conftest import Run


async def test_create_shows_the_webhook_secret_once_without_changing_stdout(
    run: Run, url: str
) -> None:
    made = await run("clients", "create", "svc-hooks", "--database-url", url)
    assert made.code == 0, made.err
    assert made.out.count("\n") == 1 and made.out.startswith("lf_")  # the key, alone
    assert "webhook secret" in made.err and "whsec_" in made.err
    as_json = await run("clients", "create", "svc-hooks-2", "--json", "--database-url", url)
    body = json.loads(as_json.out)
    assert body["webhook_secret"].startswith("whsec_") and body["key"].startswith("lf_")


async def test_webhook_sets_the_url_and_rotates_the_secret(run: Run, url: str) -> None:
    made = json.loads(
        (await run("clients", "create", "svc-hooks", "--json", "--database-url", url)).out
    )
    changed = await run(
        "clients", "webhook", "svc-hooks", "--url", "https://hooks.example.org/in",
        "--rotate-secret", "--json", "--database-url", url,
    )  # fmt: skip
    assert changed.code == 0, changed.err
    body = json.loads(changed.out)
    assert body["callback_url"] == "https://hooks.example.org/in"
    assert body["webhook_secret"].startswith("whsec_")
    assert body["webhook_secret"] != made["webhook_secret"]
    listed = json.loads((await run("clients", "list", "--json", "--database-url", url)).out)
    assert [c["callback_url"] for c in listed] == ["https://hooks.example.org/in"]
    assert "whsec_" not in json.dumps(listed)  # never listed
    cleared = await run("clients", "webhook", "svc-hooks", "--clear-url", "--database-url", url)
    assert cleared.code == 0 and "(none)" in cleared.err and cleared.out == ""


async def test_webhook_refuses_bad_input_with_exit_2(run: Run, url: str) -> None:
    await run("clients", "create", "svc-hooks", "--database-url", url)
    plain_http = await run(
        "clients", "webhook", "svc-hooks", "--url", "http://hooks.example.org/in",
        "--database-url", url,
    )  # fmt: skip
    assert plain_http.code == 2 and "callback_url" in plain_http.err
    both = await run(
        "clients", "webhook", "svc-hooks", "--url", "https://a.example.org", "--clear-url",
        "--database-url", url,
    )  # fmt: skip
    assert both.code == 2 and "--clear-url" in both.err
    unknown = await run("clients", "webhook", "nobody", "--rotate-secret", "--database-url", url)
    assert unknown.code == 2 and "nobody" in unknown.err
