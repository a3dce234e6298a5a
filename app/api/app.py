"""The FastAPI app factory: routers under ``/v1``, the web console at ``/console``,
problem+json errors, limits, metrics.

``create_app(services)`` serves already-built services (``ledgerflow serve`` and the tests
own them); ``create_app()`` builds them from the settings in its lifespan and closes them
on shutdown (``uvicorn --factory app.api:create_app``).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from starlette.types import ASGIApp, Message, Receive, Scope, Send

import app as app_package
from app.api.health import ReadinessProbe
from app.api.limits import MULTIPART_OVERHEAD, BodyLimit
from app.api.metrics import ApiMetrics
from app.api.problems import PROBLEM_JSON, install_problem_handlers
from app.api.routes import audit, deliveries, ops, recordings, requests, reviews, watch
from app.bootstrap import Services, build_services
from app.config import Settings, get_settings
from app.console import mount_console

RECORDINGS_PATH = "/v1/recordings"


class _HttpMetrics:
    """ASGI middleware counting every response by method, route template and status."""

    def __init__(self, app: ASGIApp, owner: FastAPI) -> None:
        self.app = app
        self.owner = owner

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def recorded(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, recorded)
        finally:
            route = getattr(scope.get("route"), "path", None) or "unmatched"
            metrics: ApiMetrics = self.owner.state.metrics
            metrics.observe(scope["method"], route, status, time.perf_counter() - started)


def _problem_media_types(schema: dict[str, Any]) -> dict[str, Any]:
    """Error responses are ``application/problem+json``, not ``application/json``."""
    for path in schema.get("paths", {}).values():
        for operation in path.values():
            for status, response in operation.get("responses", {}).items():
                content = response.get("content")
                if status[:1] in ("4", "5") and content and "application/json" in content:
                    content[PROBLEM_JSON] = content.pop("application/json")
    return schema


def _add_referenced_models(schema: dict[str, Any]) -> dict[str, Any]:
    """Put the models that hand-written responses ``$ref`` into the components."""
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    for model in audit.REFERENCED_MODELS:
        if model.__name__ in components:
            continue
        body = model.model_json_schema(
            ref_template="#/components/schemas/{model}", mode="serialization"
        )
        for name, definition in body.pop("$defs", {}).items():
            components.setdefault(name, definition)
        components[model.__name__] = body
    return schema


def create_app(services: Services | None = None, settings: Settings | None = None) -> FastAPI:
    """The ledgerflow HTTP API, serving ``services`` (or its own, built in the lifespan)."""
    settings = services.settings if services is not None else (settings or get_settings())

    @contextlib.asynccontextmanager
    async def lifespan(api: FastAPI) -> AsyncIterator[None]:
        owned = None
        if getattr(api.state, "services", None) is None:
            owned = build_services(settings)
            _attach(api, owned)
        try:
            yield
        finally:
            await api.state.readiness.close()
            if owned is not None:
                await owned.close()

    api = FastAPI(
        title="ledgerflow",
        version=getattr(app_package, "__version__", "0.1.0"),
        summary="Durable, audited orchestrator for clinical back-office work.",
        lifespan=lifespan,
        openapi_url="/v1/openapi.json",
        docs_url="/v1/docs",
        redoc_url=None,
    )
    api.state.services = None
    api.state.metrics = ApiMetrics(settings.metrics_window_seconds, settings.metrics_cache_seconds)
    if services is not None:
        _attach(api, services)
    install_problem_handlers(api)
    for module in (requests, watch, recordings, deliveries, reviews, audit, ops):
        api.include_router(module.router)
    mount_console(api)

    def limit_for(scope: Scope) -> int:
        if scope.get("path") == RECORDINGS_PATH:
            return settings.audio_max_bytes + MULTIPART_OVERHEAD
        return settings.api_max_body_bytes

    api.add_middleware(BodyLimit, limit_for=limit_for)
    api.add_middleware(_HttpMetrics, owner=api)

    def openapi() -> dict[str, Any]:
        if api.openapi_schema is None:
            schema = get_openapi(
                title=api.title,
                version=api.version,
                summary=api.summary,
                routes=api.routes,
            )
            api.openapi_schema = _problem_media_types(_add_referenced_models(schema))
        return api.openapi_schema

    api.openapi = openapi  # type: ignore[method-assign]  # FastAPI's documented override hook
    return api


def _attach(api: FastAPI, services: Services) -> None:
    api.state.services = services
    api.state.readiness = ReadinessProbe(
        services.database.url, services.settings.readyz_timeout_seconds
    )
