"""Sending deliveries: from the queue workers, in slots of their own, never from a request.

Each worker process runs one :class:`Deliverer`. It claims due deliveries with a guarded
UPDATE (a lease, so two workers never send one attempt twice at once, and a worker killed
mid-send leaves it to another once the lease ends), sends each with a short timeout on a
small thread pool, and records the outcome: delivered on 2xx, given up on other 4xx (but
408 and 429), else tried again on the Standard Webhooks schedule, about 27 hours in all,
with the same ``webhook-id`` every time.
"""

from __future__ import annotations

import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta

import httpx
from standardwebhooks.webhooks import Webhook as Signer

from embedtune.core.config import Settings
from embedtune.core.db import new_session, transaction, utcnow
from embedtune.webhooks import repository
from embedtune.webhooks.addresses import ForbiddenReceiver, check_receiver
from embedtune.webhooks.service import deliveries_stored

logger = logging.getLogger(__name__)

#: Seconds before each retry (after attempt 1, 2, …); past the last one it is given up.
RETRY_SCHEDULE_S = (5.0, 300.0, 1800.0, 7200.0, 18000.0, 36000.0, 36000.0)
#: A claimed attempt belongs to its worker for its timeout plus this.
LEASE_MARGIN_S = 30.0


def retry_delay(attempts: int, scale: float) -> float | None:
    """Seconds to wait after the ``attempts``-th failed attempt; None: give up."""
    if attempts > len(RETRY_SCHEDULE_S):
        return None
    return RETRY_SCHEDULE_S[attempts - 1] * scale


def is_retryable(status_code: int | None) -> bool:
    """Connection errors and timeouts (no status), 5xx, 408 and 429 are tried again."""
    return status_code is None or status_code >= 500 or status_code in (408, 429)


class Deliverer:
    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._slots = threading.BoundedSemaphore(settings.webhook_slots)
        self._pool = ThreadPoolExecutor(settings.webhook_slots, thread_name_prefix="webhook")
        self._client = httpx.Client(timeout=settings.webhook_timeout, follow_redirects=False)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="embedtune-webhooks", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        deliveries_stored.set()
        self._thread.join()
        self._pool.shutdown(wait=True)
        self._client.close()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.send_due()
            except Exception:
                logger.exception("webhook delivery pass failed")
            deliveries_stored.wait(self._settings.webhook_poll_interval)
            deliveries_stored.clear()

    def send_due(self) -> int:
        """Claims as many due deliveries as there are free slots and starts sending them."""
        free = 0
        while free < self._settings.webhook_slots and self._slots.acquire(blocking=False):
            free += 1
        claimed: list[int] = []
        try:
            now = utcnow()
            lease = now + timedelta(seconds=self._settings.webhook_timeout + LEASE_MARGIN_S)
            with new_session(writer=True) as session, transaction(session):
                for delivery_id in repository.list_due(session, now, free) if free else []:
                    if repository.claim(session, delivery_id, now, lease):
                        claimed.append(delivery_id)
        finally:
            for _ in range(free - len(claimed)):
                self._slots.release()
        for delivery_id in claimed:
            self._pool.submit(self._attempt_in_slot, delivery_id)
        return len(claimed)

    def _attempt_in_slot(self, delivery_id: int) -> None:
        try:
            self.attempt(delivery_id)
        except Exception:
            logger.exception("webhook delivery_id=%s failed unexpectedly", delivery_id)
        finally:
            self._slots.release()

    def attempt(self, delivery_id: int) -> None:
        """One attempt of a claimed delivery, and its outcome recorded."""
        with new_session() as session:
            loaded = repository.load_for_sending(session, delivery_id)
        if loaded is None:
            return  # its webhook was deleted meanwhile
        delivery, webhook = loaded
        status_code: int | None = None
        error: str | None = None
        try:
            check_receiver(webhook.url, allow_private=self._settings.webhook_allow_private)
        except ForbiddenReceiver as exc:
            self._record(delivery_id, "failed", None, str(exc), None)
            return
        timestamp = utcnow()
        headers = {
            "content-type": "application/json",
            "user-agent": "embedtune-webhooks",
            "webhook-id": delivery.message_id,
            "webhook-timestamp": str(int(timestamp.timestamp())),
            "webhook-signature": Signer(webhook.secret).sign(
                delivery.message_id, timestamp, delivery.payload
            ),
        }
        try:
            response = self._client.post(
                webhook.url, content=delivery.payload.encode(), headers=headers
            )
            status_code = response.status_code
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}"
        if status_code is not None and 200 <= status_code < 300:
            self._record(delivery_id, "delivered", status_code, None, None)
            return
        if status_code is not None:
            error = f"receiver answered {status_code}"
        delay = retry_delay(delivery.attempts, self._settings.webhook_retry_scale)
        if not is_retryable(status_code) or delay is None:
            self._record(delivery_id, "failed", status_code, error, None)
            return
        self._record(
            delivery_id, "pending", status_code, error, utcnow() + timedelta(seconds=delay)
        )
        logger.info(
            "webhook delivery_id=%s attempt %d failed (%s); next in %.1f s",
            delivery_id,
            delivery.attempts,
            error,
            delay,
        )

    def _record(
        self,
        delivery_id: int,
        status: str,
        status_code: int | None,
        error: str | None,
        next_attempt_at: datetime | None,
    ) -> None:
        with new_session(writer=True) as session, transaction(session):
            repository.record_attempt(
                session,
                delivery_id,
                status=status,
                status_code=status_code,
                error=error,
                next_attempt_at=next_attempt_at,
            )
