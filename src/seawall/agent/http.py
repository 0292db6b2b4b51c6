"""The agent's two small HTTP endpoints (Prometheus metrics, health), each a
``ThreadingHTTPServer`` in a daemon thread that follows the FelixConfiguration.

Why here and not ``prometheus_client.start_http_server``: both endpoints need
the same life cycle — start when enabled, restart on a host/port change, stop
when disabled or when the agent stops — and a port already in use must be
reported and retried, never crash the agent. What to do is decided by pure
functions (``metrics_endpoint``, ``health_endpoint``, ``plan``); ``ManagedServer``
only carries it out. Handlers answer from data the loop already published:
a request never touches the kernel.
"""

from __future__ import annotations

import logging
import socket
import socketserver
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Literal
from urllib.parse import urlsplit

from seawall.api.felix import EffectiveFelixConfig

log = logging.getLogger("seawall.agent.http")

#: A route gets the request headers (case-insensitive ``get``) and returns (HTTP status, content type, body).
Headers = Message
Route = Callable[[Headers], tuple[int, str, bytes]]
Action = Literal["none", "start", "stop", "restart"]
REQUEST_TIMEOUT_S = 10.0


@dataclass(frozen=True, slots=True)
class Endpoint:
    host: str
    port: int

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


def metrics_endpoint(config: EffectiveFelixConfig, host: str) -> Endpoint | None:
    return Endpoint(host, config.prometheusMetricsPort) if config.prometheusMetricsEnabled else None


def health_endpoint(config: EffectiveFelixConfig) -> Endpoint | None:
    return Endpoint(config.healthHost, config.healthPort) if config.healthEnabled else None


def plan(running: Endpoint | None, wanted: Endpoint | None) -> Action:
    """What to do to get from the server that is listening (``running``; None when
    none is, including after a failed bind) to the one the configuration wants."""
    if wanted is None:
        return "none" if running is None else "stop"
    if running is None:
        return "start"
    return "none" if running == wanted else "restart"


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, endpoint: Endpoint, handler: type[BaseHTTPRequestHandler]) -> None:
        self.address_family = socket.AF_INET6 if ":" in endpoint.host else socket.AF_INET
        super().__init__((endpoint.host, endpoint.port), handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind resolves its own name (socket.getfqdn), a reverse
        # DNS lookup that can stall for seconds on a host under attack; not needed.
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = str(self.server_address[0]), int(self.server_address[1])


def _handler(routes: Mapping[str, Route]) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        timeout = REQUEST_TIMEOUT_S

        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            route = routes.get(urlsplit(self.path).path)
            if route is None:
                status, content_type, body = 404, "text/plain; charset=utf-8", b"not found\n"
            else:
                try:
                    status, content_type, body = route(self.headers)
                except Exception:  # a broken route must not kill the server thread
                    log.exception("HTTP handler for %s failed", self.path)
                    status, content_type, body = 500, "text/plain; charset=utf-8", b"internal error\n"
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - signature of the base class
            log.debug("%s %s", self.address_string(), format % args)

    return Handler


class ManagedServer:
    """One endpoint kind ("metrics", "health"): call ``apply`` with the wanted
    endpoint as often as you like; ``error`` says why it is not listening."""

    def __init__(self, name: str, routes: Mapping[str, Route]) -> None:
        self.name = name
        self.handler = _handler(routes)
        self.endpoint: Endpoint | None = None  # where it listens now
        self.error: str | None = None
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    def apply(self, wanted: Endpoint | None) -> Action:
        action = plan(self.endpoint, wanted)
        if action in ("stop", "restart"):
            self.close()
        if wanted is None:
            self.error = None
        elif action in ("start", "restart"):
            self._start(wanted)
        return action

    def _start(self, endpoint: Endpoint) -> None:
        try:
            server = _Server(endpoint, self.handler)
        except OSError as exc:  # port in use, address not on this host, ...
            error = f"cannot listen on {endpoint}: {exc.strerror or exc}; retrying"
            if error != self.error:
                log.warning("%s endpoint: %s", self.name, error)
            self.error = error
            return
        self._server, self.endpoint, self.error = server, endpoint, None
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1},
                                        name=f"seawall-{self.name}-http", daemon=True)
        self._thread.start()
        log.info("%s endpoint listening on %s", self.name, endpoint)

    def close(self) -> None:
        server, thread = self._server, self._thread
        self._server, self._thread, self.endpoint = None, None, None
        if server is not None:
            server.shutdown()
            server.server_close()
        if thread is not None:
            thread.join(timeout=5)
