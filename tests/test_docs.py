"""/docs and /redoc work offline: every asset they reference is served by the package."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient

_REFERENCE = re.compile(
    r"""(?:src|href|spec-url)\s*=\s*["']([^"']+)["']|url\s*:\s*['"]([^'"]+)['"]"""
)


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_docs_page_and_every_asset_it_references_answer_200_without_external_urls(
    app_client: TestClient, page: str
) -> None:
    response = app_client.get(page)
    assert response.status_code == 200
    html = response.text
    assert "http://" not in html and "https://" not in html and "//cdn" not in html
    references = {a or b for a, b in _REFERENCE.findall(html)}
    assert "/openapi.json" in references
    assert len(references) >= 3  # a script, an icon and the schema at least
    for reference in sorted(references):
        assert app_client.get(reference).status_code == 200, reference


def test_docs_assets_need_no_api_key_once_auth_is_on(
    app_client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    from live_server import create_api_key

    create_api_key()
    html = app_client.get("/docs").text
    script = re.search(r'src="([^"]+\.js)"', html)
    assert script is not None
    assert app_client.get(script.group(1)).status_code == 200
    assert app_client.get("/favicon.ico").headers["content-type"] == "image/png"
