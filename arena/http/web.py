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
    return response
