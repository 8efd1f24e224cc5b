"""Ids in URL paths, bounded like the columns that hold them (a separate module: the
client imports the wire rules of ``embedtune.core.wire`` and must not load FastAPI)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Path

#: Task and batch ids.
ShortId = Annotated[str, Path(max_length=64)]
#: Model ids.
LongId = Annotated[str, Path(max_length=255)]
