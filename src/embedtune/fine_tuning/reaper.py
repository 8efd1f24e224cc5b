"""The reaper: recovers tasks whose worker died and re-sends messages that were lost.

It runs in the API process and in every worker; all its moves are guarded updates, so
many reapers at once do each recovery exactly once.
"""

from __future__ import annotations

import logging
import threading

from embedtune.config import Settings
from embedtune.db import new_session
from embedtune.fine_tuning import service
from embedtune.queue import Dispatcher

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


class Reaper:
    def __init__(self, settings: Settings, dispatcher: Dispatcher) -> None:
        self._settings = settings
        self._dispatcher = dispatcher
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="embedtune-reaper", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(self._settings.reaper_interval):
            try:
                reap_once(self._settings, self._dispatcher)
            except Exception:
                logger.exception("reaper pass failed")
