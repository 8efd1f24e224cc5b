"""The reaper: recovers tasks whose worker died and re-sends messages that were lost.

It runs in the API process and in every worker; all its moves are guarded updates, so
many reapers at once do each recovery exactly once.
"""

from __future__ import annotations

import logging

from sqlalchemy.orm import Session

from embedtune.core.config import Settings
from embedtune.core.db import new_session, transaction
from embedtune.core.periodic import PeriodicLoop
from embedtune.core.queue import Dispatcher
from embedtune.fine_tuning import running, service

logger = logging.getLogger(__name__)


def redispatch_stranded(
    session: Session, dispatch_timeout_s: float | None, dispatcher: Dispatcher
) -> int:
    """Sends again the message of every pending task that may have lost it (see
    ``service.stranded``), each in a unit of work of its own; stops at the first send the
    broker refuses, so a broker outage costs one failed send per pass. Returns how many
    were sent."""
    with transaction(session):
        tasks = service.stranded(session, dispatch_timeout_s)
    sent = 0
    for task in tasks:
        with transaction(session):
            send = service.redispatch(session, task, dispatcher)
        if send is None:
            continue
        if not send.sent:
            break
        sent += 1
    return sent


def reap_once(settings: Settings, dispatcher: Dispatcher) -> tuple[int, int]:
    """One pass; returns (tasks recovered, messages re-sent)."""
    with new_session(writer=True) as session, transaction(session):
        recovered = running.recover_stale(
            session, settings.heartbeat_timeout, settings.max_attempts, dispatcher
        )
    with new_session(writer=True) as session:
        resent = redispatch_stranded(session, settings.dispatch_timeout, dispatcher)
    if recovered or resent:
        logger.info("reaper recovered %d task(s) and re-sent %d message(s)", recovered, resent)
    return recovered, resent


class Reaper(PeriodicLoop):
    """Runs ``reap_once`` every ``reaper_interval`` seconds until stopped."""

    def __init__(self, settings: Settings, dispatcher: Dispatcher) -> None:
        super().__init__(
            "embedtune-reaper", settings.reaper_interval, lambda: reap_once(settings, dispatcher)
        )
