"""The saved model's card: generated for this run, not the base model's card copied over."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from sentence_transformers import SentenceTransformer
from sentence_transformers.sentence_transformer.model_card import SentenceTransformerModelCardData

from embedtune.training.evaluation import METRIC_NAMES


def save_with_card(
    model: SentenceTransformer,
    directory: Path,
    *,
    task_id: str,
    base_model_id: str,
    recipe: dict[str, Any],
    metrics: dict[str, Any],
) -> None:
    """Save ``model`` to ``directory`` with a model card naming the task, the base model,
    the number of pairs, the recipe and the held-out metrics before and after."""
    card = SentenceTransformerModelCardData(
        model_name=f"{base_model_id} fine-tuned by embedtune task {task_id}",
        model_id=None,
        tags=["embedtune", f"embedtune-task:{task_id}"],
        local_files_only=True,
        generate_widget_examples=False,
    )
    # Set directly: the card's own setter would look the base model up on the Hub.
    card.base_model = base_model_id
    model.model_card_data = card
    card.register_model(model)
    model.save(str(directory), model_name=card.model_name, create_model_card=False)
    (directory / "README.md").write_text(_card_text(card, task_id, base_model_id, recipe, metrics))


def _card_text(
    card: SentenceTransformerModelCardData,
    task_id: str,
    base_model_id: str,
    recipe: dict[str, Any],
    metrics: dict[str, Any],
) -> str:
    before, after = metrics["before"], metrics["after"]
    rows = "\n".join(
        f"| {name} | {before[name]:.4f} | {after[name]:.4f} | {after[name] - before[name]:+.4f} |"
        for name in METRIC_NAMES
    )
    return f"""---
{card.to_yaml()}
---

# {card.model_name}

A Sentence-Transformers model fine-tuned from `{base_model_id}` by embedtune task
`{task_id}` on {metrics["train_examples"]} query → document pairs; held-out retrieval was
scored on {metrics["eval_examples"]} examples ({metrics.get("eval_source", "held out")}).

## Held-out retrieval

| metric | base | fine-tuned | change |
|---|---|---|---|
{rows}

## Recipe

```json
{json.dumps(recipe, indent=2, sort_keys=True)}
```

## Usage

```python
from sentence_transformers import SentenceTransformer

model = SentenceTransformer("path/to/this/model")
embeddings = model.encode(["a query", "a document"])
```
"""
