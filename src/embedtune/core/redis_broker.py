"""Dramatiq's Redis broker with a wake-up on enqueue, so an idle worker starts a task at once.

Dramatiq's Redis consumer finds messages by polling with a growing back-off, and one whose
prefetch is full looks again only after that back-off: a new task waited up to one poll
interval for an idle worker, and for a worker that had just acked its previous message.
Here every enqueue also publishes a notice on the queue's channel. A consumer with room
waits on that channel (a blocking read on its own connection, no commands); one without
room waits for its own ack. Either fetches the moment there may be something to fetch.
The idle poll stays as the fallback for messages that arrive without a notice (a dead
worker's messages put back by the broker's maintenance, a notice lost in a reconnect).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable
from typing import Any

import redis
from dramatiq.broker import MessageProxy
from dramatiq.brokers.redis import RedisBroker, _RedisConsumer
from dramatiq.errors import ConnectionClosed
from dramatiq.message import Message
from redis.client import PubSub

logger = logging.getLogger(__name__)

#: How long a new consumer waits for the server to confirm its subscription, so that no
#: notice published after its first fetch is missed.
SUBSCRIBE_CONFIRM_S = 2.0


class WakingRedisBroker(RedisBroker):
    """A ``RedisBroker`` whose enqueues wake idle consumers.

    ``idle_poll_ms``: how often a consumer with room fetches when no notice came; capped at
    a quarter of the broker's heartbeat timeout, since fetches are also its heartbeat.
    """

    def __init__(self, *, url: str, idle_poll_ms: int, **options: Any) -> None:
        super().__init__(url=url, **options)  # type: ignore[no-untyped-call]
        self.idle_poll_ms: int = min(idle_poll_ms, self.heartbeat_timeout // 4)
        # Pub/sub channels are not scoped by database; the number keeps them apart.
        database = self.client.connection_pool.connection_kwargs.get("db", 0)
        self._channel_prefix = f"{self.namespace}:{database}:"

    @property
    def consumer_class(self) -> type[_WakingConsumer]:
        return _WakingConsumer

    def channel(self, queue_name: str) -> str:
        """The channel that announces new messages on ``queue_name``."""
        return f"{self._channel_prefix}{queue_name}.enqueued"

    def enqueue(self, message: Message[Any], *, delay: int | None = None) -> Message[Any]:
        enqueued: Message[Any] = super().enqueue(message, delay=delay)
        self.notify(enqueued.queue_name)
        return enqueued

    def notify(self, queue_name: str) -> None:
        """Wakes the consumers of ``queue_name``. Best effort: the message is stored, and a
        consumer that misses the notice finds it at its next idle poll."""
        try:
            self.client.publish(self.channel(queue_name), b"")
        except redis.RedisError as exc:
            logger.warning("wake-up notice for queue %s not sent: %s", queue_name, exc)


class _WakingConsumer(_RedisConsumer):
    """Fetches when a notice came, when its own ack made room, or when the idle poll is
    due; between fetches it waits without commands. ``timeout`` (the worker's) is how
    often it returns ``None`` so its thread can notice a stop or a delayed message's eta.
    """

    def __init__(
        self, broker: WakingRedisBroker, queue_name: str, prefetch: int, timeout: int
    ) -> None:
        super().__init__(broker, queue_name, prefetch, timeout)  # type: ignore[no-untyped-call]
        self._waking_broker = broker
        self._slice_s = timeout / 1000
        self._poll_s = broker.idle_poll_ms / 1000
        self._room_made = threading.Event()
        self._pubsub: PubSub | None = None
        self._fetch_due = True
        self._next_poll = 0.0

    def ack(self, message: MessageProxy) -> None:
        try:
            super().ack(message)  # type: ignore[no-untyped-call]
        finally:
            self._room_made.set()

    def nack(self, message: MessageProxy) -> None:
        try:
            super().nack(message)  # type: ignore[no-untyped-call]
        finally:
            self._room_made.set()

    def requeue(self, messages: Iterable[MessageProxy]) -> None:
        returned = list(messages)
        super().requeue(returned)  # type: ignore[no-untyped-call]
        if returned:
            self._waking_broker.notify(self.queue_name)

    def __next__(self) -> MessageProxy | None:
        try:
            while True:
                if self.message_cache:
                    message = Message.decode(self.message_cache.pop(0))
                    self.queued_message_ids.add(message.message_id)
                    return MessageProxy(message)
                room = self.prefetch - self.outstanding_message_count
                if room > 0 and (self._fetch_due or time.monotonic() >= self._next_poll):
                    self._fetch(room)
                    if self.message_cache:
                        continue
                self._wait(has_room=room > 0)
                return None
        except redis.ConnectionError as exc:
            raise ConnectionClosed(exc) from None  # type: ignore[no-untyped-call]

    def _fetch(self, room: int) -> None:
        pubsub = self._subscribe()
        # Notices that came before this fetch are answered by it.
        while pubsub.get_message(ignore_subscribe_messages=True) is not None:
            pass
        self._fetch_due = False
        self._next_poll = time.monotonic() + self._poll_s
        self.message_cache = [
            data for data in self.broker.do_fetch(self.queue_name, room) if data is not None
        ]

    def _subscribe(self) -> PubSub:
        if self._pubsub is None:
            pubsub = self.broker.client.pubsub()
            pubsub.subscribe(self._waking_broker.channel(self.queue_name))
            self._pubsub = pubsub
            pubsub.get_message(timeout=SUBSCRIBE_CONFIRM_S)
        return self._pubsub

    def _wait(self, *, has_room: bool) -> None:
        if has_room:
            timeout = max(0.0, min(self._slice_s, self._next_poll - time.monotonic()))
            notice = self._subscribe().get_message(ignore_subscribe_messages=True, timeout=timeout)
            self._fetch_due = notice is not None
        # Full: only an ack can make room, however long the poll has been due.
        elif self._room_made.wait(self._slice_s):
            self._room_made.clear()
            self._fetch_due = True

    def close(self) -> None:
        if self._pubsub is not None:
            self._pubsub.close()
            self._pubsub = None
