"""A callback from a real ``ledgerflow serve`` verifies with ``Client.verify_webhook`` (the
server's own verifier), and an altered one does not."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from app.client import Client, WebhookVerificationError
from tests.client.conftest import AUDIO, Served
from tests.support.serve import wait_for

pytestmark = pytest.mark.slow

Received = list[tuple[dict[str, str], bytes]]


@pytest.fixture
def receiver() -> Iterator[tuple[str, Received]]:
    """An HTTP receiver on 127.0.0.1 keeping each callback's headers and raw body."""
    received: Received = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.append((dict(self.headers.items()), body))
            self.send_response(204)
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:  # quiet test output
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hook", received
    finally:
        server.shutdown()
        server.server_close()


def test_a_callback_verifies_with_the_client_and_an_altered_one_does_not(
    served: Served, receiver: tuple[str, Received]
) -> None:
    url, received = receiver
    secret = served.secrets["submitter"]
    with Client(served.base_url, served.keys["submitter"]) as lf:
        uploaded = lf.upload_recording(
            AUDIO / "no_allergies.wav", patient_id="P000007", clinician_id="C001", callback_url=url
        )
        assert lf.wait(uploaded.id, timeout=120).state == "completed"
    headers, body = wait_for(lambda: received and received[-1], "the callback", timeout=60)

    event = Client.verify_webhook(secret, headers, body)
    assert (event["request_id"], event["state"]) == (str(uploaded.id), "completed")
    with pytest.raises(WebhookVerificationError, match="signature"):
        Client.verify_webhook(secret, headers, body.replace(b"completed", b"cancelled"))
    with pytest.raises(WebhookVerificationError, match="signature"):
        Client.verify_webhook("whsec_not-the-secret", headers, body)
