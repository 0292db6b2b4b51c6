"""The one worker every dataplane tier runs on: latest state wins, repeats are
checks, periodic checks and verifications, retries with back-off, counters on
its own thread. Driven with an in-memory tier (no root, no kernel)."""

from __future__ import annotations

import threading
import time

from seawall.agent.loop import RAW_CHECK_S, RAW_VERIFY_MIN_S, XDP_CHECK_S, raw_intervals, xdp_intervals
from seawall.agent.worker import TierWorker
from seawall.api.felix import EffectiveFelixConfig
from seawall.dataplane.tier import PassKind
from seawall.policy import DesiredState, InterfaceBlocklist, UntrackedState, XdpDesiredState
from seawall.testing.fake_tiers import FakeTier
from seawall.testing.traffic import wait_until

APPLY, CHECK, VERIFY = PassKind.APPLY, PassKind.CHECK, PassKind.VERIFY


def state(*cidrs: str, warnings: tuple[str, ...] = ()) -> DesiredState:
    xdp = XdpDesiredState((InterfaceBlocklist("eth0", frozenset(cidrs), frozenset()),))
    return DesiredState(UntrackedState((), {}), xdp, EffectiveFelixConfig(), warnings=warnings)


def worker(tier: FakeTier, **kw: float) -> TierWorker:
    w = TierWorker(tier, **{"retry_s": 0.05, "check_s": 0.0, "verify_s": 0.0, "counters_s": 0.0, **kw})
    w.start()
    return w


def test_a_change_applies_and_a_repeat_of_the_same_part_is_only_a_check() -> None:
    tier = FakeTier()
    w = worker(tier)
    try:
        w.submit(state("10.0.0.1/32"))
        assert w.wait_idle(5)
        w.submit(state("10.0.0.1/32", warnings=("other part of the state changed",)))
        assert w.wait_idle(5)
        w.submit(state("10.0.0.2/32"))
        assert w.wait_idle(5)
        assert tier.kinds() == [APPLY, CHECK, APPLY]
        assert w.completed == 2  # a check that found nothing is no new result
        assert w.checks == 1
    finally:
        w.close()
    assert tier.closed


def test_force_applies_an_equal_state() -> None:
    tier = FakeTier()
    w = worker(tier)
    try:
        w.submit(state("10.0.0.1/32"))
        assert w.wait_idle(5)
        w.submit(state("10.0.0.1/32"), force=True)  # e.g. the link was re-created under the same name
        assert w.wait_idle(5)
        assert tier.kinds() == [APPLY, APPLY]
    finally:
        w.close()


def test_states_submitted_during_a_pass_collapse_into_the_newest() -> None:
    tier = FakeTier(block=threading.Event())
    w = worker(tier)
    try:
        w.submit(state("10.0.0.1/32"))
        assert wait_until(lambda: len(tier.passes) == 1, timeout=5)
        for n in range(2, 12):
            w.submit(state(f"10.0.0.{n}/32"))
        tier.block.set()
        assert w.wait_idle(5)
        applied = [d.xdp.interfaces[0].cidrs for k, d in tier.passes]
        assert applied == [frozenset({"10.0.0.1/32"}), frozenset({"10.0.0.11/32"})]
    finally:
        w.close()


def test_periodic_checks_and_verifications_of_the_last_state() -> None:
    tier = FakeTier()
    w = worker(tier, check_s=0.02, verify_s=0.15)
    try:
        w.submit(state("10.0.0.1/32"))
        assert wait_until(lambda: VERIFY in tier.kinds(), timeout=5)
        kinds = tier.kinds()
        assert kinds[0] is APPLY and kinds[1] is CHECK
        assert kinds.count(CHECK) >= 3
        assert w.completed == 2  # the apply and the verify; the checks found nothing
    finally:
        w.close()


def test_a_check_that_finds_drift_is_a_new_result() -> None:
    tier = FakeTier(reports=lambda d: {"eth0": object()})
    w = worker(tier, check_s=0.02)
    try:
        w.submit(state("10.0.0.1/32"))
        assert wait_until(lambda: w.checks >= 2, timeout=5)
        assert w.completed == 1
        tier.drift = True
        assert wait_until(lambda: w.completed == 2, timeout=5)
    finally:
        w.close()


