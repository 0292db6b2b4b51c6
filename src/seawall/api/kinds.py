"""The resource kinds Seawall stores, their plurals and calicoctl's aliases."""

from __future__ import annotations

import difflib
from dataclasses import dataclass

from seawall.api import models


@dataclass(frozen=True, slots=True)
class KindInfo:
    kind: str
    plural: str  # etcd key segment, as Calico's /calico/resources/v3/projectcalico.org/<plural>/
    model: type[models._Resource]
    aliases: tuple[str, ...]


KINDS: dict[str, KindInfo] = {
    info.kind: info
    for info in (
        KindInfo(
            "HostEndpoint", "hostendpoints", models.HostEndpoint,
            ("hostendpoint", "hostendpoints", "hep", "heps"),
        ),
        KindInfo(
            "GlobalNetworkSet", "globalnetworksets", models.GlobalNetworkSet,
            ("globalnetworkset", "globalnetworksets", "gns", "gnetset", "gnetsets"),
        ),
        KindInfo(
            "GlobalNetworkPolicy", "globalnetworkpolicies", models.GlobalNetworkPolicy,
            ("globalnetworkpolicy", "globalnetworkpolicies", "gnp", "gnps", "gpol", "gpols"),
        ),
        KindInfo(
            "FelixConfiguration", "felixconfigurations", models.FelixConfiguration,
            ("felixconfiguration", "felixconfigurations", "felixconfig", "felixconfigs"),
        ),
    )
}

_BY_ALIAS = {alias: info for info in KINDS.values() for alias in (*info.aliases, info.kind.lower())}


class UnknownKind(ValueError):
    pass


def resolve_kind(text: str) -> KindInfo:
    """Map a user-typed kind (any case, singular, plural or short alias) to its info."""
    info = _BY_ALIAS.get(text.lower())
    if info is None:
        known = ", ".join(sorted(KINDS))
        hint = ""
        close = difflib.get_close_matches(text.lower(), list(_BY_ALIAS), n=1, cutoff=0.75)
        if close:
            hint = f"; did you mean '{close[0]}' ({_BY_ALIAS[close[0]].kind})?"
        raise UnknownKind(f"resource type '{text}' is not supported{hint} (supported kinds: {known})")
    return info


def short_aliases(info: KindInfo) -> tuple[str, ...]:
    """The aliases that are not just the singular or plural spelled out."""
    long = {info.kind.lower(), info.plural}
    return tuple(alias for alias in info.aliases if alias not in long)
