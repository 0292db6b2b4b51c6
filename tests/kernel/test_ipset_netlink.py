"""Members written by netlink make the very sets ``ipset restore`` makes, in a fresh
namespace per test: random IPv4 and IPv6 nets of every prefix length, adds of what
is there and deletes of what is not (restore's ``-exist``), batches across message
boundaries, and the errors a missing set or a wrong family give."""

from __future__ import annotations

import random
from collections.abc import Iterator

import pytest

from seawall.dataplane.iptables.backend import CommandError
from seawall.dataplane.iptables.ipset_netlink import PER_MESSAGE, NetlinkMembers
from seawall.dataplane.iptables.ipsets import MemberLines, normalize_members, parse_save_members
from seawall.testing.netns import in_netns, netns, run_in


@pytest.fixture
def ns() -> Iterator[str]:
    with netns() as name:
        yield name


def _random_nets(rng: random.Random, version: int, count: int) -> list[str]:
    bits = 32 if version == 4 else 128
    raw = []
    for _ in range(count):
        length = rng.choice([rng.randint(1, bits), bits, 24 if version == 4 else 64])
        address = rng.getrandbits(bits)
        raw.append(f"{address >> 24}.{(address >> 16) & 255}.{(address >> 8) & 255}.{address & 255}/{length}"
                   if version == 4 else f"{address:032x}"[:4] + "::" + f"{address:032x}"[-4:] + f"/{length}")
    return sorted(normalize_members(raw, "inet" if version == 4 else "inet6"))


def _members(ns: str, name: str, family: str) -> set[str]:
    return parse_save_members(run_in(ns, ["ipset", "save", name]).stdout, name, family)


@pytest.mark.parametrize("version", [4, 6])
def test_netlink_members_are_what_restore_writes(ns: str, version: int) -> None:
    rng = random.Random(version)
    family = "inet" if version == 4 else "inet6"
    count = 2 * PER_MESSAGE[version] + 17  # three messages, the last one short
    nets = _random_nets(rng, version, count)
    gone = rng.sample(nets, len(nets) // 3) + _random_nets(rng, version, 5)  # and some that were never there
    for name in ("sw-nl", "sw-restore"):
        run_in(ns, ["ipset", "create", name, "hash:net", "family", family, "maxelem", "65536"])
    run_in(ns, ["ipset", "restore", "-exist"], input=MemberLines("add", "sw-restore", version, nets).text())
    writer = NetlinkMembers()
    with in_netns(ns):
        writer("add", "sw-nl", version, nets)
        writer("add", "sw-nl", version, nets[:10])  # already there: no error, as with -exist
    assert _members(ns, "sw-nl", family) == _members(ns, "sw-restore", family) == set(nets)
    run_in(ns, ["ipset", "restore", "-exist"], input=MemberLines("del", "sw-restore", version, gone).text())
    with in_netns(ns):
        writer("del", "sw-nl", version, gone)
    left = _members(ns, "sw-nl", family)
    assert left == _members(ns, "sw-restore", family) == set(nets) - set(gone)
    assert left  # the deletes did not empty the set by accident


def test_netlink_errors_name_the_set_and_the_cause(ns: str) -> None:
    run_in(ns, ["ipset", "create", "sw-six", "hash:net", "family", "inet6"])
    writer = NetlinkMembers()
    with in_netns(ns), pytest.raises(CommandError, match="sw-missing.*does not exist"):
        writer("add", "sw-missing", 4, ["10.0.0.0/8"])
    with in_netns(ns), pytest.raises(CommandError, match="sw-six.*wrong family"):
        writer("add", "sw-six", 4, ["10.0.0.0/8"])
    assert _members(ns, "sw-six", "inet6") == set()
    with pytest.raises(ValueError, match="canonical IPv4"):
        writer("add", "sw-six", 4, ["10.0.0.1/8"])  # refused before anything is sent
