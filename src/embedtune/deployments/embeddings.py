"""``POST /v1/embeddings``: texts (or token ids) in, OpenAI-shaped embeddings out."""

from __future__ import annotations

import asyncio
import base64
from typing import Any

import numpy as np
import numpy.typing as npt

from embedtune.core.errors import Unprocessable
from embedtune.deployments.inference import Inference, InputTooLong, LoadedModel, ModelUnloaded
from embedtune.deployments.schemas import EmbeddingsRequest
from embedtune.deployments.serving import resolve

#: A request whose model is unloaded between lookup and submit looks it up again.
MAX_RESOLVE_ATTEMPTS = 3


class InvalidInput(Unprocessable):
    """A 422 that names the request field at fault (OpenAI's ``param``)."""

    def __init__(self, detail: str, *, code: str, param: str = "input") -> None:
        super().__init__(detail, code=code)
        self.param = param


Item = str | list[int]


def _items(request: EmbeddingsRequest) -> list[Item]:
    """The request's inputs, each a text or a list of token ids; raises InvalidInput."""
    value = request.input
    items: list[Item] = []
    if isinstance(value, str):
        items = [value]
    elif value and all(isinstance(item, int) for item in value):
        items = [[int(item) for item in value if isinstance(item, int)]]
    else:
        items = [item for item in value if isinstance(item, str | list)]
    if not items:
        raise InvalidInput("input must hold at least one text", code="empty_input")
    return items


def _texts(items: list[Item], loaded: LoadedModel) -> list[str]:
    """Texts to embed; token ids are the model's own and are decoded. Raises InvalidInput."""
    vocabulary = loaded.encoder.vocab_size
    texts: list[str] = []
    empty: list[int] = []
    for index, item in enumerate(items):
        if isinstance(item, list):
            out_of_range = [token for token in item if token >= vocabulary]
            if out_of_range:
                raise InvalidInput(
                    f"input[{index}] holds token id(s) {out_of_range[:5]} beyond the "
                    f"{vocabulary} of model {loaded.model_id!r}'s tokenizer",
                    code="invalid_token_ids",
                )
            text = loaded.encoder.decode(item) if item else ""
        else:
            text = item
        texts.append(text)
        if not text.strip():
            empty.append(index)
    if empty:
        raise InvalidInput(f"input(s) {empty[:20]} are empty", code="empty_input")
    return texts


def _check_dimensions(dimensions: int | None, loaded: LoadedModel) -> None:
    if dimensions is not None and dimensions > loaded.dimension:
        raise InvalidInput(
            f"dimensions {dimensions} is more than the {loaded.dimension} of model "
            f"{loaded.model_id!r}",
            code="dimensions_too_large",
            param="dimensions",
        )


def _shorten(vectors: npt.NDArray[np.float32], dimensions: int | None) -> Any:
    """The first ``dimensions`` of each vector, made unit length again (Matryoshka-style)."""
    if dimensions is None or dimensions == vectors.shape[1]:
        return vectors
    cut = vectors[:, :dimensions]
    norms = np.linalg.norm(cut, axis=1, keepdims=True)
    return cut / np.maximum(norms, np.float32(1e-12))


def _encode_vector(vector: np.ndarray[Any, Any], encoding_format: str) -> list[float] | str:
    if encoding_format == "base64":
        return base64.b64encode(vector.astype("<f4").tobytes()).decode("ascii")
    values: list[float] = vector.tolist()
    return values


async def create_embeddings(inference: Inference, request: EmbeddingsRequest) -> dict[str, Any]:
    """Embeds ``request.input`` with one model, batched with concurrent requests.

    Returns the OpenAI-shaped response body; ``usage`` counts the model's tokens, special
    tokens included; the request schema bounds the input's size. Raises Unprocessable
    (``empty_input``, ``invalid_token_ids``, ``input_too_long``, ``dimensions_too_large``,
    ``model_not_servable``, ``plugin_unavailable``), NotFound (``model_not_found``) and
    InvalidState (``no_blue_model``).
    """
    items = _items(request)
    for attempt in range(MAX_RESOLVE_ATTEMPTS):
        loaded = await resolve(inference, request.model)
        _check_dimensions(request.dimensions, loaded)
        texts = _texts(items, loaded)
        try:
            future = loaded.submit(texts)
            break
        except ModelUnloaded:
            if attempt == MAX_RESOLVE_ATTEMPTS - 1:
                raise
    try:
        encoded = await asyncio.wrap_future(future)
    except InputTooLong as exc:
        raise InvalidInput(
            f"input(s) {exc.indexes[:20]} are longer than the {exc.limit} tokens model "
            f"{loaded.model_id!r} takes; shorten or split them",
            code="input_too_long",
        ) from exc
    vectors = _shorten(encoded.embeddings, request.dimensions)
    tokens = sum(encoded.tokens)
    return {
        "object": "list",
        "data": [
            {
                "object": "embedding",
                "index": index,
                "embedding": _encode_vector(vector, request.encoding_format),
            }
            for index, vector in enumerate(vectors)
        ],
        "model": loaded.model_id,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }
