"""``Documents``: big GlobalNetworkSets stored as head + content-named chunks on
every backend (SQLite, etcd, sharded etcd), read back whole, changed by writing
only the chunks that change, in one revision, with the head's compare-and-swap;
and the agent's reader (``ValidatedResources``) sees exactly the written set."""

from __future__ import annotations

import ipaddress
from typing import Any

import pytest

from seawall.api.members import CHUNK_KIND, MEMBERS_KEY, overlay_buckets_for
from seawall.calc.validated import ValidatedResources
from seawall.datastore import Conflict, Create, Datastore, Delete, NotFound, Update, members as layout
from seawall.datastore.documents import Documents, InvalidNets

from .conftest import Opener

GNS = "GlobalNetworkSet"
N = layout.CHUNKED_MIN_NETS + 904  # 5000: chunked, 8 buckets


def _nets(count: int, start: int = 0) -> list[str]:
    return [str(ipaddress.IPv4Network(((10 << 24) + ((start + i) << 8), 24))) for i in range(count)]


def _doc(name: str, nets: list[Any], labels: dict[str, str] | None = None) -> dict[str, Any]:
    return {"apiVersion": "projectcalico.org/v3", "kind": GNS,
            "metadata": {"name": name, "labels": labels or {"role": "blacklist"}}, "spec": {"nets": nets}}


def _chunks(store: Datastore) -> dict[str, dict[str, Any]]:
    return {kv.name: kv.value for kv in store.list(CHUNK_KIND).items}


def _agent_view(store: Datastore, name: str) -> frozenset[str]:
    items = [(kv.kind, kv.name, kv.value) for kv in store.list().items]
    snapshot, invalid = ValidatedResources().update(items)
    assert not invalid
    if name in snapshot.members:
        from seawall.calc.members import assemble

        return frozenset(assemble(snapshot.members[name], None)[1])
    return frozenset(snapshot.gns[name].spec.nets or [])


def _reads_as(docs: Documents, datastore: Datastore, expected: set[str]) -> None:
    """Read whole through Documents and by the agent: both give ``expected``."""
    assert set(docs.get(GNS, "big").value["spec"]["nets"]) == expected
    assert _agent_view(datastore, "big") == frozenset(expected)


def test_a_big_set_is_stored_chunked_and_read_whole(datastore: Datastore) -> None:
    docs = Documents(datastore)
    nets = _nets(N)
    docs.create(GNS, "big", _doc("big", nets))
    head = datastore.get(GNS, "big").value
    assert "nets" not in head["spec"] and head[MEMBERS_KEY]["count"] == N
    assert head[MEMBERS_KEY]["buckets"] == layout.bucket_count_for(N)
    chunks = _chunks(datastore)
    assert sum(len(c["nets"]) for c in chunks.values()) == N
    whole = docs.get(GNS, "big").value
    assert sorted(whole["spec"]["nets"]) == sorted(nets) and MEMBERS_KEY not in whole
    assert whole["metadata"] == head["metadata"]
    listed = {kv.name: kv.value for kv in docs.list().items}
    assert set(listed) == {"big"}  # chunks hidden
    assert sorted(listed["big"]["spec"]["nets"]) == sorted(nets)
    assert [kv.name for kv in docs.list(GNS).items] == ["big"]
    assert _agent_view(datastore, "big") == frozenset(nets)


def test_small_sets_stay_plain_as_calico_stores_them(datastore: Datastore) -> None:
    docs = Documents(datastore)
    docs.create(GNS, "small", _doc("small", ["10.0.0.1", "10.0.0.0/24"]))
    assert datastore.get(GNS, "small").value["spec"]["nets"] == ["10.0.0.1", "10.0.0.0/24"]
    assert not _chunks(datastore)


def test_patch_nets_writes_only_the_touched_chunks_and_the_head_in_one_revision(datastore: Datastore) -> None:
    docs = Documents(datastore)
    nets = _nets(N)
    docs.create(GNS, "big", _doc("big", nets))
    before = _chunks(datastore)
    revision = datastore.current_revision()
    docs.patch_nets("big", add=["192.0.2.7"], remove=[nets[5]])
    after = _chunks(datastore)
    changed = set(after) ^ set(before)
    assert 2 <= len(changed) <= 4  # at most two buckets: their old and new chunks
    assert set(after) & set(before) == set(before) - changed
    head_kv = datastore.get(GNS, "big")
    assert head_kv.mod_revision == datastore.current_revision()
    # pre-written chunks take a revision of their own, the head swap (and orphan deletes) one more
    # (a backend that shards every value pre-writes the head's shards too)
    if getattr(datastore, "shard_threshold", None) != 0:
        assert datastore.current_revision() - revision == 2
    expected = (set(nets) - {nets[5]}) | {"192.0.2.7/32"}
    _reads_as(docs, datastore, expected)


