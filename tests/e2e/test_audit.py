#!/usr/bin/python3
"""The audit trail with a real exporter against libvirt's test driver
(test:///default: one running domain "test" whose clock is frozen, so its
reasons are steady once settled).

- events reach the JSON-lines file and /api/v1/events with the same ids,
  and vmtime_events_total counts them;
- a restart continues the ids (no duplicate, no gap) and rebuilds the state
  from the first observations: the restarted run's baseline shows the same
  reasons the first run ended with, and no transition is repeated;
- logrotate's rename + create, then SIGHUP: later events go to the new file,
  earlier ones stay in the renamed one, none lost; copytruncate leaves no hole;
- a full disk (a 64 KiB tmpfs mounted in a test-owned directory, unmounted
  in teardown even on failure): events are dropped and counted, the error is
  logged once, /metrics and /api/v1/events keep serving, and writing resumes
  when space is back.

Wall time: about 30-60 s (three waits for a VM to settle, 8 samples at 0.5 s).
"""
import json
import os
import signal
import subprocess
import tempfile
import time

import pytest

from exporter_proc import Exporter, metric_value

SETTLE_TIMEOUT = 60


def config(audit_file, extra=""):
    return f"""
libvirt:
  uri: test:///default
  agent_retry_interval: 0.5s
collectors:
  chrony: {{enabled: false}}
  ntp: {{enabled: false}}
  libvirt: {{interval: 0.5s}}
audit:
  file: {audit_file}
  sync_interval: 0s
{extra}
"""


def read_events(path):
    if not os.path.exists(path):
        return []
    with open(path, "rb") as f:
        data = f.read()
    assert b"\0" not in data, f"{path} has NUL bytes"
    return [json.loads(line) for line in data.decode().splitlines() if line.strip()]


