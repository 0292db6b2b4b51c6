"""The node's interfaces and their addresses, read with netlink (pyroute2).

A link's identity is its name *and* its ifindex: a link deleted and created
again under the same name (same MAC or not) is a new link, with a new ifindex,
and needs its XDP program attached again. ``read_links`` returns both;
``seawall.agent.netlink_watch`` re-reads them on every link/address event.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from pyroute2 import IPRoute

from seawall.calc.snapshot import NodeInterfaces


@dataclass(frozen=True)
class LinkTable:
    """The interfaces (name -> addresses, what the calculation sees) and each
    one's ifindex (name -> ifindex, the identity the dataplanes attach to)."""

    interfaces: NodeInterfaces = field(default_factory=NodeInterfaces)
    ifindex: Mapping[str, int] = field(default_factory=dict)
    #: Link deletions seen by the watcher: a link deleted and re-created between two
    #: dumps can come back with the same name, MAC *and* ifindex (the kernel reuses
    #: free ifindexes), so the dumps alone would look identical.
    generation: int = 0


def read_links(ipr: IPRoute | None = None, *, generation: int = 0) -> LinkTable:
    """Every interface of the current network namespace with its ifindex and addresses."""
    if ipr is None:
        with IPRoute() as own:
            return read_links(own, generation=generation)
    names = {link["index"]: link.get_attr("IFLA_IFNAME") for link in ipr.get_links()}
    addresses: dict[str, list[str]] = {name: [] for name in names.values() if name}
    for addr in ipr.get_addr():
        name = names.get(addr["index"])
        value = addr.get_attr("IFA_ADDRESS") or addr.get_attr("IFA_LOCAL")
        if name and value:
            addresses[name].append(f"{value}/{addr['prefixlen']}")
    return LinkTable(NodeInterfaces({name: tuple(sorted(values)) for name, values in addresses.items()}),
                     {name: index for index, name in names.items() if name}, generation)


def read_interfaces() -> NodeInterfaces:
    """Every interface of the current network namespace with its addresses."""
    return read_links().interfaces


def with_named(interfaces: NodeInterfaces, names: Iterable[str]) -> NodeInterfaces:
    """``interfaces`` plus every name in ``names`` that is absent, with no addresses.

    The agent passes the ``interfaceName`` of every local host endpoint that names
    its interface explicitly: such an endpoint resolves by name alone, so while
    its interface is gone (deleted, about to be created again) the calculation
    still gives it its policies and the raw tier keeps its rules and sets —
    iptables ``-i NAME`` matches by name, so a re-created interface is protected
    the moment it exists. Endpoints matched by address (no interfaceName) or by
    ``*`` are not affected: the calculation's semantics stay as they are."""
    missing = sorted(set(names) - set(interfaces.addresses))
    if not missing:
        return interfaces
    merged = dict(interfaces.addresses)
    merged.update({name: () for name in missing})
    return NodeInterfaces(merged)
