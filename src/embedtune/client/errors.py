"""What the client raises, and how an error answer of the API becomes one."""

from __future__ import annotations

import httpx


class EmbedtuneClientError(Exception):
    """Base of every error the client raises."""


class EmbedtuneAPIError(EmbedtuneClientError):
    """The API answered with an error: ``status`` (HTTP), ``code`` and ``detail``."""

    def __init__(self, status: int, code: str, detail: str):
        super().__init__(f"{detail} ({code}, HTTP {status})")
        self.status = status
        self.code = code
        self.detail = detail


class EmbedtuneConnectionError(EmbedtuneClientError):
    """The server could not be reached, even after the retries."""


class TaskWaitTimeout(EmbedtuneClientError, TimeoutError):
    """A task did not finish within the time given to ``wait``."""


class InvalidModelArchive(EmbedtuneClientError):
    """A downloaded model archive cannot be unpacked safely; nothing was left behind."""


def error_from(response: httpx.Response) -> EmbedtuneAPIError:
    """The error an answer of status 400 or more stands for (read in both error envelopes)."""
    try:
        body = response.json()
        if isinstance(body.get("error"), dict):  # /v1/* answers in OpenAI's envelope
            error = body["error"]
            return EmbedtuneAPIError(response.status_code, str(error["code"]), error["message"])
        return EmbedtuneAPIError(response.status_code, str(body["code"]), str(body["detail"]))
    except (ValueError, KeyError, TypeError):
        detail = response.text.strip()[:200] or response.reason_phrase
        return EmbedtuneAPIError(response.status_code, "http_error", detail)


def unreachable(base_url: str, error: Exception | None) -> EmbedtuneConnectionError:
    """The error for a server that did not answer at ``base_url``."""
    return EmbedtuneConnectionError(f"cannot reach the server at {base_url}: {error}")


def no_stream_route(exc: EmbedtuneAPIError) -> bool:
    """A 404 of the route itself (a server older than streams), not of the task."""
    return exc.status in (404, 405) and exc.code != "task_not_found"
