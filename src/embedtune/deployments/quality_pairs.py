"""A small fixed set of real query → document pairs, for checking an export of a model that
has no held-out pairs of its own (the bundled model, a model registered from a path).

Built from the docstrings of Python's standard library, which every machine has: the summary
line is the query, the rest of the docstring the document. Deterministic for one Python.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Collection
from functools import cache

from embedtune.training.data import Example

_MODULES = (
    "argparse", "base64", "bisect", "calendar", "collections", "configparser", "copy", "csv",
    "datetime", "decimal", "difflib", "email.utils", "fnmatch", "fractions", "functools",
    "glob", "gzip", "hashlib", "heapq", "html", "http.client", "inspect", "io", "ipaddress",
    "itertools", "json", "logging", "mimetypes", "operator", "os", "pathlib", "pickle",
    "platform", "pprint", "queue", "random", "re", "secrets", "shlex", "shutil", "smtplib",
    "socket", "sqlite3", "statistics", "string", "subprocess", "tarfile", "tempfile",
    "textwrap", "threading", "typing", "unittest", "urllib.parse", "uuid", "warnings",
    "zipfile",
)  # fmt: skip
_MIN_QUERY_CHARS = 15
_MIN_DOCUMENT_CHARS = 60
_MAX_DOCUMENT_CHARS = 300
#: More pairs than the modules give: all of them.
_ALL = 1_000_000


def _pair(doc: object) -> Example | None:
    if not isinstance(doc, str) or not doc:
        return None
    summary, _, rest = inspect.cleandoc(doc).partition("\n")
    body = " ".join(rest.split())[:_MAX_DOCUMENT_CHARS]
    if len(summary) < _MIN_QUERY_CHARS or len(body) < _MIN_DOCUMENT_CHARS:
        return None
    return Example(query=summary.strip(), positive=body)


@cache
def standard_library_pairs(limit: int = 200) -> tuple[Example, ...]:
    """Up to ``limit`` pairs, distinct in query and document, in a fixed order."""
    pairs: dict[str, Example] = {}
    documents: set[str] = set()
    for module_name in _MODULES:
        module = importlib.import_module(module_name)
        for name in sorted(vars(module)):
            if name.startswith("_"):
                continue
            pair = _pair(getattr(getattr(module, name), "__doc__", None))
            if pair is None or pair.query in pairs or pair.positive in documents:
                continue
            pairs[pair.query] = pair
            documents.add(pair.positive)
    ordered = sorted(pairs.values(), key=lambda pair: pair.query)
    step = max(len(ordered) // limit, 1)
    return tuple(ordered[::step][:limit])


def calibration_texts(exclude: Collection[str], count: int) -> list[str]:
    """Up to ``count`` texts (a query and its document in turn) of the pairs above that
    share no text with ``exclude``: what calibrates a quantization, apart from what checks it."""
    unused = [
        pair
        for pair in standard_library_pairs(_ALL)
        if pair.query not in exclude and pair.positive not in exclude
    ]
    wanted = max(count // 2, 1)
    step = max(len(unused) // wanted, 1)
    return [text for pair in unused[::step][:wanted] for text in (pair.query, pair.positive)]