def test_changes_arriving_non_stop_do_not_starve_the_verification() -> None:
    tier = FakeTier()
    w = worker(tier, verify_s=0.05)
    try:
        deadline = time.monotonic() + 5
        n = 0
        while VERIFY not in tier.kinds() and time.monotonic() < deadline:
            n += 1
            w.submit(state(f"10.0.{n // 250}.{n % 250}/32"))
            time.sleep(0.005)
        assert VERIFY in tier.kinds()  # overdue by a whole interval: the change itself verifies
    finally:
        w.close()


def test_a_failure_is_retried_with_back_off_until_it_succeeds() -> None:
    tier = FakeTier(fail="raise")
    w = worker(tier, retry_s=0.04, retry_max_s=0.16)
    try:
        w.submit(state("10.0.0.1/32"))
        assert wait_until(lambda: len(tier.passes) >= 5, timeout=10)
        assert w.error == "RuntimeError: exploded"
        tier.fail, tier.message = "report", "line 3 failed"  # a reported error is a failure too
        assert wait_until(lambda: w.error == "line 3 failed", timeout=5)
        tier.fail = None
        assert wait_until(lambda: w.error is None, timeout=5)
        assert all(k is APPLY for k in tier.kinds())  # every retry is an apply
    finally:
        w.close()


def test_back_off_doubles_up_to_the_cap() -> None:
    tier = FakeTier(fail="raise")
    times: list[float] = []
    original = tier.reconcile

    def timed(desired, *, verify=APPLY):  # type: ignore[no-untyped-def]
        times.append(time.monotonic())
        return original(desired, verify=verify)

    tier.reconcile = timed  # type: ignore[method-assign]
    w = worker(tier, retry_s=0.05, retry_max_s=0.2)
    try:
        w.submit(state("10.0.0.1/32"))
        assert wait_until(lambda: len(times) >= 6, timeout=10)
    finally:
        w.close()
    gaps = [b - a for a, b in zip(times, times[1:], strict=False)][:5]
    # 0.05, 0.1, 0.2, 0.2, 0.2 (scheduling adds a little, never removes)
    for gap, want in zip(gaps, (0.05, 0.1, 0.2, 0.2, 0.2), strict=True):
        assert want - 0.01 <= gap <= want + 0.15, gaps


def test_a_newer_state_replaces_a_pending_retry() -> None:
    tier = FakeTier(fail="raise")
    w = worker(tier, retry_s=30.0)
    try:
        w.submit(state("10.0.0.1/32"))
        assert wait_until(lambda: w.error is not None, timeout=5)
        tier.fail = None
        w.submit(state("10.0.0.2/32"))
        assert wait_until(lambda: w.error is None, timeout=5)
        assert [d.xdp.interfaces[0].cidrs for _, d in tier.passes][-1] == frozenset({"10.0.0.2/32"})
    finally:
        w.close()


def test_counters_are_read_on_the_workers_thread_only() -> None:
    tier = FakeTier(name="xdp")
    tier.counts = lambda: {"reads": tier.counter_reads}
    w = worker(tier, counters_s=0.02)
    try:
        w.submit(state("10.0.0.1/32"))
        assert wait_until(lambda: tier.counter_reads >= 4, timeout=5)
        assert tier.counter_threads == {"seawall-xdp"}
        assert w.counters is not None and 1 <= w.counters["reads"] <= tier.counter_reads
    finally:
        w.close()


def test_interval_rules_for_the_two_tiers() -> None:
    assert raw_intervals(0) == (0.0, 0.0)  # iptablesRefreshInterval 0: no periodic raw pass, the check included
    assert raw_intervals(180) == (RAW_CHECK_S, 180)
    assert raw_intervals(1) == (1, RAW_VERIFY_MIN_S)  # the check never less often than the refresh
    assert xdp_intervals(0) == (XDP_CHECK_S, 0.0)  # the attachment check always runs
    assert xdp_intervals(90) == (XDP_CHECK_S, 90)


def test_a_zero_check_interval_means_no_checks_until_set_again() -> None:
    tier = FakeTier()
    w = worker(tier)
    try:
        w.submit(state("10.0.0.1/32"))
        assert w.wait_idle(5)
        time.sleep(0.2)
        assert w.checks == 0
        w.set_intervals(check_s=0.02)
        assert wait_until(lambda: w.checks >= 2, timeout=5)
    finally:
        w.close()
