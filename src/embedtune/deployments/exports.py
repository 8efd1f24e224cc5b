"""Which engine serves each model, and the background exports that make the fast ones.

Each API process runs :func:`export_pass` in a loop (never on a request, and apart from the
training queue): the bundled model, blue and every model loaded here get an export row;
one process claims a pending row with a guarded UPDATE, exports the model and checks the
result (see :mod:`embedtune.deployments.export`). The files and ``onnx/export.json`` stay,
so a restart reuses them. When an export is ready, every process that holds the model loads
it again on the engine :func:`choose` picks, which falls back (int8 → fp32 → torch) when a
variant fails the quality check, and says why.
"""

from __future__ import annotations

import gc
import logging
import os
import socket
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal

import torch
from sqlalchemy.orm import Session

from embedtune.batches import service as batches
from embedtune.core import artifacts
from embedtune.core.config import Settings
from embedtune.core.db import new_session, transaction, unit_of_work, utcnow
from embedtune.deployments import repository
from embedtune.deployments.backends import (
    Backend,
    Encoder,
    ModelNotServable,
    TorchEncoder,
    load_sentence_transformer,
)
from embedtune.deployments.export import VARIANTS, export_model, open_variant, read_manifest
from embedtune.deployments.inference import EncoderOpener, Inference
from embedtune.deployments.quality_pairs import standard_library_pairs
from embedtune.deployments.schemas import ModelServing
from embedtune.fine_tuning import repository as tasks
from embedtune.models import repository as models_repository
from embedtune.models import service as models
from embedtune.training.data import Example, load_examples, split_examples

logger = logging.getLogger(__name__)

#: A running export whose process has not finished it in this long is taken over (a
#: MiniLM exports and checks in under a minute; a process stopped mid-export leaves one).
EXPORT_STALE_AFTER = timedelta(minutes=10)
#: Fewer held-out pairs than this and the fixed standard-library pairs are used instead.
MIN_HELD_OUT_PAIRS = 20
#: The variants an explicit engine tries, in order. ``auto`` tries every variant, the one
#: its check encoded fastest first (the check runs on the machine that exports).
_PREFERENCE: dict[Backend, tuple[str, ...]] = {
    "onnx": ("onnx_int8", "onnx_fp32"),
    "openvino": ("openvino_int8", "openvino"),
}
Engine = Literal["auto", "torch", "onnx", "openvino"]


def serving_backend(settings: Settings) -> Engine:
    """The configured engine; ``auto`` means torch on a GPU."""
    if settings.inference_backend == "auto" and torch.cuda.is_available():
        return "torch"
    return settings.inference_backend


def variant_backend(variant: str) -> Backend:
    """The engine that runs an exported variant (a key of ``VARIANTS``)."""
    return "openvino" if variant.startswith("openvino") else "onnx"


@dataclass(frozen=True)
class Choice:
    backend: Backend
    #: A key of ``VARIANTS``; None for torch.
    variant: str | None
    detail: str


def _candidates(manifest: dict[str, Any], backend: Engine) -> list[str]:
    if backend != "auto":
        return list(_PREFERENCE[backend] if backend != "torch" else ())
    quality = manifest["quality"]
    exported = sorted(
        (v for v in VARIANTS if v in manifest["files"]),
        key=lambda v: quality[v]["encode_seconds"],
    )
    return exported + [v for v in VARIANTS if v not in manifest["files"]]


