"""Errors of the transcription agents.

Tree::

    PermanentError                      (app.agents.base)
    └── InvalidAudio                    the recording cannot be transcribed as given

The message names what is wrong with the recording; it never holds clinical content.
"""

from __future__ import annotations

from app.agents.base import PermanentError


class InvalidAudio(PermanentError):
    """The recording is not audio this workflow can transcribe."""

    code = "invalid_audio"
