"""Sending a file the results service opened: whole (200) or one byte range (206).

The service has already checked the caller and recorded the read before it handed the file
over; this only turns it into a streamed response that browsers can seek in (``<audio>``)
or save (delivery files, with ``Content-Disposition: attachment``).
"""

from __future__ import annotations

from fastapi.responses import StreamingResponse

from app.results import OpenFile


def file_response(opened: OpenFile, *, download: bool) -> StreamingResponse:
    """The streamed response for ``opened`` (the file is closed when the stream ends)."""
    return StreamingResponse(
        opened.chunks(),
        status_code=opened.status_code,
        media_type=opened.media_type,
        headers=opened.headers(download=download),
    )
