"""The embedding model registry and plugin discovery."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient


def test_bundled_model_is_registered_at_start(app_client: TestClient) -> None:
    model = app_client.get("/models/all-MiniLM-L6-v2").json()
    assert model["plugin"] == "sentence-transformers"
    assert model["parent_id"] is None
    listed = app_client.get("/models")
    assert "all-MiniLM-L6-v2" in [m["id"] for m in listed.json()]
    assert listed.headers["x-total-count"] == "1"


def test_third_party_plugins_are_found_through_entry_points() -> None:
    from embedtune.training.plugins import get_plugins

    get_plugins.cache_clear()
    plugins = get_plugins()
    assert type(plugins["scripted"]).__module__ == "embedtune_scripted_plugin"
    assert plugins["serve-only"].can_fine_tune is False


def test_register_model_directory(app_client: TestClient, tmp_path: Path) -> None:
    (tmp_path / "model.txt").write_text("x")
    response = app_client.post(
        "/models", json={"name": "Mine", "path": str(tmp_path), "plugin": "scripted"}
    )
    assert response.status_code == 201
    model = response.json()
    assert model["id"].startswith("model-")
    assert app_client.get(response.headers["location"]).json() == model


def test_unreadable_model_directory_is_422(app_client: TestClient, tmp_path: Path) -> None:
    for path in (tmp_path, tmp_path / "missing"):
        response = app_client.post(
            "/models", json={"name": "bad", "path": str(path), "plugin": "scripted"}
        )
        assert response.status_code == 422
        assert response.json()["code"] == "invalid_model"


def test_model_with_uninstalled_plugin_is_422(app_client: TestClient, tmp_path: Path) -> None:
    response = app_client.post("/models", json={"name": "m", "path": str(tmp_path), "plugin": "x"})
    assert response.status_code == 422
    assert response.json()["code"] == "plugin_unavailable"


def test_duplicate_model_id_is_409(app_client: TestClient, tmp_path: Path) -> None:
    (tmp_path / "model.txt").write_text("x")
    body = {"id": "dup", "name": "m", "path": str(tmp_path), "plugin": "scripted"}
    assert app_client.post("/models", json=body).status_code == 201
    response = app_client.post("/models", json=body)
    assert response.status_code == 409
    assert response.json()["code"] == "model_exists"


def test_unknown_model_is_404(app_client: TestClient) -> None:
    for path in ("/models/nope", "/models/nope/download"):
        response = app_client.get(path)
        assert response.status_code == 404
        assert response.json()["code"] == "model_not_found"
