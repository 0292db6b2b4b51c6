"""Where the real agent is put together: the only place that builds the real
dataplane tiers (XDP through libbpf, iptables raw through its commands) and the
netlink link reader. Everything else is given them, so it can be given fakes.
"""

from __future__ import annotations

from pathlib import Path

from seawall.agent.loop import Agent, AgentOptions
from seawall.agent.netlink_watch import LinkWatcher
from seawall.dataplane.iptables.tier import RawTier
from seawall.dataplane.xdp.driver import TeardownReport, XdpDriver
from seawall.dataplane.xdp.tier import XdpTier
from seawall.datastore import Datastore

#: In the run directory: what the ipsets held when the last agent stopped (adopted by the next).
IPSET_STATE_FILE = "ipsets.json"


def build_agent(store: Datastore, options: AgentOptions) -> Agent:
    """The agent of this host: XDP pins under ``options.bpffs``, the raw tier on
    ``options.iptables_backend`` (None: FelixConfiguration's), netlink links."""
    raw = RawTier(options.iptables_backend, state_file=options.run_dir / IPSET_STATE_FILE)
    return Agent(store, options, xdp=XdpTier(XdpDriver(options.bpffs)), raw=raw, links=LinkWatcher())


def cleanup(bpffs: Path | str, iptables_backend: str = "Auto") -> TeardownReport:
    """Remove everything Seawall installed on this host, without a datastore
    (``seawall teardown`` must work while the datastore is unreachable): only
    what is in the kernel (every interface of this network namespace: Seawall
    programs pinned elsewhere or not at all too) and under ``<bpffs>/seawall``
    is looked at. Returns what was removed and what was left (foreign programs)."""
    xdp = XdpTier(XdpDriver(bpffs))
    try:
        report = xdp.teardown()
    finally:
        xdp.close()
    errors = RawTier(iptables_backend).cleanup()
    report.left += [f"iptables raw: {error}" for error in errors or ()]
    return report


__all__ = ["build_agent", "cleanup"]
