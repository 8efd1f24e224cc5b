"""API key rules: creation (the secret is returned once), revocation, verification, and
whether the server may listen beyond this machine."""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from sqlalchemy.orm import Session

from embedtune.auth import repository
from embedtune.auth.tables import ApiKey
from embedtune.core.db import utcnow
from embedtune.core.errors import EmbedtuneError, NotFound
from embedtune.core.ids import new_id

AuthMode = Literal["auto", "required", "disabled"]

KEY_PREFIX = "et_"
#: Characters of the secret kept in clear to tell keys apart (prefix + 6 random ones).
SHOWN_CHARS = len(KEY_PREFIX) + 6


class InsecureBind(EmbedtuneError):
    code = "insecure_bind"


def hash_key(secret: str) -> str:
    """SHA-256 suffices: the secrets are 256 random bits, not passwords."""
    return hashlib.sha256(secret.encode()).hexdigest()


def key_matches(secret: str, active_hashes: Iterable[str]) -> bool:
    """Constant-time: every stored hash is compared, whatever matched before."""
    candidate = hash_key(secret)
    found = False
    for stored in active_hashes:
        found |= hmac.compare_digest(candidate, stored)
    return found


def create_key(session: Session, name: str) -> tuple[ApiKey, str]:
    """Stores a new key and returns it with its secret, which is not kept anywhere."""
    secret = KEY_PREFIX + secrets.token_urlsafe(32)
    key = ApiKey(
        id=new_id("key_"), name=name, prefix=secret[:SHOWN_CHARS], key_hash=hash_key(secret)
    )
    repository.insert(session, key)
    return key, secret


def list_keys(session: Session) -> list[ApiKey]:
    return repository.list_all(session)


def revoke_key(session: Session, key_id: str) -> ApiKey:
    """Revokes a key; revoking a revoked key changes nothing.

    Raises ``NotFound`` (``api_key_not_found``) for an unknown id.
    """
    repository.revoke(session, key_id, utcnow())
    key = repository.get(session, key_id)
    if key is None:
        raise NotFound(f"API key {key_id} not found", code="api_key_not_found")
    return key


@dataclass(frozen=True)
class KeyState:
    #: Any key ever created, revoked ones included: revoking the last key must not open
    #: the API to everyone.
    any_key: bool
    active_hashes: list[str]


def key_state(session: Session) -> KeyState:
    rows = repository.hashes_and_revocations(session)
    return KeyState(bool(rows), [key_hash for key_hash, revoked in rows if revoked is None])


def auth_required(mode: AuthMode, any_key: bool) -> bool:
    """``auto`` turns auth on as soon as a key has been created."""
    return mode == "required" or (mode == "auto" and any_key)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_bind(host: str, mode: AuthMode, any_key: bool) -> None:
    """Refuses to listen beyond this machine while anyone could use the API.

    Raises ``InsecureBind`` for a non-loopback ``host`` with auth off and no opt-out.
    """
    if is_loopback(host) or mode == "disabled" or auth_required(mode, any_key):
        return
    raise InsecureBind(
        f"refusing to listen on {host} without API keys: create one with "
        "`embedtune keys create`, or set EMBEDTUNE_AUTH=disabled to serve without auth"
    )
