"""Validation of ``metadata["training"]``."""

from __future__ import annotations

from typing import Any

import pytest

from embedtune.training.sentence_transformers import SentenceTransformersPlugin, TrainingOptions


@pytest.mark.parametrize(
    ("training", "option"),
    [
        ({"epochs": 0}, "epochs"),
        ({"epochs": -1.5}, "epochs"),
        ({"epochs": 1000}, "epochs"),
        ({"epochs": "3"}, "epochs"),
        ({"epochs": True}, "epochs"),
        ({"learning_rate": 0}, "learning_rate"),
        ({"learning_rate": 1.5}, "learning_rate"),
        ({"learning_rate": float("nan")}, "learning_rate"),
        ({"batch_size": 0}, "batch_size"),
        ({"batch_size": 2048}, "batch_size"),
        ({"batch_size": 8.0}, "batch_size"),
        ({"max_steps": 0}, "max_steps"),
        ({"max_steps": "10"}, "max_steps"),
        ({"trials": 0}, "trials"),
        ({"trials": 21}, "trials"),
        ({"seed": -1}, "seed"),
        ({"seed": 1.5}, "seed"),
        ({"warmup": 0.1}, "warmup"),
    ],
)
def test_bad_option_is_named(training: dict[str, Any], option: str) -> None:
    with pytest.raises(ValueError, match=option):
        SentenceTransformersPlugin().validate_training_options({"training": training})


def test_training_must_be_an_object() -> None:
    with pytest.raises(ValueError, match="training"):
        SentenceTransformersPlugin().validate_training_options({"training": [1]})


@pytest.mark.parametrize(
    "metadata",
    [
        {},
        {"name": "my run", "training": None},
        {"training": {}},
        {
            "training": {
                "epochs": 2,
                "learning_rate": 1e-4,
                "batch_size": 16,
                "max_steps": 100,
                "trials": 3,
                "seed": 7,
            }
        },
    ],
)
def test_good_options_pass(metadata: dict[str, Any]) -> None:
    SentenceTransformersPlugin().validate_training_options(metadata)  # raises if refused
    options = TrainingOptions.from_metadata(metadata)
    given = metadata.get("training") or {}
    assert {name: getattr(options, name) for name in given} == given


def test_defaults_fill_in() -> None:
    options = TrainingOptions.from_metadata({"training": {"epochs": 2}})

    assert options == TrainingOptions(epochs=2.0)
