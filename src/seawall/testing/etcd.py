"""Throwaway etcd servers for tests and benchmarks.

:func:`etcd_server` starts Debian's ``etcd`` (apt package ``etcd-server``) on
random free ports with a temporary data dir and tuned raft timers, so a fresh,
single-member server is healthy in ~100 ms (see
/work/shared/reference/datastore-notes.md). It can run inside a network
namespace (``ip netns exec``), serve TLS with client certificates
(:func:`make_tls`), and be stopped and started again on the same ports and
data dir to test failure paths. The server is always stopped and its temporary
data dir removed on exit, including when the body raises.

No root is needed unless ``netns`` is given.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import random
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, TypeVar

__all__ = [
    "EtcdServer",
    "EtcdServerError",
    "EtcdTls",
    "etcd_binary",
    "etcd_server",
    "have_etcd",
    "install_hint",
    "make_tls",
]

#: What to run when etcd is missing (used in pytest skip messages).
install_hint = "etcd is not installed: apt-get install -y etcd-server etcd-client"

T = TypeVar("T")

_HEALTH_TIMEOUT = 15.0
_STOP_TIMEOUT = 10.0
_PORT_ATTEMPTS = 8
CLONE_NEWNET = 0x40000000


class EtcdServerError(RuntimeError):
    """etcd did not start or become healthy; the message carries its log tail."""


def etcd_binary() -> str | None:
    """Path of the ``etcd`` binary, or None."""
    return shutil.which("etcd")


def etcdctl_binary() -> str | None:
    return shutil.which("etcdctl")


def have_etcd() -> bool:
    return etcd_binary() is not None


@dataclass(frozen=True, slots=True)
class EtcdTls:
    """Paths of a CA and the server/client certificates it signed (PEM)."""

    ca_cert: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path


def _openssl(*args: str, cwd: Path) -> None:
    result = subprocess.run(
        ["openssl", *args], cwd=cwd, capture_output=True, text=True, timeout=60, check=False
    )
    if result.returncode != 0:
        raise EtcdServerError(f"openssl {' '.join(args)}: {result.stderr.strip()}")


def make_tls(directory: Path, *, hosts: tuple[str, ...] = ("127.0.0.1", "localhost")) -> EtcdTls:
    """Generate a CA, a server certificate (SANs: ``hosts``) and a client
    certificate in ``directory`` with ``openssl`` (EC P-256, 1 day)."""
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    sans = ",".join(
        (f"IP:{h}" if _is_ip(h) else f"DNS:{h}") for h in hosts
    )
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    _openssl("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.crt", "-days", "1",
             "-subj", "/CN=seawall-test-ca", cwd=d)
    for name, cn, usage, extra in (
        ("server", "seawall-etcd", "serverAuth,clientAuth", f"subjectAltName={sans}"),
        ("client", "root", "clientAuth", None),
    ):
        _openssl("req", "-new", *ec, "-keyout", f"{name}.key", "-out", f"{name}.csr",
                 "-subj", f"/CN={cn}", cwd=d)
        ext = d / f"{name}.ext"
        lines = ["basicConstraints=CA:FALSE", "keyUsage=digitalSignature,keyEncipherment",
                 f"extendedKeyUsage={usage}"]
        if extra:
            lines.append(extra)
        ext.write_text("\n".join(lines) + "\n")
        _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
                 "-CAcreateserial", "-out", f"{name}.crt", "-days", "1", "-extfile", ext.name,
                 cwd=d)
    return EtcdTls(
        ca_cert=d / "ca.crt",
        server_cert=d / "server.crt",
        server_key=d / "server.key",
        client_cert=d / "client.crt",
        client_key=d / "client.key",
    )


def _is_ip(host: str) -> bool:
    try:
        socket.inet_pton(socket.AF_INET6 if ":" in host else socket.AF_INET, host)
    except OSError:
        return False
    return True


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


_libc = ctypes.CDLL(None, use_errno=True)


def _in_thread_netns(netns: str | None, fn: Callable[[], T]) -> T:
    """Run ``fn()`` in a fresh thread moved into ``netns`` (setns is per thread),
    so sockets it creates live in that namespace. Returns fn's result."""
    if netns is None:
        return fn()
    box: dict[str, Any] = {}

    def run() -> None:
        try:
            fd = os.open(f"/run/netns/{netns}", os.O_RDONLY)
            try:
                if _libc.setns(fd, CLONE_NEWNET) != 0:
                    err = ctypes.get_errno()
                    raise OSError(err, f"setns({netns}): {os.strerror(err)}")
            finally:
                os.close(fd)
            box["result"] = fn()
        except BaseException as exc:  # noqa: BLE001 - re-raised in the caller
            box["error"] = exc

    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join()
    if "error" in box:
        raise box["error"]
    result: T = box["result"]
    return result


def _free_port(host: str) -> int:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


