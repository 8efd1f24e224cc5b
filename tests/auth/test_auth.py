"""API keys: hashes only, every route but health/docs/dashboard shell behind them."""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from embedtune.auth import service as auth
from embedtune.auth.tables import ApiKey
from embedtune.core.db import new_session
from live_server import create_api_key

PUBLIC = ["/health", "/metrics", "/docs", "/redoc", "/openapi.json", "/", "/dashboard/app.js"]


def _protected_requests(client: TestClient) -> Iterator[tuple[str, str]]:
    """Every (method, path) of the API, path parameters filled in, public ones left out.

    The dashboard's routes are not in the OpenAPI document: its shell and assets are public.
    """
    for path, operations in client.get("/openapi.json").json()["paths"].items():
        if path in PUBLIC:
            continue
        for method in operations:
            yield method.upper(), re.sub(r"\{[^}]+\}", "anything", path)


def test_without_keys_the_api_is_open(app_client: TestClient) -> None:
    assert app_client.get("/fine-tuning/task").status_code == 200


def test_once_a_key_exists_every_route_without_it_is_401(app_client: TestClient) -> None:
    create_api_key()
    requests = list(_protected_requests(app_client))
    assert len(requests) >= 14  # tasks, models, batches, … (the list grows with the API)
    for method, path in requests:
        response = app_client.request(method, path)
        assert response.status_code == 401, (method, path, response.text)
        body = response.json()
        # /v1/* answers in OpenAI's error envelope, the rest of the API in its own.
        error = body["error"] if path.startswith("/v1/") else body
        assert error["code"] == "unauthorized", (method, path, body)
        assert response.headers["www-authenticate"] == "Bearer"


def test_health_docs_and_the_dashboard_shell_stay_public(app_client: TestClient) -> None:
    create_api_key()
    for path in PUBLIC:
        assert app_client.get(path).status_code == 200, path


def test_a_valid_key_is_accepted_and_a_wrong_one_refused(app_client: TestClient) -> None:
    secret = create_api_key()
    ok = app_client.get("/models", headers={"Authorization": f"Bearer {secret}"})
    wrong = app_client.get("/models", headers={"Authorization": f"Bearer {secret}x"})
    basic = app_client.get("/models", headers={"Authorization": f"Basic {secret}"})
    assert ok.status_code == 200
    assert (wrong.status_code, wrong.json()["detail"]) == (401, "invalid or revoked API key")
    assert basic.status_code == 401


def test_a_revoked_key_is_refused_promptly_even_when_it_was_the_last(
    app_client: TestClient,
) -> None:
    secret = create_api_key()
    headers = {"Authorization": f"Bearer {secret}"}
    assert app_client.get("/batches", headers=headers).status_code == 200
    with new_session(writer=True) as session:
        key_id = next(k.id for k in auth.list_keys(session) if k.name == "test")
        auth.revoke_key(session, key_id)
        session.commit()
    deadline = time.monotonic() + 3
    while app_client.get("/batches", headers=headers).status_code != 401:
        assert time.monotonic() < deadline, "revoked key still accepted"
        time.sleep(0.1)


def test_only_the_hash_of_a_key_is_stored(settings_env: dict[str, str]) -> None:
    from embedtune.migrations import upgrade_database

    upgrade_database(settings_env["EMBEDTUNE_DATABASE_URL"])
    with new_session(writer=True) as session:
        key, secret = auth.create_key(session, "ci")
        session.commit()
    with new_session() as session:
        stored = session.get(ApiKey, key.id)
    assert stored is not None
    assert stored.key_hash == hashlib.sha256(secret.encode()).hexdigest()
    assert secret not in {stored.id, stored.name, stored.prefix, stored.key_hash}
    assert secret.startswith(stored.prefix) and len(secret) >= 40


def test_revoking_an_unknown_key_is_404(settings_env: dict[str, str]) -> None:
    from embedtune.core.errors import NotFound
    from embedtune.migrations import upgrade_database

    upgrade_database(settings_env["EMBEDTUNE_DATABASE_URL"])
    with new_session(writer=True) as session, pytest.raises(NotFound) as raised:
        auth.revoke_key(session, "key_missing")
    assert raised.value.code == "api_key_not_found"


@pytest.fixture
def auth_required(monkeypatch: pytest.MonkeyPatch, settings_env: dict[str, str]) -> None:
    from embedtune.core.config import get_settings

    monkeypatch.setenv("EMBEDTUNE_AUTH", "required")
    get_settings.cache_clear()


def test_auth_required_refuses_everything_even_without_keys(
    auth_required: None, app_client: TestClient
) -> None:
    for method, path in _protected_requests(app_client):
        assert app_client.request(method, path).status_code == 401, (method, path)
    assert app_client.get("/health").status_code == 200


def test_auth_disabled_ignores_keys(
    monkeypatch: pytest.MonkeyPatch, settings_env: dict[str, str]
) -> None:
    from embedtune.app import create_app
    from embedtune.core.config import get_settings

    monkeypatch.setenv("EMBEDTUNE_AUTH", "disabled")
    get_settings.cache_clear()
    with TestClient(create_app()) as client:
        create_api_key()
        assert client.get("/fine-tuning/task").status_code == 200


@pytest.mark.parametrize(
    ("host", "mode", "has_keys", "allowed"),
    [
        ("127.0.0.1", "auto", False, True),
        ("localhost", "auto", False, True),
        ("::1", "auto", False, True),
        ("0.0.0.0", "auto", False, False),
        ("192.168.1.5", "auto", False, False),
        ("0.0.0.0", "auto", True, True),
        ("0.0.0.0", "required", False, True),
        ("0.0.0.0", "disabled", False, True),
    ],
)
def test_listening_beyond_this_machine_needs_keys_or_an_explicit_opt_out(
    host: str, mode: auth.AuthMode, has_keys: bool, allowed: bool
) -> None:
    if allowed:
        auth.check_bind(host, mode, has_keys)
    else:
        with pytest.raises(auth.InsecureBind, match="EMBEDTUNE_AUTH=disabled"):
            auth.check_bind(host, mode, has_keys)
