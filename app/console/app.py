"""The console app: pages, static files, error pages and security headers, mounted on the
API's app at ``/console`` so ``ledgerflow serve`` serves both from one process."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from app.console.errors import install_error_pages
from app.console.routes import audit, overview, recordings, requests, reviews, signin
from app.console.security import SecurityHeaders

MOUNT_PATH = "/console"


def create_console(owner: FastAPI) -> FastAPI:
    """The console, serving the services of ``owner`` (the API app it is mounted on)."""
    console = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)
    console.state.owner = owner
    install_error_pages(console)
    for module in (signin, overview, requests, reviews, recordings, audit):
        console.include_router(module.router)
    console.mount("/static", StaticFiles(packages=[("app.console", "static")]), name="static")
    console.add_middleware(SecurityHeaders)
    return console


def mount_console(owner: FastAPI) -> None:
    """Serve the console at ``/console`` of ``owner``."""
    owner.mount(MOUNT_PATH, create_console(owner))
