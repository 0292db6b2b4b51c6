"""The XDP driver's decisions, through the in-memory kernel (no root, no bpffs):
load vs adopt vs leave alone vs replace, fill before attach, grow, repair after
drift, mode fallback, detach and unpin, link loss and re-creation, teardown.
Each test checks the kernel effect (what is attached, pinned, in the maps, and
which calls were made), not only the report."""

from __future__ import annotations

import errno
import struct
from pathlib import Path

import pytest

from seawall.dataplane.mode import Mode
from seawall.dataplane.xdp.driver import InterfaceBlocklist, XdpDesiredState, XdpDriver
from seawall.dataplane.xdp.loader import interface_dir
from seawall.dataplane.xdp.maps import DEFAULT_HIT_SHIFT, KEY_SIZES, VALUE_SIZES
from seawall.dataplane.xdp.sync import DRIFT_REPAIRED
from seawall.dataplane.xdp.tables import BlocklistTables, Compiled, MapKind
from seawall.testing.fake_xdp import XDP_ACT_BASIC, XDP_ACT_HW_OFFLOAD, Call, FakeXdpKernel

BPFFS = Path("/fake/bpffs")
IFACE, OTHER, SPARE = "eth0", "eth1", "eth2"
A, B = "198.51.100.7/32", "203.0.113.0/24"
SSH = frozenset({(6, 22)})
NO_OFFLOAD = "offload: the device does not offer it (xdp-features: basic)"
NO_GENERIC = "generic: disabled (FelixConfiguration genericXDPEnabled: false)"
EOPNOTSUPP = "attach failed (Operation not supported)"


def desired(cidrs: set[str] | frozenset[str], *names: str, xdp: bool = True, generic: bool = False) -> XdpDesiredState:
    items = tuple(InterfaceBlocklist(name, frozenset(cidrs), SSH) for name in names or (IFACE,))
    return XdpDesiredState(items, xdp_enabled=xdp, generic_enabled=generic)


