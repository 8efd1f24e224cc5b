"""The artifact store: batches, fine-tuned models and per-task work directories.

Everything lives under ``EMBEDTUNE_ARTIFACTS_DIR`` by default. With
``EMBEDTUNE_ARTIFACTS_URL=s3://bucket/prefix`` batches and fine-tuned models live in the
object store instead (their rows hold ``s3://`` URIs), and each machine downloads what it
reads into a cache under the local directory. Work directories always stay local.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from embedtune.core.config import get_settings
from embedtune.core.object_store import ObjectLocation, ObjectStore, get_object_store, is_object_uri


def _root() -> Path:
    root = get_settings().artifacts_dir.resolve()
    root.mkdir(parents=True, exist_ok=True)
    return root


def _remote() -> tuple[ObjectStore, ObjectLocation] | None:
    """The object store and the artifacts' root in it; None for the local store."""
    settings = get_settings()
    if not settings.artifacts_url:
        return None
    return get_object_store(settings.s3_endpoint_url), ObjectLocation.parse(settings.artifacts_url)


def _cache_path(location: ObjectLocation) -> Path:
    return _root() / "cache" / location.bucket / location.key


def batch_path(batch_id: str) -> Path:
    path = _root() / "batches" / f"{batch_id}.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def upload_dir() -> Path:
    path = _root() / "uploads"
    path.mkdir(parents=True, exist_ok=True)
    return path


def task_work_dir(task_id: str) -> Path:
    """Survives a worker crash, so a recovered task can resume from its checkpoints."""
    path = _root() / "work" / task_id
    path.mkdir(parents=True, exist_ok=True)
    return path


def remove_task_work_dir(task_id: str) -> None:
    shutil.rmtree(_root() / "work" / task_id, ignore_errors=True)


def store_batch(staged_file: Path, batch_id: str) -> str:
    """Moves a complete batch file into the store; returns its path or ``s3://`` URI."""
    remote = _remote()
    if remote is None:
        path = batch_path(batch_id)
        staged_file.replace(path)
        return str(path)
    store, root = remote
    location = root.child("batches", f"{batch_id}.jsonl")
    store.upload_file(staged_file, location)
    # Kept as this machine's cached copy: a worker beside the API need not download it.
    cached = _cache_path(location)
    cached.parent.mkdir(parents=True, exist_ok=True)
    staged_file.replace(cached)
    return location.uri


def remove_batch(path_or_uri: str) -> None:
    """Removes a stored batch file (and its cached copy); a missing one is no error."""
    if not is_object_uri(path_or_uri):
        Path(path_or_uri).unlink(missing_ok=True)
        return
    location = ObjectLocation.parse(path_or_uri)
    _cache_path(location).unlink(missing_ok=True)
    _store_for(path_or_uri).delete_file(location)


def local_batch_file(path_or_uri: str) -> Path:
    """A local copy of a stored batch file, downloaded into the cache on first use.

    Raises FileNotFoundError if the object is gone, ValueError on a malformed URI.
    """
    if not is_object_uri(path_or_uri):
        return Path(path_or_uri)
    return _cached(path_or_uri, _download_file)


def local_model_dir(path_or_uri: str) -> Path:
    """A local directory with a stored model's files, downloaded into the cache on first use.

    The directory does not exist when the model's files are gone (callers check, as they do
    for a local model). Raises ValueError on a malformed URI.
    """
    if not is_object_uri(path_or_uri):
        return Path(path_or_uri)
    return _cached(path_or_uri, _download_tree)


def _download_file(store: ObjectStore, location: ObjectLocation, staging: Path) -> Path:
    target = staging / "file"
    store.download_file(location, target)
    return target


def _download_tree(store: ObjectStore, location: ObjectLocation, staging: Path) -> Path | None:
    target = staging / "tree"
    return target if store.download_tree(location, target) else None


def _cached(uri: str, download: Callable[[ObjectStore, ObjectLocation, Path], Path | None]) -> Path:
    """The cached copy of the file or directory at ``uri``; on a miss, ``download`` fetches
    it into a staging directory and returns what to install (None: nothing there)."""
    location = ObjectLocation.parse(uri)
    cached = _cache_path(location)
    if cached.exists():
        return cached
    cached.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=cached.parent, prefix=".partial-"))
    try:
        fetched = download(_store_for(uri), location, staging)
        if fetched is not None:
            try:
                # Atomic, so a concurrent reader sees all of it or nothing.
                fetched.rename(cached)
            except OSError:
                if not cached.exists():
                    raise
                # Another thread cached the same artifact (they are immutable) first.
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return cached


def _store_for(uri: str) -> ObjectStore:
    """The configured object store; raises ValueError if ``uri`` exists but none is."""
    remote = _remote()
    if remote is None:
        raise ValueError(f"{uri} is in an object store but EMBEDTUNE_ARTIFACTS_URL is not set")
    return remote[0]


def store_model(source_dir: Path, model_id: str) -> str:
    """Copies a trained model into the store; returns its permanent directory or ``s3://``
    URI (the source directory is left as it is)."""
    remote = _remote()
    if remote is not None:
        store, root = remote
        location = root.child("models", model_id)
        store.upload_tree(source_dir, location)
        return location.uri
    target = _root() / "models" / model_id
    staging = target.with_name(f".{model_id}.partial")
    shutil.rmtree(staging, ignore_errors=True)
    shutil.copytree(source_dir, staging)
    staging.rename(target)
    return str(target)


def remove_model(model_id: str) -> None:
    """Removes a fine-tuned model from the store (and this machine's cached copy)."""
    remote = _remote()
    if remote is None:
        shutil.rmtree(_root() / "models" / model_id, ignore_errors=True)
        return
    store, root = remote
    location = root.child("models", model_id)
    store.delete_tree(location)
    shutil.rmtree(_cache_path(location), ignore_errors=True)


def export_root(model_id: str, model_dir: Path) -> Path:
    """Where a model's ONNX/OpenVINO exports go: its own directory when it is a model of the
    local store (so they are part of its download), else ``exports/<model id>``."""
    models = _root() / "models"
    if model_dir.resolve().is_relative_to(models):
        return model_dir
    return _root() / "exports" / model_id
