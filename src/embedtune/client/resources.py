"""The client's resources (``client.tasks``, ``client.models`` …), declared once for both
clients. An ``Endpoint`` binds one call description of :mod:`embedtune.client.calls`: on a
``Client`` it returns the answer, on an ``AsyncClient`` an awaitable of it. A ``Method`` is
one that is more than a call (following a task, uploads, downloads), written for each kind
of client in ``sync_methods.py`` and ``async_methods.py``.
"""

from __future__ import annotations

import functools
import os
import ssl
import types
from collections.abc import Awaitable, Callable
from typing import (
    TYPE_CHECKING,
    Any,
    ClassVar,
    Concatenate,
    Generic,
    ParamSpec,
    Self,
    TypeVar,
    cast,
    overload,
)

from embedtune.client import async_methods, calls, sync_methods
from embedtune.client.retry import RetryPolicy

if TYPE_CHECKING:
    from embedtune.client.aio import AsyncClient
    from embedtune.client.sync import Client

DEFAULT_URL = "http://127.0.0.1:8000"
DEFAULT_TIMEOUT_S = 60.0

T = TypeVar("T")
R = TypeVar("R")
S = TypeVar("S")
P = ParamSpec("P")
Q = ParamSpec("Q")
C = TypeVar("C", bound="ClientBase[Any]")
Tr = TypeVar("Tr")


class Resource(Generic[C]):
    """A group of the API's calls (``client.tasks`` …), bound to the client that sends them."""

    def __init__(self, client: C):
        self._client = client


class Endpoint(Generic[P, T]):
    """A resource method that sends one call description and returns its answer."""

    def __init__(self, build: Callable[P, calls.APICall[T]]):
        self._build = build
        self.__doc__ = build.__doc__

    @overload
    def __get__(self, resource: None, owner: type[Any]) -> Self: ...
    @overload
    def __get__(self, resource: Resource[Client], owner: type[Any]) -> Callable[P, T]: ...
    @overload
    def __get__(
        self, resource: Resource[AsyncClient], owner: type[Any]
    ) -> Callable[P, Awaitable[T]]: ...
    def __get__(self, resource: Resource[Any] | None, owner: type[Any]) -> Any:
        if resource is None:
            return self
        build, send = self._build, resource._client.call

        @functools.wraps(build)
        def method(*args: P.args, **kwargs: P.kwargs) -> Any:
            return send(build(*args, **kwargs))

        return method


class Method(Generic[P, R, Q, S]):
    """A resource method written once for ``Client`` and once for ``AsyncClient``."""

    def __init__(
        self,
        blocking: Callable[Concatenate[Any, P], R],
        awaiting: Callable[Concatenate[Any, Q], S],
    ):
        self._blocking = blocking
        self._awaiting = awaiting
        self.__doc__ = blocking.__doc__

    @overload
    def __get__(self, resource: None, owner: type[Any]) -> Self: ...
    @overload
    def __get__(self, resource: Resource[Client], owner: type[Any]) -> Callable[P, R]: ...
    @overload
    def __get__(self, resource: Resource[AsyncClient], owner: type[Any]) -> Callable[Q, S]: ...
    def __get__(self, resource: Resource[Any] | None, owner: type[Any]) -> Any:
        if resource is None:
            return self
        method = self._awaiting if resource._client.asynchronous else self._blocking
        return types.MethodType(method, resource)


class Tasks(Resource[C]):
    create = Endpoint(calls.create_task)
    list = Endpoint(calls.list_tasks)
    get = Endpoint(calls.get_task)
    cancel = Endpoint(calls.cancel_task)
    restart = Endpoint(calls.restart_task)
    events = Endpoint(calls.list_task_events)
    metrics = Endpoint(calls.get_task_metrics)
    follow = Method(sync_methods.follow, async_methods.follow)
    stream = Method(sync_methods.stream, async_methods.stream)
    wait = Method(sync_methods.wait, async_methods.wait)


class Models(Resource[C]):
    list = Endpoint(calls.list_models)
    get = Endpoint(calls.get_model)
    register = Endpoint(calls.register_model)
    download = Method(sync_methods.download, async_methods.download)


class Batches(Resource[C]):
    create = Endpoint(calls.create_batch)
    list = Endpoint(calls.list_batches)
    get = Endpoint(calls.get_batch)
    sample = Endpoint(calls.sample_batch)
    upload = Method(sync_methods.upload_batch, async_methods.upload_batch)


class Feedback(Resource[C]):
    send = Endpoint(calls.send_feedback_session)
    list = Endpoint(calls.list_feedback_sessions)
    get = Endpoint(calls.get_feedback_session)
    click = Endpoint(calls.add_feedback_click)
    irrelevant = Endpoint(calls.mark_feedback_irrelevant)
    summary = Endpoint(calls.get_feedback_summary)
    release = Endpoint(calls.release_feedback)
    upload = Method(sync_methods.upload_feedback, async_methods.upload_feedback)


class Deployments(Resource[C]):
    get = Endpoint(calls.get_deployments)
    set_blue = Endpoint(calls.set_blue)
    rollback = Endpoint(calls.rollback)


class Embeddings(Resource[C]):
    create = Endpoint(calls.create_embeddings)


def server_url(given: str | None) -> str:
    """The server's URL: ``given``, else ``EMBEDTUNE_URL``, else the local default."""
    return (given or os.environ.get("EMBEDTUNE_URL") or DEFAULT_URL).rstrip("/")


def auth_headers(api_key: str | None) -> dict[str, str]:
    """The bearer header of ``api_key``, else of ``EMBEDTUNE_API_KEY`` (none without one)."""
    key = api_key or os.environ.get("EMBEDTUNE_API_KEY") or None
    return {"Authorization": f"Bearer {key}"} if key else {}


def tls_verify(base_url: str) -> ssl.SSLContext | bool:
    """What the client checks the server's certificate with (httpx's ``verify``).

    An https server: httpx's default, the CA bundle. An http one: a context that trusts no
    certificate at all. Every request goes to that server and no redirect is followed, so
    it never speaks TLS and the context is never used (were it used, it would refuse every
    certificate); and the CA bundle, parsed when the client is made, is not loaded for
    nothing (a good part of a short command's start-up).
    """
    if base_url.partition("://")[0].lower() == "https":
        return True
    return ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)


class ClientBase(Generic[Tr]):
    """What both clients share: where the server is, the key, the retries and the resources.
    ``Tr`` is the kind of ``httpx`` transport the client accepts."""

    #: Whether the resource methods of this client return awaitables.
    asynchronous: ClassVar[bool]
    tasks: Tasks[Self]
    models: Models[Self]
    batches: Batches[Self]
    deployments: Deployments[Self]
    feedback: Feedback[Self]
    embeddings: Embeddings[Self]

    def __init__(
        self,
        base_url: str | None = None,
        api_key: str | None = None,
        *,
        timeout: float = DEFAULT_TIMEOUT_S,
        retry: RetryPolicy | None = None,
        transport: Tr | None = None,
    ):
        self.base_url = server_url(base_url)
        self.retry = retry or RetryPolicy()
        self._connect(auth_headers(api_key), timeout, transport)
        me = cast(Self, self)  # the resources are typed by the client's own class
        self.tasks = Tasks(me)
        self.models = Models(me)
        self.batches = Batches(me)
        self.deployments = Deployments(me)
        self.feedback = Feedback(me)
        self.embeddings = Embeddings(me)

    def _connect(self, headers: dict[str, str], timeout: float, transport: Tr | None) -> None:
        """Opens the HTTP connection pool (``self._http``)."""
        raise NotImplementedError
