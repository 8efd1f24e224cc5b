"""The sample batch shipped with the package: real pairs from Python's own documentation.

Each pair is one documented function, class or method of the standard library: its
docstring's summary line is the query, the rest of the docstring the positive. The text is
the Python documentation's (PSF licence), written by neither us nor the user, and it is the
kind of query → document retrieval the service is for, so a first task on it shows a real
change in the held-out metrics.

``sample.jsonl`` beside this module is built by ``python -m embedtune.batches.sample``
(deterministic for a given Python version; the file shipped was built with Python 3.11).
"""

from __future__ import annotations

import hashlib
import importlib
import inspect
import json
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path

SAMPLE_PATH = Path(__file__).resolve().parent / "sample.jsonl"
SAMPLE_NAME = "sample: Python standard library docstrings"
SAMPLE_SIZE = 400

#: Modules whose docstrings are prose (no generated or platform-specific ones).
MODULES = (
    "argparse", "asyncio", "base64", "bisect", "calendar", "collections", "configparser",
    "contextlib", "copy", "csv", "datetime", "decimal", "difflib", "email.message",
    "email.utils", "enum", "fnmatch", "fractions", "ftplib", "functools", "glob", "gzip",
    "hashlib", "heapq", "hmac", "html", "http.client", "http.cookies", "imaplib",
    "inspect", "ipaddress", "itertools", "json", "logging", "logging.handlers", "mailbox",
    "mimetypes", "ntpath", "os", "pathlib", "pickle", "platform", "poplib", "posixpath",
    "pprint", "queue", "random", "re", "sched", "secrets", "selectors", "shlex", "shutil",
    "smtplib", "socket", "socketserver", "ssl", "statistics", "string", "subprocess",
    "tarfile", "tempfile", "textwrap", "threading", "timeit", "tokenize", "traceback",
    "typing", "unittest", "urllib.parse", "urllib.request", "uuid", "warnings", "wave",
    "weakref", "zipfile",
)  # fmt: skip


def read_sample() -> bytes:
    """The shipped sample batch, as JSONL bytes."""
    return SAMPLE_PATH.read_bytes()


def _documented(module_name: str) -> Iterator[tuple[str, str]]:
    """(qualified name, docstring) of the public functions, classes and methods."""
    module = importlib.import_module(module_name)
    for name, member in sorted(vars(module).items()):
        if name.startswith("_") or getattr(member, "__module__", None) != module.__name__:
            continue
        if inspect.isfunction(member) or inspect.isclass(member):
            yield f"{module_name}.{name}", inspect.getdoc(member) or ""
        if inspect.isclass(member):
            for attribute, method in sorted(vars(member).items()):
                if not attribute.startswith("_") and inspect.isfunction(method):
                    yield f"{module_name}.{name}.{attribute}", inspect.getdoc(method) or ""


def _pair(doc: str) -> dict[str, str] | None:
    """The summary line and the body of a docstring, or None when either is too thin."""
    summary, _, body = doc.partition("\n\n")
    summary = " ".join(summary.split())
    body = " ".join(body.split())
    if not (20 <= len(summary) <= 160) or not (120 <= len(body) <= 1200):
        return None
    if ">>>" in body or summary.endswith(":") or "(" in summary[:1]:
        return None
    return {"query": summary, "positive": body}


def build(size: int = SAMPLE_SIZE) -> list[dict[str, str]]:
    """``size`` pairs, picked by a hash of their query (the same on every run)."""
    pairs: dict[str, dict[str, str]] = {}
    with warnings.catch_warnings():  # deprecated aliases warn when their docs are read
        warnings.simplefilter("ignore")
        for module_name in MODULES:
            for _, doc in _documented(module_name):
                pair = _pair(doc)
                if pair is not None:
                    pairs.setdefault(pair["query"], pair)
    ranked = sorted(pairs.values(), key=lambda p: hashlib.sha256(p["query"].encode()).digest())
    return ranked[:size]


if __name__ == "__main__":
    for example in build():
        sys.stdout.write(json.dumps(example, ensure_ascii=False) + "\n")
