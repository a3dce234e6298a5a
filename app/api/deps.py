"""What route handlers get injected: the wired services of the running app."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from app.bootstrap import Services


def services_of(request: Request) -> Services:
    """The services the app was built with (or built in its lifespan)."""
    services = getattr(request.app.state, "services", None)
    if not isinstance(services, Services):
        raise RuntimeError("the API app has no services: build it with create_app()")
    return services


ServicesDep = Annotated[Services, Depends(services_of)]
