"""HTTP API tests through an ASGI client against real databases."""
