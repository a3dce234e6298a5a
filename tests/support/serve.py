"""``ledgerflow serve`` as a real subprocess for end-to-end and browser tests."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def run_cli(args: list[str], env: dict[str, str], timeout: float = 120) -> str:
    """Run a command from the repository root; fail the test unless it exits 0."""
    done = subprocess.run(
        args, env=env, cwd=ROOT, capture_output=True, text=True, timeout=timeout, check=False
    )
    assert done.returncode == 0, (args, done.stdout, done.stderr)
    return done.stdout


def wait_for(check: Callable[[], Any], what: str, timeout: float = 90.0) -> Any:
    """Poll ``check`` until it returns something truthy (returned), or fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


class Server:
    """One ``ledgerflow serve`` process, always stopped by the end of the test."""

    def __init__(
        self,
        env: dict[str, str],
        port: int,
        log: Path,
        concurrency: int = 2,
        args: Sequence[str] = (),
    ) -> None:
        self.env, self.port, self.log = env, port, log
        self.concurrency = concurrency
        #: More options for ``serve`` (``--no-workers``).
        self.args = list(args)
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:<port>``."""
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> httpx.Client:
        """Start the process and wait until ``/readyz`` answers 200."""
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "app.cli",
                    "serve",
                    "--port",
                    str(self.port),
                    "--concurrency",
                    str(self.concurrency),
                    *self.args,
                ],
                env=self.env,
                cwd=ROOT,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        base = self.base_url

        def ready() -> bool:
            assert self.proc is not None and self.proc.poll() is None, self.log.read_text()
            try:
                return httpx.get(f"{base}/readyz", timeout=5).status_code == 200
            except httpx.TransportError:
                return False

        wait_for(ready, "the server to be ready", timeout=60)
        return httpx.Client(base_url=base, timeout=10)

    def terminate(self) -> int:
        """SIGTERM, wait, and check the log holds no traceback; return the exit code."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(timeout=30)
        # A clean stop runs the app's lifespan shutdown: no cancelled task's traceback.
        assert "Traceback" not in self.log.read_text(), self.log.read_text()[-3000:]
        return code

    def kill(self) -> None:
        """SIGKILL the process if it still runs."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
