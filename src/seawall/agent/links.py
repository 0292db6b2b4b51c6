"""The node's interfaces and their addresses, read with netlink (pyroute2)."""

from __future__ import annotations

from pyroute2 import IPRoute

from seawall.calc.snapshot import NodeInterfaces


def read_interfaces() -> NodeInterfaces:
    """Every interface of the current network namespace with its addresses."""
    with IPRoute() as ipr:
        names = {link["index"]: link.get_attr("IFLA_IFNAME") for link in ipr.get_links()}
        addresses: dict[str, list[str]] = {name: [] for name in names.values()}
        for addr in ipr.get_addr():
            name = names.get(addr["index"])
            value = addr.get_attr("IFA_ADDRESS") or addr.get_attr("IFA_LOCAL")
            if name and value:
                addresses[name].append(f"{value}/{addr['prefixlen']}")
    return NodeInterfaces({name: tuple(values) for name, values in addresses.items()})
