"""What a value from a client must be before the database stores it: text that every
database can hold (no NUL, no unpaired surrogate), and JSON objects of bounded nesting
with finite numbers, so whatever is stored can be read back and answered."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Annotated, Any

from pydantic import AfterValidator

#: Nesting levels of a stored JSON value: ``{}`` is 1, ``{"a": []}`` is 2.
MAX_JSON_DEPTH = 32


def text_problem(text: str) -> str | None:
    """Why ``text`` cannot be stored, or None when it can."""
    if "\x00" in text:
        return "must not contain NUL characters"
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            return "must be valid Unicode (no unpaired surrogates)"
    return None


def json_problem(value: Any, max_depth: int = MAX_JSON_DEPTH) -> str | None:
    """Why the JSON ``value`` cannot be stored and answered back, or None when it can.

    Walks without recursion, so a value nested beyond Python's recursion limit is judged too.
    """
    pending: list[tuple[Any, int]] = [(value, 1)]
    while pending:
        item, depth = pending.pop()
        if isinstance(item, Mapping | list | tuple):
            if depth > max_depth:
                return f"exceeds the maximum nesting depth of {max_depth}"
            if isinstance(item, Mapping):
                for key in item:
                    if isinstance(key, str) and (problem := text_problem(key)) is not None:
                        return f"keys {problem}"
            children: Iterable[Any] = item.values() if isinstance(item, Mapping) else item
            pending.extend((child, depth + 1) for child in children)
        elif isinstance(item, str):
            if (problem := text_problem(item)) is not None:
                return f"strings {problem}"
        elif isinstance(item, float) and not math.isfinite(item):
            return "numbers must be finite"
    return None


def _storable_object(value: dict[str, Any]) -> dict[str, Any]:
    if (problem := json_problem(value)) is not None:
        raise ValueError(problem)
    return value


#: A JSON object the API stores and answers back (task metadata, …).
StoredObject = Annotated[dict[str, Any], AfterValidator(_storable_object)]


def _storable_text(value: str) -> str:
    if (problem := text_problem(value)) is not None:
        raise ValueError(problem)
    return value


#: Text checked where it is parsed, so the error names its field (the database layer
#: checks every other text parameter too, see ``embedtune.core.db``).
StoredText = Annotated[str, AfterValidator(_storable_text)]