def wait_for(predicate, timeout, what, exporter=None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = predicate()
        if got:
            return got
        time.sleep(0.1)
    log = exporter.log()[-4000:] if exporter else ""
    raise TimeoutError(f"{what} not seen within {timeout}s\n{log}")


def vm_baseline(events):
    return [e for e in events if e["type"] == "baseline" and e["domain"] == "test"]


def api_events(e, since=0):
    status, body, headers = e.get(f"/api/v1/events?since={since}&limit=1000")
    assert status == 200, body
    assert headers["Content-Type"] == "application/json"
    return json.loads(body)


def active_reasons_at_end(events):
    """The reasons of domain "test" as the events of one run leave them."""
    reasons = None
    for e in events:
        if e["domain"] != "test":
            continue
        if e["type"] == "baseline" and e["values"].get("aspect") == "vm":
            reasons = set(e["after"]["reasons"])
        elif e["type"] == "reason_raised":
            reasons.add(e["values"]["reason"])
        elif e["type"] == "reason_cleared":
            reasons.discard(e["values"]["reason"])
    return reasons


def test_file_api_metrics_and_restart_continue_without_duplicates():
    with tempfile.TemporaryDirectory(prefix="vmtime-audit-") as tmp:
        trail = os.path.join(tmp, "audit.jsonl")
        with Exporter(config_text=config(trail)) as e:
            wait_for(lambda: vm_baseline(read_events(trail)), SETTLE_TIMEOUT, "baseline of test", e)
            page = api_events(e)
            assert page["events"][0]["type"] == "exporter_started"
            assert page["events"][0]["id"] == 1
            file_ids = {ev["id"]: ev for ev in read_events(trail)}
            for ev in page["events"]:  # the same event, the same id, in both
                if ev["id"] in file_ids:
                    assert file_ids[ev["id"]] == ev
            base = vm_baseline(page["events"])[0]
            assert base["uuid"] and base["host"] and base["time"].endswith("Z")
            assert base["after"]["state"] == "running"
            assert base["values"]["aspect"] == "vm"
            # A transition-free start: no raised/cleared/agent events before the baseline.
            before = [ev for ev in page["events"] if ev["id"] < base["id"]]
            assert all(ev["type"] in ("exporter_started", "baseline") for ev in before), before
            m = e.wait_metric(r'^vmtime_events_total\{type="baseline"\} (\d+)')
            assert int(m.group(1)) >= 1
            text = e.metrics()
            assert metric_value(text, "vmtime_events_dropped_total", {"reason": "write_error"}) == 0
            assert metric_value(text, "vmtime_events_dropped_total", {"reason": "queue_full"}) == 0
            status, body, _ = e.get("/api/v1/events?since=x")
            assert status == 400 and "since: 'x'" in body, body
            status, body, _ = e.get("/api/v1/events?limit=1&since=0")
            assert json.loads(body)["more"] is True
            time.sleep(2)  # let run 1 go on for a few samples (any transition in it counts)
        run1 = read_events(trail)
        assert run1[-1]["type"] == "exporter_stopped"
        last1 = run1[-1]["id"]

        with Exporter(config_text=config(trail)) as e:
            wait_for(lambda: len(vm_baseline(read_events(trail))) >= 2, SETTLE_TIMEOUT,
                     "baseline of the second run", e)
            assert api_events(e)["events"][0]["id"] == last1 + 1
        events = read_events(trail)
        ids = [ev["id"] for ev in events]
        assert ids == list(range(1, len(ids) + 1)), ids  # continued, no duplicate, no gap
        run2 = events[len(run1):]
        assert run2[0]["type"] == "exporter_started"
        # Neither duplicated nor lost: the second run's baseline shows exactly
        # the reasons the first run's events left active (the domain did not
        # change in between), and nothing is raised or cleared before it.
        assert active_reasons_at_end(run1) == set(vm_baseline(run2)[0]["after"]["reasons"])
        base2 = vm_baseline(run2)[0]["id"]
        assert not [ev for ev in run2 if ev["id"] < base2 and ev["type"].startswith("reason_")]


def test_logrotate_rename_then_sighup_and_copytruncate():
    with tempfile.TemporaryDirectory(prefix="vmtime-audit-") as tmp:
        trail = os.path.join(tmp, "audit.jsonl")
        with Exporter(config_text=config(trail)) as e:
            wait_for(lambda: read_events(trail), 20, "first event", e)
            os.rename(trail, trail + ".1")  # logrotate: rename ...
            with open(trail, "w"):  # ... create ...
                pass
            e.signal(signal.SIGHUP)  # ... postrotate
            fresh = wait_for(lambda: [ev for ev in read_events(trail)
                                      if ev["type"] == "config_reloaded"], 20, "reload event", e)
            assert fresh[0]["values"]["successful"] is True
            # copytruncate: the file is emptied under the open descriptor.
            os.truncate(trail, 0)
            e.signal(signal.SIGHUP)
            wait_for(lambda: read_events(trail), 20, "event after truncate", e)  # no NUL hole
        rotated = read_events(trail + ".1")
        current = read_events(trail)
        # Nothing lost, nothing twice: the renamed file then the new one hold
        # 1..N (the copytruncate removed a prefix of the new one: ids from
        # the first line after it on).
        rotated_ids = [ev["id"] for ev in rotated]
        assert rotated_ids == list(range(1, len(rotated_ids) + 1)), rotated_ids
        current_ids = [ev["id"] for ev in current]
        assert current_ids == list(range(current_ids[0], current_ids[0] + len(current_ids)))
        assert current[-1]["type"] == "exporter_stopped"
        assert not any(ev["type"] == "config_reloaded" for ev in rotated)


@pytest.fixture
def tiny_tmpfs():
    if os.geteuid() != 0:
        pytest.skip("needs root to mount a tmpfs")
    tmp = tempfile.mkdtemp(prefix="vmtime-audit-tmpfs-")
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k,mode=0755", "tmpfs", tmp], check=True)
    try:
        yield tmp
    finally:
        if subprocess.run(["umount", tmp]).returncode != 0:
            subprocess.run(["umount", "-l", tmp])
        os.rmdir(tmp)


def test_full_disk_drops_counts_and_keeps_serving(tiny_tmpfs):
    trail = os.path.join(tiny_tmpfs, "audit.jsonl")
    filler = os.path.join(tiny_tmpfs, "filler")
    with open(filler, "wb", buffering=0) as f:  # fill the tmpfs to the last byte
        try:
            while True:
                f.write(b"x" * 4096)
        except OSError:
            pass
    e = Exporter(config_text=config(trail))
    try:
        m = e.wait_metric(r'^vmtime_events_dropped_total\{reason="write_error"\} ([1-9]\d*)')
        for n in range(1, 4):  # more events that cannot be written
            e.signal(signal.SIGHUP)
            wait_for(lambda: len([ev for ev in api_events(e)["events"]
                                  if ev["type"] == "config_reloaded"]) == n, 20, "reload", e)

        def dropped():
            return metric_value(e.metrics(), "vmtime_events_dropped_total",
                                {"reason": "write_error"})
        wait_for(lambda: dropped() >= float(m.group(1)) + 3, 20, "3 more drops counted", e)
        assert e.get("/healthz")[0] == 200
        assert "vmtime_exporter_build_info" in e.metrics()
        # Said once in the log, however many events failed.
        errors = [l for l in e.log().splitlines() if "audit: cannot write" in l
                  or "audit: cannot open" in l]
        assert len(errors) == 1, errors
        assert not read_events(trail)
        # Space again: the next event is written, and that is logged once.
        os.unlink(filler)
        e.signal(signal.SIGHUP)
        wait_for(lambda: [ev for ev in read_events(trail) if ev["type"] == "config_reloaded"],
                 20, "event written after space came back", e)
        e.wait_log(r"audit: writing .* works again")
    finally:
        e.stop()  # before the unmount: the exporter holds the file open
