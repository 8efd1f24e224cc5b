"""Loading models quietly, and giving their memory back."""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator
from pathlib import Path

import torch
from sentence_transformers import SentenceTransformer
from transformers.utils import logging as transformers_logging

from embedtune.training.plugin import InvalidModel


def load_model(path: Path, device: str | None = None) -> SentenceTransformer:
    """Load a local model (on the best device unless ``device``); raises :class:`InvalidModel`."""
    if not path.is_dir():
        raise InvalidModel(f"model directory {path} does not exist")
    try:
        return SentenceTransformer(str(path), device=device, local_files_only=True)
    except (torch.OutOfMemoryError, MemoryError):
        raise
    except Exception as exc:
        raise InvalidModel(f"cannot load the model: {type(exc).__name__}: {exc}") from exc


@contextlib.contextmanager
def no_progress_bars() -> Iterator[None]:
    """Silence the loading and saving progress bars of Transformers and the Hub meanwhile."""
    enabled = transformers_logging.is_progress_bar_enabled()
    transformers_logging.disable_progress_bar()  # type: ignore[no-untyped-call]
    try:
        yield
    finally:
        if enabled:
            transformers_logging.enable_progress_bar()  # type: ignore[no-untyped-call]


def release_memory() -> None:
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