def choose(manifest: dict[str, Any] | None, backend: Engine, settings: Settings) -> Choice:
    """The first variant of ``backend`` that passed the quality check (for ``auto``, the
    fastest that passed), else torch."""
    if backend == "torch":
        return Choice("torch", None, "torch serves (EMBEDTUNE_INFERENCE_BACKEND or a GPU)")
    if manifest is None:
        return Choice("torch", None, f"the {backend} export is not ready; torch serves meanwhile")
    quality, reasons = manifest["quality"], []
    torch_mrr = quality["torch"]["mrr@10"]
    for variant in _candidates(manifest, backend):
        if variant not in manifest["files"]:
            reasons.append(f"{variant}: {manifest['skipped'].get(variant, 'not exported')}")
            continue
        figures = quality[variant]
        cosine, mrr = figures["cosine_mean"], figures["mrr@10"]
        if cosine < settings.export_min_cosine:
            reasons.append(
                f"{variant} failed the quality check: cosine with torch {cosine:.4f} "
                f"< {settings.export_min_cosine}"
            )
        elif torch_mrr - mrr > settings.export_max_mrr_drop:
            reasons.append(
                f"{variant} failed the quality check: MRR@10 {mrr:.4f} is more than "
                f"{settings.export_max_mrr_drop} below torch's {torch_mrr:.4f}"
            )
        else:
            engine = variant_backend(variant)
            detail = (
                f"{engine} serves {VARIANTS[variant]} (cosine with torch {cosine:.4f}, "
                f"MRR@10 {mrr:.4f} vs torch's {torch_mrr:.4f} on {quality['pairs']} pairs"
            )
            if backend == "auto":
                detail += f"; the fastest to pass, {figures['encode_seconds']:.2f} s in the check"
            return Choice(engine, variant, "; ".join([detail + ")", *reasons]))
    return Choice("torch", None, "torch serves: " + "; ".join(reasons))


def _root(model_id: str, model_dir: Path) -> Path:
    return artifacts.export_root(model_id, model_dir)


def encoder_opener(settings: Settings) -> EncoderOpener:
    """How this process loads a model: on the engine :func:`choose` picks for it."""

    def open_encoder(model_id: str, model_dir: Path) -> tuple[Encoder, str]:
        root = _root(model_id, model_dir)
        backend = serving_backend(settings)
        manifest = read_manifest(root) if backend != "torch" else None
        choice = choose(manifest, backend, settings)
        if manifest is not None and choice.variant is not None:
            try:
                encoder = open_variant(root, manifest, choice.variant, settings.inference_threads)
                return encoder, choice.detail
            except ModelNotServable as exc:
                detail = f"torch serves: {VARIANTS[choice.variant]} did not load ({exc})"
                return TorchEncoder(load_sentence_transformer(model_dir)), detail
        return TorchEncoder(load_sentence_transformer(model_dir)), choice.detail

    return open_encoder


def _held_out_pairs(session: Session, model_id: str, limit: int) -> tuple[list[Example], str]:
    """The held-out pairs of the task that trained the model, else the fixed ones."""
    model = models_repository.get(session, model_id)
    task = tasks.get(session, model.task_id) if model and model.task_id else None
    if task is not None and task.batch_id is not None:
        batch = batches.get_batch(session, task.batch_id)
        held_out = split_examples(load_examples(artifacts.local_batch_file(batch.path))).eval
        distinct: dict[str, Example] = {}
        documents: set[str] = set()
        for example in held_out:
            if example.query not in distinct and example.positive not in documents:
                distinct[example.query] = example
                documents.add(example.positive)
        if len(distinct) >= MIN_HELD_OUT_PAIRS:
            return list(distinct.values())[:limit], f"the held-out pairs of task {task.id}"
    pairs = list(standard_library_pairs(limit))
    return pairs, f"{len(pairs)} pairs from Python's standard library docstrings"


def _wanted(session: Session, inference: Inference) -> list[str]:
    slot = repository.get_blue(session)
    wanted = [models.BUNDLED_MODEL_ID] + ([slot.model_id] if slot else [])
    return list(dict.fromkeys(wanted + inference.models.loaded_ids()))


def _export_one(model_id: str, worker: str, settings: Settings) -> None:
    """Exports a claimed model and records the outcome (a failure too)."""
    status, detail, directory, quality = "failed", "", None, None
    try:
        with new_session() as session:
            model_dir = models.model_directory(models.get_model(session, model_id))
            pairs, source = _held_out_pairs(session, model_id, settings.export_check_pairs)
        root = _root(model_id, model_dir)
        manifest = read_manifest(root)
        if manifest is not None:
            detail = "a finished export was found and reused"
        else:
            loaded = load_sentence_transformer(model_dir)
            try:
                manifest = export_model(loaded.to("cpu"), root, pairs, source)
            finally:
                del loaded
                gc.collect()
            detail = f"exported in {manifest['export_seconds']:.1f} s"
        status, directory, quality = "ready", str(root), manifest["quality"]
        quality["export_seconds"] = manifest["export_seconds"]
        quality["check_seconds"] = manifest["check_seconds"]
        detail += f", checked on {quality['source']}"
    except Exception as exc:
        logger.exception("export of model_id=%s failed", model_id)
        detail = f"{type(exc).__name__}: {exc}"
    with new_session(writer=True) as session, transaction(session):
        repository.finish_export(session, model_id, worker, status, detail, directory, quality)
    logger.info("export of model_id=%s: %s (%s)", model_id, status, detail)


