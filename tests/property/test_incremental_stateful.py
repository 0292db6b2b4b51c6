"""The agent's incremental path equals a from-scratch calculation, after any sequence of changes.

Why this exists: the agent never recomputes from nothing. ``ValidatedResources``
revalidates only documents that are new objects and keeps the last valid version
of a resource whose data turned bad; ``CalcMemo`` patches each set's ``NetSet``
by difference (plain sets against their previous nets, chunked sets chunk by
chunk, unions bucket by bucket); the XDP driver writes map differences and the
raw tier's ipsets get add/del lines against a cache of what it last wrote. Each
layer is unit-tested on hand-picked transitions, but a bug in any of them shows
only after some *history* (a net shared by two sets, one deleted; a set going
chunked and back; a resync in between). This state machine generates such
histories over a small universe (3 sets, 2 policies, 2 host endpoints on node
``jasper``, ~40 overlapping IPv4/IPv6 nets) and after every step checks:

* the desired state equals ``compute`` on a fresh ``ValidatedResources`` fed the
  documents the agent enforces (the last valid version of each), without memo;
* the invalid documents are reported, with "kept"/"ignored" as the history says;
* the XDP maps a long-lived driver programmed (in ``FakeXdpKernel``) equal what
  a fresh driver programs from the reference state on a fresh kernel;
* the ipsets a long-lived raw tier programmed (in a small stateful fake of
  ``ipset``) equal those a fresh raw tier programs, and the from-scratch rendering.

Like the agent's syncer, ``update`` is given the full current item list in which
unchanged documents are the *same objects* as last time (that identity is how
the incremental layers tell what changed) and changed ones are new objects.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, settings, strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from seawall.api.cidr import parse_cidr
from seawall.api.members import CHUNK_KIND, MEMBERS_KEY
from seawall.calc import CalcMemo, NodeInterfaces, compute
from seawall.calc.validated import IGNORED, KEPT, ValidatedResources
from seawall.dataplane.iptables.backend import CommandError
from seawall.dataplane.iptables.dataplane import RawDataplane
from seawall.dataplane.iptables.ipsets import normalize_members
from seawall.dataplane.iptables.render import render
from seawall.dataplane.xdp.driver import XdpDriver
from seawall.policy.desired import DesiredState
from seawall.testing.fake_xdp import FakeXdpKernel

from ..unit.test_calc import felix, gnp, gns, hep
from ..unit.test_calc_chunked import chunked, overlaid_chunked

NODE = "jasper"
IFACES = NodeInterfaces({"lo": ("127.0.0.1/8",), "eth0": ("10.0.0.1/24",),
                         "eth1": ("192.168.1.5/24", "2001:db8:ff::1/64")})
BPFFS = Path("/fake/bpffs")
GNS, GNP, HEP, FELIX = "GlobalNetworkSet", "GlobalNetworkPolicy", "HostEndpoint", "FelixConfiguration"

SETS = ["s-a", "s-b", "s-c"]
POLICIES = ["p-1", "p-2"]
HEPS = ["h-0", "h-1"]
# Overlapping on purpose (10/8 over 10.1/16 over 10.1.2/24 over /32s), with spellings
# that share a canonical form ("10.1.2.3/16" is 10.1.0.0/16, "1.2.3.4" is 1.2.3.4/32,
# upper-case and zero-padded IPv6) and the catch-alls.
V4 = ["10.0.0.0/8", "10.1.0.0/16", "10.1.2.3/16", "10.1.2.0/24", "10.1.2.3/32", "10.1.2.128/25", "10.0.0.1/32",
      "192.168.0.0/16", "192.168.1.0/24", "192.168.1.5/32", "172.16.0.0/12", "172.16.5.0/24", "1.2.3.4/32",
      "1.2.3.4", "5.6.0.0/16", "203.0.113.0/24", "203.0.113.9/32", "198.51.100.0/24", "198.51.100.7/32",
      "100.64.0.0/10", "0.0.0.0/0"]
V6 = ["2001:db8::/32", "2001:db8:1::/48", "2001:db8:1::5/128", "2001:DB8:1::5/128", "2001:db8:1:0::/64",
      "2001:db8:1::/64", "fd00::/8", "fd00::1/128", "fd00::1", "fe80::/10", "2001:db8:ff::/64", "2001:db8:ff::1/128",
      "2001:db8:abcd::/48", "2001:db8:abcd:12::/64", "2001:0db8:abcd:0012::/64", "::/0", "2001:db8::1"]
POOL = V4 + V6
# a rule's nets need a prefix length, no host bits, and one family
RULE_NETS = [[n for n in family if "/" in n and n != "10.1.2.3/16"] for family in (V4, V6)]
BAD_MEMBERS = ["10.0.0.0/33", "not-a-net", "2001:db8::/129"]  # in a chunk: dropped member by member
HOST_IPS = ["10.0.0.1", "192.168.1.5", "2001:db8:ff::1", "10.9.9.9", "2001:db8:1::5"]

SET_LABELS = [{"grp": "x"}, {"grp": "y"}, {"grp": "x", "tier": "edge"}, {"tier": "edge"}, {"other": "1"}]
SOURCE_SELECTORS = ["grp == 'x'", "grp == 'y'", "has(grp)", "tier == 'edge'", "grp == 'x' || tier == 'edge'",
                    "has(grp) && !has(tier)", "all()"]
HEP_SELECTORS = ["role == 'edge'", "has(role)", "all()", "role == 'core'"]
HEP_LABELS = [{"role": "edge"}, {"role": "core"}, {"role": "edge", "grp": "x"}, {"role": "edge", "tier": "edge"}]
ORDERS = [None, 1, 10, 10.5, 100]

Key = tuple[str, str]


def canonical(nets: Sequence[str]) -> list[str]:
    """What the datastore's writer stores in chunks: canonical text, deduplicated."""
    return sorted({parse_cidr(n).text for n in nets})


