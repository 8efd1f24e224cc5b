"""The asynchronous client: ``AsyncClient`` sends the same call descriptions as ``Client``
over ``httpx.AsyncClient``; each resource method is awaited."""

from __future__ import annotations

import asyncio
from types import TracebackType
from typing import IO, Any, Self, TypeVar

import httpx

from embedtune.client import calls
from embedtune.client.errors import error_from, unreachable
from embedtune.client.resources import ClientBase, tls_verify

T = TypeVar("T")


class AsyncClient(ClientBase[httpx.AsyncBaseTransport]):
    """``Client`` for asyncio (``async with AsyncClient(...) as client``)."""

    asynchronous = True

    def _connect(
        self, headers: dict[str, str], timeout: float, transport: httpx.AsyncBaseTransport | None
    ) -> None:
        self._http = httpx.AsyncClient(
            base_url=self.base_url,
            headers=headers,
            timeout=timeout,
            transport=transport,
            verify=tls_verify(self.base_url),
        )

    async def send(self, call: calls.APICall[Any]) -> httpx.Response:
        """Sends a call, retrying if it is safe to; raises ``EmbedtuneClientError``."""
        attempts = self.retry.attempts(call, self.base_url)
        while True:
            try:
                response = await self._http.request(call.method, call.path, **call.options())
                outcome = attempts.after(response)
            except httpx.TransportError as exc:
                outcome = attempts.after(None, exc)
            if isinstance(outcome, httpx.Response):
                return outcome
            await asyncio.sleep(outcome)

    async def call(self, call: calls.APICall[T]) -> T:
        """Sends a call and returns its parsed answer."""
        return call.parse(await self.send(call))

    async def download_to(self, path: str, sink: IO[bytes]) -> None:
        """Streams the body of ``GET path`` into ``sink``; raises ``EmbedtuneClientError``."""
        try:
            async with self._http.stream("GET", path) as response:
                if response.status_code >= 400:
                    await response.aread()
                    raise error_from(response)
                async for chunk in response.aiter_bytes():
                    sink.write(chunk)
        except httpx.TransportError as exc:
            raise unreachable(self.base_url, exc) from exc

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()
