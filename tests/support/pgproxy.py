"""A TCP proxy in front of PostgreSQL that can lose the server's reply to one COMMIT.

The connection is cut right after the server committed and before the client hears so:
the exact fault of a network that drops at COMMIT, where the client cannot know whether its
transaction landed. A client arms the fault for its own connection by sending
:data:`MARKER` in a query (``SELECT 'ledgerflow-test:cut-commit-reply'``) inside the
transaction; its next COMMIT reply is then lost. Everything else is forwarded byte for byte
(the server must not use SSL for the proxy to see the bytes; the test server does not).
"""

from __future__ import annotations

import asyncio
import contextlib

#: Sent by a client to arm the fault on its own connection.
MARKER = b"ledgerflow-test:cut-commit-reply"
#: The server's CommandComplete message for COMMIT: 'C', int32 length 11, "COMMIT\0".
COMMIT_COMPLETE = b"C\x00\x00\x00\x0bCOMMIT\x00"


class _Link:
    armed = False


class PgProxy:
    """Forwards 127.0.0.1:<port> to the server, losing COMMIT replies where armed."""

    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port
        self.listen_port = 0
        self.cuts = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> int:
        """Listen on a free port; returns it."""
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.listen_port = self._server.sockets[0].getsockname()[1]
        return self.listen_port

    async def close(self) -> None:
        """Stop listening and drop every connection."""
        if self._server is not None:
            self._server.close()
        for writer in list(self._writers):
            writer.transport.abort()
        if self._server is not None:
            await self._server.wait_closed()

    async def _accept(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        server_r, server_w = await asyncio.open_connection(self.host, self.port)
        self._writers.update((client_w, server_w))
        link = _Link()
        pumps = [
            asyncio.create_task(self._pump(client_r, server_w, link, to_server=True)),
            asyncio.create_task(self._pump(server_r, client_w, link, to_server=False)),
        ]
        try:
            await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in pumps:
                task.cancel()
            for writer in (client_w, server_w):
                writer.transport.abort()
                self._writers.discard(writer)
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.gather(*pumps, return_exceptions=True)

    async def _pump(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        link: _Link,
        *,
        to_server: bool,
    ) -> None:
        while data := await reader.read(65536):
            if to_server and MARKER in data:
                link.armed = True
            elif not to_server and link.armed and COMMIT_COMPLETE in data:
                link.armed = False
                self.cuts += 1
                return  # the server committed; the client never hears of it
            writer.write(data)
            await writer.drain()