@st.composite
def ingress_rules(draw: st.DrawFn) -> list[dict[str, Any]]:
    out = []
    for _ in range(draw(st.integers(1, 3))):
        source: dict[str, Any] = {}
        if draw(st.integers(0, 3)):
            source["selector"] = draw(st.sampled_from(SOURCE_SELECTORS))
        if not source or draw(st.integers(0, 3)) == 0:
            family = draw(st.sampled_from(RULE_NETS))
            source["nets"] = draw(st.lists(st.sampled_from(family), min_size=1, max_size=3, unique=True))
        out.append({"action": draw(st.sampled_from(["Deny", "Deny", "Deny", "Allow"])), "source": source})
    return out


NETS = st.lists(st.sampled_from(POOL), max_size=8, unique=True)


class FakeIpsetHost:
    """Just enough of ``ipset`` (``list -t``, ``save``, ``restore [-exist]``, ``destroy``)
    with kernel state, for the raw tier's runner; iptables commands succeed and do nothing."""

    def __init__(self) -> None:
        self.sets: dict[str, tuple[str, int, set[str]]] = {}  # name -> (family, maxelem, members)

    def view(self) -> dict[str, tuple[str, frozenset[str]]]:
        return {name: (family, frozenset(members)) for name, (family, _, members) in self.sets.items()}

    def __call__(self, argv: Sequence[str], stdin: str | None = None) -> str:
        argv = list(argv)
        if argv[0] != "ipset":
            return ""
        if argv[1:] == ["list", "-t"]:
            return "".join(f"Name: {name}\nType: hash:net\nRevision: 7\nHeader: family {family} hashsize 1024 "
                           f"maxelem {maxelem}\nSize in memory: 1\nReferences: 0\nNumber of entries: {len(members)}\n"
                           for name, (family, maxelem, members) in self.sets.items())
        if argv[1] == "save":
            _, _, members = self.sets[argv[2]]
            full = ("/32", "/128")
            return "".join(f"add {argv[2]} {m.removesuffix(full[0]) if ':' not in m else m.removesuffix(full[1])}\n"
                           for m in sorted(members))
        if argv[1] == "destroy":
            del self.sets[argv[2]]
            return ""
        if argv[1] == "restore":
            for line in (stdin or "").splitlines():
                self._line(argv, line.split(), exist="-exist" in argv)
            return ""
        raise AssertionError(f"unexpected command {argv}")

    def _line(self, argv: list[str], words: list[str], *, exist: bool) -> None:
        def fail(why: str) -> None:
            raise CommandError(argv, 1, f"{' '.join(words)}: {why}")

        op, name = words[0], words[1]
        if op == "create":
            assert words[2] == "hash:net" and words[3] == "family"
            if name in self.sets:
                if not exist:
                    fail("set already exists")
                return
            self.sets[name] = (words[4], int(words[words.index("maxelem") + 1]), set())
        elif op in ("add", "del"):
            if name not in self.sets:
                fail("set does not exist")
            family, maxelem, members = self.sets[name]
            (member,) = normalize_members([words[2]], family)  # the kernel keeps inet_ntop text, host bits clear
            if op == "add":
                if member in members and not exist:
                    fail("already added")
                if member not in members and len(members) >= maxelem:
                    fail("set is full")
                members.add(member)
            else:
                if member not in members and not exist:
                    fail("not added")
                members.discard(member)
        elif op == "swap":
            other = words[2]
            self.sets[name], self.sets[other] = self.sets[other], self.sets[name]
        elif op == "destroy":
            if name not in self.sets and not exist:
                fail("set does not exist")
            self.sets.pop(name, None)
        else:
            fail("unknown command")


