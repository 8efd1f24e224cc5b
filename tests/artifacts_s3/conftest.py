"""An S3 endpoint for the artifact store: moto's server, speaking the real S3 protocol over
HTTP on 127.0.0.1, and a fresh bucket per test."""

from __future__ import annotations

import socket
import uuid
from collections.abc import Iterator

import boto3
import pytest
from moto.server import ThreadedMotoServer

from embedtune.core.config import get_settings

from .helpers import PREFIX, Bucket


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


@pytest.fixture(autouse=True)
def s3_bucket(
    s3_endpoint: str, settings_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> Bucket:
    """Points the artifact store at a new bucket (before any app of the test starts)."""
    name = f"embedtune-{uuid.uuid4().hex[:12]}"
    for key, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "EMBEDTUNE_ARTIFACTS_URL": f"s3://{name}/{PREFIX}",
        "EMBEDTUNE_S3_ENDPOINT_URL": s3_endpoint,
    }.items():
        monkeypatch.setenv(key, value)
    get_settings.cache_clear()
    client = boto3.session.Session().client("s3", endpoint_url=s3_endpoint)
    client.create_bucket(Bucket=name)
    return Bucket(name, client)
