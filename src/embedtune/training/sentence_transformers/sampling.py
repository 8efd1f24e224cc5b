"""Length-aware batches without duplicate texts.

A batch is padded to its longest text, so a random batch of short and long documents costs
as much as a batch of long ones. This sampler shuffles the rows, sorts each window of
``WINDOW`` batches by length, cuts the window into batches (no text twice in one batch, as
``NoDuplicatesBatchSampler`` guarantees) and shuffles the batch order: the same rows per
epoch, far less padding, and each batch still mixes topics drawn from the whole window.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from datasets import Dataset
from sentence_transformers.base.sampler import NoDuplicatesBatchSampler

#: Batches per sorted window: large enough for tight lengths, small enough to stay random.
WINDOW = 16


class LengthGroupedBatchSampler(NoDuplicatesBatchSampler):
    """``NoDuplicatesBatchSampler`` with batches of similar length (see the module)."""

    def __init__(
        self,
        dataset: Dataset,
        batch_size: int,
        drop_last: bool,
        valid_label_columns: list[str] | None = None,
        generator: torch.Generator | None = None,
        seed: int = 0,
    ) -> None:
        super().__init__(dataset, batch_size, drop_last, valid_label_columns, generator, seed)
        columns = [self.dataset[name] for name in self.dataset.column_names]
        self._texts: list[tuple[str, ...]] = [
            tuple(map(str, row)) for row in zip(*columns, strict=True)
        ]
        self._lengths = [max(map(len, row)) for row in self._texts]

    def __iter__(self) -> Iterator[list[int]]:
        if self.generator is not None and self.seed is not None:
            self.generator.manual_seed(self.seed + self.epoch)
        order = torch.randperm(len(self._texts), generator=self.generator).tolist()
        window = self.batch_size * WINDOW
        batches: list[list[int]] = []
        deferred: list[int] = []
        for start in range(0, len(order), window):
            rows = sorted(deferred + order[start : start + window], key=self._lengths.__getitem__)
            full, deferred = self._fill(rows)
            batches.extend(full)
        while deferred:
            full, rest = self._fill(deferred, partial=not self.drop_last)
            if not full:
                break
            batches.extend(full)
            deferred = rest
        for index in torch.randperm(len(batches), generator=self.generator).tolist():
            yield batches[index]

    def _fill(self, rows: list[int], partial: bool = False) -> tuple[list[list[int]], list[int]]:
        """Full batches of ``rows`` in order; rows that would repeat a text wait for the next.

        Returns the batches and the rows left over (those of a last, partial batch among
        them, unless ``partial``: then that batch is returned too).
        """
        batches: list[list[int]] = []
        batch: list[int] = []
        seen: set[str] = set()
        left: list[int] = []
        for row in rows:
            texts = self._texts[row]
            if seen.intersection(texts):
                left.append(row)
                continue
            batch.append(row)
            seen.update(texts)
            if len(batch) == self.batch_size:
                batches.append(batch)
                batch, seen = [], set()
        if partial and batch:
            batches.append(batch)
        else:
            left.extend(batch)
        return batches, left