def test_apply_of_a_changed_big_document_writes_only_the_difference(datastore: Datastore) -> None:
    docs = Documents(datastore)
    nets = _nets(N)
    docs.create(GNS, "big", _doc("big", nets))
    before = _chunks(datastore)
    kv = docs.get(GNS, "big")
    changed_nets = [*nets[1:], "198.51.100.0/24"]
    docs.update(GNS, "big", _doc("big", changed_nets), kv.mod_revision)
    after = _chunks(datastore)
    assert len(set(after) - set(before)) <= 2 and len(set(before) - set(after)) <= 2
    assert set(docs.get(GNS, "big").value["spec"]["nets"]) == set(changed_nets)
    assert _agent_view(datastore, "big") == frozenset(changed_nets)


def test_compare_and_swap_holds_for_chunked_sets(datastore: Datastore) -> None:
    docs = Documents(datastore)
    docs.create(GNS, "big", _doc("big", _nets(N)))
    stale = datastore.get(GNS, "big").mod_revision
    docs.patch_nets("big", add=["192.0.2.1"])
    chunks = _chunks(datastore)
    with pytest.raises(Conflict):
        docs.patch_nets("big", add=["192.0.2.2"], expected_revision=stale)
    with pytest.raises(Conflict):
        docs.update(GNS, "big", _doc("big", _nets(N, 7)), stale)
    assert _chunks(datastore) == chunks  # a refused write leaves no chunk behind
    assert "192.0.2.2/32" not in docs.get(GNS, "big").value["spec"]["nets"]


def test_bad_nets_and_missing_sets_write_nothing(datastore: Datastore) -> None:
    docs = Documents(datastore)
    docs.create(GNS, "big", _doc("big", _nets(N)))
    revision = datastore.current_revision()
    with pytest.raises(InvalidNets) as info:
        docs.patch_nets("big", add=["192.0.2.1", "10.0.0.0/33", "banana"])
    assert [value for value, _ in info.value.bad] == ["10.0.0.0/33", "banana"]
    with pytest.raises(NotFound):
        docs.patch_nets("nope", add=["192.0.2.1"])
    assert datastore.current_revision() == revision


def test_a_set_grows_into_chunks_and_shrinks_back_to_plain(datastore: Datastore) -> None:
    docs = Documents(datastore)
    docs.create(GNS, "s", _doc("s", _nets(10)))
    docs.patch_nets("s", add=_nets(N, 10))
    assert MEMBERS_KEY in datastore.get(GNS, "s").value and _chunks(datastore)
    docs.patch_nets("s", remove=_nets(N, 10))
    plain = datastore.get(GNS, "s").value
    assert MEMBERS_KEY not in plain and sorted(plain["spec"]["nets"]) == sorted(_nets(10))
    assert not _chunks(datastore)  # the chunks went with the last head that named them


def test_delete_of_a_chunked_set_removes_its_chunks(datastore: Datastore) -> None:
    docs = Documents(datastore)
    docs.create(GNS, "big", _doc("big", _nets(N)))
    docs.create(GNS, "other", _doc("other", _nets(N, 20000)))
    docs.commit([Delete(GNS, "big")])
    assert all(c["set"] == "other" for c in _chunks(datastore).values())
    with pytest.raises(NotFound):
        docs.get(GNS, "big")


def test_a_failed_commit_leaves_no_pre_written_chunk(datastore: Datastore) -> None:
    docs = Documents(datastore)
    docs.create(GNS, "taken", _doc("taken", ["10.0.0.0/8"]))
    with pytest.raises(Exception):  # noqa: B017 - AlreadyExists of the second op
        docs.commit([Create(GNS, "big", _doc("big", _nets(N))), Create(GNS, "taken", _doc("taken", []))])
    assert not _chunks(datastore)
    with pytest.raises(NotFound):
        datastore.get(GNS, "big")