class EtcdServer:
    """A running (or stopped) single-member etcd. Create with :func:`etcd_server`."""

    def __init__(
        self,
        *,
        host: str,
        client_port: int,
        peer_port: int,
        data_dir: Path,
        log_path: Path,
        netns: str | None,
        tls: EtcdTls | None,
        extra_args: tuple[str, ...] = (),
    ) -> None:
        self.host = host
        self.client_port = client_port
        self.peer_port = peer_port
        self.data_dir = data_dir
        self.log_path = log_path
        self.netns = netns
        self.tls = tls
        self.extra_args = extra_args
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: BinaryIO | None = None
        self.startup_seconds: float | None = None

    # --- addresses ---------------------------------------------------------------

    @property
    def endpoint(self) -> str:
        """``host:port`` of the client listener."""
        return f"{_url_host(self.host)}:{self.client_port}"

    @property
    def scheme(self) -> str:
        return "https" if self.tls else "http"

    @property
    def client_url(self) -> str:
        """``http(s)://host:port`` (etcd's and Calico's ETCD_ENDPOINTS form)."""
        return f"{self.scheme}://{self.endpoint}"

    @property
    def url(self) -> str:
        """Seawall datastore URL: ``etcd://host:port`` (``etcds://`` with TLS; the
        certificates then come from ETCD_*_FILE / options, see :meth:`client_options`)."""
        return f"{'etcds' if self.tls else 'etcd'}://{self.endpoint}"

    def client_options(self) -> dict[str, str]:
        """Keyword options for ``EtcdDatastore``/``open_datastore`` (TLS files)."""
        if not self.tls:
            return {}
        return {
            "ca_cert": str(self.tls.ca_cert),
            "cert": str(self.tls.client_cert),
            "key": str(self.tls.client_key),
        }

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    # --- lifecycle -----------------------------------------------------------------

    def _command(self) -> list[str]:
        etcd = etcd_binary()
        if etcd is None:
            raise EtcdServerError(install_hint)
        h = _url_host(self.host)
        peer = f"http://{h}:{self.peer_port}"
        cmd = [
            etcd,
            "--name", "seawall-test",
            "--data-dir", str(self.data_dir),
            "--listen-client-urls", self.client_url,
            "--advertise-client-urls", self.client_url,
            "--listen-peer-urls", peer,
            "--initial-advertise-peer-urls", peer,
            "--initial-cluster", f"seawall-test={peer}",
            "--initial-cluster-state", "new",
            "--heartbeat-interval", "10",
            "--election-timeout", "100",
            "--log-level", "error",
            "--logger", "zap",
        ]
        if self.tls:
            cmd += [
                "--cert-file", str(self.tls.server_cert),
                "--key-file", str(self.tls.server_key),
                "--trusted-ca-file", str(self.tls.ca_cert),
                "--client-cert-auth",
            ]
        cmd += list(self.extra_args)
        if self.netns:
            cmd = ["ip", "netns", "exec", self.netns, *cmd]
        return cmd

    def _spawn(self) -> None:
        self.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - closed in _reap
        self._proc = subprocess.Popen(
            self._command(),
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def log_tail(self, chars: int = 2000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def _health_once(self) -> bool:
        url = f"{self.client_url}/health"

        def probe() -> bool:
            ctx = None
            if self.tls:
                ctx = ssl.create_default_context(cafile=str(self.tls.ca_cert))
                ctx.load_cert_chain(str(self.tls.client_cert), str(self.tls.client_key))
            # No proxies: the environment may set some, and this is loopback.
            opener = urllib.request.build_opener(
                urllib.request.ProxyHandler({}), urllib.request.HTTPSHandler(context=ctx)
            )
            try:
                with opener.open(url, timeout=1.0) as resp:
                    body = json.loads(resp.read() or b"{}")
            except (urllib.error.URLError, OSError, ValueError):
                return False
            return str(body.get("health")) == "true"

        return bool(_in_thread_netns(self.netns, probe))

    def wait_healthy(self, timeout: float = _HEALTH_TIMEOUT) -> None:
        """Block until ``/health`` says true; raise EtcdServerError if the process
        exits or ``timeout`` passes."""
        deadline = time.monotonic() + timeout
        while True:
            if not self.running:
                raise EtcdServerError(
                    f"etcd exited with {self._proc.returncode if self._proc else None} "
                    f"before becoming healthy:\n{self.log_tail()}"
                )
            if self._health_once():
                return
            if time.monotonic() > deadline:
                raise EtcdServerError(f"etcd not healthy after {timeout:.0f} s:\n{self.log_tail()}")
            time.sleep(0.01)

    def start(self, *, timeout: float = _HEALTH_TIMEOUT) -> None:
        """(Re)start on the same ports and data dir and wait until healthy."""
        if self.running:
            return
        self._reap()
        t0 = time.monotonic()
        self._spawn()
        try:
            self.wait_healthy(timeout)
        except BaseException:
            self._terminate(signal.SIGKILL)
            raise
        self.startup_seconds = time.monotonic() - t0

    def _terminate(self, sig: int) -> None:
        proc = self._proc
        if proc is None:
            return
        if proc.poll() is None:
            try:
                # The whole session: with ``ip netns exec`` etcd is a child process.
                os.killpg(proc.pid, sig)
            except ProcessLookupError:
                pass
            try:
                proc.wait(_STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(_STOP_TIMEOUT)
        self._reap()

    def _reap(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None

    def stop(self) -> None:
        """SIGTERM and wait (the data dir is kept, so :meth:`start` resumes it)."""
        self._terminate(signal.SIGTERM)

    def kill(self) -> None:
        """SIGKILL (a crash) and wait; the data dir is kept."""
        self._terminate(signal.SIGKILL)

    # --- tools -------------------------------------------------------------------

    def etcdctl(
        self, *args: str, user: str | None = None, check: bool = True, timeout: float = 30
    ) -> subprocess.CompletedProcess[str]:
        """Run ``etcdctl`` (API v3) against this server (inside its netns, with its
        TLS client certificate). ``user`` is ``name:password`` for an auth-enabled server."""
        ctl = etcdctl_binary()
        if ctl is None:
            raise EtcdServerError(install_hint)
        cmd = [ctl, f"--endpoints={self.client_url}", "--dial-timeout=3s", "--command-timeout=10s"]
        if self.tls:
            cmd += [
                f"--cacert={self.tls.ca_cert}",
                f"--cert={self.tls.client_cert}",
                f"--key={self.tls.client_key}",
            ]
        if user:
            cmd.append(f"--user={user}")
        cmd += list(args)
        if self.netns:
            cmd = ["ip", "netns", "exec", self.netns, *cmd]
        env = dict(os.environ, ETCDCTL_API="3")
        result = subprocess.run(
            cmd, capture_output=True, text=True, timeout=timeout, check=False, env=env
        )
        if check and result.returncode != 0:
            raise EtcdServerError(
                f"etcdctl {' '.join(args)}: exit {result.returncode}: {result.stderr.strip()}"
            )
        return result

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        ns = f" netns={self.netns}" if self.netns else ""
        return f"<EtcdServer {self.client_url}{ns} {state}>"


def _bind_failed(server: EtcdServer) -> bool:
    return "address already in use" in server.log_tail(8000).lower()


@contextlib.contextmanager
def etcd_server(
    *,
    netns: str | None = None,
    host: str = "127.0.0.1",
    data_dir: Path | None = None,
    tls: EtcdTls | None = None,
    extra_args: tuple[str, ...] = (),
    timeout: float = _HEALTH_TIMEOUT,
) -> Iterator[EtcdServer]:
    """A healthy single-member etcd on random free ports of ``host`` (inside
    network namespace ``netns`` when given). Always stopped on exit; a temporary
    data dir (the default) is removed; a caller-supplied ``data_dir`` is left
    to the caller. ``extra_args`` are appended to etcd's command line."""
    if etcd_binary() is None:
        raise EtcdServerError(install_hint)
    if netns is not None and host in ("127.0.0.1", "::1", "localhost"):
        # A bare ``ip netns add`` namespace has lo down; loopback needs it up.
        subprocess.run(
            ["ip", "-n", netns, "link", "set", "lo", "up"],
            capture_output=True, text=True, timeout=30, check=False,
        )
    workdir = Path(tempfile.mkdtemp(prefix="seawall-etcd-"))
    server: EtcdServer | None = None
    try:
        rng = random.SystemRandom()
        last_error: EtcdServerError | None = None
        for _attempt in range(_PORT_ATTEMPTS):
            if netns is None:
                # Ask the kernel for free ports; the tiny race is covered by the retry.
                client_port, peer_port = _free_port(host), _free_port(host)
                while peer_port == client_port:
                    peer_port = _free_port(host)
            else:
                # Host ports say nothing about the namespace's: pick random ones below the
                # ephemeral range (a client's source port never collides with them).
                client_port = rng.randrange(20000, 32000)
                peer_port = client_port + 1
            dd = data_dir if data_dir is not None else workdir / "data"
            if data_dir is None and dd.exists():
                shutil.rmtree(dd)
            server = EtcdServer(
                host=host,
                client_port=client_port,
                peer_port=peer_port,
                data_dir=dd,
                log_path=workdir / "etcd.log",
                netns=netns,
                tls=tls,
                extra_args=extra_args,
            )
            with contextlib.suppress(OSError):
                server.log_path.unlink()
            try:
                server.start(timeout=timeout)
            except EtcdServerError as exc:
                if _bind_failed(server):
                    last_error = exc
                    continue
                raise
            break
        else:
            raise EtcdServerError(f"no free ports after {_PORT_ATTEMPTS} attempts: {last_error}")
        yield server
    finally:
        if server is not None:
            server.stop()
        shutil.rmtree(workdir, ignore_errors=True)
