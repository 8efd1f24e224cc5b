"""Training batches: validated whole before anything is stored, immutable afterwards."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import IO, Any

from sqlalchemy.orm import Session

from embedtune.batches import repository
from embedtune.batches.schemas import MAX_EXAMPLE_CHARS
from embedtune.batches.tables import Batch
from embedtune.core import artifacts
from embedtune.core.db import unit_of_work
from embedtune.core.errors import NotFound, Unprocessable
from embedtune.core.ids import new_id
from embedtune.core.wire import text_problem

_REQUIRED = ("query", "positive")
_ALLOWED = frozenset({"query", "positive", "negative"})


class InvalidExample(ValueError):
    pass


def normalize_example(raw: Any) -> dict[str, str]:
    """The stored form of one example; raises InvalidExample saying what is wrong."""
    if not isinstance(raw, dict):
        raise InvalidExample(f"expected a JSON object, got {type(raw).__name__}")
    unknown = sorted(set(raw) - _ALLOWED)
    if unknown:
        raise InvalidExample(f"unknown field(s) {', '.join(map(repr, unknown))}")
    example: dict[str, str] = {}
    for field in (*_REQUIRED, "negative"):
        value = raw.get(field)
        if value is None:
            if field in _REQUIRED:
                raise InvalidExample(f"{field!r} is required")
            continue
        if not isinstance(value, str):
            raise InvalidExample(f"{field!r} must be a string, got {type(value).__name__}")
        if not value.strip():
            raise InvalidExample(f"{field!r} must not be empty")
        if len(value) > MAX_EXAMPLE_CHARS:
            raise InvalidExample(f"{field!r} is longer than {MAX_EXAMPLE_CHARS} characters")
        if (problem := text_problem(value)) is not None:
            raise InvalidExample(f"{field!r} {problem}")
        example[field] = value
    return example


def parse_json(text: str | bytes) -> Any:
    """Parsed JSON; raises ValueError saying what is wrong, for every input that fails
    (nesting beyond the parser's recursion limit, integers of more than 4,300 digits)."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"invalid JSON ({exc.msg})") from exc
    except RecursionError as exc:
        raise ValueError("invalid JSON (nested too deeply)") from exc
    except ValueError as exc:
        raise ValueError(f"invalid JSON ({exc})") from exc


class _StagedBatch:
    """Validated examples written to a temporary file in the artifact store."""

    def __init__(self) -> None:
        handle, name = tempfile.mkstemp(suffix=".jsonl", dir=artifacts.upload_dir())
        self.path = Path(name)
        self.file = os.fdopen(handle, "w", encoding="utf-8")
        self.num_examples = 0

    def add(self, raw: Any) -> None:
        self.file.write(json.dumps(normalize_example(raw), ensure_ascii=False) + "\n")
        self.num_examples += 1

    def discard(self) -> None:
        self.file.close()
        self.path.unlink(missing_ok=True)


def _parse_jsonl(lines: Iterable[bytes], staged: _StagedBatch) -> None:
    for number, line in enumerate(lines, start=1):
        try:
            text = line.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InvalidExample(f"line {number}: not UTF-8 ({exc.reason})") from exc
        if not text.strip():
            continue
        try:
            raw = parse_json(text)
        except ValueError as exc:
            raise InvalidExample(f"line {number}: {exc}") from exc
        try:
            staged.add(raw)
        except InvalidExample as exc:
            raise InvalidExample(f"line {number}: {exc}") from exc


def _parse_list(examples: list[Any], staged: _StagedBatch) -> None:
    for index, raw in enumerate(examples):
        try:
            staged.add(raw)
        except InvalidExample as exc:
            raise InvalidExample(f"examples[{index}]: {exc}") from exc


class EmptyBatch(InvalidExample):
    """The examples to store were none."""


def _stage(name: str, fill: Any, **provenance: Any) -> Batch:
    """Validates and writes the examples to the artifact store; the row is not added yet.

    Raises InvalidExample (EmptyBatch when there are none)."""
    staged = _StagedBatch()
    try:
        fill(staged)
        if staged.num_examples == 0:
            raise EmptyBatch("the batch has no examples")
        staged.file.close()
        batch_id = new_id("batch-")
        size = staged.path.stat().st_size
        path = artifacts.store_batch(staged.path, batch_id)
    except BaseException:
        staged.discard()
        raise
    return Batch(
        id=batch_id,
        name=name,
        path=path,
        num_examples=staged.num_examples,
        size_bytes=size,
        **provenance,
    )


def _invalid(exc: InvalidExample) -> Unprocessable:
    return Unprocessable(str(exc), code="invalid_batch")


def _store(session: Session, name: str, fill: Any) -> Batch:
    try:
        batch = _stage(name, fill)
    except InvalidExample as exc:
        raise _invalid(exc) from exc
    return _insert(session, batch)


def _insert(session: Session, batch: Batch) -> Batch:
    """Adds the staged batch to the caller's unit of work; its file goes if that fails."""
    try:
        repository.insert(session, batch)
    except BaseException:
        artifacts.remove_batch(batch.path)
        raise
    return batch


def store_generated(
    session: Session, name: str, examples: Iterable[dict[str, str]], **provenance: Any
) -> Batch:
    """Stores examples the server made (``source``, ``release_id``, … in ``provenance``) in
    the caller's transaction. Raises EmptyBatch when there are none."""

    def fill(staged: _StagedBatch) -> None:
        for example in examples:
            staged.add(example)

    try:
        batch = _stage(name, fill, **provenance)
    except EmptyBatch:
        raise
    except InvalidExample as exc:
        raise _invalid(exc) from exc
    return _insert(session, batch)


def create_from_jsonl(session: Session, name: str, file: IO[bytes]) -> Batch:
    """Stores a JSONL upload; raises Unprocessable ``invalid_batch`` naming the bad line."""
    return _store(session, name, lambda staged: _parse_jsonl(file, staged))


def create_from_examples(session: Session, name: str | None, examples: list[Any]) -> Batch:
    """Stores a JSON list; raises Unprocessable ``invalid_batch`` naming the bad example."""
    return _store(session, name or "batch", lambda staged: _parse_list(examples, staged))


@unit_of_work
def get_batch(session: Session, batch_id: str) -> Batch:
    """Raises NotFound (``batch_not_found``)."""
    batch = repository.get(session, batch_id)
    if batch is None:
        raise batch_not_found(batch_id)
    return batch


def batch_not_found(batch_id: str) -> NotFound:
    return NotFound(f"batch {batch_id!r} not found", code="batch_not_found")


@unit_of_work
def list_batches(session: Session, offset: int, limit: int) -> tuple[list[Batch], int]:
    return repository.list_newest_first(session, offset, limit), repository.count(session)
