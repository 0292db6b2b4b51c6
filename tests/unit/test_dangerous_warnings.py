"""Dangerous-but-valid input is accepted with a warning naming the risk."""

from __future__ import annotations

import time

from seawall.api import load_text, resolve_kind
from seawall.api.kinds import UnknownKind
from seawall.cli.operations import unselected_sets

HEAD = "apiVersion: projectcalico.org/v3\n"


def _set(nets: list[str], labels: str = "{dos-blacklist: 'true'}") -> str:
    return HEAD + f"kind: GlobalNetworkSet\nmetadata: {{name: s, labels: {labels}}}\nspec:\n  nets: {nets!r}\n"


def _policy(rules: str) -> str:
    return HEAD + (
        "kind: GlobalNetworkPolicy\nmetadata: {name: p}\nspec:\n  selector: all()\n"
        "  doNotTrack: true\n  applyOnForward: true\n  ingress:\n" + rules
    )


def _warnings(text: str) -> list[str]:
    return [str(w) for item in load_text(text, "t.yaml") for w in item.warnings]


def test_catch_all_in_a_set_is_warned_for_both_families() -> None:
    warnings = _warnings(_set(["0.0.0.0/0", "::/0", "10.0.0.0/8"]))
    assert len(warnings) == 2
    assert warnings[0].startswith("spec.nets[0]: 0.0.0.0/0: catch-all")
    assert warnings[1].startswith("spec.nets[1]: ::/0: catch-all")
    assert "failsafe" in warnings[0]


def test_host_bits_in_a_set_net_are_warned_with_the_enforced_network() -> None:
    warnings = _warnings(_set(["1.2.3.4/24", "1.2.3.4/32", "1.2.3.4", "2001:db8::1/64", "2001:db8::/64"]))
    assert warnings == [
        "spec.nets[0]: 1.2.3.4/24 has host bits set; it is stored and enforced as 1.2.3.0/24",
        "spec.nets[3]: 2001:db8::1/64 has host bits set; it is stored and enforced as 2001:db8::/64",
    ]


def test_clean_set_has_no_warning() -> None:
    assert _warnings(_set(["1.2.3.4/32", "5.6.0.0/16", "2001:db8:bad::/48"])) == []


def test_catch_all_deny_source_and_deny_without_match_are_warned() -> None:
    text = _policy(
        "  - action: Deny\n    source: {nets: ['0.0.0.0/0']}\n"
        "  - action: Deny\n"
        "  - action: Deny\n    source: {selector: \"a == 'b'\"}\n"
        "  - action: Allow\n"
    )
    warnings = _warnings(text)
    assert any(w.startswith("spec.ingress[0].source.nets[0]: 0.0.0.0/0: catch-all") for w in warnings)
    assert "spec.ingress[1]: Deny rule has no match criteria: it drops all traffic but the failsafe ports" in warnings
    assert not any(w.startswith(("spec.ingress[2]", "spec.ingress[3]")) for w in warnings)


def test_empty_failsafe_ports_are_warned_but_absent_ones_are_not() -> None:
    base = HEAD + "kind: FelixConfiguration\nmetadata: {name: default}\nspec:\n"
    warnings = _warnings(base + "  failsafeInboundHostPorts: []\n  failsafeOutboundHostPorts: []\n")
    assert [w.split(":")[0] for w in warnings] == ["spec.failsafeInboundHostPorts", "spec.failsafeOutboundHostPorts"]
    assert "lock you out" in warnings[0]
    assert _warnings(base + "  failsafeInboundHostPorts: [{protocol: TCP, port: 22}]\n") == []
    assert _warnings(base + "  logSeverityScreen: Info\n") == []


def test_million_net_set_stays_fast() -> None:
    nets = [f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}/32" for i in range(1_000_000)]
    from seawall.api.cidr_bulk import canonical_texts
    from seawall.api.validation import _Collector, _warn_set_nets

    out = _Collector()
    texts = canonical_texts(nets)
    start = time.perf_counter()
    _warn_set_nets(nets, texts, out)
    assert time.perf_counter() - start < 1.0
    assert out.warnings == []


def test_set_no_policy_selects_is_found_and_a_selected_one_is_not() -> None:
    policy = _policy("  - action: Deny\n    source: {selector: \"dos-blacklist == 'true'\"}\n")
    typo = load_text(_set(["1.2.3.4/32"], "{dos-blacklst: 'true'}"), "t.yaml")
    good = load_text(_set(["1.2.3.4/32"]), "t.yaml")
    policies = load_text(policy, "p.yaml")
    assert [i.key for i in unselected_sets(typo + policies, {})] == [("GlobalNetworkSet", "s")]
    assert unselected_sets(good + policies, {}) == []
    stored = {"p": {"spec": {"ingress": [{"action": "Deny", "source": {"selector": "dos-blacklist == 'true'"}}]}}}
    assert unselected_sets(good, stored) == []
    assert len(unselected_sets(good, {})) == 1


def test_kind_typo_suggests_the_kind() -> None:
    try:
        resolve_kind("hostendpont")
    except UnknownKind as exc:
        assert "did you mean 'hostendpoint' (HostEndpoint)?" in str(exc)
    else:  # pragma: no cover
        raise AssertionError("no error")
    try:
        resolve_kind("zzzz")
    except UnknownKind as exc:
        assert "did you mean" not in str(exc)


def test_ipv6_slash_32_with_host_bits_is_warned() -> None:
    text = ("apiVersion: projectcalico.org/v3\nkind: GlobalNetworkSet\nmetadata: {name: s}\n"
            "spec: {nets: ['2001:db8::1/32', '10.0.0.1/32']}\n")
    warnings = load_text(text, "s.yaml")[0].warnings
    assert any("2001:db8::1/32 has host bits set" in str(w) for w in warnings)
    assert not any("10.0.0.1/32" in str(w) for w in warnings)
