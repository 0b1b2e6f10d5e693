"""What the launchers of remote clusters share: addresses the workers reach, and small HTTP calls.

On a remote cluster the job master still runs in the submitting process, so it must listen on an
address the workers reach (``master.interface``). ``0.0.0.0`` means "every address of this host";
the launcher then tells the workers the address of this host on the route towards the cluster.

Examples
--------
>>> is_loopback("127.0.0.1"), is_loopback("0.0.0.0"), is_wildcard("0.0.0.0")
(True, False, True)
>>> advertised_address("10.1.2.3:4000", toward="127.0.0.1")
'10.1.2.3:4000'
>>> advertised_address("0.0.0.0:4000", toward="127.0.0.1")
'127.0.0.1:4000'
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import socket
import urllib.error
import urllib.request
from collections.abc import Mapping
from typing import Any

import psutil

__all__ = [
    "HttpError",
    "advertised_address",
    "http_json",
    "is_local_host",
    "is_loopback",
    "is_wildcard",
    "route_source",
]


def is_wildcard(host: str) -> bool:
    """Whether ``host`` means every address of this machine (``0.0.0.0``, ``::``, ``''``)."""
    return host in ("", "0.0.0.0", "::")


def is_loopback(host: str) -> bool:
    """Whether ``host`` is a loopback address or ``localhost``."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _resolve(host: str) -> str | None:
    try:
        return str(socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)[0][4][0])
    except (OSError, IndexError):
        return None


def is_local_host(host: str) -> bool:
    """Whether ``host`` (a name or an address) is an address of this machine."""
    address = _resolve(host)
    if address is None:
        return False
    if is_loopback(address):
        return True
    mine = {a.address.split("%")[0] for addrs in psutil.net_if_addrs().values() for a in addrs}
    return address in mine


def route_source(toward: str) -> str:
    """This host's address on the route towards ``toward`` (no packet is sent)."""
    address = _resolve(toward) or toward
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as probe:
        probe.connect((address, 9))
        return str(probe.getsockname()[0])


def advertised_address(address: str, toward: str) -> str:
    """``host:port`` for workers: a wildcard host becomes this host's address towards ``toward``."""
    host, _, port = address.rpartition(":")
    host = host.strip("[]")
    if is_wildcard(host):
        host = route_source(toward)
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class HttpError(OSError):
    """An HTTP call failed: ``status`` is the HTTP status (0 when nothing answered)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def http_json(
    method: str,
    url: str,
    body: Any = None,
    *,
    headers: Mapping[str, str] | None = None,
    timeout: float = 10.0,
) -> tuple[Any, Mapping[str, str]]:
    """One JSON request; returns the decoded body (None when empty) and the response headers."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method)
    request.add_header("Accept", "application/json")
    if data is not None:
        request.add_header("Content-Type", "application/json")
    for name, value in (headers or {}).items():
        request.add_header(name, value)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            raw = response.read()
            answer = json.loads(raw) if raw.strip() else None
            return answer, dict(response.headers.items())
    except urllib.error.HTTPError as exc:
        with contextlib.closing(exc):
            text = exc.read().decode(errors="replace").strip()
        raise HttpError(exc.code, f"{method} {url}: HTTP {exc.code} {text[:300]}") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise HttpError(0, f"{method} {url}: {reason}") from None
