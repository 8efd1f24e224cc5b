"""The official ``openai`` SDK against a live server: embeddings, dimensions, token ids,
usage, models and errors in OpenAI's envelope."""

from __future__ import annotations

import numpy as np
import openai
import pytest
from sentence_transformers import SentenceTransformer

from live_server import LiveServer

from .conftest import BUNDLED

TEXTS = ["a waterproof backpack for hiking", "red tent"]


def _sdk(server: LiveServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server.url}/v1", api_key="unused", max_retries=0)


def test_sdk_embeddings_equal_the_models_own_with_real_token_counts(
    live_server: LiveServer,
    direct_models: dict[str, SentenceTransformer],
) -> None:
    model = direct_models[BUNDLED]
    with _sdk(live_server) as sdk:
        floats = sdk.embeddings.create(input=TEXTS, model="blue", encoding_format="float")
        default = sdk.embeddings.create(input=TEXTS, model=BUNDLED)  # the SDK asks base64

    expected = model.encode(TEXTS)
    for response in (floats, default):
        assert response.model == BUNDLED
        served = np.array([item.embedding for item in response.data])
        np.testing.assert_allclose(served, expected, atol=1e-5)
    tokens = sum(len(ids) for ids in model.tokenizer(TEXTS)["input_ids"])
    assert floats.usage.prompt_tokens == floats.usage.total_tokens == tokens


def test_sdk_dimensions_truncate_and_renormalize_and_too_many_is_422(
    live_server: LiveServer,
    direct_models: dict[str, SentenceTransformer],
) -> None:
    with _sdk(live_server) as sdk:
        response = sdk.embeddings.create(input=TEXTS, model="blue", dimensions=64)
        with pytest.raises(openai.UnprocessableEntityError) as too_many:
            sdk.embeddings.create(input=TEXTS, dimensions=385, model="blue")

    served = np.array([item.embedding for item in response.data])
    full = direct_models[BUNDLED].encode(TEXTS)[:, :64]
    np.testing.assert_allclose(
        served, full / np.linalg.norm(full, axis=1, keepdims=True), atol=1e-5
    )
    assert too_many.value.code == "dimensions_too_large"
    assert too_many.value.param == "dimensions"
    assert "384" in too_many.value.message


def test_sdk_token_id_inputs_embed_like_their_text(
    live_server: LiveServer,
    direct_models: dict[str, SentenceTransformer],
) -> None:
    tokenizer = direct_models[BUNDLED].tokenizer
    ids = [tokenizer(text, add_special_tokens=False)["input_ids"] for text in TEXTS]
    with _sdk(live_server) as sdk:
        one = sdk.embeddings.create(input=ids[0], model="blue")
        many = sdk.embeddings.create(input=ids, model="blue")
        with pytest.raises(openai.UnprocessableEntityError) as unknown:
            sdk.embeddings.create(input=[[10**6]], model="blue")

    expected = direct_models[BUNDLED].encode(TEXTS)
    np.testing.assert_allclose(one.data[0].embedding, expected[0], atol=1e-5)
    np.testing.assert_allclose([item.embedding for item in many.data], expected, atol=1e-5)
    assert one.usage.total_tokens == len(ids[0]) + 2  # [CLS] and [SEP]
    assert unknown.value.code == "invalid_token_ids"


def test_sdk_lists_the_registered_models_with_blue(live_server: LiveServer) -> None:
    with _sdk(live_server) as sdk:
        listed = {model.id: model for model in sdk.models.list()}
        blue = sdk.models.retrieve("blue")
        bundled = sdk.models.retrieve(BUNDLED)
        with pytest.raises(openai.NotFoundError) as missing:
            sdk.models.retrieve("no-such-model")

    assert set(listed) == {"blue", BUNDLED}
    assert blue.model_extra is not None and blue.model_extra["root"] == BUNDLED
    assert bundled.object == "model" and bundled.owned_by == "embedtune"
    assert bundled.model_extra is not None and bundled.model_extra["blue"] is True
    assert missing.value.code == "model_not_found"
    assert "no-such-model" in missing.value.message


def test_sdk_errors_carry_message_type_param_and_code(live_server: LiveServer) -> None:
    with _sdk(live_server) as sdk:
        with pytest.raises(openai.UnprocessableEntityError) as empty:
            sdk.embeddings.create(input=["ok", "  "], model="blue")
        with pytest.raises(openai.NotFoundError) as unknown:
            sdk.embeddings.create(input="x", model="nope")
        with pytest.raises(openai.UnprocessableEntityError) as invalid:
            sdk.embeddings.create(input="x", model="blue", extra_body={"encoding_format": "hex"})

    assert empty.value.code == "empty_input"
    assert empty.value.type == "invalid_request_error"
    assert empty.value.param == "input"
    assert "[1]" in empty.value.message
    assert unknown.value.code == "model_not_found"
    assert invalid.value.code == "validation_error"
    assert invalid.value.param == "encoding_format"
