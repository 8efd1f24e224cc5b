"""The local artifact store: batches, fine-tuned models and per-task work directories."""

from __future__ import annotations

import shutil
from pathlib import Path

from embedtune.config import get_settings


def _root() -> Path:
    root = get_settings().artifacts_dir.resolve()
    root.mkdir(parents=True, exist_ok=True)
    return root


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


def store_model(source_dir: Path, model_id: str) -> Path:
    """Copies a trained model into the store; returns its permanent directory."""
    target = _root() / "models" / model_id
    staging = target.with_name(f".{model_id}.partial")
    shutil.rmtree(staging, ignore_errors=True)
    shutil.copytree(source_dir, staging)
    staging.rename(target)
    return target


def remove_model(model_id: str) -> None:
    shutil.rmtree(_root() / "models" / model_id, ignore_errors=True)
