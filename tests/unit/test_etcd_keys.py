"""The etcd backend's pure parts: key layout, sharding, commit planning, URLs and
settings (no etcd server needed)."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest
from hypothesis import given, strategies as st

from seawall.api.kinds import KINDS
from seawall.datastore import DatastoreUnavailable, etcd_keys as ek, open_datastore, resolve_datastore_url
from seawall.datastore.etcd import EtcdDatastore, normalise_endpoints
from seawall.datastore.url import etcd_settings

GEN = ek.new_generation(1_700_000_000_000_000_000, 0xDEADBEEF)


def test_plurals_match_the_api_kinds() -> None:
    assert ek.PLURALS == {kind: info.plural for kind, info in KINDS.items()}


def test_calico_key_layout() -> None:
    layout = ek.KeyLayout()
    assert layout.prefix == "/calico/resources/v3/projectcalico.org/"
    assert layout.head_key("GlobalNetworkSet", "dos-blocklist") == (
        b"/calico/resources/v3/projectcalico.org/globalnetworksets/dos-blocklist"
    )
    assert layout.head_key("GlobalNetworkPolicy", "p") == b"/calico/resources/v3/projectcalico.org/globalnetworkpolicies/p"
    assert layout.head_key("HostEndpoint", "h") == b"/calico/resources/v3/projectcalico.org/hostendpoints/h"
    assert layout.head_key("FelixConfiguration", "default") == (
        b"/calico/resources/v3/projectcalico.org/felixconfigurations/default"
    )
    assert layout.resources_prefix() == b"/calico/resources/v3/projectcalico.org/"
    assert layout.resources_prefix("HostEndpoint") == b"/calico/resources/v3/projectcalico.org/hostendpoints/"
    assert layout.shard_prefix == "/seawall/shards/calico/resources/v3/projectcalico.org/"
    assert layout.shard_key("GlobalNetworkSet", "s", GEN, 3) == (
        f"/seawall/shards/calico/resources/v3/projectcalico.org/globalnetworksets/s/{GEN}/00000003".encode()
    )


def test_prefix_normalised_and_must_not_overlap() -> None:
    assert ek.KeyLayout("/x/y").prefix == "/x/y/"
    assert ek.KeyLayout("/x/y").shard_prefix == "/seawall/shards/x/y/"
    with pytest.raises(ValueError):
        ek.KeyLayout("relative/")
    with pytest.raises(ValueError):
        ek.KeyLayout("/a/", "/a/shards/")
    with pytest.raises(ValueError):
        ek.KeyLayout("/a/b/", "/a/")


@pytest.mark.parametrize(
    ("kind", "name"),
    [
        ("GlobalNetworkSet", "a"),
        ("K", "a"),
        ("J", "x"),
        ("hostendpoints", "n"),  # an unknown kind spelled like a plural
        ("Globalnetworksets", "n"),
        ("K", "with/slash"),
        ("K", "100%"),
        ("K", "ünïcødé-✓"),
        ("K/slash", "n"),
        ("K", "."),
    ],
)
def test_head_keys_round_trip(kind: str, name: str) -> None:
    layout = ek.KeyLayout()
    key = layout.head_key(kind, name)
    assert layout.parse_head_key(key) == (kind, name)
    assert key.startswith(layout.resources_prefix(kind))


def test_unknown_kind_never_collides_with_a_plural() -> None:
    layout = ek.KeyLayout()
    assert layout.head_key("hostendpoints", "n") != layout.head_key("HostEndpoint", "n")
    assert layout.parse_head_key(layout.head_key("hostendpoints", "n")) == ("hostendpoints", "n")


@given(st.text(min_size=1, max_size=20), st.text(min_size=1, max_size=20))
def test_head_keys_round_trip_for_any_text(kind: str, name: str) -> None:
    layout = ek.KeyLayout("/p/")
    key = layout.head_key(kind, name)
    assert layout.parse_head_key(key) == (kind, name)
    # one kind's prefix range holds only that kind's keys
    assert key.startswith(layout.resources_prefix(kind))


def test_parse_head_key_rejects_foreign_keys() -> None:
    layout = ek.KeyLayout()
    assert layout.parse_head_key(b"/other/x") is None
    assert layout.parse_head_key(b"/calico/resources/v3/projectcalico.org/networkpolicies/ns/name") is None
    assert layout.parse_head_key(b"/calico/resources/v3/projectcalico.org/hostendpoints/") is None
    assert layout.parse_head_key(b"/calico/resources/v3/projectcalico.org/\xff/x") is None
    assert layout.parse_head_key(layout.shard_key("K", "a", GEN, 0)) is None


def test_shard_keys_parse_and_sort_numerically() -> None:
    layout = ek.KeyLayout()
    keys = [layout.shard_key("K", "a/b", GEN, i) for i in (0, 2, 10, 9)]
    assert [layout.parse_shard_key(k) for k in sorted(keys)] == [
        ("K", "a/b", GEN, i) for i in (0, 2, 9, 10)
    ]
    assert layout.parse_shard_key(layout.head_key("K", "a")) is None
    assert layout.parse_shard_key(layout.shards_prefix("K", "a") + b"nothex/00000000") is None


def test_shard_ranges_are_per_resource_and_per_generation() -> None:
    layout = ek.KeyLayout()
    other = ek.new_generation(1_700_000_000_000_000_001, 1)
    start, end = layout.generation_range("K", "a", GEN)
    assert start <= layout.shard_key("K", "a", GEN, 0) < end
    assert start <= layout.shard_key("K", "a", GEN, 99_999_999) < end
    assert not start <= layout.shard_key("K", "a", other, 0) < end
    all_start, all_end = layout.shards_range("K", "a")
    assert all_start <= layout.shard_key("K", "a", other, 5) < all_end
    # "a" does not cover "ab"
    assert not all_start <= layout.shard_key("K", "ab", GEN, 0) < all_end
    assert ek.range_end(b"/a/") == b"/a0"
    assert ek.range_end(b"a\xff") == b"b"
    assert ek.range_end(b"\xff\xff") == b"\x00"


def test_generations() -> None:
    assert GEN == "17979cfe362a0000deadbeef"
    assert ek.generation_time_ns(GEN) == 1_700_000_000_000_000_000
    assert ek.check_generation(GEN) == GEN
    for bad in ("", "xyz", GEN.upper(), GEN + "0", "../" + GEN[3:]):
        with pytest.raises(ValueError):
            ek.check_generation(bad)


def test_split_and_assemble_round_trip() -> None:
    value = {"apiVersion": "projectcalico.org/v3", "kind": "GlobalNetworkSet",
             "metadata": {"name": "s", "labels": {"a": "b"}}, "spec": {"nets": [f"10.0.{i}.0/24" for i in range(200)]}}
    data = ek.encode_document(value)
    chunks = ek.split(data, 100)
    assert b"".join(chunks) == data
    assert all(len(c) == 100 for c in chunks[:-1]) and 0 < len(chunks[-1]) <= 100
    manifest = ek.make_manifest(GEN, data, chunks)
    assert manifest == ek.Manifest(GEN, len(chunks), len(data), hashlib.sha256(data).hexdigest())
    assert ek.assemble(manifest, dict(enumerate(chunks))) == value
    assert ek.split(b"", 10) == [b""]


def test_assemble_detects_missing_and_corrupt_shards() -> None:
    data = ek.encode_document({"spec": {"nets": ["10.0.0.0/8"] * 50}})
    chunks = ek.split(data, 64)
    manifest = ek.make_manifest(GEN, data, chunks)
    shards = dict(enumerate(chunks))
    del shards[1]
    with pytest.raises(ek.ShardError, match="missing"):
        ek.assemble(manifest, shards)
    shards[1] = chunks[2]
    with pytest.raises(ek.ShardError, match="checksum"):
        ek.assemble(manifest, shards)


def test_head_is_a_calico_shaped_stub_with_the_manifest() -> None:
    value = {"apiVersion": "projectcalico.org/v3", "kind": "GlobalNetworkSet",
             "metadata": {"name": "big", "labels": {"role": "blocklist"}, "annotations": {"x": "y"}},
             "spec": {"nets": ["10.0.0.0/8"] * 1000}}
    data = ek.encode_document(value)
    chunks = ek.split(data, 1000)
    manifest = ek.make_manifest(GEN, data, chunks)
    head = ek.make_head(value, manifest, "/seawall/shards/x/")
    assert head["apiVersion"] == "projectcalico.org/v3" and head["kind"] == "GlobalNetworkSet"
    assert head["metadata"]["name"] == "big" and head["metadata"]["labels"] == {"role": "blocklist"}
    assert head["metadata"]["annotations"]["x"] == "y"
    assert "shards" in head["metadata"]["annotations"][ek.SHARD_ANNOTATION]
    assert "spec" not in head
    assert value["metadata"]["annotations"] == {"x": "y"}  # the caller's value is not modified
    assert ek.parse_manifest(json.loads(ek.encode_document(head))) == manifest
    assert ek.parse_manifest(value) is None
    assert ek.parse_manifest([1, 2]) is None
    with pytest.raises(ek.ShardError):
        ek.parse_manifest({ek.MANIFEST_KEY: {"generation": "nope"}})


def test_must_shard() -> None:
    assert not ek.must_shard({"a": 1}, 100, 100)
    assert ek.must_shard({"a": 1}, 101, 100)
    assert ek.must_shard({ek.MANIFEST_KEY: 1}, 5, 100)  # a look-alike is always sharded


def test_chunk_size_respects_the_request_limit() -> None:
    assert ek.chunk_size_for(1024 * 1024) == 1024 * 1024 - ek.REQUEST_OVERHEAD_BYTES
    assert ek.chunk_size_for(1024 * 1024, 7) == 7
    assert ek.chunk_size_for(1024 * 1024, 10**9) == 1024 * 1024 - ek.REQUEST_OVERHEAD_BYTES
    with pytest.raises(ValueError):
        ek.chunk_size_for(100)
    with pytest.raises(ValueError):
        ek.chunk_size_for(1024 * 1024, 0)


MiB = 1024 * 1024


def test_plan_small_documents_stay_plain() -> None:
    assert ek.plan_placements([10, None, 2000], [False, False, False], threshold=MiB, chunk_size=MiB - 8192,
                              max_request_bytes=MiB) == [ek.PLAIN, None, ek.PLAIN]


def test_plan_big_document_is_prewritten_small_sharded_one_goes_in_txn() -> None:
    sizes = [20 * MiB, 300, 50]
    assert ek.plan_placements(sizes, [False, False, True], threshold=200, chunk_size=MiB - 8192,
                              max_request_bytes=MiB) == [ek.PREWRITTEN, ek.IN_TXN, ek.IN_TXN]


def test_plan_shards_plain_documents_that_do_not_fit_together() -> None:
    sizes = [600 * 1024, 600 * 1024]  # each under the threshold, both together too big
    placements = ek.plan_placements(sizes, [False, False], threshold=MiB - 8192, chunk_size=MiB - 8192,
                                    max_request_bytes=MiB)
    assert placements.count(ek.PLAIN) == 1
    assert set(placements) == {ek.PLAIN, ek.PREWRITTEN}


@given(st.lists(st.one_of(st.none(), st.integers(0, 5 * MiB)), min_size=1, max_size=20), st.integers(0, 2 * MiB))
def test_plan_invariants(sizes: list[int | None], threshold: int) -> None:
    placements = ek.plan_placements(sizes, [False] * len(sizes), threshold=threshold, chunk_size=MiB - 8192,
                                    max_request_bytes=MiB)
    for size, placement in zip(sizes, placements, strict=True):
        if size is None:
            assert placement is None
        elif size > threshold:
            assert placement in (ek.IN_TXN, ek.PREWRITTEN)
    in_request = sum((s or 0) for s, p in zip(sizes, placements, strict=True) if p in (ek.PLAIN, ek.IN_TXN))
    if any(p == ek.PLAIN for p in placements) or any(p == ek.IN_TXN for p in placements):
        plain_heads = [s for s, p in zip(sizes, placements, strict=True) if p == ek.PLAIN]
        # either it fits, or nothing is left to shard (the caller's exact check reports it)
        assert in_request <= MiB or not plain_heads


# ------------------------------------------------------- URLs and endpoints

ETCD_VARS = ("SEAWALL_DATASTORE", "ETCD_ENDPOINTS", "ETCD_CA_CERT_FILE", "ETCD_CERT_FILE", "ETCD_KEY_FILE",
             "ETCD_USERNAME", "ETCD_PASSWORD")


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for var in ETCD_VARS:
        monkeypatch.delenv(var, raising=False)
    return monkeypatch


def test_normalise_endpoints() -> None:
    assert normalise_endpoints("http://a:1, https://b:2/") == (["a:1", "b:2"], True)
    assert normalise_endpoints(["10.0.0.1:2379", "etcd"]) == (["10.0.0.1:2379", "etcd:2379"], False)
    assert normalise_endpoints("[::1]:2379") == (["[::1]:2379"], False)
    for bad in ("", " , ", "http://a:1/path", "a:0", "a:99999"):
        with pytest.raises(ValueError):
            normalise_endpoints(bad)


def test_store_selection_order(clean_env: pytest.MonkeyPatch) -> None:
    assert resolve_datastore_url(None) == "sqlite:///var/lib/seawall/seawall.db"
    clean_env.setenv("ETCD_ENDPOINTS", "http://e:2379")
    assert resolve_datastore_url(None) == "etcd://"  # as calicoctl: an etcd endpoint selects etcd
    clean_env.setenv("SEAWALL_DATASTORE", "sqlite:///x.db")
    assert resolve_datastore_url(None) == "sqlite:///x.db"
    assert resolve_datastore_url(None, etcd_endpoints="http://f:1") == "etcd://"  # a flag beats the env
    assert resolve_datastore_url("etcd://g:1", etcd_endpoints="http://f:1") == "etcd://g:1"


def test_flags_win_over_calico_environment(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("ETCD_ENDPOINTS", "http://env:1")
    clean_env.setenv("ETCD_USERNAME", "envuser")
    clean_env.setenv("ETCD_PASSWORD", "envpw")
    clean_env.setenv("ETCD_CA_CERT_FILE", "/env/ca.pem")
    settings = etcd_settings("", endpoints=None, username="flaguser", ca_cert_file="")
    assert settings == {"endpoints": "http://env:1", "ca_cert_file": "/env/ca.pem", "cert_file": None,
                        "key_file": None, "username": "flaguser", "password": "envpw"}
    assert etcd_settings("url:1", endpoints="http://flag:1")["endpoints"] == "url:1"
    assert etcd_settings("", endpoints="http://flag:1")["endpoints"] == "http://flag:1"


def test_open_etcd_urls_without_connecting(clean_env: pytest.MonkeyPatch, tmp_path: Any) -> None:
    with open_datastore("etcd://127.0.0.1:1,127.0.0.2:1") as ds:  # lazy: no connection yet
        assert isinstance(ds, EtcdDatastore)
        assert ds.endpoints == ["127.0.0.1:1", "127.0.0.2:1"] and not ds.tls
        assert ds.layout.prefix == ek.DEFAULT_PREFIX
    with open_datastore("etcds://127.0.0.1:1") as ds:
        assert ds.tls
    clean_env.setenv("ETCD_ENDPOINTS", "https://127.0.0.1:1")
    with open_datastore() as ds:
        assert isinstance(ds, EtcdDatastore) and ds.tls and ds.endpoints == ["127.0.0.1:1"]
    with open_datastore("etcd://", endpoints="http://127.0.0.3:5", prefix="/other/") as ds:
        assert ds.endpoints == ["127.0.0.3:5"] and ds.layout.prefix == "/other/"
    clean_env.delenv("ETCD_ENDPOINTS")
    for bad, match in [("etcd://", "no etcd endpoints"), ("etcd://h:1/path", "no path"),
                       ("etcd://h:1?x=1", "no path"), ("etcd://h:0", "bad etcd endpoint")]:
        with pytest.raises(DatastoreUnavailable, match=match):
            open_datastore(bad)
    with pytest.raises(DatastoreUnavailable, match="cannot read"):
        open_datastore("etcd://h:1", ca_cert_file=str(tmp_path / "missing.pem"))
    with pytest.raises(DatastoreUnavailable, match="cert and key"):
        open_datastore("etcd://h:1", cert_file=str(tmp_path / "c.pem"))


def test_a_closed_handle_refuses_calls() -> None:
    ds = EtcdDatastore(["127.0.0.1:1"])
    ds.close()
    ds.close()
    with pytest.raises(DatastoreUnavailable, match="closed"):
        ds.get("K", "a")
    with pytest.raises(DatastoreUnavailable, match="closed"):
        ds.watch(1)