def _reload_changed(inference: Inference, settings: Settings) -> None:
    """Loads again the models here whose engine is no longer the one to serve them."""
    backend = serving_backend(settings)
    for loaded in inference.models.loaded():
        with new_session() as session:
            model = models_repository.get(session, loaded.model_id)
        if model is None:
            continue
        model_dir = artifacts.local_model_dir(model.path)
        choice = choose(read_manifest(_root(model.id, model_dir)), backend, settings)
        variant = VARIANTS.get(choice.variant or "")
        if (choice.backend, variant) != (loaded.encoder.backend, loaded.encoder.variant):
            logger.info("model_id=%s moves to %s", loaded.model_id, choice.detail)
            inference.models.reload(loaded.model_id, model_dir)


def export_pass(settings: Settings, inference: Inference) -> None:
    """One pass of the export loop (see the module docstring)."""
    needed = serving_backend(settings) != "torch"
    with new_session() as session:
        rows = {row.model_id: row.status for row in repository.list_exports(session)}
        missing = [m for m in _wanted(session, inference) if m not in rows]
        missing = [m for m in missing if models_repository.get(session, m) is not None]
    reopen = needed and "not_needed" in rows.values()
    if missing or reopen:  # a write only when something changes
        with new_session(writer=True) as session, transaction(session):
            for model_id in missing:
                status = "pending" if needed else "not_needed"
                repository.insert_pending_export(session, model_id, status)
            if reopen:
                repository.reopen_unneeded_exports(session)
    if not needed:
        return
    worker = f"{socket.gethostname()}:{os.getpid()}"
    stale_before = utcnow() - EXPORT_STALE_AFTER
    with new_session() as session:
        pending = repository.list_pending_exports(session, stale_before)
    for model_id in pending:
        # The claim is a unit of its own, seen by the other processes during the export.
        with new_session(writer=True) as session, transaction(session):
            claimed = repository.claim_export(session, model_id, worker, stale_before)
        if claimed:
            _export_one(model_id, worker, settings)
    _reload_changed(inference, settings)


def _planned(row: Any, backend: Engine, settings: Settings) -> Backend:
    """The engine meant to serve a model not loaded here: for ``auto``, the one its finished
    export's check picks (the checked variants are the exported ones), else torch."""
    if backend != "auto":
        return backend
    if row is None or row.status != "ready" or not row.quality:
        return "torch"
    files = {variant: VARIANTS[variant] for variant in VARIANTS if variant in row.quality}
    return choose(
        {"files": files, "skipped": {}, "quality": row.quality}, backend, settings
    ).backend


@unit_of_work
def list_serving(session: Session, inference: Inference, settings: Settings) -> list[ModelServing]:
    """Every model loaded here or with an export row: its engine and export status."""
    loaded = {model.model_id: model for model in inference.models.loaded()}
    exports = {row.model_id: row for row in repository.list_exports(session)}
    backend = serving_backend(settings)
    unexported = "not_needed" if backend == "torch" else "pending"
    listed = []
    for model_id in sorted(set(loaded) | set(exports)):
        row, model = exports.get(model_id), loaded.get(model_id)
        if model is not None:
            serving, detail = model.encoder.backend, model.detail
        else:
            serving, detail = _planned(row, backend, settings), row.detail if row else ""
        listed.append(
            ModelServing(
                model_id=model_id,
                loaded=model is not None,
                backend=serving,
                variant=model.encoder.variant if model is not None else None,
                export_status=row.status if row is not None else unexported,
                export_detail=row.detail if row is not None else "",
                detail=detail,
                quality=row.quality if row is not None else None,
            )
        )
    return listed
