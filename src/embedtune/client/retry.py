"""When a call is sent again: exponential backoff with jitter, for calls marked ``retry``.

The policy decides and the clients only wait: ``Attempts`` is told how each try ended and
answers the delay before the next one, or the response to hand back (raising for errors).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

import httpx

from embedtune.client.calls import APICall
from embedtune.client.errors import error_from, unreachable


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with jitter, for calls marked ``retry``."""

    max_retries: int = 4
    base_delay_s: float = 0.25
    max_delay_s: float = 8.0

    def delay(self, call: APICall[Any], attempt: int, response: httpx.Response | None) -> float:
        """Seconds to wait before sending again, or -1 to stop (``response`` None: no answer)."""
        failed = response is None or response.status_code >= 500
        if not (call.retry and failed) or attempt >= self.max_retries:
            return -1.0
        ceiling = min(self.max_delay_s, self.base_delay_s * 2.0**attempt)
        return ceiling / 2 + random.uniform(0, ceiling / 2)

    def attempts(self, call: APICall[Any], base_url: str) -> Attempts:
        """The tries of one call to the server at ``base_url``."""
        return Attempts(self, call, base_url)


class Attempts:
    """The tries of one call: each outcome in, the next step out."""

    def __init__(self, policy: RetryPolicy, call: APICall[Any], base_url: str):
        self._policy = policy
        self._call = call
        self._base_url = base_url
        self._attempt = 0

    def after(
        self, response: httpx.Response | None, error: httpx.TransportError | None = None
    ) -> float | httpx.Response:
        """Seconds to wait before the next try, or the response to hand back once no retry
        is left. Raises ``EmbedtuneAPIError`` for an error answer and
        ``EmbedtuneConnectionError`` when the server never answered."""
        delay = self._policy.delay(self._call, self._attempt, response)
        if delay >= 0:
            self._attempt += 1
            return delay
        if response is None:
            raise unreachable(self._base_url, error) from error
        if response.status_code >= 400:
            raise error_from(response)
        return response
