"""The list shape every collection shares: ``offset``/``limit`` in, ``X-Total-Count`` out."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Query, Response

TOTAL_COUNT_HEADER = "X-Total-Count"
#: Far beyond any collection, and far below the 64-bit limits of SQL OFFSET/LIMIT.
MAX_OFFSET = 10**9


@dataclass(frozen=True)
class Page:
    offset: int
    limit: int


def _page(
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET, description="Items to skip")] = 0,
    limit: Annotated[int, Query(ge=1, le=1000, description="Items to return")] = 100,
) -> Page:
    return Page(offset=offset, limit=limit)


PageDep = Annotated[Page, Depends(_page)]


def set_total(response: Response, total: int) -> None:
    response.headers[TOTAL_COUNT_HEADER] = str(total)
