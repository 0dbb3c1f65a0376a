"""``/``: the drawing page (static files; it talks to the public API only)."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse

STATIC = Path(__file__).resolve().parents[2] / "static"

router = APIRouter(tags=["page"], include_in_schema=False)


@router.get("/")
async def index() -> FileResponse:
    return FileResponse(STATIC / "index.html", media_type="text/html")


@router.get("/favicon.ico")
async def favicon() -> FileResponse:
    """Browsers ask for it whatever the page links: the page's own icon (SVG), not a 404."""
    return FileResponse(STATIC / "favicon.svg", media_type="image/svg+xml")
