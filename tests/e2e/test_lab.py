#!/usr/bin/python3
"""Checks of the test lab itself (tests/lab/vmlab.py): a private libvirtd
boots real TCG guests whose agents answer, and every failure condition the
exporter's tests rely on really happens (clock step, stopped clock, pause,
dead or hung agent, libvirtd restart, chronyd states in the guest).

One lab with three guests (no chronyd / chronyd local stratum 10 / chronyd
with an unreachable server) is shared by the whole module. Offsets are guest
minus host CLOCK_REALTIME in seconds, positive = guest ahead.
"""

import os
import signal
import subprocess
import sys
import time

import libvirt
import pytest

SOURCE_DIR = os.environ.get(
    "VMTIME_SOURCE_DIR", os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
LAB_DIR = os.path.join(SOURCE_DIR, "tests", "lab")
sys.path.insert(0, LAB_DIR)
import vmlab  # noqa: E402

CLK, LOC, UNR = "clk", "loc", "unr"


@pytest.fixture(scope="module")
def lab():
    the_lab = vmlab.Lab(
        guests=[vmlab.GuestSpec(CLK), vmlab.GuestSpec(LOC, chrony="local10"),
                vmlab.GuestSpec(UNR, chrony="unreachable")],
        boot_timeout=180)
    qemu_pids = [the_lab.qemu_pid(n) for n in the_lab.guest_names]
    workdir = the_lab.workdir
    try:
        yield the_lab
    finally:
        libvirtd_pid = the_lab.libvirtd_pid
        the_lab.close()
    # Teardown leaves nothing behind.
    for pid in qemu_pids:
        assert not vmlab._pid_alive(pid), f"qemu {pid} survived close()"
    assert not vmlab._pid_alive(libvirtd_pid)
    assert not os.path.exists(workdir)


def _resync(lab, name):
    lab.set_clock_to_host(name)
    off, _ = lab.guest_offset(name)
    assert abs(off) < 1.0, f"{name}: resync left offset {off} s"


def test_agents_answer_through_private_uri(lab):
    assert lab.uri.startswith("qemu+unix:///system?socket=")
    # A separate client (as the exporter would be) reaches the guests too.
    conn = libvirt.open(lab.uri)
    try:
        names = sorted(d.name() for d in conn.listAllDomains())
        assert names == sorted([CLK, LOC, UNR])
        t0 = time.time()
        t = conn.lookupByName(CLK).getTime()
        t1 = time.time()
        guest = t["seconds"] + t["nseconds"] / 1e9
        # Freshly booted guests sit up to about 1 s off (whole-second RTC).
        assert t0 - 3 < guest < t1 + 3
    finally:
        conn.close()
    for name in lab.guest_names:
        ns = lab.guest_time(name)
        assert abs(ns / 1e9 - time.time()) < 3


def test_step_back_300_seen_in_guest_time(lab):
    before, _ = lab.guest_offset(CLK)
    lab.step_clock(CLK, -300)
    after, unc = lab.guest_offset(CLK)
    assert unc < 0.5
    assert abs((after - before) - (-300)) < 1.0, (before, after)
    _resync(lab, CLK)


def test_step_with_date_whole_seconds(lab):
    before, _ = lab.guest_offset(CLK)
    lab.step_clock(CLK, 120, method="date")
    after, _ = lab.guest_offset(CLK)
    assert abs((after - before) - 120) < 2.0, (before, after)
    _resync(lab, CLK)


def test_hold_clock_stops_time_and_release_restarts_it(lab):
    lab.hold_clock(CLK)
    try:
        h0, g0 = time.monotonic(), lab.guest_time(CLK)
        time.sleep(3.0)
        h1, g1 = time.monotonic(), lab.guest_time(CLK)
        ratio = (g1 - g0) / 1e9 / (h1 - h0)
        assert ratio < 0.3, f"held clock advanced at {ratio:.2f} of host rate"
    finally:
        lab.release_clock(CLK)
    h0, g0 = time.monotonic(), lab.guest_time(CLK)
    time.sleep(2.0)
    h1, g1 = time.monotonic(), lab.guest_time(CLK)
    ratio = (g1 - g0) / 1e9 / (h1 - h0)
    assert 0.8 < ratio < 1.2, f"released clock advances at {ratio:.2f} of host rate"
    # It resumed from the held time, so it is now behind the host.
    off, _ = lab.guest_offset(CLK)
    assert off < -1.5
    _resync(lab, CLK)


def test_pause_resume_leaves_clock_behind(lab):
    before, _ = lab.guest_offset(CLK)
    lab.pause(CLK)
    try:
        assert lab.state(CLK) == libvirt.VIR_DOMAIN_PAUSED
        time.sleep(4)
    finally:
        lab.resume(CLK)
    assert lab.state(CLK) == libvirt.VIR_DOMAIN_RUNNING
    after, _ = lab.guest_offset(CLK)
    assert after - before < -3.0, (before, after)
    _resync(lab, CLK)


def test_save_restore_leaves_clock_behind(lab):
    before, _ = lab.guest_offset(CLK)
    old_pid = lab.qemu_pid(CLK)
    down = lab.save_restore(CLK, 1.0)
    assert lab.qemu_pid(CLK) not in (None, old_pid)  # a new QEMU process
    after, _ = lab.guest_offset(CLK)
    assert after - before < -(down - 1.0), (before, after, down)
    _resync(lab, CLK)


def test_drift_clock_changes_guest_rate(lab):
    lab.drift_clock(CLK, 20000)  # 2 % fast
    try:
        o0, _ = lab.guest_offset(CLK)
        h0 = time.monotonic()
        time.sleep(4)
        o1, _ = lab.guest_offset(CLK)
        ppm = (o1 - o0) / (time.monotonic() - h0) * 1e6
        # TCG timing noise is a few hundred ppm over seconds.
        assert 15000 < ppm < 25000, ppm
    finally:
        lab.drift_clock(CLK, 0)
    _resync(lab, CLK)


def test_chronyd_local10_reports_stratum_10(lab):
    code, out, err = lab.guest_exec(LOC, ["chronyc", "-c", "tracking"])
    assert code == 0, err
    fields = out.strip().split(",")
    assert len(fields) == 14, out
    assert fields[2] == "10", out
    assert fields[13] == "Normal", out


def test_chronyd_unreachable_is_unsynchronised(lab):
    code, out, err = lab.guest_exec(UNR, ["chronyc", "-c", "tracking"])
    assert code == 0, err
    fields = out.strip().split(",")
    assert fields[2] == "0" and fields[13] == "Not synchronised", out
    code, out, err = lab.guest_exec(UNR, ["chronyc", "-c", "sources"])
    assert code == 0, err
    assert out.startswith("^,?,192.0.2.1,"), out


def test_guest_exec_reports_exit_code_and_stderr(lab):
    code, out, err = lab.guest_exec(CLK, ["/bin/sh", "-c", "echo out; echo err >&2; exit 3"])
    assert (code, out, err) == (3, "out\n", "err\n")
    with pytest.raises(vmlab.LabError):
        lab.guest_exec(CLK, ["/no/such/binary"])


def test_kill_agent_then_restart(lab):
    lab.kill_agent(CLK, restart_after=5)
    with pytest.raises(vmlab.LabError, match="not"):
        lab.guest_time(CLK)
    lab.wait_agent(CLK, timeout=60)
    assert abs(lab.guest_offset(CLK)[0]) < 2


def test_libvirtd_restart_keeps_guests_running(lab):
    pids = {n: lab.qemu_pid(n) for n in lab.guest_names}
    assert all(pids.values()), pids
    old = lab.libvirtd_pid
    lab.kill_libvirtd(signal.SIGKILL)
    assert not vmlab._pid_alive(old)
    with pytest.raises(libvirt.libvirtError):
        libvirt.open(lab.uri)
    assert {n: lab.qemu_pid(n) for n in lab.guest_names} == pids
    lab.start_libvirtd()
    assert lab.libvirtd_pid != old
    assert {n: lab.qemu_pid(n) for n in lab.guest_names} == pids
    for name in lab.guest_names:
        assert lab.state(name) == libvirt.VIR_DOMAIN_RUNNING
        assert abs(lab.guest_time(name) / 1e9 - time.time()) < 3


def test_hung_agent_fails_get_time_after_agent_timeout(lab):
    lab.set_agent_timeout(UNR, 2)
    lab.hang_agent_for(UNR, 12)
    dom = lab.domain(UNR)
    t0 = time.monotonic()
    with pytest.raises(libvirt.libvirtError, match="not responding"):
        dom.getTime()
    # It failed because of the 2 s agent timeout, not because the hang ended.
    assert time.monotonic() - t0 < 8
    # The hang heals itself; the agent answers again.
    lab.wait_agent(UNR, timeout=60)
    assert dom.getTime()["seconds"] > 0


def test_hang_agent_for_good_then_destroy(lab):
    lab.set_agent_timeout(UNR, 2)
    lab.hang_agent(UNR)
    dom = lab.domain(UNR)
    for _ in range(2):  # stays hung; every call fails after the agent timeout
        t0 = time.monotonic()
        with pytest.raises(libvirt.libvirtError, match="not responding"):
            dom.getTime()
        assert time.monotonic() - t0 < 8
    pid = lab.qemu_pid(UNR)
    lab.destroy(UNR)
    assert UNR not in [d.name() for d in lab.conn.listAllDomains()]
    assert not vmlab._pid_alive(pid)
    assert lab.qemu_pid(UNR) is None


def test_second_lab_coexists_and_closes_cleanly(lab, tmp_path):
    other = vmlab.Lab(workdir=str(tmp_path / "other"), guests=0)
    try:
        assert other.uri != lab.uri
        assert other.conn.listAllDomains() == []
        assert len(lab.conn.listAllDomains()) == 2  # UNR was destroyed
        pid = other.libvirtd_pid
        assert vmlab._pid_alive(pid)
    finally:
        other.close()
    assert not vmlab._pid_alive(pid)
    assert not os.path.exists(tmp_path / "other")
    # The first lab is untouched.
    assert lab.guest_time(CLK) > 0


def test_cli_up_status_down(tmp_path):
    d = str(tmp_path / "cli")
    cli = os.path.join(LAB_DIR, "vmlab")
    r = subprocess.run([cli, "up", "--dir", d, "--guests", "0", "--json"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    try:
        r = subprocess.run([cli, "uri", "--dir", d], capture_output=True, text=True, timeout=30)
        assert r.returncode == 0 and "socket=" in r.stdout, r.stderr
        # The lab outlived the `up` process.
        assert libvirt.open(r.stdout.strip()).listAllDomains() == []
        r = subprocess.run([cli, "step", d, "nosuch", "5"], capture_output=True, text=True,
                           timeout=30)
        assert r.returncode != 0 and "no guest 'nosuch'" in r.stderr
    finally:
        r = subprocess.run([cli, "down", "--dir", d], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert not os.path.exists(d)
    r = subprocess.run([cli, "down", "--dir", d], capture_output=True, text=True, timeout=60)
    assert r.returncode != 0 and "no lab in" in r.stderr


def test_bad_guest_spec_is_rejected():
    with pytest.raises(ValueError, match="chrony"):
        vmlab.GuestSpec("x", chrony="ntp")
    with pytest.raises(ValueError, match="name"):
        vmlab.GuestSpec("bad name")