def expected_entries(compiled: Compiled) -> dict[MapKind, dict[bytes, bytes]]:
    """What ``read_slot`` must return for a slot holding ``compiled``."""
    out: dict[MapKind, dict[bytes, bytes]] = {}
    for kind, values in compiled.arrays.items():
        size = VALUE_SIZES[kind]
        out[kind] = {
            struct.pack("<I", i): values[size * i : size * i + size]
            for i in range(len(values) // size)
            if values[size * i : size * i + size] != bytes(size)
        }
    for kind, (keys, values, count) in compiled.hashes.items():
        ks, vs = KEY_SIZES[kind], VALUE_SIZES[kind]
        out[kind] = {keys[ks * i : ks * i + ks]: values[vs * i : vs * i + vs] for i in range(count)}
    return out


def expected(cidrs: set[str] | frozenset[str]) -> dict[MapKind, dict[bytes, bytes]]:
    return expected_entries(BlocklistTables.from_cidrs(cidrs).compile())


def since(kernel: FakeXdpKernel, mark: int, *ops: str) -> list[Call]:
    return [call for call in kernel.calls[mark:] if not ops or call.op in ops]


@pytest.fixture
def kernel() -> FakeXdpKernel:
    fake = FakeXdpKernel()
    fake.add_interface(IFACE)
    return fake


def driver(kernel: FakeXdpKernel, **options: int) -> XdpDriver:
    return XdpDriver(BPFFS, kernel=kernel, **options)


# ---------------------------------------------------------------- loading and claiming


@pytest.mark.parametrize(("features", "mode", "reason"), [
    (XDP_ACT_BASIC, Mode.XDP_NATIVE, f"xdp-native (faster modes not used: {NO_OFFLOAD})"),
    (XDP_ACT_BASIC | XDP_ACT_HW_OFFLOAD, Mode.XDP_OFFLOAD, "xdp-offload (the fastest mode)"),
])
def test_a_fresh_interface_gets_a_new_program_filled_before_it_is_attached_in_the_best_mode(
        features: int, mode: Mode, reason: str) -> None:
    kernel = FakeXdpKernel()
    kernel.add_interface(IFACE, features=features)
    report = driver(kernel).reconcile(desired({A, B}))[IFACE]
    assert (report.mode, report.reason, report.adopted, report.repaired) == (mode, reason, False, ())
    assert report.entries == BlocklistTables.from_cidrs({A, B}).family_counts()
    [load] = kernel.ops("load")
    [attach] = kernel.ops("attach")
    assert kernel.calls.index(load) < kernel.calls.index(attach)
    assert attach.mode is mode and attach.prog_id == load.prog_id and attach.replacing is None
    assert attach.filled == sum(len(t) for t in expected({A, B}).values()) > 0  # never attached empty
    assert kernel.attached_to(IFACE) == {mode: load.prog_id}
    assert kernel.pins == {interface_dir(BPFFS, IFACE): load.prog_id}
    assert kernel.active_entries(load.prog_id) == expected({A, B})
    maps = kernel.maps_of(load.prog_id)
    assert maps.failsafe == set(SSH) and maps.shift == DEFAULT_HIT_SHIFT


def test_a_restarted_driver_adopts_our_attached_program_and_keeps_maps_that_hold_the_set(kernel: FakeXdpKernel) -> None:
    first = driver(kernel)
    first.reconcile(desired({A, B}))
    prog_id = kernel.attached_to(IFACE)[Mode.XDP_NATIVE]
    first.close()
    maps = kernel.maps_of(prog_id)
    maps.slots[1 - maps.active][MapKind.V4L2][b"\x01\x02\x03\x00"] = b"\xff" * 32  # left in the inactive slot
    mark = len(kernel.calls)
    report = driver(kernel).reconcile(desired({A, B}))[IFACE]
    assert report.mode is Mode.XDP_NATIVE and report.adopted and report.repaired == ()
    assert since(kernel, mark, "attach", "detach", "load", "replace") == []  # read back, not rebuilt
    assert kernel.active_entries(prog_id) == expected({A, B})
    assert all(not table for table in maps.slots[1 - maps.active].values())  # a later bulk replace starts empty


def test_a_restarted_driver_adopts_our_attached_program_without_a_detach_and_rewrites_maps_that_differ(kernel: FakeXdpKernel) -> None:
    first = driver(kernel)
    first.reconcile(desired({A}))
    prog_id = kernel.attached_to(IFACE)[Mode.XDP_NATIVE]
    first.close()
    maps = kernel.maps_of(prog_id)
    maps.slots[maps.active][MapKind.V4L2][b"\x01\x02\x03\x00"] = b"\xff" * 32  # unknown to the new process
    mark = len(kernel.calls)
    report = driver(kernel).reconcile(desired({A}))[IFACE]
    assert report.mode is Mode.XDP_NATIVE and report.adopted and report.conflict is None
    assert since(kernel, mark, "attach", "detach", "load") == []  # no gap: the same program stays attached
    assert kernel.attached_to(IFACE) == {Mode.XDP_NATIVE: prog_id}
    assert [call.prog_id for call in since(kernel, mark, "replace")] == [prog_id]
    assert kernel.active_entries(prog_id) == expected({A})
    assert report.repaired == ("pinned maps differed from the desired set; rewritten",)


def test_a_foreign_program_is_left_alone_and_reported_as_a_conflict(kernel: FakeXdpKernel) -> None:
    foreign = kernel.attach_foreign(IFACE, Mode.XDP_NATIVE, "their_prog")
    report = driver(kernel).reconcile(desired({A}))[IFACE]
    assert report.mode is Mode.RAW
    assert report.conflict == f"foreign XDP program their_prog id {foreign} in xdp-native mode"
    assert report.reason == (f"another XDP program (their_prog, id {foreign}, xdp-native mode) is attached; "
                             "Seawall leaves it alone")
    assert kernel.attached_to(IFACE) == {Mode.XDP_NATIVE: foreign}
    assert kernel.ops("attach", "detach", "load", "adopt") == [] and kernel.pins == {}


@pytest.mark.parametrize("pin", [Path("/other/bpffs/seawall/xdp/eth0"), None], ids=["pinned-elsewhere", "not-pinned"])
def test_a_seawall_program_this_driver_did_not_pin_is_adopted(kernel: FakeXdpKernel, pin: Path | None) -> None:
    orphan = kernel.attach_seawall(IFACE, Mode.XDP_NATIVE, {B}, pin=pin)
    report = driver(kernel).reconcile(desired({A}))[IFACE]
    assert report.mode is Mode.XDP_NATIVE and report.adopted and report.conflict is None
    assert f"adopted Seawall program id {orphan} (xdp-native)" in report.reason and "foreign" not in report.reason
    assert kernel.ops("attach", "detach", "load") == []
    assert kernel.attached_to(IFACE) == {Mode.XDP_NATIVE: orphan}
    assert kernel.pins[interface_dir(BPFFS, IFACE)] == orphan
    assert kernel.active_entries(orphan) == expected({A})  # its old contents ({B}) replaced


def test_a_seawall_program_of_an_older_build_is_replaced_atomically(kernel: FakeXdpKernel) -> None:
    old = kernel.attach_seawall(IFACE, Mode.XDP_NATIVE, {B}, tag="0ld0ld0ld0ld0ld0", reusable=False)
    report = driver(kernel).reconcile(desired({A}))[IFACE]
    assert report.mode is Mode.XDP_NATIVE and report.conflict is None and not report.adopted
    assert f"replaced Seawall program id {old} (xdp-native) of an older build" in report.reason
    assert kernel.ops("detach") == []  # never detached first
    [load] = kernel.ops("load")
    [attach] = kernel.ops("attach")
    assert (attach.mode, attach.prog_id, attach.replacing) == (Mode.XDP_NATIVE, load.prog_id, old)
    assert attach.filled
    assert kernel.attached_to(IFACE) == {Mode.XDP_NATIVE: load.prog_id}


def test_an_outdated_program_of_ours_is_upgraded_in_place_on_its_maps(kernel: FakeXdpKernel) -> None:
    old = kernel.attach_seawall(IFACE, Mode.XDP_NATIVE, {A}, pin=interface_dir(BPFFS, IFACE), tag="0ld0ld0ld0ld0ld0")
    report = driver(kernel).reconcile(desired({A}))[IFACE]
    assert report.mode is Mode.XDP_NATIVE and report.adopted and "program upgraded in place" in report.repaired
    [upgrade] = kernel.ops("upgrade")
    [attach] = kernel.ops("attach")
    assert (attach.replacing, attach.prog_id) == (old, upgrade.prog_id) and kernel.ops("detach", "load") == []
    assert kernel.attached_to(IFACE) == {Mode.XDP_NATIVE: upgrade.prog_id}
    assert kernel.programs[upgrade.prog_id].maps is kernel.programs[old].maps


# ---------------------------------------------------------------- maps


@pytest.mark.parametrize("bulk_threshold", [2048, 1_000_000], ids=["bulk", "incremental"])
def test_a_set_beyond_the_maps_capacity_grows_them_with_replace_and_moves_the_pins(kernel: FakeXdpKernel, bulk_threshold: int) -> None:
    xdp = driver(kernel, bulk_threshold=bulk_threshold)
    xdp.reconcile(desired({A}))
    small = kernel.attached_to(IFACE)[Mode.XDP_NATIVE]
    capacity = kernel.maps_of(small).capacities[MapKind.V4L2]
    big = {f"13.{i >> 8 & 255}.{i & 255}.1/32" for i in range(capacity + 100)} | {A}  # one /24 each: a v4l2 entry each
    mark = len(kernel.calls)
    report = xdp.reconcile(desired(big))[IFACE]
    assert report.mode is Mode.XDP_NATIVE and "maps grown for a larger set" in report.repaired
    assert since(kernel, mark, "detach") == []
    [attach] = since(kernel, mark, "attach")
    assert attach.replacing == small and attach.filled and attach.filled >= len(big)  # filled, then swapped in
    grown = attach.prog_id
    assert kernel.maps_of(grown).capacities[MapKind.V4L2] > len(big)
    assert kernel.attached_to(IFACE) == {Mode.XDP_NATIVE: grown}
    assert kernel.pins == {interface_dir(BPFFS, IFACE): grown}  # staging pins moved into place
    assert kernel.active_entries(grown) == expected(big)
    assert xdp.reconcile(desired(big))[IFACE].repaired == ()  # and it fits now


def test_drift_is_found_on_verify_rewritten_and_reported(kernel: FakeXdpKernel) -> None:
    xdp = driver(kernel)
    xdp.reconcile(desired({A}))
    prog_id = kernel.attached_to(IFACE)[Mode.XDP_NATIVE]
    maps = kernel.maps_of(prog_id)
    maps.slots[maps.active][MapKind.V4L1].clear()  # someone zeroes our IPv4 table
    assert xdp.reconcile(desired({A}))[IFACE].repaired == ()  # a plain reconcile trusts its model...
    assert kernel.active_entries(prog_id) != expected({A})
    maps.failsafe.clear()  # (and someone clears the failsafe ports)
    report = xdp.reconcile(desired({A}), verify=True)[IFACE]  # ...verify reads back
    assert report.repaired == (DRIFT_REPAIRED, "failsafe ports rewritten")
    assert kernel.active_entries(prog_id) == expected({A}) and maps.failsafe == set(SSH)
    assert xdp.reconcile(desired({A}), verify=True)[IFACE].repaired == ()
    assert kernel.ops("detach") == [] and len(kernel.ops("attach")) == 1


def test_small_changes_are_written_in_place_and_many_through_a_slot_flip(kernel: FakeXdpKernel) -> None:
    xdp = driver(kernel, bulk_threshold=10)
    xdp.reconcile(desired({A}))
    prog_id = kernel.attached_to(IFACE)[Mode.XDP_NATIVE]
    slot = kernel.maps_of(prog_id).active
    mark = len(kernel.calls)
    xdp.reconcile(desired({A, B}))
    assert [c.op for c in since(kernel, mark)] == ["apply"] and kernel.maps_of(prog_id).active == slot
    many = {f"10.9.{i}.0/24" for i in range(20)}
    xdp.reconcile(desired(many))
    assert [c.op for c in since(kernel, mark)] == ["apply", "replace"] and kernel.maps_of(prog_id).active == 1 - slot
    assert kernel.active_entries(prog_id) == expected(many)


# ---------------------------------------------------------------- modes


def test_native_attach_failing_with_generic_enabled_falls_back_to_generic() -> None:
    kernel = FakeXdpKernel()
    kernel.add_interface(IFACE, fail={Mode.XDP_NATIVE: errno.EOPNOTSUPP})
    report = driver(kernel).reconcile(desired({A}, generic=True))[IFACE]
    assert report.mode is Mode.XDP_GENERIC
    assert report.reason == f"xdp-generic (faster modes not used: {NO_OFFLOAD}; native: {EOPNOTSUPP})"
    assert report.errors == (f"native: {EOPNOTSUPP}",)
    assert list(kernel.attached_to(IFACE)) == [Mode.XDP_GENERIC]


def test_native_failing_with_generic_disabled_leaves_the_raw_tier_with_the_reasons() -> None:
    kernel = FakeXdpKernel()
    kernel.add_interface(IFACE, fail={Mode.XDP_NATIVE: errno.EOPNOTSUPP})
    xdp = driver(kernel)
    report = xdp.reconcile(desired({A}))[IFACE]
    assert report.mode is Mode.RAW
    assert report.reason == f"no XDP mode available: {NO_OFFLOAD}; {NO_GENERIC}; native: {EOPNOTSUPP}; the iptables raw tier enforces"
    assert kernel.attached_to(IFACE) == {} and xdp.mode(IFACE) is None
    [load] = kernel.ops("load")
    assert kernel.pins == {interface_dir(BPFFS, IFACE): load.prog_id}  # kept filled for a quick retry


def test_a_mode_no_longer_allowed_is_left_for_the_best_allowed_one() -> None:
    kernel = FakeXdpKernel()
    kernel.add_interface(IFACE, features=0)  # generic only
    xdp = driver(kernel)
    assert xdp.reconcile(desired({A}, generic=True))[IFACE].mode is Mode.XDP_GENERIC
    report = xdp.reconcile(desired({A}, generic=False))[IFACE]
    assert report.mode is Mode.RAW and kernel.attached_to(IFACE) == {}
    assert [c.mode for c in kernel.ops("detach")] == [Mode.XDP_GENERIC]


def test_xdp_disabled_detaches_ours_and_reports_the_raw_tier(kernel: FakeXdpKernel) -> None:
    xdp = driver(kernel)
    xdp.reconcile(desired({A}))
    prog_id = kernel.attached_to(IFACE)[Mode.XDP_NATIVE]
    report = xdp.reconcile(desired({A}, xdp=False))[IFACE]
    assert (report.mode, report.reason) == (Mode.RAW, "XDP disabled (xdpEnabled: false); the iptables raw tier enforces")
    assert [(c.mode, c.prog_id) for c in kernel.ops("detach")] == [(Mode.XDP_NATIVE, prog_id)]
    assert kernel.attached_to(IFACE) == {} and kernel.pins == {} and xdp.mode(IFACE) is None


# ---------------------------------------------------------------- interfaces coming and going


def test_an_interface_no_longer_desired_is_detached_and_unpinned(kernel: FakeXdpKernel) -> None:
    kernel.add_interface(OTHER)
    xdp = driver(kernel)
    xdp.reconcile(desired({A}, IFACE, OTHER))
    kept = kernel.attached_to(IFACE)[Mode.XDP_NATIVE]
    dropped = kernel.attached_to(OTHER)[Mode.XDP_NATIVE]
    mark = len(kernel.calls)
    xdp.reconcile(desired({A}, IFACE))
    assert [(c.op, c.target, c.prog_id) for c in since(kernel, mark)] == [
        ("detach", OTHER, dropped), ("remove_pins", str(interface_dir(BPFFS, OTHER)), None)]
    assert kernel.attached_to(OTHER) == {} and kernel.attached_to(IFACE) == {Mode.XDP_NATIVE: kept}
    assert kernel.pins == {interface_dir(BPFFS, IFACE): kept}


def test_a_vanished_link_keeps_its_pins_and_a_recreated_one_is_attached_again_without_a_map_rewrite(kernel: FakeXdpKernel) -> None:
    xdp = driver(kernel)
    xdp.reconcile(desired({A}))
    prog_id = kernel.attached_to(IFACE)[Mode.XDP_NATIVE]
    kernel.remove_interface(IFACE)
    report = xdp.reconcile(desired({A}))[IFACE]
    assert (report.mode, report.reason) == (Mode.RAW, "interface does not exist (yet)")
    assert kernel.pins == {interface_dir(BPFFS, IFACE): prog_id} and xdp.lost_attachments() == []
    for link_back in (lambda: kernel.add_interface(IFACE), lambda: kernel.recreate_interface(IFACE)):
        new_ifindex = link_back()  # back after a reconcile saw it gone; then re-created between two reconciles
        mark = len(kernel.calls)
        assert xdp.lost_attachments() == [IFACE]  # a link of that name again, with nothing attached
        report = xdp.reconcile(desired({A}))[IFACE]
        assert report.mode is Mode.XDP_NATIVE and "program was not attached; attached again" in report.repaired
        assert [(c.op, c.target, c.prog_id) for c in since(kernel, mark)] == [("attach", IFACE, prog_id)]  # no rewrite, no load
        assert kernel.ifindex(IFACE) == new_ifindex and kernel.attached_to(IFACE) == {Mode.XDP_NATIVE: prog_id}
        assert xdp.lost_attachments() == []


def test_lost_attachments_names_an_interface_someone_detached_until_a_reconcile_reattaches(kernel: FakeXdpKernel) -> None:
    kernel.add_interface(OTHER)
    xdp = driver(kernel)
    xdp.reconcile(desired({A}, IFACE, OTHER))
    assert xdp.lost_attachments() == []
    kernel.detach_all(OTHER)
    assert xdp.lost_attachments() == [OTHER]
    report = xdp.reconcile(desired({A}, IFACE, OTHER))[OTHER]
    assert report.mode is Mode.XDP_NATIVE and "program was not attached; attached again" in report.repaired
    assert xdp.lost_attachments() == []


def test_orphans_on_unprotected_interfaces_are_swept_once_and_foreign_ones_never(kernel: FakeXdpKernel) -> None:
    kernel.add_interface(OTHER)
    kernel.add_interface(SPARE)
    orphan = kernel.attach_seawall(OTHER, Mode.XDP_GENERIC, {B})
    foreign = kernel.attach_foreign(SPARE, Mode.XDP_NATIVE)
    xdp = driver(kernel)
    xdp.reconcile(desired({A}))
    assert kernel.attached_to(OTHER) == {} and kernel.attached_to(SPARE) == {Mode.XDP_NATIVE: foreign}
    assert [(c.target, c.prog_id) for c in kernel.ops("detach")] == [(OTHER, orphan)]
    kernel.attach_seawall(OTHER, Mode.XDP_GENERIC, {B})
    xdp.reconcile(desired({A}))
    assert len(kernel.ops("detach")) == 1  # once per driver


def test_teardown_removes_every_seawall_program_and_pin_and_leaves_foreign_ones(kernel: FakeXdpKernel) -> None:
    kernel.add_interface(OTHER)
    kernel.add_interface(SPARE)
    xdp = driver(kernel)
    xdp.reconcile(desired({A}))
    ours = kernel.attached_to(IFACE)[Mode.XDP_NATIVE]
    orphan = kernel.attach_seawall(OTHER, Mode.XDP_GENERIC, {B})  # after the one sweep: still there
    foreign = kernel.attach_foreign(SPARE, Mode.XDP_NATIVE, "their_prog")
    report = xdp.teardown()
    assert report.removed == [
        f"XDP program seawall_xdp (id {ours}, xdp-native) detached from {IFACE}",
        f"XDP program seawall_xdp (id {orphan}, xdp-generic) detached from {OTHER}",
        f"pins under {interface_dir(BPFFS, IFACE)}",
    ]
    assert report.left == [f"foreign XDP program their_prog (id {foreign}, xdp-native) on {SPARE}: not Seawall's, left attached"]
    assert report.interfaces == [IFACE, OTHER]
    assert kernel.attached_to(IFACE) == {} and kernel.attached_to(OTHER) == {}
    assert kernel.attached_to(SPARE) == {Mode.XDP_NATIVE: foreign} and kernel.pins == {}
    assert xdp.mode(IFACE) is None and xdp.counters(IFACE) is None


class _NoFeaturesFor(FakeXdpKernel):
    def xdp_features(self, ifindex: int) -> int | None:
        if ifindex == self.ifindex(OTHER):
            raise OSError(errno.ENODEV, "no network interface")
        return super().xdp_features(ifindex)


def test_one_failing_interface_does_not_stop_the_others() -> None:
    kernel = _NoFeaturesFor()
    kernel.add_interface(OTHER)
    kernel.add_interface(IFACE)
    reports = driver(kernel).reconcile(desired({A}, OTHER, IFACE))
    assert reports[OTHER].mode is Mode.RAW and reports[OTHER].reason.startswith("XDP failed: ")
    assert reports[IFACE].mode is Mode.XDP_NATIVE and list(kernel.attached_to(IFACE)) == [Mode.XDP_NATIVE]


class _CountingFeatures(FakeXdpKernel):
    def __init__(self) -> None:
        super().__init__()
        self.asked: list[int] = []

    def xdp_features(self, ifindex: int) -> int | None:
        self.asked.append(ifindex)
        return super().xdp_features(ifindex)


def test_features_asked_once_per_link_and_again_on_verify() -> None:
    """The feature query (a netlink round trip) is not repeated before every one-net change."""
    kernel = _CountingFeatures()
    first = kernel.add_interface(IFACE)
    xdp = driver(kernel)
    for cidrs in ({A}, {A, B}, {B}):
        assert xdp.reconcile(desired(cidrs))[IFACE].mode is Mode.XDP_NATIVE
    assert kernel.asked == [first]
    xdp.reconcile(desired({B}), verify=True)
    assert kernel.asked == [first, first]
    second = kernel.recreate_interface(IFACE)  # a new link under the name: asked at once
    assert xdp.reconcile(desired({A}))[IFACE].mode is Mode.XDP_NATIVE
    assert kernel.asked == [first, first, second]
    xdp.reconcile(desired({A, B}))
    assert kernel.asked == [first, first, second]
