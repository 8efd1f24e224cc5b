"""``--json``, ``--fields`` and ``--jq`` of the ``embedtune`` command, given before or
after the subcommand: picking parts of a JSON answer.

``--fields id,status`` keeps those keys of an object, or of every object of a list.
``--jq`` takes a path in jq's syntax, without jq's functions: ``.id``, ``.data[0].index``,
``.[].id``, ``.metrics.after["mrr@10"]``. As with ``gh --jq``, strings print raw and every
value a ``[]`` yields prints on its own line.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

_STEP = re.compile(r'\.(?P<key>[A-Za-z_][\w-]*)|\[(?P<index>-?\d+)?\]|\["(?P<quoted>[^"]*)"\]|\.')


#: Options of the root command also accepted after the subcommand (``task list --jq .``).
HOISTED = ("--fields", "--jq")
#: Where the root command keeps the ``Output`` for its subcommands (click's ``ctx.meta``).
OUTPUT_KEY = "embedtune.output"


class JsonPathError(ValueError):
    """A ``--jq`` expression this module does not understand."""


@dataclass(frozen=True)
class Output:
    """The root's ``--fields`` and ``--jq``, parsed."""

    fields: list[str] | None = None
    path: list[str | int | None] | None = None

    @classmethod
    def parse(cls, fields: str | None, jq: str | None) -> Output:
        """Raises ValueError (``JsonPathError`` for the path) on a bad option."""
        return cls(
            None if fields is None else parse_fields(fields),
            None if jq is None else parse_path(jq),
        )


def hoist(args: list[str]) -> list[str]:
    """Moves ``--fields X`` and ``--jq X`` given after the subcommand to the front."""
    front: list[str] = []
    rest: list[str] = []
    position = 0
    while position < len(args):
        arg = args[position]
        if arg == "--":
            rest.extend(args[position:])
            break
        if arg in HOISTED and position + 1 < len(args):
            front += args[position : position + 2]
            position += 2
            continue
        (front if arg.startswith(tuple(f"{o}=" for o in HOISTED)) else rest).append(arg)
        position += 1
    return front + rest


def json_defaults(group: Any) -> dict[str, Any]:
    """A click ``default_map`` turning on ``--json`` in every subcommand that has it, so
    ``embedtune --json task list`` is ``embedtune task list --json``."""
    defaults: dict[str, Any] = {}
    for name, command in group.commands.items():
        if hasattr(command, "commands"):
            defaults[name] = json_defaults(command)
        elif any(param.name == "as_json" for param in command.params):
            defaults[name] = {"as_json": True}
    return defaults


def parse_fields(text: str) -> list[str]:
    """``"id, status"`` → ``["id", "status"]``; raises ValueError when none is named."""
    fields = [name.strip() for name in text.split(",") if name.strip()]
    if not fields:
        raise ValueError("name at least one field, e.g. --fields id,status")
    return fields


def select_fields(value: Any, fields: list[str]) -> Any:
    """The named keys of an object, or of each object in a list (missing keys are null)."""
    if isinstance(value, list):
        return [select_fields(item, fields) for item in value]
    if isinstance(value, dict):
        return {name: value.get(name) for name in fields}
    return value


def parse_path(expression: str) -> list[str | int | None]:
    """Steps of a jq path: a key, an index, or None for ``[]``; raises ``JsonPathError``."""
    expression = expression.strip()
    if not expression.startswith("."):
        raise JsonPathError(f"a --jq path starts with '.': {expression!r}")
    steps: list[str | int | None] = []
    position = 0
    while position < len(expression):
        match = _STEP.match(expression, position)
        if match is None or match.end() == position:
            rest = expression[position:]
            raise JsonPathError(f"cannot read --jq path {expression!r} at {rest!r}")
        position = match.end()
        if match["key"] is not None:
            steps.append(match["key"])
        elif match["quoted"] is not None:
            steps.append(match["quoted"])
        elif match.group(0).startswith("["):
            steps.append(None if match["index"] is None else int(match["index"]))
    return steps


def apply_path(value: Any, steps: list[str | int | None]) -> list[Any]:
    """Every value the path yields (jq yields null for a missing key or index)."""
    values = [value]
    for step in steps:
        following: list[Any] = []
        for current in values:
            if step is None:
                if isinstance(current, dict):
                    following.extend(current.values())
                elif isinstance(current, list):
                    following.extend(current)
                else:
                    raise JsonPathError(f"cannot iterate over {type(current).__name__}")
            elif isinstance(step, int):
                if not isinstance(current, list | type(None)):
                    raise JsonPathError(f"cannot index {type(current).__name__} with a number")
                in_range = current is not None and -len(current) <= step < len(current)
                following.append(current[step] if in_range and current is not None else None)
            else:
                if not isinstance(current, dict | type(None)):
                    raise JsonPathError(f"cannot index {type(current).__name__} with {step!r}")
                following.append(None if current is None else current.get(step))
        values = following
    return values


def render(text: str, fields: list[str] | None, path: list[str | int | None] | None) -> str:
    """The JSON answer ``text`` after ``--fields`` and ``--jq`` (either may be None)."""
    if fields is None and path is None:
        return text
    value = json.loads(text)
    if fields is not None:
        value = select_fields(value, fields)
    if path is None:
        return json.dumps(value)
    lines = apply_path(value, path)
    return "\n".join(item if isinstance(item, str) else json.dumps(item) for item in lines)
