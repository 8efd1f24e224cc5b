"""Exporting a model for the fast engines, and the check it must pass before it serves.

sentence-transformers' own ONNX/OpenVINO backends need ``optimum-onnx``/``optimum-intel``,
which require transformers < 5, so the export is done here: the whole model (transformer,
pooling, dense layers, normalization) traced with ``torch.onnx.export`` into
``onnx/model.onnx``, quantized to int8 with onnxruntime's dynamic quantization
(``onnx/model_qint8.onnx``: per-channel weights, matrix products only, which keeps MiniLM's
embeddings at cosine ≈ 0.994 where quantizing every op gave 0.968), and converted from the
fp32 graph for OpenVINO (``openvino/openvino_model.xml``), which NNCF then quantizes to static
int8 (``openvino/openvino_model_int8.xml``: activations too, calibrated on a few real texts,
with smooth quantization, NNCF's preset for transformers; in a child process, see
:mod:`embedtune.deployments.quantize`). The tokenizer is saved beside the
ONNX files, and ``onnx/export.json`` holds what the engines need and the quality check's
figures; it is written last, so an export without it is incomplete.

The check: on held-out pairs, each variant's embeddings against torch's (mean cosine) and
its retrieval MRR@10 against torch's.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sentence_transformers import SentenceTransformer

from embedtune.deployments import quantize
from embedtune.deployments.backends import (
    GRAPH_INPUTS,
    Encoder,
    GraphEncoder,
    TorchEncoder,
    Vectors,
    load_onnx,
    load_openvino,
)
from embedtune.deployments.quality_pairs import calibration_texts
from embedtune.training.data import Example

logger = logging.getLogger(__name__)

MANIFEST = "onnx/export.json"
#: 2: with ``openvino_int8``; an export of format 1 is made again.
FORMAT = 2
#: Variant → file, in the order a backend prefers them.
VARIANTS = {
    "onnx_int8": "onnx/model_qint8.onnx",
    "onnx_fp32": "onnx/model.onnx",
    "openvino_int8": "openvino/openvino_model_int8.xml",
    "openvino": "openvino/openvino_model.xml",
}
TOKENIZER_DIR = "onnx"
#: The sub-folders an export writes into the model's directory (or its export root).
FOLDERS = ("openvino", "onnx")
_OPSET = 17
_QUALITY_BATCH_SIZE = 32
#: Texts that calibrate the static int8 graph, in batches of this size. 128 texts took
#: about 10 s on 2 cores and kept MiniLM's embeddings at cosine 0.996 with torch's (400:
#: 0.997 in 21 s; without smooth quantization 0.983).
CALIBRATION_TEXTS = 128
_CALIBRATION_BATCH_SIZE = 16


class _Pipeline(torch.nn.Module):
    """The sentence-transformers pipeline as one graph from token ids to the embedding."""

    def __init__(self, model: SentenceTransformer, input_names: Sequence[str]) -> None:
        super().__init__()
        self.model = model
        self.input_names = list(input_names)

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        features = dict(zip(self.input_names, inputs, strict=True))
        embedding: torch.Tensor = self.model(features)["sentence_embedding"]
        return embedding


def _export_onnx(model: SentenceTransformer, target: Path) -> None:
    sample = model.tokenizer(["an example", "another, longer example"], padding=True)
    names = [name for name in GRAPH_INPUTS if name in sample]
    inputs = tuple(torch.tensor(sample[name]) for name in names)
    axes: dict[str, dict[int, str]] = {name: {0: "batch", 1: "tokens"} for name in names}
    axes["sentence_embedding"] = {0: "batch"}
    target.parent.mkdir(parents=True, exist_ok=True)
    # The tracer warns about every Python branch it freezes; the graph is checked afterwards.
    with torch.inference_mode(False), torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            _Pipeline(model, names).eval(),
            inputs,
            str(target),
            input_names=names,
            output_names=["sentence_embedding"],
            dynamic_axes=axes,
            opset_version=_OPSET,
            dynamo=False,
        )


def _quantize(source: Path, target: Path) -> None:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(
        str(source),
        str(target),
        weight_type=QuantType.QInt8,
        per_channel=True,
        op_types_to_quantize=["MatMul"],
    )


def _convert_openvino(source: Path, target: Path) -> str | None:
    """Converts the fp32 graph; the reason when OpenVINO is not installed or fails."""
    try:
        import openvino
    except ImportError:
        return "the openvino package is not installed"
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        openvino.save_model(openvino.convert_model(str(source)), str(target))
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"
    return None


def _calibration_batches(
    tokenizer: Any, texts: list[str], max_length: int | None
) -> list[quantize.Batch]:
    """The calibration texts tokenized as the graph takes them, in batches."""
    batches = []
    for start in range(0, len(texts), _CALIBRATION_BATCH_SIZE):
        features = tokenizer(
            texts[start : start + _CALIBRATION_BATCH_SIZE],
            padding=True,
            truncation=True,
            max_length=max_length,
            return_tensors="np",
        )
        batches.append(
            {name: features[name].astype(np.int64) for name in GRAPH_INPUTS if name in features}
        )
    return batches


def _mrr_at_10(queries: Vectors, documents: Vectors) -> float:
    """Each query's relevant document is the one at its index (the pairs are distinct)."""
    queries = queries / np.linalg.norm(queries, axis=1, keepdims=True)
    documents = documents / np.linalg.norm(documents, axis=1, keepdims=True)
    scores = queries @ documents.T
    own = scores[np.arange(len(queries)), np.arange(len(queries))]
    rank = (scores > own[:, None]).sum(axis=1) + 1
    return float(np.where(rank <= 10, 1.0 / rank, 0.0).mean())


