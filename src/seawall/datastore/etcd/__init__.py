"""The etcd v3 backend: Calico's key layout, etcd's own revisions.

* Keys: ``/calico/resources/v3/projectcalico.org/<plural>/<name>`` holds the
  resource's JSON document (see :mod:`seawall.datastore.etcd_keys`);
  ``resourceVersion`` is the key's ``mod_revision``; revisions are etcd's
  (global, one per transaction), which is exactly the interface's contract.
* ``commit`` is one etcd transaction: per-op compares (create: create_revision
  == 0; update/delete: the key exists, and mod_revision == expected when
  given). The failure branch reads the op keys, so a failed commit tells in the
  same round trip which op failed and with which revision, and writes nothing.
* Documents too big for one etcd request (etcd rejects > 1.5 MiB; a 1M-CIDR
  GlobalNetworkSet is ~20 MB) are sharded: shards under a fresh *generation*,
  then the head swap (the commit transaction, which also deletes every other
  generation of that resource) is the atomic commit point. Shards that fit go
  into the commit transaction itself. See docs/design/etcd.md.
* ``watch`` is our own loop on the raw Watch stream (prev_kv on): it resumes
  after a dropped connection from the revision after the last event it
  delivered, which etcd replays from history -- or reports as compacted, which
  raises RevisionCompacted. A changed cluster id or a revision going backwards
  raises DatastoreError (relist). etcd unreachable for longer than
  ``reconnect_window`` raises DatastoreUnavailable.

The client is ``etcd3aio`` (grpc.aio + protobuf-7-compatible generated stubs);
we call its stubs directly with our own retry policy, because its service
layer retries non-idempotent Txn calls on UNAVAILABLE and its watch helper
resumes from ``header.revision + 1`` (which can skip events). The interface is
synchronous and thread-safe: every RPC runs on one private event-loop thread
per datastore handle, bridged with ``asyncio.run_coroutine_threadsafe``.

The package, one job a module: ``endpoints`` (parsing endpoints, the gRPC
target, certificate files), ``connection`` (channel, loop thread, auth, error
mapping, the retry policy), ``documents`` (head values and shards back into
documents), ``reads`` (get/list/current_revision), ``writes`` (commit,
compact) and ``watch``. :class:`EtcdDatastore` is their composition.
"""

from __future__ import annotations

from seawall.datastore.etcd.connection import DEFAULT_PREFIX
from seawall.datastore.etcd.endpoints import normalise_endpoints
from seawall.datastore.etcd.reads import EtcdReads
from seawall.datastore.etcd.watch import EtcdWatch
from seawall.datastore.etcd.writes import EtcdWrites
from seawall.datastore.interface import Datastore

__all__ = ["DEFAULT_PREFIX", "EtcdDatastore", "normalise_endpoints"]


class EtcdDatastore(EtcdReads, EtcdWrites, EtcdWatch, Datastore):
    """etcd v3 datastore. ``endpoints``: ``host:port`` or ``http(s)://host:port``.

    TLS is used when ``tls`` is true, an endpoint is ``https://``, or a CA or
    client certificate is given (``ca_cert``/``cert``/``key`` are PEM file
    paths). ``username``/``password`` authenticate with etcd's auth (the token
    is renewed when etcd reports it invalid). ``timeout`` bounds each request;
    a read is retried while etcd is unreachable for up to ``retry_window``
    seconds, a write only when it certainly was not sent. Documents larger
    than ``shard_threshold`` bytes of JSON are sharded in chunks of at most
    ``shard_size`` bytes; no request is larger than ``max_request_bytes`` or
    has more than ``max_txn_ops`` operations (etcd's --max-txn-ops, 128 by default)."""
