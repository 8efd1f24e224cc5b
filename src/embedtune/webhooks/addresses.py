"""Which receivers a webhook may reach: not private, loopback or link-local addresses, so a
webhook cannot be turned into a way to reach the services beside embedtune."""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit


class ForbiddenReceiver(ValueError):
    """The URL is not http(s), or its host is (or resolves to) a non-public address."""


def _is_public(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    return not (
        ip.is_private
        or ip.is_loopback
        or ip.is_link_local
        or ip.is_multicast
        or ip.is_reserved
        or ip.is_unspecified
    )


def check_receiver(url: str, *, allow_private: bool) -> None:
    """Raises ForbiddenReceiver for a URL a webhook must not deliver to.

    The host is resolved: a public name that points at 127.0.0.1 is refused too. A name
    that does not resolve (yet) is allowed; it is checked again before every attempt.
    """
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ForbiddenReceiver("the URL must be http:// or https:// with a host")
    if allow_private:
        return
    try:
        infos = socket.getaddrinfo(parts.hostname, parts.port or 443, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError):
        return
    for info in infos:
        address = str(info[4][0])
        if not _is_public(address):
            raise ForbiddenReceiver(
                f"{parts.hostname} is a private, loopback or link-local address "
                "(set EMBEDTUNE_WEBHOOK_ALLOW_PRIVATE=true to allow it)"
            )
