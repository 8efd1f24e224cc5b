"""The engines that turn texts into embeddings for ``/v1/embeddings``.

``torch`` runs the model with sentence-transformers. ``onnx`` runs the model's ONNX export
(int8 or fp32, see :mod:`embedtune.deployments.export`) with onnxruntime and ``openvino`` its
OpenVINO conversion: both graphs hold the whole sentence-transformers pipeline (transformer,
pooling, dense layers, normalization), so they only need the model's tokenizer around them.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np
import numpy.typing as npt
import torch
from sentence_transformers import SentenceTransformer

Backend = Literal["torch", "onnx", "openvino"]
BACKENDS: tuple[Backend, ...] = ("torch", "onnx", "openvino")
#: The graphs' inputs, in the order the export gives them.
GRAPH_INPUTS = ("input_ids", "attention_mask", "token_type_ids")

Vectors = npt.NDArray[np.float32]


class ModelNotServable(Exception):
    """The model directory (or its export) cannot be loaded."""


class Encoder(Protocol):
    """One loaded model: tokenizes and embeds texts (blocking)."""

    backend: Backend
    #: The export served (``onnx/model_qint8.onnx``…); None for torch.
    variant: str | None
    max_seq_length: int | None
    dimension: int
    vocab_size: int

    def token_counts(self, texts: list[str]) -> list[int]: ...

    def decode(self, ids: list[int]) -> str: ...

    def encode(self, texts: list[str], batch_size: int) -> Vectors: ...


def load_sentence_transformer(path: Path) -> SentenceTransformer:
    """Load a model for inference on the GPU if there is one; raises ModelNotServable."""
    device = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        model = SentenceTransformer(str(path), device=device, local_files_only=True)
    except Exception as exc:
        raise ModelNotServable(f"{type(exc).__name__}: {exc}") from exc
    model.eval()
    return model


class _Tokenized:
    """What both engines share: the model's tokenizer and its limits."""

    def __init__(self, tokenizer: Any, max_seq_length: int | None, dimension: int) -> None:
        self.tokenizer = tokenizer
        # Requests decode token ids on the event loop while the batcher thread tokenizes: a
        # fast tokenizer must not be used by two threads at once ("Already borrowed").
        self._decoder = copy.deepcopy(tokenizer)
        self.max_seq_length = max_seq_length
        self.dimension = dimension
        self.vocab_size = len(tokenizer)

    def token_counts(self, texts: list[str]) -> list[int]:
        encoded = self.tokenizer(
            texts,
            add_special_tokens=True,
            truncation=False,
            return_attention_mask=False,
            return_token_type_ids=False,
            verbose=False,
        )
        return [len(ids) for ids in encoded["input_ids"]]

    def decode(self, ids: list[int]) -> str:
        text: str = self._decoder.decode(ids, skip_special_tokens=True)
        return text


class TorchEncoder(_Tokenized):
    backend: Backend = "torch"
    variant: str | None = None

    def __init__(self, model: SentenceTransformer) -> None:
        dimension = model.get_embedding_dimension()
        if dimension is None:
            raise ModelNotServable("the model does not say its embedding dimension")
        super().__init__(model.tokenizer, model.max_seq_length, dimension)
        self.model = model

    def encode(self, texts: list[str], batch_size: int) -> Vectors:
        with torch.inference_mode():
            vectors: Vectors = self.model.encode(
                texts, batch_size=batch_size, convert_to_numpy=True, show_progress_bar=False
            )
        return vectors


class GraphEncoder(_Tokenized):
    """An exported graph run by onnxruntime or OpenVINO on texts already sorted by length
    (the batcher sorts them), so each batch pads to its own longest text only."""

    def __init__(
        self,
        backend: Backend,
        variant: str,
        run: Callable[[dict[str, npt.NDArray[np.int64]]], Vectors],
        input_names: list[str],
        tokenizer: Any,
        max_seq_length: int | None,
        dimension: int,
    ) -> None:
        super().__init__(tokenizer, max_seq_length, dimension)
        self.backend: Backend = backend
        self.variant: str | None = variant
        self._run = run
        self._input_names = input_names

    def encode(self, texts: list[str], batch_size: int) -> Vectors:
        parts = []
        for start in range(0, len(texts), batch_size):
            features = self.tokenizer(
                texts[start : start + batch_size],
                padding=True,
                truncation=True,
                max_length=self.max_seq_length,
                return_tensors="np",
            )
            feeds = {name: features[name].astype(np.int64) for name in self._input_names}
            parts.append(self._run(feeds).astype(np.float32))
        return np.concatenate(parts) if parts else np.zeros((0, self.dimension), np.float32)


def _graph_inputs_of(names: list[str]) -> list[str]:
    unknown = set(names) - set(GRAPH_INPUTS)
    if unknown:
        raise ModelNotServable(f"the export takes unknown inputs {sorted(unknown)}")
    return names


def load_onnx(
    graph: Path, tokenizer: Any, max_seq_length: int | None, dimension: int, threads: int = 0
) -> GraphEncoder:
    """An onnxruntime session of ``graph``; raises ModelNotServable."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    try:
        session = ort.InferenceSession(str(graph), options, providers=["CPUExecutionProvider"])
    except Exception as exc:
        raise ModelNotServable(f"{type(exc).__name__}: {exc}") from exc
    names = _graph_inputs_of([item.name for item in session.get_inputs()])

    def run(feeds: dict[str, npt.NDArray[np.int64]]) -> Vectors:
        output: Vectors = session.run(None, feeds)[0]
        return output

    variant = f"{graph.parent.name}/{graph.name}"
    return GraphEncoder("onnx", variant, run, names, tokenizer, max_seq_length, dimension)


def load_openvino(
    graph: Path, tokenizer: Any, max_seq_length: int | None, dimension: int
) -> GraphEncoder:
    """An OpenVINO CPU compilation of ``graph``; raises ModelNotServable."""
    import openvino

    try:
        compiled = openvino.Core().compile_model(str(graph), "CPU")
    except Exception as exc:
        raise ModelNotServable(f"{type(exc).__name__}: {exc}") from exc
    names = _graph_inputs_of([port.get_any_name() for port in compiled.inputs])
    request = compiled.create_infer_request()

    def run(feeds: dict[str, npt.NDArray[np.int64]]) -> Vectors:
        output: Vectors = request.infer(feeds)[compiled.outputs[0]]
        return output

    variant = f"{graph.parent.name}/{graph.name}"
    return GraphEncoder("openvino", variant, run, names, tokenizer, max_seq_length, dimension)
