"""The reaper: recovers tasks whose worker died and re-sends messages that were lost.

It runs in the API process and in every worker; all its moves are guarded updates, so
many reapers at once do each recovery exactly once.
"""

from __future__ import annotations

import logging

from embedtune.core.config import Settings
from embedtune.core.db import new_session
from embedtune.core.periodic import PeriodicLoop
from embedtune.core.queue import Dispatcher
from embedtune.fine_tuning import service

logger = logging.getLogger(__name__)


def reap_once(settings: Settings, dispatcher: Dispatcher) -> tuple[int, int]:
    """One pass; returns (tasks recovered, messages re-sent)."""
    with new_session(writer=True) as session:
        recovered = service.recover_stale(
            session, settings.heartbeat_timeout, settings.max_attempts, dispatcher
        )
    with new_session(writer=True) as session:
        resent = service.redispatch_stranded(session, settings.dispatch_timeout, dispatcher)
    if recovered or resent:
        logger.info("reaper recovered %d task(s) and re-sent %d message(s)", recovered, resent)
    return recovered, resent


class Reaper(PeriodicLoop):
    """Runs ``reap_once`` every ``reaper_interval`` seconds until stopped."""

    def __init__(self, settings: Settings, dispatcher: Dispatcher) -> None:
        super().__init__(
            "embedtune-reaper", settings.reaper_interval, lambda: reap_once(settings, dispatcher)
        )