def test_two_writers_patching_one_set_both_land(datastore_factory: Opener) -> None:
    one, two = Documents(datastore_factory()), Documents(datastore_factory())
    one.create(GNS, "big", _doc("big", _nets(N)))
    adds = [f"192.0.2.{i}" for i in range(20)]
    for i, net in enumerate(adds):
        (one if i % 2 else two).patch_nets("big", add=[net])
    got = set(one.get(GNS, "big").value["spec"]["nets"])
    assert {f"{n}/32" for n in adds} <= got and len(got) == N + len(adds)
    named = set(datastore_factory().get(GNS, "big").value[MEMBERS_KEY]["chunks"])
    assert {c.partition(".")[2] for c in _chunks(datastore_factory())} == named - {""}


def test_update_through_documents_keeps_other_kinds_untouched(datastore: Datastore) -> None:
    docs = Documents(datastore)
    docs.commit([Create("HostEndpoint", "h", {"kind": "HostEndpoint"}), Create(GNS, "big", _doc("big", _nets(N)))])
    docs.commit([Update("HostEndpoint", "h", {"kind": "HostEndpoint", "x": 1})])
    assert docs.get("HostEndpoint", "h").value == {"kind": "HostEndpoint", "x": 1}
    assert sorted(kv.kind for kv in docs.list().items) == ["GlobalNetworkSet", "HostEndpoint"]


def _overlay_chunks(store: Datastore) -> dict[str, dict[str, Any]]:
    return {name: value for name, value in _chunks(store).items() if value.get("overlay")}


def test_a_spread_change_goes_into_an_overlay_and_a_large_one_is_folded_into_the_base(datastore: Datastore) -> None:
    """A feed's churn touches every bucket: it is written as overlay chunks (the base chunks
    are not rewritten), read back whole, seen by the agent; further changes stay in the
    overlay until it outgrows its limit, then one write folds it into the base chunks."""
    docs = Documents(datastore)
    nets = _nets(N)
    docs.create(GNS, "big", _doc("big", nets))
    base = {n: v for n, v in _chunks(datastore).items()}
    removed, added = nets[:400], _nets(400, start=60000)
    docs.patch_nets("big", add=added, remove=removed)
    head = datastore.get(GNS, "big").value[MEMBERS_KEY]
    overlays = _overlay_chunks(datastore)
    assert overlays and len(head["overlay"]) == overlay_buckets_for(head["buckets"])
    assert head["overlayCount"] == 800 and head["count"] == N
    assert {n: v for n, v in _chunks(datastore).items() if not v.get("overlay")} == base  # the base untouched
    expected = (set(nets) - set(removed)) | set(added)
    _reads_as(docs, datastore, expected)

    # One net more (into the overlay: one overlay chunk rewritten), one added net removed again,
    # one removed net added back.
    docs.patch_nets("big", add=["192.0.2.7", removed[0]], remove=[added[0]])
    expected = (expected - {added[0]}) | {"192.0.2.7/32", removed[0]}
    after = _overlay_chunks(datastore)
    assert 1 <= len(set(after) - set(overlays)) <= 3
    _reads_as(docs, datastore, expected)

    # Past the limit (max(CHUNKED_MIN_NETS, count / OVERLAY_FRACTION) changes): folded.
    more = _nets(layout.overlay_limit(N), start=70000)
    docs.patch_nets("big", add=more)
    expected |= set(more)
    head = datastore.get(GNS, "big").value[MEMBERS_KEY]
    assert "overlay" not in head and not _overlay_chunks(datastore) and head["count"] == len(expected)
    _reads_as(docs, datastore, expected)


def test_apply_and_delete_of_a_set_with_an_overlay_leave_no_overlay_chunk(datastore: Datastore) -> None:
    docs = Documents(datastore)
    nets = _nets(N)
    docs.create(GNS, "big", _doc("big", nets))
    docs.patch_nets("big", add=_nets(300, start=60000), remove=nets[:300])
    assert _overlay_chunks(datastore)
    kv = docs.get(GNS, "big")
    docs.update(GNS, "big", _doc("big", nets), kv.mod_revision)  # the whole document is the truth again
    assert not _overlay_chunks(datastore) and "overlay" not in datastore.get(GNS, "big").value[MEMBERS_KEY]
    assert set(docs.get(GNS, "big").value["spec"]["nets"]) == set(nets)
    docs.patch_nets("big", add=_nets(300, start=60000), remove=nets[:300])
    docs.delete(GNS, "big")
    assert not _chunks(datastore)
