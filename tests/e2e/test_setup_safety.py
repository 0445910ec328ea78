#!/usr/bin/python3
"""scripts/setup is safe on a machine whose services are running.

1. A private chronyd (`-x`, no port, its own command socket) and a private
   libvirtd (the lab's, no guests) run; `scripts/setup --test` runs for real
   (on a set-up machine it installs nothing); both daemons are still the same
   processes afterwards and still answer.
2. The install path, with the package tools replaced by recording shims on
   PATH (dpkg-query says nothing is installed, apt-get records its arguments
   and whether a policy-rc.d forbidding service starts was in place):
   apt-get is called with the missing packages while the temporary
   policy-rc.d exits 101, nothing calls systemctl/service/invoke-rc.d to
   stop or restart anything, and the temporary policy is gone afterwards.
   An existing policy-rc.d is left as it was.
3. The levels: --build asks for no daemon, kernel image or browser.
Every wait is bounded; daemons are torn down also on failure.
"""
import os
import stat
import subprocess
import sys
import tempfile

import pytest

SOURCE_DIR = os.environ.get("VMTIME_SOURCE_DIR") or os.path.abspath(
    os.path.join(os.path.dirname(__file__), "..", ".."))
SETUP = os.path.join(SOURCE_DIR, "scripts", "setup")
sys.path.insert(0, os.path.join(SOURCE_DIR, "tests", "lab"))
import vmlab  # noqa: E402

import integrations_support as sup  # noqa: E402

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root")


def start_time(pid):
    """Process start time in clock ticks since boot (field 22 of stat)."""
    with open(f"/proc/{pid}/stat") as f:
        return int(f.read().rsplit(")", 1)[1].split()[19])


@pytest.fixture
def chronyd():
    """A private chronyd (-x, command socket only, local stratum 8)."""
    with tempfile.TemporaryDirectory(prefix="vmtime-setup-chrony-") as d, sup.processes() as procs:
        proc, address = sup.start_chronyd(procs, d, extra_conf="local stratum 8")
        yield proc.proc, address[len("unix://"):]


@pytest.fixture
def libvirtd():
    ok, why = vmlab.lab_available()
    if not ok:
        pytest.fail(f"the lab is needed for a private libvirtd: {why}")
    with vmlab.Lab(guests=0) as lab:
        yield lab


def chronyc_tracking(sock):
    return subprocess.run(["chronyc", "-h", sock, "-c", "tracking"], capture_output=True,
                          text=True, timeout=10)


def test_real_setup_leaves_running_daemons_alone(chronyd, libvirtd):
    proc, sock = chronyd
    lab = libvirtd
    before = {"chronyd": (proc.pid, start_time(proc.pid)),
              "libvirtd": (lab.libvirtd_pid, start_time(lab.libvirtd_pid))}
    assert chronyc_tracking(sock).returncode == 0
    r = subprocess.run(["bash", SETUP, "--test"], capture_output=True, text=True, timeout=1800)
    print(r.stdout[-2000:], r.stderr[-2000:])
    assert r.returncode == 0, r.stderr
    after = {"chronyd": (proc.pid, start_time(proc.pid)),
             "libvirtd": (lab.libvirtd_pid, start_time(lab.libvirtd_pid))}
    assert after == before, "setup restarted a running daemon"
    assert proc.poll() is None, "setup stopped the private chronyd"
    assert chronyc_tracking(sock).returncode == 0, "chronyd no longer answers"
    assert lab.conn.getVersion() > 0, "libvirtd no longer answers"


SHIM = r"""#!/bin/sh
# Recording stand-in for {name} (tests/e2e/test_setup_safety.py).
echo "{name} $*" >> "$SHIM_LOG"
case "{name}" in
  dpkg-query) exit 1 ;;   # nothing is installed
  apt-get)
    if [ -x "$VMTIME_SETUP_POLICY_RC_D" ]; then
      "$VMTIME_SETUP_POLICY_RC_D" chrony start; echo "policy-rc.d exit $?" >> "$SHIM_LOG"
    else
      echo "policy-rc.d absent" >> "$SHIM_LOG"
    fi
    exit 0 ;;
esac
exit 0
"""


def run_with_shims(tmp, level, policy_exists):
    bindir = os.path.join(tmp, "bin")
    os.makedirs(bindir, exist_ok=True)
    for name in ("dpkg-query", "apt-get", "systemctl", "service", "invoke-rc.d",
                 "deb-systemd-invoke", "podman"):  # podman: scripts/container-base
        path = os.path.join(bindir, name)
        with open(path, "w") as f:
            f.write(SHIM.format(name=name))
        os.chmod(path, os.stat(path).st_mode | stat.S_IEXEC)
    log = os.path.join(tmp, "calls.log")
    open(log, "w").close()
    policy = os.path.join(tmp, "policy-rc.d")
    if policy_exists:
        with open(policy, "w") as f:
            f.write("#!/bin/sh\n# the user's own\nexit 0\n")
        os.chmod(policy, 0o755)
    env = dict(os.environ, PATH=bindir + ":" + os.environ["PATH"], SHIM_LOG=log,
               VMTIME_SETUP_POLICY_RC_D=policy)
    r = subprocess.run(["bash", SETUP, level], capture_output=True, text=True, timeout=60, env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    with open(log) as f:
        calls = f.read().splitlines()
    return calls, policy


def test_install_path_forbids_service_starts_and_stops_nothing():
    with tempfile.TemporaryDirectory(prefix="vmtime-setup-shim-") as tmp:
        calls, policy = run_with_shims(tmp, "--test", policy_exists=False)
        print("\n".join(calls))
        installs = [c for c in calls if c.startswith("apt-get install")]
        assert len(installs) == 1, calls
        assert "chrony" in installs[0].split() and "libvirt-daemon" in installs[0].split()
        assert "policy-rc.d exit 101" in calls, "no service-start policy during apt-get"
        assert not [c for c in calls if c.split()[0] in
                    ("systemctl", "service", "invoke-rc.d", "deb-systemd-invoke")], calls
        assert not os.path.exists(policy), "the temporary policy-rc.d was left behind"


def test_existing_policy_is_kept():
    with tempfile.TemporaryDirectory(prefix="vmtime-setup-shim-") as tmp:
        calls, policy = run_with_shims(tmp, "--build", policy_exists=True)
        assert os.path.exists(policy)
        with open(policy) as f:
            assert "the user's own" in f.read()
        assert "policy-rc.d exit 0" in calls  # setup did not replace it


def test_build_level_installs_no_daemon_kernel_or_browser():
    with tempfile.TemporaryDirectory(prefix="vmtime-setup-shim-") as tmp:
        calls, _ = run_with_shims(tmp, "--build", policy_exists=False)
        installs = [c for c in calls if c.startswith("apt-get install")]
        assert len(installs) == 1, calls
        pkgs = set(installs[0].split())
        for unwanted in ("chrony", "libvirt-daemon", "linux-image-cloud-amd64", "chromium",
                         "prometheus", "zabbix-agent", "qemu-system-x86"):
            assert unwanted not in pkgs, f"--build installs {unwanted}"
        assert {"cmake", "libvirt-dev", "prometheus-cpp-dev"} <= pkgs


def test_unknown_level_is_a_clear_error():
    r = subprocess.run(["bash", SETUP, "--everything"], capture_output=True, text=True, timeout=30)
    assert r.returncode == 2
    assert "unknown option '--everything'" in r.stderr
