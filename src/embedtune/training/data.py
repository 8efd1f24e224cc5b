"""Loading a training batch and splitting it into train and held-out examples."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

#: Share of the examples held out for evaluation, and the bounds on their number. (Holding
#: out 5% past 100 examples scored lower on real text: benchmarks/quality.py.)
EVAL_FRACTION = 0.1
MIN_EVAL_EXAMPLES = 1
MAX_EVAL_EXAMPLES = 2_000


@dataclass(frozen=True)
class Example:
    """One training pair, with an optional hard negative."""

    query: str
    positive: str
    negative: str | None = None

    @property
    def key(self) -> str:
        """A stable content hash of the example (SHA-256 hex), the same in every process."""
        payload = json.dumps([self.query, self.positive, self.negative], ensure_ascii=False)
        return hashlib.sha256(payload.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class Split:
    """The train and held-out parts of a batch."""

    train: list[Example]
    eval: list[Example]


def load_examples(path: Path) -> list[Example]:
    """Read a JSONL batch of ``{"query", "positive", "negative"?}`` objects.

    The batch was validated on upload, so this only skips blank lines. Raises ``OSError``
    when the file cannot be read and ``ValueError``/``KeyError`` on a malformed line.
    """
    examples = []
    with path.open(encoding="utf-8") as lines:
        for line in lines:
            if not line.strip():
                continue
            row = json.loads(line)
            examples.append(Example(row["query"], row["positive"], row.get("negative") or None))
    return examples


def eval_size(num_examples: int) -> int:
    """How many of ``num_examples`` are held out: 10%, at least 1, at most 2,000."""
    wanted = round(num_examples * EVAL_FRACTION)
    return min(max(wanted, MIN_EVAL_EXAMPLES), MAX_EVAL_EXAMPLES, num_examples)


def split_examples(examples: list[Example]) -> Split:
    """Split deterministically: the examples with the smallest content hashes are held out.

    Ranking by a SHA-256 of the content (not Python's salted ``hash()``) gives the same split
    in every process and for any order of the input. Identical examples share a hash and so
    always land on the same side, which keeps duplicates from leaking into the held-out set.
    The order of the input is kept within each side.
    """
    keys = [example.key for example in examples]
    unique = sorted(set(keys))
    held_out = set(unique[: eval_size(len(unique))])
    train = [ex for ex, key in zip(examples, keys, strict=True) if key not in held_out]
    evaluation = [ex for ex, key in zip(examples, keys, strict=True) if key in held_out]
    return Split(train=train, eval=evaluation)
