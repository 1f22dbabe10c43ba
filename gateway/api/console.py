"""``GET /console``: the credit offices' console (信用办控制台), a page and its script.

Plain HTML, CSS and JavaScript shipped in ``gateway/console/`` (no build step). The page
itself needs no key; everything it shows comes from the API with the key the user
enters (scope ``reports``), kept in the browser tab only. A strict Content-Security-Policy
lets it load nothing but its own files and talk to nothing but this gateway.
"""

from __future__ import annotations

from importlib import resources
from typing import Final

from litestar import Response, get

_FILES: Final = resources.files("gateway") / "console"
_TYPES: Final = {
    "index.html": "text/html",  # Litestar adds "; charset=utf-8" to text types
    "console.js": "text/javascript",
    "console.css": "text/css",
}
_HEADERS: Final = {
    "content-security-policy": "default-src 'none'; script-src 'self'; style-src 'self'; "
    "connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; "
    "frame-ancestors 'none'",
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "cache-control": "no-cache",
}


def _file(name: str) -> Response[bytes]:
    body = (_FILES / name).read_bytes()
    return Response(body, media_type=_TYPES[name], headers=_HEADERS)


@get("/console", include_in_schema=False)
async def console_page() -> Response[bytes]:
    return _file("index.html")


@get("/console/console.js", include_in_schema=False)
async def console_script() -> Response[bytes]:
    return _file("console.js")


@get("/console/console.css", include_in_schema=False)
async def console_style() -> Response[bytes]:
    return _file("console.css")


ROUTES = [console_page, console_script, console_style]