def xdp_kernel() -> FakeXdpKernel:
    kernel = FakeXdpKernel()
    for name in ("eth0", "eth1"):
        kernel.add_interface(name)
    return kernel


def xdp_view(kernel: FakeXdpKernel) -> tuple[dict[str, Any], set[str]]:
    """Per interface and attached mode: the active map contents and failsafe ports; the pin directories."""
    links = {
        name: {mode: (kernel.active_entries(prog_id), frozenset(kernel.maps_of(prog_id).failsafe))
               for mode, prog_id in link.attached.items()}
        for name, link in kernel.links.items()
    }
    return links, {str(pin) for pin in kernel.pins}


class IncrementalMatchesFromScratch(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        # the datastore: (kind, name) -> (document, valid?), in the syncer's (insertion) order
        self.stored: dict[Key, tuple[dict[str, Any], bool]] = {}
        # what the incremental ValidatedResources enforces per key: its last valid document since it was made
        self.kept: dict[Key, dict[str, Any]] = {}
        self.sets: dict[str, tuple[list[str], dict[str, str], bool]] = {}  # last valid (nets, labels, chunked)
        self.overlays: dict[str, tuple[list[str], list[str], list[str], int]] = {}  # set -> (base, added, removed, width)
        self.policies: dict[str, tuple[list[dict[str, Any]], Any, str]] = {}  # last valid (ingress, order, selector)
        self.validated = ValidatedResources()
        self.memo = CalcMemo()
        self.kernel = xdp_kernel()
        self.xdp = XdpDriver(BPFFS, kernel=self.kernel)
        self.ipset_host = FakeIpsetHost()
        self.raw = RawDataplane("NFT", runner=self.ipset_host)
        self.steps = 0

    # ------------------------------------------------------------ the model

    def _store(self, key: Key, doc: dict[str, Any], valid: bool = True) -> None:
        self.stored[key] = (doc, valid)
        if valid:
            self.kept[key] = doc

    def _delete(self, key: Key) -> None:
        self.stored.pop(key, None)
        self.kept.pop(key, None)

    def _chunks_of(self, name: str) -> list[Key]:
        return [k for k, (doc, _) in self.stored.items() if k[0] == CHUNK_KIND and doc.get("set") == name]

    def _put_set(self, name: str, nets: list[str], labels: dict[str, str], as_chunks: bool, *,
                 bad_members: Sequence[str] = (), collect: bool = True) -> None:
        key = (GNS, name)
        self.overlays.pop(name, None)
        if as_chunks:
            head, *chunks = chunked(name, [*nets, *bad_members], labels)  # raw spellings: strays in other buckets too
            wanted = set()
            for kind, chunk, doc in chunks:
                wanted.add((kind, chunk))
                if (kind, chunk) not in self.stored:  # content-named: an unchanged chunk is not rewritten
                    self._store((kind, chunk), doc)
            self._store(key, head[2])
            if collect:  # else: old chunks linger as garbage (an interrupted clean-up)
                for old in self._chunks_of(name):
                    if old not in wanted:
                        self._delete(old)
        else:
            self._store(key, gns(name, list(nets), labels)[2])
            if collect:
                for old in self._chunks_of(name):
                    self._delete(old)
        self.sets[name] = (list(nets), labels, as_chunks)

    def _put_policy(self, name: str, ingress: list[dict[str, Any]], order: Any, selector: str) -> None:
        self._store((GNP, name), gnp(name, ingress, order=order, selector=selector)[2])
        self.policies[name] = (ingress, order, selector)

    # ------------------------------------------------------------ rules

    @initialize(threshold=st.sampled_from([0, 2, 2048]))
    def bulk_threshold(self, threshold: int) -> None:
        """0: every XDP change is a bulk replace; 2: mixed; 2048: single writes."""
        self.xdp.bulk_threshold = threshold

    @initialize(iface=st.sampled_from(["eth0", "eth1"]), source=st.sampled_from(SOURCE_SELECTORS), nets=NETS.filter(bool),
                as_chunks=st.booleans())
    def seed(self, iface: str, source: str, nets: list[str], as_chunks: bool) -> None:
        """Start from something enforced (a protected interface, a policy, a set), so most
        steps change a non-empty XDP blocklist and ipsets; later rules change or delete it all."""
        self._store((HEP, HEPS[0]), hep(HEPS[0], iface=iface, labels={"role": "edge"})[2])
        self._put_policy(POLICIES[0], [{"action": "Deny", "source": {"selector": source}}], None, "has(role)")
        self._put_set(SETS[0], nets, {"grp": "x", "tier": "edge"}, as_chunks)

    @rule(name=st.sampled_from(SETS), nets=NETS, labels=st.sampled_from(SET_LABELS), as_chunks=st.booleans(),
          bad=st.lists(st.sampled_from(BAD_MEMBERS), max_size=1), collect=st.integers(0, 4))
    def put_set(self, name: str, nets: list[str], labels: dict[str, str], as_chunks: bool, bad: list[str],
                collect: int) -> None:
        self._put_set(name, nets, labels, as_chunks, bad_members=bad if as_chunks else (), collect=collect > 0)

    @precondition(lambda self: bool(self.sets))
    @rule(data=st.data(), add=st.lists(st.sampled_from(POOL), max_size=3), remove=st.integers(0, 3))
    def change_nets(self, data: st.DataObject, add: list[str], remove: int) -> None:
        name = data.draw(st.sampled_from(sorted(self.sets)))
        nets, labels, as_chunks = self.sets[name]
        gone = set(data.draw(st.lists(st.sampled_from(nets), max_size=remove))) if nets else set()
        kept = [n for n in nets if n not in gone]
        self._put_set(name, kept + [n for n in add if n not in kept], labels, as_chunks)

    @precondition(lambda self: any(chunked for _, _, chunked in self.sets.values()))
    @rule(data=st.data(), add=st.lists(st.sampled_from(POOL), max_size=4), remove=st.integers(0, 3),
          width=st.sampled_from([1, 2, 4]), collect=st.integers(0, 4))
    def change_nets_in_overlay(self, data: st.DataObject, add: list[str], remove: int, width: int, collect: int) -> None:
        """A spread change recorded in an overlay on top of the base chunks (the writer's path
        for a feed's churn): members (base - removed) | added, where an added net may already be
        in the base and a removed one may not be; the next overlay keeps the same base."""
        name = data.draw(st.sampled_from(sorted(n for n, (_, _, c) in self.sets.items() if c)))
        nets, labels, _ = self.sets[name]
        base, added, removed, width = self.overlays.get(name, (list(nets), [], [], width))
        gone = data.draw(st.lists(st.sampled_from(nets + POOL[:2]), max_size=remove, unique=True))
        added = [n for n in added if n not in gone] + [n for n in add if n not in added]
        removed = [n for n in removed if n not in add] + [n for n in gone if n not in removed and n not in add]
        docs = overlaid_chunked(name, base, added, removed, labels, width=width)
        wanted = set()
        for kind, chunk, doc in docs[1:]:
            wanted.add((kind, chunk))
            if (kind, chunk) not in self.stored:
                self._store((kind, chunk), doc)
        self._store((GNS, name), docs[0][2])
        if collect:
            for old in self._chunks_of(name):
                if old not in wanted:
                    self._delete(old)
        effective = [n for n in base if n not in removed or n in added] + [n for n in added if n not in base]
        self.sets[name] = (effective, labels, True)
        self.overlays[name] = (base, added, removed, width)

    @precondition(lambda self: bool(self.sets))
    @rule(data=st.data(), labels=st.sampled_from(SET_LABELS))
    def relabel_set(self, data: st.DataObject, labels: dict[str, str]) -> None:
        name = data.draw(st.sampled_from(sorted(self.sets)))
        nets, _, as_chunks = self.sets[name]
        self._put_set(name, nets, labels, as_chunks)

    @rule(name=st.sampled_from(SETS), collect=st.integers(0, 4))
    def delete_set(self, name: str, collect: int) -> None:
        self._delete((GNS, name))
        self.sets.pop(name, None)
        self.overlays.pop(name, None)
        if collect:
            for chunk in self._chunks_of(name):
                self._delete(chunk)

    @precondition(lambda self: len(self.sets) >= 2)
    @rule(data=st.data())
    def share_then_delete(self, data: st.DataObject) -> None:
        """Give one set another's nets (check), then delete the other: the shared nets stay."""
        first, second = data.draw(st.permutations(sorted(self.sets)))[:2]
        nets, labels, as_chunks = self.sets[second]
        self._put_set(second, nets + [n for n in self.sets[first][0] if n not in nets], labels, as_chunks)
        self.agent_matches_from_scratch()
        self.delete_set(first, collect=1)

    @precondition(lambda self: any(chunked for _, _, chunked in self.sets.values()))
    @rule(data=st.data())
    def lose_a_chunk(self, data: st.DataObject) -> None:
        """Another tool's interrupted write: a chunk the head lists is missing."""
        name = data.draw(st.sampled_from(sorted(n for n, (_, _, c) in self.sets.items() if c)))
        chunks = self._chunks_of(name)
        if chunks:
            self._delete(data.draw(st.sampled_from(chunks)))

    @rule(name=st.sampled_from(POLICIES), ingress=ingress_rules(), order=st.sampled_from(ORDERS),
          selector=st.sampled_from(HEP_SELECTORS))
    def put_policy(self, name: str, ingress: list[dict[str, Any]], order: Any, selector: str) -> None:
        self._put_policy(name, ingress, order, selector)

    @precondition(lambda self: bool(self.policies))
    @rule(data=st.data(), selector=st.sampled_from(HEP_SELECTORS), order=st.sampled_from(ORDERS),
          which=st.sampled_from(["selector", "order", "both"]))
    def change_policy(self, data: st.DataObject, selector: str, order: Any, which: str) -> None:
        name = data.draw(st.sampled_from(sorted(self.policies)))
        ingress, old_order, old_selector = self.policies[name]
        self._put_policy(name, ingress, order if which != "selector" else old_order,
                         selector if which != "order" else old_selector)

    @rule(name=st.sampled_from(POLICIES))
    def delete_policy(self, name: str) -> None:
        self._delete((GNP, name))
        self.policies.pop(name, None)

    @rule(name=st.sampled_from(HEPS), iface=st.sampled_from(["eth0", "eth1", "*", None, "eth9"]),
          ips=st.none() | st.lists(st.sampled_from(HOST_IPS), min_size=1, max_size=2, unique=True),
          labels=st.sampled_from(HEP_LABELS), node=st.sampled_from([NODE, NODE, NODE, "other"]))
    def put_hep(self, name: str, iface: str | None, ips: list[str] | None, labels: dict[str, str], node: str) -> None:
        if iface is None and ips is None:
            ips = [HOST_IPS[0]]
        self._store((HEP, name), hep(name, node=node, iface=iface, ips=ips, labels=labels)[2])

    @rule(name=st.sampled_from(HEPS))
    def delete_hep(self, name: str) -> None:
        self._delete((HEP, name))

    @rule(spec=st.sampled_from([{}, {"xdpEnabled": False}, {"genericXDPEnabled": True},
                                {"failsafeInboundHostPorts": [{"protocol": "TCP", "port": 22}]},
                                {"failsafeInboundHostPorts": []}, None]))
    def felix_config(self, spec: dict[str, Any] | None) -> None:
        if spec is None:
            self._delete((FELIX, "default"))
        else:
            self._store((FELIX, "default"), felix("default", **spec)[2])

    @rule(what=st.sampled_from(["set-net", "set-head", "policy-selector", "rule-selector", "hep"]),
          set_name=st.sampled_from(SETS), policy=st.sampled_from(POLICIES), hep_name=st.sampled_from(HEPS))
    def invalid_update(self, what: str, set_name: str, policy: str, hep_name: str) -> None:
        """Bad data is reported; the last valid version (if any) stays enforced."""
        if what == "set-net":
            self._store((GNS, set_name), gns(set_name, ["10.0.0.0/33", "1.2.3.4/32"], {"grp": "x"})[2], valid=False)
        elif what == "set-head":
            _, _, doc = gns(set_name, [], {"grp": "x"})
            del doc["spec"]["nets"]
            doc[MEMBERS_KEY] = {"version": 1, "count": 1, "buckets": 3, "chunks": []}
            self._store((GNS, set_name), doc, valid=False)
        elif what == "policy-selector":
            self._store((GNP, policy), gnp(policy, [{"action": "Deny", "source": {"nets": ["1.2.3.4/32"]}}],
                                           selector="role ==")[2], valid=False)
        elif what == "rule-selector":
            self._store((GNP, policy), gnp(policy, [{"action": "Deny", "source": {"selector": "grp ==== 'x'"}}])[2],
                        valid=False)
        else:
            self._store((HEP, hep_name), hep(hep_name, iface=None, ips=None)[2], valid=False)

    @rule(restart_dataplanes=st.booleans())
    def resync(self, restart_dataplanes: bool) -> None:
        """A new calculation (agent restart): from the full document list, which the
        datastore decodes into new objects; the last valid versions are forgotten."""
        for key, (doc, valid) in list(self.stored.items()):
            self.stored[key] = (copy.deepcopy(doc), valid)
        self.kept = {key: doc for key, (doc, valid) in self.stored.items() if valid}
        self.validated, self.memo = ValidatedResources(), CalcMemo()
        if restart_dataplanes:  # a new process: adopts the pinned programs, reads the ipsets back
            threshold = self.xdp.bulk_threshold
            self.xdp.close()
            self.xdp = XdpDriver(BPFFS, kernel=self.kernel, bulk_threshold=threshold)
            self.raw = RawDataplane("NFT", runner=self.ipset_host)

    @rule()
    def relist(self) -> None:
        """The syncer relists (e.g. after a compaction): every document a new, equal object."""
        for key, (doc, valid) in list(self.stored.items()):
            fresh = copy.deepcopy(doc)
            self.stored[key] = (fresh, valid)
            if key in self.kept and self.kept[key] is doc:
                self.kept[key] = fresh

    # ------------------------------------------------------------ the invariant

    @invariant()
    def agent_matches_from_scratch(self) -> None:
        """One agent reconcile on the current documents, compared with a fresh calculation."""
        self.steps += 1
        items = [(kind, name, doc) for (kind, name), (doc, _) in self.stored.items()]
        snapshot, invalid = self.validated.update(items)
        desired = compute(snapshot, NODE, IFACES, self.memo)
        self.xdp.reconcile(desired.xdp)
        self.raw.reconcile(desired.untracked)

        expected_invalid = sorted((kind, name, KEPT if (kind, name) in self.kept else IGNORED)
                                  for (kind, name), (_, valid) in self.stored.items() if not valid)
        assert sorted((i["kind"], i["name"], i["action"]) for i in invalid) == expected_invalid, invalid

        enforced = [(kind, name, copy.deepcopy(self.kept[(kind, name)])) for kind, name in self.stored
                    if (kind, name) in self.kept]
        reference, reference_invalid = ValidatedResources().update(enforced)
        assert reference_invalid == []
        want = compute(reference, NODE, IFACES)
        self._same_desired(desired, want)

        fresh_kernel = xdp_kernel()
        XdpDriver(BPFFS, kernel=fresh_kernel).reconcile(want.xdp)
        assert xdp_view(self.kernel) == xdp_view(fresh_kernel)

        fresh_host = FakeIpsetHost()
        fresh_raw = RawDataplane("NFT", runner=fresh_host)
        fresh_raw.reconcile(want.untracked)
        rendered = render(want.untracked)
        from_render = {name: (content.family, frozenset(normalize_members(content.members, content.family)))
                       for name, content in rendered.ipsets.items()}
        assert self.raw.last_report is not None and self.raw.last_report.ok, self.raw.last_report
        assert self.ipset_host.view() == fresh_host.view() == from_render
        assert self.raw.last is not None and self.raw.last.tables == rendered.tables

    @staticmethod
    def _same_desired(got: DesiredState, want: DesiredState) -> None:
        assert [(b.name, frozenset(b.cidrs), b.failsafe) for b in got.xdp.interfaces] == \
            [(b.name, frozenset(b.cidrs), b.failsafe) for b in want.xdp.interfaces]
        assert {k: frozenset(v.cidrs) for k, v in got.untracked.sets.items()} == \
            {k: frozenset(v.cidrs) for k, v in want.untracked.sets.items()}
        assert got.untracked == want.untracked
        assert got.decisions == want.decisions
        assert got.warnings == want.warnings
        assert got == want


IncrementalMatchesFromScratch.TestCase.settings = settings(
    max_examples=40, stateful_step_count=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
TestIncrementalMatchesFromScratch = IncrementalMatchesFromScratch.TestCase
