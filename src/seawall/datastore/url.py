"""Datastore URLs: how the CLI (``--datastore``) and the agent name a store.

One parser for both, so ``SEAWALL_DATASTORE`` and the default path mean the same
thing everywhere. Accepted:

* ``sqlite:///abs/path`` (three slashes: absolute), ``sqlite://relative/path``;
* ``etcd://host:port[,host:port...]`` (plain gRPC, or TLS when a CA/client
  certificate is configured or an endpoint is ``https://``), ``etcds://...``
  (always TLS), and ``etcd://`` with no hosts (endpoints from
  ``--etcd-endpoints`` / ``$ETCD_ENDPOINTS``).

etcd settings use Calico's environment names -- ``ETCD_ENDPOINTS``
(comma-separated ``http(s)://host:port``), ``ETCD_CA_CERT_FILE``,
``ETCD_CERT_FILE``, ``ETCD_KEY_FILE``, ``ETCD_USERNAME``, ``ETCD_PASSWORD`` --
and explicit options (the CLI's ``--etcd-*`` flags) win over them.

Which store, in order: an explicit URL; ``--etcd-endpoints`` (a flag beats the
environment); ``$SEAWALL_DATASTORE``; ``$ETCD_ENDPOINTS`` (as calicoctl, an
etcd endpoint in the environment selects etcd); the SQLite default.
"""

from __future__ import annotations

import os
from typing import Any

from seawall.datastore.interface import Datastore, DatastoreUnavailable
from seawall.datastore.sqlite import SqliteDatastore

__all__ = [
    "DEFAULT_SQLITE_PATH",
    "ENV_VAR",
    "ETCD_ENV",
    "etcd_settings",
    "open_datastore",
    "resolve_datastore_url",
]

DEFAULT_SQLITE_PATH = "/var/lib/seawall/seawall.db"
ENV_VAR = "SEAWALL_DATASTORE"

#: option name -> Calico's environment variable
ETCD_ENV = {
    "endpoints": "ETCD_ENDPOINTS",
    "ca_cert_file": "ETCD_CA_CERT_FILE",
    "cert_file": "ETCD_CERT_FILE",
    "key_file": "ETCD_KEY_FILE",
    "username": "ETCD_USERNAME",
    "password": "ETCD_PASSWORD",
}

_SQLITE = "sqlite://"
_ETCD = "etcd://"
_ACCEPTED = (
    "sqlite:///absolute/path, sqlite://relative/path, etcd://host:port[,host:port] or etcds://host:port"
)


def resolve_datastore_url(url: str | None, *, etcd_endpoints: str | None = None) -> str:
    """The explicit URL if given (non-empty); else ``etcd://`` when endpoints are
    given explicitly; else $SEAWALL_DATASTORE; else ``etcd://`` when
    $ETCD_ENDPOINTS is set; else the SQLite default."""
    if url:
        return url
    if etcd_endpoints:
        return _ETCD
    env = os.environ.get(ENV_VAR)
    if env:
        return env
    if os.environ.get(ETCD_ENV["endpoints"], "").strip():
        return _ETCD
    return _SQLITE + DEFAULT_SQLITE_PATH


def etcd_settings(url_hosts: str = "", **options: str | None) -> dict[str, str | None]:
    """The etcd settings (keys of ``ETCD_ENV``): endpoints from the URL's host
    list, else the option, else the environment; the others from the option,
    else the environment. Empty strings count as unset."""
    settings: dict[str, str | None] = {}
    for name, env in ETCD_ENV.items():
        given = options.get(name)
        settings[name] = given if given else (os.environ.get(env) or None)
    if url_hosts:
        settings["endpoints"] = url_hosts
    return settings


def open_datastore(url: str | None = None, **etcd_options: Any) -> Datastore:
    """Open the datastore a URL names (resolved as ``resolve_datastore_url``).

    ``etcd_options``: ``endpoints``, ``ca_cert_file``, ``cert_file``,
    ``key_file``, ``username``, ``password`` (None = from the environment) and
    any further ``EtcdDatastore`` keyword (``prefix``, ``timeout``, ...).
    Raises DatastoreUnavailable for an unusable or unsupported URL."""
    settings_opts = {name: etcd_options.pop(name, None) for name in ETCD_ENV}
    resolved = resolve_datastore_url(url, etcd_endpoints=settings_opts["endpoints"]).strip()
    scheme, sep, rest = resolved.partition("://")
    scheme = scheme.lower()
    if sep and scheme == "sqlite":
        # "sqlite:///abs" leaves "/abs"; "sqlite://rel/path" leaves "rel/path".
        if not rest:
            raise DatastoreUnavailable(f"datastore URL {resolved!r} has no path; expected {_ACCEPTED}")
        return SqliteDatastore(rest)
    if sep and scheme in ("etcd", "etcds", "etcdv3"):
        return _open_etcd(resolved, rest, tls=scheme == "etcds", options=settings_opts, extra=etcd_options)
    raise DatastoreUnavailable(f"unsupported datastore URL {resolved!r}; expected {_ACCEPTED}")


def _open_etcd(
    resolved: str, rest: str, *, tls: bool, options: dict[str, Any], extra: dict[str, Any]
) -> Datastore:
    hosts = rest.strip().rstrip("/")
    if "/" in hosts or "?" in hosts:
        raise DatastoreUnavailable(
            f"datastore URL {resolved!r}: expected etcd://host:port[,host:port] (no path or query)"
        )
    settings = etcd_settings(hosts, **options)
    if not settings["endpoints"]:
        raise DatastoreUnavailable(
            f"datastore URL {resolved!r} names no etcd endpoints; give host:port in the URL, "
            "--etcd-endpoints or $ETCD_ENDPOINTS"
        )
    try:
        from seawall.datastore.etcd import EtcdDatastore  # grpc is only loaded for etcd
    except ImportError as exc:  # pragma: no cover - dependency missing
        raise DatastoreUnavailable(f"etcd datastore needs the etcd3aio package: {exc}") from None
    try:
        return EtcdDatastore(
            settings["endpoints"] or "",
            ca_cert=settings["ca_cert_file"],
            cert=settings["cert_file"],
            key=settings["key_file"],
            username=settings["username"],
            password=settings["password"],
            tls=tls or None,
            **extra,
        )
    except ValueError as exc:
        raise DatastoreUnavailable(f"datastore URL {resolved!r}: {exc}") from None
