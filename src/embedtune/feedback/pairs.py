"""From search sessions to training pairs (the rules are in the README, "Search feedback").

- Each click gives a pair: the session's query → the clicked document.
- The session's hard negatives are the results shown above its last click and not clicked
  in it ("skip-above"); results below the last click are not negatives.
- A document clicked for the same query in any session is never a negative for it.
- Sessions without a click, and sessions marked irrelevant, give no pairs.
- The same pair from many sessions is one example; ``support`` counts those sessions, and
  its negative is the one skipped above it in the most of them (then the one shown highest).
"""

from __future__ import annotations

import unicodedata
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field


def normalize_query(query: str) -> str:
    """The form under which queries count as the same: NFKC, case-folded, single spaces."""
    return " ".join(unicodedata.normalize("NFKC", query).casefold().split())


@dataclass(frozen=True)
class ShownSession:
    """What one clicked session showed: results by rank (1 = first) and the clicks."""

    query_key: str
    query: str
    #: ``{rank: document_id}`` for the results at or above the last click.
    shown: dict[int, str]
    clicked: frozenset[str]


@dataclass
class Pair:
    query: str
    document_id: str
    support: int = 0
    #: Skip-above negatives: how many supporting sessions skipped each, and its best rank.
    negatives: Counter[str] = field(default_factory=Counter)
    best_rank: dict[str, int] = field(default_factory=dict)

    def hard_negative(self) -> str | None:
        if not self.negatives:
            return None
        return min(self.negatives, key=lambda doc: (-self.negatives[doc], self.best_rank[doc], doc))


def build_pairs(
    sessions: Iterable[ShownSession], clicked_for_query: dict[str, set[str]]
) -> list[Pair]:
    """One pair per (query, clicked document), in the order first seen.

    ``clicked_for_query`` holds, per query key, every document clicked for that query in
    any session (it must include the clicks of ``sessions``).
    """
    pairs: dict[tuple[str, str], Pair] = {}
    for shown in sessions:
        last_click = max(rank for rank, doc in shown.shown.items() if doc in shown.clicked)
        clicked_elsewhere = clicked_for_query.get(shown.query_key, set())
        skipped = {
            doc: rank
            for rank, doc in shown.shown.items()
            if rank < last_click and doc not in shown.clicked and doc not in clicked_elsewhere
        }
        for doc in sorted(shown.clicked):
            pair = pairs.setdefault(
                (shown.query_key, doc), Pair(query=shown.query, document_id=doc)
            )
            pair.support += 1
            for negative, rank in skipped.items():
                pair.negatives[negative] += 1
                pair.best_rank[negative] = min(rank, pair.best_rank.get(negative, rank))
    return list(pairs.values())
