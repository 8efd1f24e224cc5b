"""Wire models: the OpenAI-compatible embeddings API and the deployments API. The
``deployment`` object of a fine-tuning task and its options are the task's own wire form
(:mod:`embedtune.fine_tuning.schemas`)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic_core import PydanticCustomError

#: The most texts (or token arrays) one request may embed: the OpenAI API's own limit.
MAX_INPUTS = 2048
#: The most token ids in one input: the OpenAI API's limit of 8,192 tokens per input.
MAX_INPUT_TOKENS = 8192
#: The longest text: 8 characters for each of those tokens. Longer than any model here
#: takes (texts over the model's own token limit are refused with ``input_too_long``).
MAX_TEXT_CHARS = 8 * MAX_INPUT_TOKENS
BLUE_ALIAS = "blue"


Text = Annotated[str, Field(max_length=MAX_TEXT_CHARS)]
TokenIds = Annotated[
    list[Annotated[int, Field(ge=0, le=2**31 - 1)]], Field(max_length=MAX_INPUT_TOKENS)
]


def _bounded(item: Any, where: str) -> None:
    """Raises a readable validation error for a text or token array over its limit, and for
    a text that is not valid Unicode."""
    if isinstance(item, str):
        _valid_unicode(item, where)
    if isinstance(item, str) and len(item) > MAX_TEXT_CHARS:
        raise PydanticCustomError(
            "text_too_long",
            "{where} holds {length} characters; at most {limit} are allowed",
            {"where": where, "length": len(item), "limit": MAX_TEXT_CHARS},
        )
    if isinstance(item, list) and len(item) > MAX_INPUT_TOKENS:
        raise PydanticCustomError(
            "too_many_tokens",
            "{where} holds {length} token ids; at most {limit} are allowed",
            {"where": where, "length": len(item), "limit": MAX_INPUT_TOKENS},
        )


def _valid_unicode(text: str, where: str) -> None:
    """Raises ValueError on a lone surrogate, which no tokenizer can take."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValueError(
            f"{where} is not valid Unicode (a lone surrogate at character {exc.start})"
        ) from exc


class EmbeddingsRequest(BaseModel):
    """``POST /v1/embeddings``. ``model`` is a model id, or ``blue`` / absent for the live
    model; ``user`` is accepted and ignored."""

    model_config = ConfigDict(extra="forbid")

    input: (
        Text
        | Annotated[list[Text], Field(max_length=MAX_INPUTS)]
        | TokenIds
        | Annotated[list[TokenIds], Field(max_length=MAX_INPUTS)]
    ) = Field(
        description="A text, a list of up to 2,048 texts (none empty), or token ids of the "
        "model's own tokenizer: one list of ids or a list of up to 2,048 such lists. A text "
        f"holds at most {MAX_TEXT_CHARS:,} characters, a list of ids at most "
        f"{MAX_INPUT_TOKENS:,} ids."
    )
    model: str | None = Field(default=None, max_length=255)
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: int | None = Field(
        default=None,
        ge=1,
        le=65536,
        description="Keep the first N dimensions of each embedding (renormalized); "
        "at most the model's size.",
    )
    user: str | None = Field(default=None, max_length=1024)

    @field_validator("input", mode="before")
    @classmethod
    def _within_limits(cls, value: Any) -> Any:
        # Before the union is tried, so an input over a limit (or with a lone surrogate,
        # which the union's string types refuse as unparsable) gets one clear error rather
        # than one per shape the input could have taken.
        if not isinstance(value, list) or all(isinstance(item, int) for item in value):
            _bounded(value, "input")
            return value
        if len(value) > MAX_INPUTS:
            raise PydanticCustomError(
                "too_many_inputs",
                "input holds {count} items; at most {limit} are allowed",
                {"count": len(value), "limit": MAX_INPUTS},
            )
        for index, item in enumerate(value):
            _bounded(item, f"input[{index}]")
        return value


class Embedding(BaseModel):
    object: Literal["embedding"] = "embedding"
    index: int
    embedding: list[float] | str = Field(
        description="floats, or with encoding_format base64 the little-endian float32 bytes"
    )


class Usage(BaseModel):
    prompt_tokens: int
    total_tokens: int


class EmbeddingsResponse(BaseModel):
    object: Literal["list"] = "list"
    data: list[Embedding]
    model: str = Field(description="The model that embedded every text of the request.")
    usage: Usage


class BlueOut(BaseModel):
    model_id: str
    since: datetime


class BluePeriod(BaseModel):
    model_id: str
    since: datetime
    until: datetime | None


class ModelServing(BaseModel):
    """How a model is (or would be) served by this process."""

    model_id: str
    loaded: bool = Field(description="Whether it is in this process's memory")
    backend: Literal["torch", "onnx", "openvino"] = Field(
        description="The engine serving it (when loaded) or meant to serve it"
    )
    variant: str | None = Field(description="The exported file served; null for torch")
    export_status: Literal["pending", "running", "ready", "failed", "not_needed"]
    export_detail: str = Field(description="How the export went")
    detail: str = Field(description="Why this engine serves, fallbacks included")
    quality: dict[str, Any] | None = Field(
        description="The quality check's figures: torch's MRR@10 and, per exported variant, "
        "mean/min cosine with torch and MRR@10"
    )


class DeploymentsOut(BaseModel):
    blue: BlueOut | None = Field(description="The live model; null until one is deployed.")
    history: list[BluePeriod] = Field(description="Previous blue models, the latest first.")
    loaded: list[str] = Field(description="Models in this process's memory.")
    models: list[ModelServing] = Field(
        default_factory=list,
        description="Models loaded here or exported: engine, export status and quality.",
    )


class BlueUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model_id: str = Field(min_length=1, max_length=255)


class OpenAIModel(BaseModel):
    """An OpenAI model object, with embedtune's own fields after OpenAI's four."""

    id: str
    object: Literal["model"] = "model"
    created: int = Field(description="Unix time of the registration (of the switch for blue)")
    owned_by: str
    name: str
    #: For ``blue``: the model it stands for.
    root: str | None = None
    parent: str | None = Field(default=None, description="The base model it was tuned from")
    blue: bool = Field(description="Whether this is the live model")


class OpenAIModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[OpenAIModel]


class OpenAIErrorBody(BaseModel):
    message: str
    type: str
    param: str | None
    code: str


class OpenAIError(BaseModel):
    """Errors on ``/v1/*``: OpenAI's envelope."""

    error: OpenAIErrorBody
