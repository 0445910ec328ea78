#!/usr/bin/python3
"""The real exporter against real lab guests (private libvirtd, QEMU TCG,
qemu-guest-agent): a held guest clock shows as clock_stopped, a hung agent
as agent down with reason agent_unreachable while the other guest keeps
fresh samples and /metrics keeps answering, SIGTERM stops an exporter
within 2 s while a guest agent call hangs inside libvirt, and a destroyed
domain's series disappear. Scrape latency is printed, not asserted (speed is measured by
scripts/measure and the benchmarks)."""
import os
import re
import signal
import statistics
import sys
import time

import pytest

from exporter_proc import Exporter, metric_value

SRC = os.environ.get("VMTIME_SOURCE_DIR",
                     os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
sys.path.insert(0, os.path.join(SRC, "tests", "lab"))
import vmlab  # noqa: E402

CONFIG = """collectors:
  libvirt: {interval: 2s}
  chrony: {enabled: false}
  ntp: {enabled: false}
libvirt:
  call_deadline: 3s
  agent_retry_interval: 2s
"""


@pytest.fixture(scope="module")
def lab():
    ok, why = vmlab.lab_available()
    if not ok:
        pytest.fail(f"lab not available: {why}")
    the_lab = vmlab.Lab(guests=[vmlab.GuestSpec("held"), vmlab.GuestSpec("hung"),
                                vmlab.GuestSpec("fine")])
    try:
        yield the_lab
    finally:
        the_lab.close()


@pytest.fixture(scope="module")
def exporter(lab):
    with Exporter("--libvirt.uri", lab.uri, config_text=CONFIG) as e:
        for name in ("held", "hung", "fine"):
            e.wait_metric(r'^vmtime_vm_clock_offset_seconds\{domain="%s"' % name, timeout=60)
        yield e


def series(e, name, domain, **labels):
    return metric_value(e.metrics(), name, {"domain": domain, **labels})


def test_held_clock_is_reported_stopped(lab, exporter):
    lab.hold_clock("held")
    try:
        # Two polls at a 2 s interval, plus the time to see the second sample.
        exporter.wait_metric(r'^vmtime_vm_clock_stopped\{domain="held"[^}]*\} 1$', timeout=20)
        exporter.wait_metric(
            r'^vmtime_vm_health_reason\{domain="held",[^}]*reason="clock_stopped"\} 1$', timeout=10)
        assert series(exporter, "vmtime_vm_clock_stopped", "fine") == 0
    finally:
        lab.release_clock("held", resync=True)


def test_hung_agent_is_down_others_stay_fresh(lab, exporter):
    lab.hang_agent("hung")
    exporter.wait_metric(r'^vmtime_vm_agent_up\{domain="hung"[^}]*\} 0$', timeout=30)
    exporter.wait_metric(
        r'^vmtime_vm_health_reason\{domain="hung",[^}]*reason="agent_unreachable"\} 1$',
        timeout=10)
    # The healthy guest keeps getting new samples while the hung agent blocks.
    first = series(exporter, "vmtime_vm_last_sample_timestamp_seconds", "fine")
    latencies = []
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        t0 = time.monotonic()
        text = exporter.metrics()
        latencies.append(time.monotonic() - t0)
        if metric_value(text, "vmtime_vm_last_sample_timestamp_seconds",
                        {"domain": "fine"}) > first + 3:
            break
        time.sleep(0.2)
    assert series(exporter, "vmtime_vm_last_sample_timestamp_seconds", "fine") > first + 3
    assert series(exporter, "vmtime_vm_agent_up", "fine") == 1
    print(f"/metrics during a hung agent: median {statistics.median(latencies) * 1e3:.1f} ms, "
          f"max {max(latencies) * 1e3:.1f} ms over {len(latencies)} scrapes")


def test_sigterm_with_agent_call_hanging_in_libvirt(lab, exporter):
    """SIGTERM stops an exporter within 2 s while one of its guest agent
    calls is blocked inside libvirt: the agent of "hung" is stopped, libvirt
    is told to wait for it forever and the exporter's own deadline is a
    minute, so the call cannot have ended when the signal arrives."""
    # The previous test stopped the agent of "hung" for good (SIGSTOP).
    lab.set_agent_timeout("hung", -2)  # libvirt: block until the agent answers
    config = CONFIG.replace("call_deadline: 3s", "call_deadline: 60s") + \
        "  set_agent_timeout: false\n"
    e = Exporter("--libvirt.uri", lab.uri, config_text=config)
    try:
        # All three domains are sampled in the first round (concurrency 4):
        # once "fine" is up, the call to "hung" is in flight.
        e.wait_metric(r'^vmtime_vm_agent_up\{domain="fine"[^}]*\} 1$', timeout=60)
        assert not e.find_log(r"domain 'hung'.*guest agent down"), e.log()
        t0 = time.monotonic()
        e.signal(signal.SIGTERM)
        rc = e.proc.wait(timeout=10)
        elapsed = time.monotonic() - t0
        print(f"SIGTERM with a call hanging in libvirt: exit {rc} after {elapsed:.3f} s")
        assert rc == 0, e.log()
        assert elapsed < 2.0, f"took {elapsed:.2f}s\n" + e.log()
    finally:
        e.stop()


def test_destroyed_domain_disappears(lab, exporter):
    lab.destroy("hung")
    # libvirt keeps no transient domain after destroy: its series go within one round.
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if not re.search(r'domain="hung"', exporter.metrics()):
            break
        time.sleep(0.3)
    assert not re.search(r'domain="hung"', exporter.metrics())
    assert series(exporter, "vmtime_vm_agent_up", "fine") == 1
