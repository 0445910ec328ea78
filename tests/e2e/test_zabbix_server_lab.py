#!/usr/bin/python3
"""A lab guest's clock stepped back 8 minutes, seen by a real Zabbix 6.0
server through the project's HTTP template (issue 18).

One QEMU guest with qemu-guest-agent in the private lab (tests/lab), the
real exporter against it, the private Zabbix stack of zabbix_stack.py and
the template imported through the API (test_zabbix_server.py has the rest:
import, discovery, external check, lost VMs, nodata). The guest clock is
stepped back 480 s through the agent (guest-set-time, as the detection
matrix does): the discovered trigger "clock offset vs host beyond
{$VMTIME.OFFSET.CRIT}s" opens a High problem with the template's tags, and
"clock stepped backwards" a Warning one; the guest set back to its host's
time (virDomainSetTime) resolves the offset problem. Host macros shorten
the periods to 10 s; the thresholds are the defaults (30 s / 300 s).
Runs under the CTest lock vmtime_lab.
"""

import os
import shutil
import tempfile
import time

import pytest

import integrations_support as sup
import zabbix_stack as zs
from test_zabbix_server import (FAST, SEVERITY_HIGH, T_HTTP, create_host, import_template, problems,
                                wait_problem, wait_values)

vmlab = sup.lab_module()
GUEST = "g1"

pytestmark = [
    pytest.mark.skipif(bool(zs.missing()), reason=zs.missing() or "ready"),
    pytest.mark.skipif(not vmlab.lab_available()[0], reason=vmlab.lab_available()[1] or "ready"),
]


@pytest.fixture(scope="module")
def rig():
    workdir = tempfile.mkdtemp(prefix="vmtime-zbxlab-")
    try:
        with sup.processes() as procs, \
                vmlab.Lab(os.path.join(workdir, "lab"), guests=[vmlab.GuestSpec(GUEST)],
                          boot_timeout=300) as lab, \
                zs.ZabbixStack() as stack:
            _, base = sup.start_exporter(procs, workdir, libvirt_uri=lab.uri)
            yield lab, base, stack
            print("--- zabbix_server log tail ---\n" + stack.server_log_tail(20))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def event_resolved(stack, eventid):
    ev = stack.api("event.get", {"eventids": eventid, "output": ["r_eventid"]})
    return ev and ev[0]["r_eventid"] != "0"


def test_guest_stepped_back_8_minutes_opens_and_fixing_resolves(rig):
    lab, base, stack = rig
    assert import_template(stack) is True
    hostid = create_host(stack, "hv-lab", T_HTTP, base)
    uuid = lab.domain(GUEST).UUIDString()
    offs = wait_values(stack, hostid, f"vmtime.vm.offset[{uuid}", [uuid], 120, "the lab guest's offset item")
    assert abs(float(offs[uuid]["lastvalue"])) < 30, offs  # a fresh guest is near its host
    crit = f"VM {GUEST}: clock offset vs host beyond 300s"
    assert not [p for p in problems(stack, hostid) if p["name"] == crit]

    lab.step_clock(GUEST, -480)
    t0 = time.monotonic()
    p = wait_problem(stack, hostid, crit, 90)
    print(f"offset problem opened {time.monotonic() - t0:.1f} s after the step "
          "({$VMTIME.OFFSET.CRIT.PERIOD} 10s)")
    assert p["severity"] == SEVERITY_HIGH, p
    tags = {(t["tag"], t["value"]) for t in p["tags"]}
    assert {("scope", "time"), ("component", "vm"), ("alert", "VMClockOffsetCritical"),
            ("vm", GUEST)} <= tags, tags
    value = float(wait_values(stack, hostid, f"vmtime.vm.offset[{uuid}", [uuid], 10, "offset")[uuid]["lastvalue"])
    assert -500 < value < -460, value
    step = wait_problem(stack, hostid, f"VM {GUEST}: clock stepped backwards", 60)
    assert step["severity"] == "2" and ("alert", "VMClockSteppedBackward") in {
        (t["tag"], t["value"]) for t in step["tags"]}
    # The warning-level offset trigger depends on the critical one.
    assert not [q for q in problems(stack, hostid) if q["name"] == f"VM {GUEST}: clock offset vs host beyond 30s"]

    lab.set_clock_to_host(GUEST)
    t0 = time.monotonic()
    sup.wait_until(lambda: event_resolved(stack, p["eventid"]), 90, "the offset problem to resolve", interval=1.0)
    print(f"offset problem resolved {time.monotonic() - t0:.1f} s after the fix")
