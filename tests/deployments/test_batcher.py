"""The batcher: one bad text fails only its own request; texts invalid as Unicode never reach
it; groups are encoded sorted by length."""

from __future__ import annotations

import json
from concurrent.futures import Future

import numpy as np
import pytest
from fastapi.testclient import TestClient
from sentence_transformers import SentenceTransformer

from embedtune.deployments.backends import TorchEncoder, Vectors
from embedtune.deployments.inference import Encoded, LoadedModel

from .conftest import BUNDLED

LONE_SURROGATE = "\ud800"


def _batcher(model: SentenceTransformer, wait_s: float = 0.5) -> LoadedModel:
    return LoadedModel(
        BUNDLED, TorchEncoder(model), wait_s=wait_s, max_batch_texts=256, encode_batch_size=32
    )


def test_a_text_that_breaks_the_encoder_fails_only_its_own_request(
    direct_models: dict[str, SentenceTransformer],
) -> None:
    model = direct_models[BUNDLED]
    batcher = _batcher(model)
    try:
        # Submitted within the batcher's wait, so all three land in one group.
        before = batcher.submit(["red tent", "a waterproof backpack"])
        bad = batcher.submit(["fine", LONE_SURROGATE])
        after = batcher.submit(["the quick brown fox"])

        assert isinstance(bad.exception(timeout=60), Exception)
        np.testing.assert_allclose(
            before.result(timeout=60).embeddings,
            model.encode(["red tent", "a waterproof backpack"]),
            atol=1e-5,
        )
        np.testing.assert_allclose(
            after.result(timeout=60).embeddings, model.encode(["the quick brown fox"]), atol=1e-5
        )
    finally:
        batcher.close()
        batcher.join(10)


class _Recording(TorchEncoder):
    """The real encoder, remembering the order texts reached it."""

    def __init__(self, model: SentenceTransformer) -> None:
        super().__init__(model)
        self.calls: list[list[str]] = []

    def encode(self, texts: list[str], batch_size: int) -> Vectors:
        self.calls.append(list(texts))
        return super().encode(texts, batch_size)


def test_a_group_is_encoded_sorted_by_length_and_answered_in_request_order(
    direct_models: dict[str, SentenceTransformer],
) -> None:
    model = direct_models[BUNDLED]
    encoder = _Recording(model)
    batcher = LoadedModel(BUNDLED, encoder, wait_s=0.5, max_batch_texts=256, encode_batch_size=32)
    requests = [
        ["a rather long sentence about waterproof hiking backpacks and tents", "x"],
        ["medium length text here"],
        ["short one", "the longest text of them all, about sleeping bags, stoves and maps"],
    ]
    try:
        futures: list[Future[Encoded]] = [batcher.submit(texts) for texts in requests]
        results = [future.result(timeout=60) for future in futures]
    finally:
        batcher.close()
        batcher.join(10)

    assert len(encoder.calls) == 1
    sent = encoder.calls[0]
    counts = encoder.token_counts(sent)
    assert counts == sorted(counts)
    for texts, result in zip(requests, results, strict=True):
        np.testing.assert_allclose(result.embeddings, model.encode(texts), atol=1e-5)
        assert result.tokens == encoder.token_counts(texts)


@pytest.mark.parametrize(
    "body",
    [{"input": LONE_SURROGATE}, {"input": ["ok", f"bad {LONE_SURROGATE} text"]}],
    ids=["text", "list"],
)
def test_a_lone_surrogate_is_422_before_the_batcher(client: TestClient, body: object) -> None:
    # As JSON escapes (\\ud800), the way a client sends them.
    raw = json.dumps(body, ensure_ascii=True)
    response = client.post(
        "/v1/embeddings", content=raw, headers={"Content-Type": "application/json"}
    )

    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    assert "lone surrogate" in error["message"]
    assert error["param"] == "input"
