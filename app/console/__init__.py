"""The web console at ``/console``: server-rendered pages for reviewers, clinicians and
compliance staff, on the same service layer as the HTTP API.

People sign in with an API key, which is exchanged for a server-side session
(:mod:`app.auth.sessions`); each page admits the roles the equivalent API route admits
(:mod:`app.console.access`), every change goes through the orchestrator, the audit package
or the results service, and every read of audit rows or PHI is audited as the API's is.
"""

from app.console.app import MOUNT_PATH, create_console, mount_console

__all__ = ["MOUNT_PATH", "create_console", "mount_console"]
