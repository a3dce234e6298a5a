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
    headers = {"Accept-Ranges": "bytes", "Content-Length": str(opened.range.length)}
    if opened.sha256:
        headers["ETag"] = f'"{opened.sha256}"'
    if opened.range.partial:
        headers["Content-Range"] = opened.range.content_range()
    if download:
        headers["Content-Disposition"] = f'attachment; filename="{opened.name}"'
    return StreamingResponse(
        opened.chunks(),
        status_code=206 if opened.range.partial else 200,
        media_type=opened.media_type,
        headers=headers,
    )
