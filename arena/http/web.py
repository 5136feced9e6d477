"""The web pages, as plain files (no build step, no CDN): the arenas and one arena live at `/`,
the pipeline at a glance at `/pipeline`.

The pages are clients of the public API like any other: queries and streams for what it shows,
commands with the bearer token an arena gave this browser (kept in its local storage) for what
it does. They are not part of the API's OpenAPI description.
"""

from __future__ import annotations

from pathlib import Path

from flask import Blueprint, Response, send_from_directory

PAGE_FILES = Path(__file__).resolve().parent.parent / "web"
# The pages load only their own files and talk only to this server: no inline script, no other
# origin, no framing. (No CORS headers anywhere: other origins' scripts cannot read the API.)
PAGE_SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; object-src 'none'; "
    "base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}

blp = Blueprint("web", __name__, static_folder=str(PAGE_FILES), static_url_path="/web")


@blp.get("/")
def arenas() -> Response:
    return _page("index.html")


@blp.get("/pipeline")
def pipeline() -> Response:
    return _page("pipeline.html")


def _page(name: str) -> Response:
    response = send_from_directory(PAGE_FILES, name)
    response.headers["Cache-Control"] = "no-cache"
    response.headers.update(PAGE_SECURITY_HEADERS)
    return response
