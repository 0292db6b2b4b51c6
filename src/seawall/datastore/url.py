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
import re
import sys
import urllib.parse
from pathlib import Path
from typing import Any

from seawall.datastore.interface import Datastore, DatastoreUnavailable
from seawall.datastore.sqlite import SqliteDatastore

__all__ = [
    "DEFAULT_SQLITE_PATH",
    "ENV_VAR",
    "ETCD_ENV",
    "etcd_settings",
    "open_datastore",
    "redact_url",
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


_USERINFO = re.compile(r"(?P<lead>(?:^|[/,@]|://))(?P<user>[^:/@,\s]*):(?P<secret>[^@/,\s]*)@")


def redact_url(text: str) -> str:
    """``text`` with every ``user:password@`` credential shown as ``user:***@``."""
    return _USERINFO.sub(lambda m: f"{m['lead']}{m['user']}:***@", text)


def _announce_created(path: Path) -> None:
    if str(path) != DEFAULT_SQLITE_PATH:
        print(f"created new datastore {path}", file=sys.stderr)


def _announce_missing(path: Path) -> None:
    print(f"note: no datastore at {path} yet (nothing has been written); it reads as empty", file=sys.stderr)


def _read_password_file(path: str) -> str:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise DatastoreUnavailable(f"cannot read etcd password file {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise DatastoreUnavailable(f"etcd password file {path} is not UTF-8 text") from None
    password = text.rstrip("\r\n")
    if not password:
        raise DatastoreUnavailable(f"etcd password file {path} is empty")
    return password


def open_datastore(url: str | None = None, **etcd_options: Any) -> Datastore:
    """Open the datastore a URL names (resolved as ``resolve_datastore_url``).

    ``create=`` (SQLite): True (default) = create a missing file now; None = a
    missing file is created by the first write, and reads of it see an empty
    store without creating anything (what the CLI wants); False = never create.
    A new file other than the default path is announced on stderr; with
    ``note_missing_read=True`` so is a read of a store that does not exist yet.

    ``etcd_options``: ``endpoints``, ``ca_cert_file``, ``cert_file``,
    ``key_file``, ``username``, ``password`` (None = from the environment),
    ``password_file`` (read the password from this file), ``argv_password``
    (as ``password``, with a warning that it shows in the process list) and any further
    ``EtcdDatastore`` keyword (``prefix``, ``timeout``, ...).
    Raises DatastoreUnavailable for an unusable or unsupported URL; no message
    shows a password given in the URL."""
    if url is not None and not url.strip():
        raise DatastoreUnavailable(f"the datastore URL is empty; expected {_ACCEPTED}")
    create: bool | None = etcd_options.pop("create", True)
    note_missing_read: bool = etcd_options.pop("note_missing_read", False)
    settings_opts = {name: etcd_options.pop(name, None) for name in ETCD_ENV}
    argv_password = etcd_options.pop("argv_password", None)
    if argv_password:
        print(
            "warning: an etcd password given on the command line is visible to other users in the "
            "process list; use --etcd-password-file or $ETCD_PASSWORD",
            file=sys.stderr,
        )
        settings_opts["password"] = settings_opts["password"] or argv_password
    password_file = etcd_options.pop("password_file", None)
    if password_file:
        if settings_opts["password"]:
            raise DatastoreUnavailable("give the etcd password once: a password or a password file, not both")
        settings_opts["password"] = _read_password_file(password_file)
    resolved = resolve_datastore_url(url, etcd_endpoints=settings_opts["endpoints"]).strip()
    shown = redact_url(resolved)
    scheme, sep, rest = resolved.partition("://")
    scheme = scheme.lower()
    if sep and scheme == "sqlite":
        # "sqlite:///abs" leaves "/abs"; "sqlite://rel/path" leaves "rel/path".
        if not rest:
            raise DatastoreUnavailable(f"datastore URL {shown!r} has no path; expected {_ACCEPTED}")
        return SqliteDatastore(
            rest, create=create, on_create=_announce_created,
            on_missing_read=_announce_missing if note_missing_read else None,
        )
    if sep and scheme in ("etcd", "etcds", "etcdv3"):
        try:
            return _open_etcd(shown, rest, tls=scheme == "etcds", options=settings_opts, extra=etcd_options)
        except DatastoreUnavailable as exc:
            raise DatastoreUnavailable(redact_url(str(exc))) from None
    raise DatastoreUnavailable(f"unsupported datastore URL {shown!r}; expected {_ACCEPTED}")


def _open_etcd(
    resolved: str, rest: str, *, tls: bool, options: dict[str, Any], extra: dict[str, Any]
) -> Datastore:
    hosts = rest.strip().rstrip("/")
    userinfo, at, host_part = hosts.rpartition("@")
    if at:  # etcd://user:password@host:port
        hosts = host_part
        user, _, secret = userinfo.partition(":")
        if not options.get("username"):
            options["username"] = urllib.parse.unquote(user) or None
        if secret and not options.get("password"):
            options["password"] = urllib.parse.unquote(secret)
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
        raise DatastoreUnavailable(redact_url(f"datastore URL {resolved!r}: {exc}")) from None
