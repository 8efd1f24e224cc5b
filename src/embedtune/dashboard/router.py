"""Serves the dashboard's page and assets; the page then reads everything from the API."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse

from embedtune.core.errors import NotFound

STATIC_DIR = Path(__file__).resolve().parent / "static"
ASSETS = {"app.js": "text/javascript", "feedback.js": "text/javascript", "style.css": "text/css"}
#: The page and its assets hold no data (they ask for the API key), so auth lets them pass.
PUBLIC_PATHS = frozenset({"/", "/favicon.ico", *(f"/dashboard/{name}" for name in ASSETS)})
#: The assets change with the package version only; revalidation keeps upgrades visible.
_CACHE = {"Cache-Control": "no-cache"}

router = APIRouter(include_in_schema=False)


@router.get("/")
def dashboard() -> FileResponse:
    return FileResponse(STATIC_DIR / "index.html", media_type="text/html", headers=_CACHE)


@router.get("/favicon.ico")
def favicon() -> FileResponse:
    return FileResponse(STATIC_DIR / "favicon.png", media_type="image/png", headers=_CACHE)


@router.get("/dashboard/{asset}")
def dashboard_asset(asset: str) -> FileResponse:
    """Raises ``NotFound`` for anything but the known assets (no path traversal)."""
    if asset not in ASSETS:
        raise NotFound(f"no dashboard asset {asset!r}")
    return FileResponse(STATIC_DIR / asset, media_type=ASSETS[asset], headers=_CACHE)
