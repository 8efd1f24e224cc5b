"""A synthetic retrieval domain for tests and benchmarks, made so the base model is weak on it.

An outdoor-gear catalog whose shoppers use a made-up trade jargon: a query says "vesk"
where the catalog says "backpack" and "glim" where it says "waterproof". The base model
only matches the plain words (colour, activity) and so ranks products that share them at
random; fine-tuning learns the jargon from the training pairs and carries it over to unseen
combinations in the held-out ones.
"""

from __future__ import annotations

import itertools
import json
import random
from pathlib import Path

from embedtune.training.data import Example

#: (catalog word, jargon word) pairs.
CATEGORIES = (
    ("backpack", "vesk"),
    ("jacket", "trond"),
    ("tent", "pulvik"),
    ("pair of boots", "mardel"),
    ("sleeping bag", "quoven"),
    ("water bottle", "zibra"),
    ("headlamp", "lusk"),
    ("pair of gloves", "fennox"),
    ("camping stove", "brask"),
    ("set of trekking poles", "olvant"),
    ("hammock", "dravel"),
    ("pair of sunglasses", "hobrin"),
)
FEATURES = (
    ("waterproof", "glim"),
    ("ultralight", "fesk"),
    ("insulated", "worrow"),
    ("reflective", "tanz"),
    ("foldable", "krell"),
    ("heavy-duty", "bormath"),
    ("breathable", "yult"),
    ("solar-powered", "pexa"),
)
COLOURS = ("red", "blue", "green", "black", "orange", "grey", "yellow", "purple")
ACTIVITIES = (
    "hiking",
    "climbing",
    "camping",
    "cycling",
    "skiing",
    "fishing",
    "running",
    "kayaking",
)

_QUERY_TEMPLATES = (
    "{colour} {feature} {category} for {activity}",
    "looking for a {feature} {category} in {colour}, mostly for {activity}",
    "{category} {feature} {colour} {activity}",
    "need {colour} {category}, {feature}, good for {activity}",
)
_DOC_TEMPLATES = (
    "A {colour} {feature} {category} built for {activity}.",
    "This {feature} {category} comes in {colour} and is made for {activity} trips.",
    "{activity} gear: {feature} {category}, colour {colour}.",
)

Product = tuple[int, int, str, str]


def synthetic_examples(count: int, *, seed: int = 0, negatives: float = 0.0) -> list[Example]:
    """Return ``count`` distinct (query, positive) pairs, a share ``negatives`` with a hard one.

    The hard negative is the same product with another feature. Deterministic for a given
    ``seed``. Raises ``ValueError`` when ``count`` exceeds the number of distinct products
    (6,144) or ``negatives`` is outside [0, 1].
    """
    products: list[Product] = list(
        itertools.product(range(len(CATEGORIES)), range(len(FEATURES)), COLOURS, ACTIVITIES)
    )
    if not 0 <= count <= len(products):
        raise ValueError(f"count must be between 0 and {len(products)}, got {count}")
    if not 0.0 <= negatives <= 1.0:
        raise ValueError(f"negatives must be a share between 0 and 1, got {negatives}")
    rng = random.Random(seed)
    examples = []
    for product in rng.sample(products, count):
        negative = None
        if rng.random() < negatives:
            category, feature, colour, activity = product
            other = rng.choice([f for f in range(len(FEATURES)) if f != feature])
            negative = _describe((category, other, colour, activity), rng)
        examples.append(Example(_ask(product, rng), _describe(product, rng), negative))
    return examples


def write_jsonl(examples: list[Example], path: Path) -> None:
    """Write ``examples`` as a batch file (one JSON object a line)."""
    with path.open("w", encoding="utf-8") as out:
        for ex in examples:
            row = {"query": ex.query, "positive": ex.positive, "negative": ex.negative}
            out.write(json.dumps(row) + "\n")


def _ask(product: Product, rng: random.Random) -> str:
    category, feature, colour, activity = product
    return rng.choice(_QUERY_TEMPLATES).format(
        category=CATEGORIES[category][1],
        feature=FEATURES[feature][1],
        colour=colour,
        activity=activity,
    )


def _describe(product: Product, rng: random.Random) -> str:
    category, feature, colour, activity = product
    text = rng.choice(_DOC_TEMPLATES).format(
        category=CATEGORIES[category][0],
        feature=FEATURES[feature][0],
        colour=colour,
        activity=activity,
    )
    return text[0].upper() + text[1:]
