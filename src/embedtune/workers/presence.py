"""A worker process tells the others it is alive: a row in ``worker_process`` that it beats,
with the tasks it is running, and removes when it stops."""

from __future__ import annotations

import logging
import os
import socket
import threading
from datetime import timedelta

from embedtune.core.config import Settings
from embedtune.core.db import new_session, transaction, utcnow
from embedtune.workers import repository

logger = logging.getLogger(__name__)

#: The tasks the trainings of this process are running (a process-wide fact).
_running: set[str] = set()
_running_lock = threading.Lock()
_changed = threading.Event()


def process_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def task_started(task_id: str) -> None:
    with _running_lock:
        _running.add(task_id)
    _changed.set()


def task_finished(task_id: str) -> None:
    with _running_lock:
        _running.discard(task_id)
    _changed.set()


class Presence:
    def __init__(self, settings: Settings, slots: int) -> None:
        self._settings = settings
        self._slots = slots
        self._id = process_id()
        self._started_at = utcnow()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="embedtune-presence", daemon=True)

    def start(self) -> None:
        self._beat()
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        _changed.set()
        self._thread.join()
        try:
            with new_session(writer=True) as session, transaction(session):
                repository.remove(session, self._id)
        except Exception:
            logger.exception("could not remove worker %s from the registry", self._id)

    def _beat(self) -> None:
        with _running_lock:
            running = sorted(_running)
        now = utcnow()
        with new_session(writer=True) as session, transaction(session):
            repository.upsert(
                session,
                {
                    "id": self._id,
                    "host": socket.gethostname(),
                    "pid": os.getpid(),
                    "queue": self._settings.queue_name,
                    "slots": self._slots,
                    "current_task_ids": running,
                    "started_at": self._started_at,
                    "heartbeat_at": now,
                },
            )
            # Rows of processes that died without removing themselves.
            repository.remove_stale(
                session, now - timedelta(seconds=10 * self._settings.heartbeat_timeout)
            )

    def _run(self) -> None:
        while not self._stop.is_set():
            _changed.wait(self._settings.heartbeat_interval)
            _changed.clear()
            if self._stop.is_set():
                return
            try:
                self._beat()
            except Exception:
                logger.exception("worker heartbeat failed")
