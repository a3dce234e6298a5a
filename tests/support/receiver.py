"""A real webhook receiver on 127.0.0.1 (``http.server`` in a thread) for callback tests.

It records every POST (headers and body as received) and answers with the statuses it was
given, in order (then ``default``); it can be started late on a port chosen early, to play
a receiver that is down for a while, and can answer slowly, to play one that times out.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from tests.support.serve import free_port


@dataclass(frozen=True)
class Received:
    """One callback as the receiver got it."""

    path: str
    headers: dict[str, str]
    body: bytes
    at: float


class Receiver:
    """``with Receiver() as hooks: ... hooks.url ... hooks.received``."""

    def __init__(
        self,
        statuses: list[int] | None = None,
        *,
        default: int = 204,
        delay: float = 0.0,
        port: int | None = None,
    ) -> None:
        self.port = port or free_port()
        self.statuses = list(statuses or [])
        self.default = default
        self.delay = delay
        self.received: list[Received] = []
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """Where callbacks should go."""
        return f"http://127.0.0.1:{self.port}/hooks/ledgerflow"

    def start(self) -> Receiver:
        """Listen (now: a receiver that was down comes up)."""
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(length)
                with owner._lock:
                    owner.received.append(
                        Received(self.path, dict(self.headers.items()), body, time.time())
                    )
                    status = owner.statuses.pop(0) if owner.statuses else owner.default
                if owner.delay:
                    time.sleep(owner.delay)
                self.send_response(status)
                if 300 <= status < 400:
                    self.send_header("Location", "http://127.0.0.1:9/elsewhere")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: object) -> None:
                pass  # quiet: the test reads self.received

        ThreadingHTTPServer.allow_reuse_address = True
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop listening."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> Receiver:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
