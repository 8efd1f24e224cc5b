"""The artifact store on an S3 endpoint, through the HTTP API with the scripted plugin."""

from __future__ import annotations

import io
import shutil
import tarfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from conftest import wait_for_status
from embedtune.core import artifacts
from embedtune.core.config import get_settings
from embedtune.core.object_store import ObjectLocation

from .helpers import PREFIX, Bucket

SCRIPT = {"script": {"steps": 1, "step_seconds": 0}}


def _cache() -> Path:
    return get_settings().artifacts_dir.resolve() / "cache"


def _local_files(root: Path) -> list[str]:
    return sorted(str(path.relative_to(root)) for path in root.rglob("*") if path.is_file())


def _completed_task(app_client: TestClient, create_task: Callable[..., Any], **fields: Any) -> Any:
    task = create_task(metadata=SCRIPT, **fields)
    finished = wait_for_status(app_client, task["id"], timeout=30)
    assert finished["status"] == "completed", finished
    return finished


def _download(app_client: TestClient, model_id: str) -> dict[str, bytes]:
    response = app_client.get(f"/models/{model_id}/download")
    assert response.status_code == 200, response.text
    with tarfile.open(fileobj=io.BytesIO(response.content), mode="r:gz") as archive:
        return {
            member.name: archive.extractfile(member).read()  # type: ignore[union-attr]
            for member in archive.getmembers()
            if member.isfile()
        }


def test_trained_model_goes_to_the_bucket_and_downloads_from_it(
    app_client: TestClient, create_task: Callable[..., Any], s3_bucket: Bucket
) -> None:
    task = _completed_task(app_client, create_task)
    model_id = task["best_model_id"]

    key = f"{PREFIX}/models/{model_id}/model.txt"
    assert s3_bucket.keys(f"models/{model_id}/") == [key]
    expected = f"fine-tuned from scripted-base by {task['id']}\n".encode()
    assert s3_bucket.read(key) == expected
    # The worker keeps nothing of the model: no models folder, no work dir, nothing cached.
    root = get_settings().artifacts_dir.resolve()
    assert not any(path.name == model_id for path in root.rglob("*"))
    assert not (root / "work" / task["id"]).exists()

    assert task["best_model_url"].endswith(f"/models/{model_id}/download")
    assert _download(app_client, model_id) == {f"{model_id}/model.txt": expected}


def test_uploaded_batch_goes_to_the_bucket_and_trains_after_the_cache_is_gone(
    app_client: TestClient, create_task: Callable[..., Any], batch_id: str, s3_bucket: Bucket
) -> None:
    key = f"{PREFIX}/batches/{batch_id}.jsonl"
    assert s3_bucket.keys("batches/") == [key]
    lines = s3_bucket.read(key).decode().splitlines()
    assert lines[0] == '{"query": "q0", "positive": "p0"}'
    assert len(lines) == 4

    shutil.rmtree(_cache())
    _completed_task(app_client, create_task)
    # The worker read the batch again from the bucket.
    cached = _cache() / s3_bucket.name / key
    assert cached.read_bytes() == s3_bucket.read(key)


def test_fine_tuned_model_in_the_bucket_is_the_base_of_a_new_task(
    app_client: TestClient, create_task: Callable[..., Any], s3_bucket: Bucket
) -> None:
    first = _completed_task(app_client, create_task)
    second = _completed_task(app_client, create_task, embedding_model_id=first["best_model_id"])

    cached = _cache() / s3_bucket.name / PREFIX / "models" / first["best_model_id"]
    assert _local_files(cached) == ["model.txt"]
    second_key = f"{PREFIX}/models/{second['best_model_id']}/model.txt"
    expected = f"fine-tuned from {first['best_model_id']} by {second['id']}\n"
    assert s3_bucket.read(second_key).decode() == expected


def test_download_of_a_model_whose_objects_are_gone_is_404(
    app_client: TestClient, create_task: Callable[..., Any], s3_bucket: Bucket
) -> None:
    model_id = _completed_task(app_client, create_task)["best_model_id"]
    for key in s3_bucket.keys(f"models/{model_id}/"):
        s3_bucket.client.delete_object(Bucket=s3_bucket.name, Key=key)

    response = app_client.get(f"/models/{model_id}/download")

    assert response.status_code == 404
    assert response.json()["code"] == "model_files_missing"


def test_batch_whose_object_is_gone_cannot_be_read(batch_id: str, s3_bucket: Bucket) -> None:
    key = f"{PREFIX}/batches/{batch_id}.jsonl"
    s3_bucket.client.delete_object(Bucket=s3_bucket.name, Key=key)
    shutil.rmtree(_cache())

    with pytest.raises(FileNotFoundError, match=batch_id):
        artifacts.local_batch_file(f"s3://{s3_bucket.name}/{key}")
    assert not (_cache() / s3_bucket.name / key).exists()


@pytest.mark.parametrize("uri", ["s3://", "s3:///key", "s3://bucket/a/../b", "/local/path"])
def test_malformed_object_uri_is_rejected(uri: str) -> None:
    with pytest.raises(ValueError):
        ObjectLocation.parse(uri)
