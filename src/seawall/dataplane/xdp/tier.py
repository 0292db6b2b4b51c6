"""The XDP tier behind the common tier shape (``seawall.dataplane.tier``).

Its part of the desired state is ``desired.xdp``. A CHECK pass is the cheap
look the agent used to take every status tick: whether an interface we
attached to has lost our program (link deleted or re-created, program detached
or replaced); only a new loss leads to a reconcile (a foreign program that
stays must not make it spin). VERIFY reads every map back and repairs.
"""

from __future__ import annotations

from collections.abc import Mapping

from seawall.dataplane.tier import PassKind, TierReport
from seawall.dataplane.xdp.driver import TeardownReport, XdpDriver
from seawall.dataplane.xdp.maps import Counters
from seawall.dataplane.xdp.report import InterfaceReport
from seawall.policy.desired import DesiredState
from seawall.policy.xdp import XdpDesiredState


class XdpTier:
    name = "xdp"

    def __init__(self, driver: XdpDriver) -> None:
        self.driver = driver
        self._reports: Mapping[str, InterfaceReport] = {}
        self._lost: frozenset[str] = frozenset()

    def enforced(self, desired: DesiredState) -> XdpDesiredState:
        return desired.xdp

    def reconcile(self, desired: DesiredState, *, verify: PassKind = PassKind.APPLY) -> TierReport[InterfaceReport]:
        if verify is PassKind.CHECK:
            lost = frozenset(self.driver.lost_attachments())
            stale = bool(lost) and lost != self._lost  # once per loss
            self._lost = lost
            if not stale:
                return TierReport(self._reports, changed=False)
        self._reports = self.driver.reconcile(desired.xdp, verify=verify is PassKind.VERIFY)
        return TierReport(self._reports)

    def counters(self) -> dict[str, Counters]:
        """Counters of every interface our program runs on."""
        out: dict[str, Counters] = {}
        for name in self._reports:
            counters = self.driver.counters(name)
            if counters is not None:
                out[name] = counters
        return out

    def cleanup(self) -> list[str]:
        return self.teardown().left

    def teardown(self) -> TeardownReport:
        self._reports = {}
        return self.driver.teardown()

    def close(self) -> None:
        self.driver.close()
