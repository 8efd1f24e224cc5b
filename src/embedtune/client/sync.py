"""The synchronous client: ``Client`` sends the call descriptions over ``httpx.Client``."""

from __future__ import annotations

import time
from types import TracebackType
from typing import IO, Any, Self, TypeVar

import httpx

from embedtune.client import calls
from embedtune.client.errors import error_from, unreachable
from embedtune.client.resources import ClientBase, tls_verify

T = TypeVar("T")


class Client(ClientBase[httpx.BaseTransport]):
    """A synchronous client; use it as a context manager or call ``close()``.

    ``base_url`` and ``api_key`` default to ``EMBEDTUNE_URL`` and ``EMBEDTUNE_API_KEY``.
    """

    asynchronous = False

    def _connect(
        self, headers: dict[str, str], timeout: float, transport: httpx.BaseTransport | None
    ) -> None:
        self._http = httpx.Client(
            base_url=self.base_url,
            headers=headers,
            timeout=timeout,
            transport=transport,
            verify=tls_verify(self.base_url),
        )

    def send(self, call: calls.APICall[Any]) -> httpx.Response:
        """Sends a call, retrying if it is safe to; raises ``EmbedtuneClientError``."""
        attempts = self.retry.attempts(call, self.base_url)
        while True:
            try:
                response = self._http.request(call.method, call.path, **call.options())
                outcome = attempts.after(response)
            except httpx.TransportError as exc:
                outcome = attempts.after(None, exc)
            if isinstance(outcome, httpx.Response):
                return outcome
            time.sleep(outcome)

    def call(self, call: calls.APICall[T]) -> T:
        """Sends a call and returns its parsed answer."""
        return call.parse(self.send(call))

    def stream(self, path: str) -> _SyncStream:
        """A streamed GET, for downloads; raises ``EmbedtuneClientError`` on entry."""
        return _SyncStream(self._http, path)

    def download_to(self, path: str, sink: IO[bytes]) -> None:
        """Streams the body of ``GET path`` into ``sink``; raises ``EmbedtuneClientError``."""
        with self.stream(path) as response:
            for chunk in response.iter_bytes():
                sink.write(chunk)

    def health(self) -> dict[str, str]:
        """The server's ``/health`` answer."""
        return self.call(calls.health())

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class _SyncStream:
    def __init__(self, http: httpx.Client, path: str):
        self._http = http
        self._path = path
        self._response: httpx.Response | None = None

    def __enter__(self) -> httpx.Response:
        request = self._http.build_request("GET", self._path)
        try:
            self._response = self._http.send(request, stream=True)
        except httpx.TransportError as exc:
            raise unreachable(str(self._http.base_url).rstrip("/"), exc) from exc
        if self._response.status_code >= 400:
            self._response.read()
            self._response.close()
            raise error_from(self._response)
        return self._response

    def __exit__(self, *exc_info: object) -> None:
        if self._response is not None:
            self._response.close()
