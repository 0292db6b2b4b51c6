"""Endpoint and credential-file handling for the etcd backend.

Kept apart from the connection code because it is plain parsing (Calico's
``http(s)://host:port`` forms, IPv6 brackets, several endpoints as one gRPC
target) that needs no event loop or gRPC channel, and is unit-tested as such.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Sequence
from pathlib import Path

from seawall.datastore.interface import DatastoreUnavailable
from seawall.datastore.url import redact_url


def normalise_endpoints(endpoints: Sequence[str] | str) -> tuple[list[str], bool]:
    """``host:port`` list and whether any used ``https://``. Accepts Calico's
    ``http(s)://host:port`` and bare ``host:port``, comma-separated or a list."""
    if isinstance(endpoints, str):
        endpoints = endpoints.split(",")
    result: list[str] = []
    https = False
    for raw in endpoints:
        ep = raw.strip()
        if not ep:
            continue
        lower = ep.lower()
        if lower.startswith("https://"):
            https, ep = True, ep[8:]
        elif lower.startswith("http://"):
            ep = ep[7:]
        ep = ep.rstrip("/")
        if "/" in ep or not ep:
            raise ValueError(redact_url(f"bad etcd endpoint {raw!r}: expected host:port or http(s)://host:port"))
        host, port = _split_host_port(ep)
        result.append(f"[{host}]:{port}" if ":" in host else f"{host}:{port}")
    if not result:
        raise ValueError("no etcd endpoints given")
    return result, https


def _split_host_port(ep: str) -> tuple[str, int]:
    if ep.startswith("["):
        host, sep, rest = ep[1:].partition("]")
        port_text = rest[1:] if rest.startswith(":") else ""
    else:
        host, sep, port_text = ep.rpartition(":")
        if not sep:
            host, port_text = ep, ""
    port = int(port_text) if port_text else 2379
    if not host or not 0 < port < 65536:
        raise ValueError(redact_url(f"bad etcd endpoint {ep!r}"))
    return host, port


def _grpc_target(endpoints: list[str]) -> tuple[str, str | None]:
    """A gRPC target for the endpoints and, for several TLS endpoints given by
    name, the name to verify certificates against."""
    if len(endpoints) == 1:
        return f"dns:///{endpoints[0]}", None
    addrs: list[tuple[int, str]] = []
    names: list[str] = []
    for ep in endpoints:
        host, port = _split_host_port(ep)
        try:
            ip = ipaddress.ip_address(host)
        except ValueError:
            names.append(host)
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
            if not infos:
                raise DatastoreUnavailable(redact_url(f"cannot resolve etcd endpoint {ep!r}")) from None
            ip = ipaddress.ip_address(infos[0][4][0])
        addrs.append((ip.version, f"[{ip}]:{port}" if ip.version == 6 else f"{ip}:{port}"))
    versions = {v for v, _ in addrs}
    if len(versions) != 1:
        raise ValueError("etcd endpoints mix IPv4 and IPv6 addresses; use one family")
    scheme = "ipv6" if versions == {6} else "ipv4"
    return f"{scheme}:{','.join(a for _, a in addrs)}", (names[0] if names else None)


def _read_file(path: str | Path | None) -> bytes | None:
    if path is None or path == "":
        return None
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise DatastoreUnavailable(f"cannot read {path}: {exc.strerror}") from None
