"""Immutable inputs of the calculation: the validated resources and the node's interfaces."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from seawall.api import codec, models
from seawall.calc.members import SetMembers

_ATTR = {
    "HostEndpoint": "hep",
    "GlobalNetworkSet": "gns",
    "GlobalNetworkPolicy": "gnp",
    "FelixConfiguration": "felix",
}


@dataclass(frozen=True)
class Snapshot:
    """The resources the calculation sees, by kind and name. Resources that do
    not validate are listed in ``invalid`` as (kind, name, reason) and are
    otherwise absent (DESIGN invariant 1)."""

    hep: Mapping[str, models.HostEndpoint] = field(default_factory=dict)
    gns: Mapping[str, models.GlobalNetworkSet] = field(default_factory=dict)
    gnp: Mapping[str, models.GlobalNetworkPolicy] = field(default_factory=dict)
    felix: Mapping[str, models.FelixConfiguration] = field(default_factory=dict)
    invalid: tuple[tuple[str, str, str], ...] = ()
    # chunked GlobalNetworkSets (``seawall.api.members``): set name -> its members;
    # such a set's resource in ``gns`` has no ``spec.nets``
    members: Mapping[str, SetMembers] = field(default_factory=dict)

    @classmethod
    def from_stored(cls, items: Iterable[tuple[str, str, dict[str, Any]]]) -> Snapshot:
        """Validate each stored (kind, name, document); record the bad ones instead of raising."""
        buckets: dict[str, dict[str, Any]] = {attr: {} for attr in _ATTR.values()}
        invalid: list[tuple[str, str, str]] = []
        for kind, name, doc in items:
            attr = _ATTR.get(kind)
            if attr is None:
                invalid.append((kind, name, f"unknown kind {kind!r}"))
                continue
            try:
                parsed = codec.from_stored(doc, source=f"{kind}/{name}")
            except Exception as exc:  # noqa: BLE001 - any bad stored data is reported, never fatal
                invalid.append((kind, name, str(exc) or type(exc).__name__))
                continue
            resource = parsed.resource
            if resource.kind != kind or resource.metadata.name != name:
                invalid.append((
                    kind, name,
                    f"stored under {kind}/{name} but the document is {resource.kind}/{resource.metadata.name}",
                ))
                continue
            buckets[attr][name] = resource
        return cls(**buckets, invalid=tuple(sorted(invalid)))

    @classmethod
    def of(cls, resources: Iterable[models.Resource]) -> Snapshot:
        """A snapshot of already validated resources (tests, the CLI)."""
        buckets: dict[str, dict[str, Any]] = {attr: {} for attr in _ATTR.values()}
        for resource in resources:
            buckets[_ATTR[resource.kind]][resource.metadata.name] = resource
        return cls(hep=buckets["hep"], gns=buckets["gns"], gnp=buckets["gnp"], felix=buckets["felix"])


@dataclass(frozen=True)
class NodeInterfaces:
    """The node's interfaces: name -> addresses (``"10.0.0.1"`` or ``"10.0.0.1/24"``).
    The agent reads them from netlink; the calculation only sees the values."""

    addresses: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "addresses", {k: tuple(v) for k, v in dict(self.addresses).items()})

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(sorted(self.addresses))