def _figures(encoder: Encoder, texts: list[str], reference: Vectors, count: int) -> dict[str, Any]:
    started = time.perf_counter()
    order = np.argsort([len(text) for text in texts], kind="stable")
    vectors = np.empty_like(reference)
    vectors[order] = encoder.encode([texts[i] for i in order], _QUALITY_BATCH_SIZE)
    seconds = time.perf_counter() - started
    cosine = (vectors * reference).sum(axis=1) / (
        np.linalg.norm(vectors, axis=1) * np.linalg.norm(reference, axis=1)
    )
    return {
        "cosine_mean": round(float(cosine.mean()), 5),
        "cosine_min": round(float(cosine.min()), 5),
        "mrr@10": round(_mrr_at_10(vectors[:count], vectors[count:]), 5),
        "encode_seconds": round(seconds, 3),
    }


def check_quality(
    model: SentenceTransformer, directory: Path, manifest: dict[str, Any], pairs: list[Example]
) -> dict[str, Any]:
    """The figures of torch and of every exported variant on ``pairs``."""
    texts = [pair.query for pair in pairs] + [pair.positive for pair in pairs]
    torch_encoder = TorchEncoder(model)
    reference = torch_encoder.encode(texts, _QUALITY_BATCH_SIZE)
    quality: dict[str, Any] = {
        "pairs": len(pairs),
        "torch": {"mrr@10": round(_mrr_at_10(reference[: len(pairs)], reference[len(pairs) :]), 5)},
    }
    for variant in manifest["files"]:
        encoder = open_variant(directory, manifest, variant, threads=0)
        quality[variant] = _figures(encoder, texts, reference, len(pairs))
    return quality


def open_variant(
    directory: Path, manifest: dict[str, Any], variant: str, threads: int = 0
) -> GraphEncoder:
    """The engine of one exported variant; raises ModelNotServable."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(directory / TOKENIZER_DIR))
    graph = directory / manifest["files"][variant]
    limits = (manifest["max_seq_length"], manifest["dimension"])
    if variant.startswith("openvino"):
        return load_openvino(graph, tokenizer, *limits)
    return load_onnx(graph, tokenizer, *limits, threads=threads)


def export_model(
    model: SentenceTransformer, root: Path, pairs: list[Example], source: str
) -> dict[str, Any]:
    """Writes every variant under ``root`` (``onnx/``, ``openvino/``, replacing what was
    there) and returns the manifest. Raises what the export raised."""
    started = time.perf_counter()
    staging = root / ".export-partial"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        model.tokenizer.save_pretrained(str(staging / TOKENIZER_DIR))
        fp32 = staging / VARIANTS["onnx_fp32"]
        _export_onnx(model, fp32)
        _quantize(fp32, staging / VARIANTS["onnx_int8"])
        files = {name: VARIANTS[name] for name in ("onnx_int8", "onnx_fp32")}
        skipped: dict[str, str] = {}
        problem = _convert_openvino(fp32, staging / VARIANTS["openvino"])
        if problem is None:
            files["openvino"] = VARIANTS["openvino"]
            checked_texts = {text for pair in pairs for text in (pair.query, pair.positive)}
            problem = quantize.quantize_openvino(
                staging / VARIANTS["openvino"],
                staging / VARIANTS["openvino_int8"],
                _calibration_batches(
                    model.tokenizer,
                    calibration_texts(checked_texts, CALIBRATION_TEXTS),
                    model.max_seq_length,
                ),
            )
            if problem is None:
                files["openvino_int8"] = VARIANTS["openvino_int8"]
        if problem is not None:
            skipped.update({v: problem for v in ("openvino_int8", "openvino") if v not in files})
        manifest: dict[str, Any] = {
            "format": FORMAT,
            "files": files,
            "skipped": skipped,
            "max_seq_length": model.max_seq_length,
            "dimension": model.get_embedding_dimension(),
            "export_seconds": round(time.perf_counter() - started, 2),
        }
        checked = time.perf_counter()
        manifest["quality"] = check_quality(model, staging, manifest, pairs) | {"source": source}
        manifest["check_seconds"] = round(time.perf_counter() - checked, 2)
        (staging / MANIFEST).write_text(json.dumps(manifest, indent=2))
        for folder in FOLDERS:  # onnx/ (with the manifest) last
            shutil.rmtree(root / folder, ignore_errors=True)
            if (staging / folder).exists():
                (staging / folder).rename(root / folder)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return manifest


def read_manifest(directory: Path) -> dict[str, Any] | None:
    """The manifest of a finished export in ``directory``, or None."""
    try:
        manifest: dict[str, Any] = json.loads((directory / MANIFEST).read_text())
    except (OSError, ValueError):
        return None
    return manifest if manifest.get("format") == FORMAT else None
