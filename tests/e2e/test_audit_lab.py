#!/usr/bin/python3
"""The audit trail on a real lab guest (private libvirtd, QEMU TCG,
qemu-guest-agent, no chronyd in the guest so nothing corrects its clock):
the guest's clock stepped back 8 minutes gives step_detected (backward,
size about -480 s) and reason_raised offset_critical with the measured
offset and uncertainty; set right again, reason_cleared offset_critical
with an offset near zero; a pause gives domain_state_changed both ways and
clock_interrupted on the first sample after it. Every event is in the file
and in /api/v1/events with the same id.

Wall time: one guest boot (about 20-60 s under TCG) plus about 30 s.
"""
import json
import os
import sys
import tempfile
import time

import pytest

from exporter_proc import Exporter

SRC = os.environ.get("VMTIME_SOURCE_DIR",
                     os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
sys.path.insert(0, os.path.join(SRC, "tests", "lab"))
import vmlab  # noqa: E402

GUEST = "aud"


@pytest.fixture(scope="module")
def lab():
    ok, why = vmlab.lab_available()
    if not ok:
        pytest.fail(f"lab not available: {why}")
    the_lab = vmlab.Lab(guests=[vmlab.GuestSpec(GUEST)], boot_timeout=180)
    try:
        yield the_lab
    finally:
        the_lab.close()


def read_events(path):
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def wait_event(path, pred, timeout, what, e):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        hits = [ev for ev in read_events(path) if ev["domain"] == GUEST and pred(ev)]
        if hits:
            return hits[0]
        time.sleep(0.2)
    raise TimeoutError(f"{what} not in the trail after {timeout}s:\n"
                       + "\n".join(json.dumps(ev) for ev in read_events(path)[-30:])
                       + "\n" + e.log()[-3000:])


def test_step_back_raise_clear_and_pause(lab):
    with tempfile.TemporaryDirectory(prefix="vmtime-audit-lab-") as tmp:
        trail = os.path.join(tmp, "audit.jsonl")
        cfg = f"""collectors:
  libvirt: {{interval: 1s}}
  chrony: {{enabled: false}}
  ntp: {{enabled: false}}
libvirt:
  call_deadline: 3s
  agent_retry_interval: 1s
audit:
  file: {trail}
  sync_interval: 0s
"""
        with Exporter("--libvirt.uri", lab.uri, config_text=cfg) as e:
            base = wait_event(trail, lambda ev: ev["type"] == "baseline", 90, "baseline", e)
            assert "offset_critical" not in base["after"]["reasons"], base

            lab.step_clock(GUEST, -480)
            step = wait_event(trail, lambda ev: ev["type"] == "step_detected", 60, "step", e)
            assert step["values"]["direction"] == "backward", step
            assert abs(step["values"]["step_s"] + 480) < 5, step
            raised = wait_event(trail, lambda ev: ev["type"] == "reason_raised"
                                and ev["values"]["reason"] == "offset_critical", 30, "raised", e)
            assert abs(raised["values"]["offset_s"] + 480) < 5, raised
            assert 0 <= raised["values"]["uncertainty_s"] < 1, raised
            assert raised["values"]["band"] == "bad", raised

            lab.step_clock(GUEST, 480)
            cleared = wait_event(trail, lambda ev: ev["type"] == "reason_cleared"
                                 and ev["values"]["reason"] == "offset_critical", 60, "cleared", e)
            assert abs(cleared["values"]["offset_s"]) < 5, cleared
            assert cleared["id"] > raised["id"] > base["id"]

            lab.pause_for(GUEST, 4)
            paused = wait_event(trail, lambda ev: ev["type"] == "domain_state_changed"
                                and ev["after"] == "paused", 30, "paused", e)
            resumed = wait_event(trail, lambda ev: ev["type"] == "domain_state_changed"
                                 and ev["before"] == "paused", 30, "resumed", e)
            assert resumed["after"] == "running" and resumed["id"] > paused["id"]
            wait_event(trail, lambda ev: ev["type"] == "clock_interrupted", 30, "interrupted", e)

            status, body, _ = e.get("/api/v1/events?since=0&limit=1000")
            assert status == 200
            by_id = {ev["id"]: ev for ev in json.loads(body)["events"]}
            for ev in (base, step, raised, cleared, paused, resumed):
                assert by_id[ev["id"]] == ev
