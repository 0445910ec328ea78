#!/usr/bin/python3
"""End to end: guest sync status through the guest agent (docs/guest-status.md).

A private lab (tests/lab/vmlab.py) boots three guests with chronyc in the
image: `gs-local10` (chronyd with `local stratum 10` as its only source),
`gs-unreach` (chronyd whose only server never answers) and `gs-nodaemon`
(no chronyd). The real exporter binary runs against the lab's libvirtd:

- enabled: /metrics and /api/v1/targets show stratum 10 and the reason
  `stratum_high` for gs-local10, unsynchronised (and the reason
  `unsynchronised`) for gs-unreach, and for gs-nodaemon an unknown status
  (no `vmtime_vm_guest_synchronised` series, daemon `none`, error
  `no_daemon`) with neither reason: no false alarm.
- disabled (explicitly, and by default): the exporter samples the guests'
  clocks but no guest-exec reaches any guest.
- a fourth guest whose agent is stopped (SIGSTOP) is reported with a
  timeout / exec_failed error while the others keep being probed.

Evidence of guest-exec comes from the guest agent itself: busybox syslogd
is started in each guest, and qemu-ga logs every call there as
`guest-exec called: "<argv>"`. Only the exporter runs chronyc, ntpq,
timedatectl or w32tm; the test's own guest-exec calls (syslogd, cat) are
told apart by their argv.

Env: VMTIME_EXPORTER (binary), VMTIME_SOURCE_DIR (repo). Needs root (the
lab runs libvirtd and QEMU/TCG); skipped otherwise.
"""

import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

import pytest

SOURCE_DIR = os.environ.get(
    "VMTIME_SOURCE_DIR", os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..")))
sys.path.insert(0, os.path.join(SOURCE_DIR, "tests", "lab"))

import vmlab  # noqa: E402

EXPORTER = os.environ.get("VMTIME_EXPORTER", "")
GUEST_LOG = "/run/gs-e2e-messages"
OUR_PROGRAMS = ("chronyc", "ntpq", "timedatectl", "w32tm")
EXEC_RE = re.compile(r'guest-exec called: "([^"]*)"')

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="the lab needs root (libvirtd, QEMU)"),
    pytest.mark.skipif(not EXPORTER or not os.access(EXPORTER, os.X_OK),
                       reason="VMTIME_EXPORTER does not name the exporter binary"),
]


# --- helpers -----------------------------------------------------------------

def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_get(url: str, timeout: float = 5.0) -> str:
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return r.read().decode("utf-8", "replace")


def parse_metrics(text: str):
    """{(name, frozenset(labels.items())): value} of the exposition text."""
    out = {}
    line_re = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)')
    label_re = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = line_re.match(line)
        if not m:
            continue
        labels = frozenset(label_re.findall(m.group(3) or ""))
        out[(m.group(1), labels)] = float(m.group(4))
    return out


def series(metrics, name, **labels):
    """Values of `name` whose labels include `labels`."""
    want = set(labels.items())
    return [v for (n, ls), v in metrics.items() if n == name and want <= set(ls)]


def guest_execs(lab, name):
    """argv strings qemu-ga logged for guest-exec in this guest, oldest first."""
    code, out, err = lab.guest_exec(name, ["cat", GUEST_LOG], timeout=30)
    assert code == 0, f"reading {GUEST_LOG} in {name}: exit {code}: {err}"
    return EXEC_RE.findall(out)


def exporter_execs(lab, name):
    return [a for a in guest_execs(lab, name) if a.split(" ")[0] in OUR_PROGRAMS]


class Exporter:
    """The exporter binary on a free loopback port; stopped on exit."""

    def __init__(self, workdir: str, config_yaml: str, uri: str):
        self.port = free_port()
        self.config = os.path.join(workdir, f"config-{self.port}.yaml")
        with open(self.config, "w") as f:
            f.write(config_yaml)
        self.log_path = os.path.join(workdir, f"exporter-{self.port}.log")
        self.log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            [EXPORTER, "--config.file", self.config, "--libvirt.uri", uri,
             "--web.listen-address", f"127.0.0.1:{self.port}", "--log.level", "debug"],
            stdout=self.log, stderr=subprocess.STDOUT)
        self.base = f"http://127.0.0.1:{self.port}"

    def log_tail(self, n: int = 40) -> str:
        try:
            with open(self.log_path, "rb") as f:
                return "\n".join(f.read().decode("utf-8", "replace").splitlines()[-n:])
        except OSError as e:
            return f"<{e}>"

    def wait_up(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"exporter exited with {self.proc.returncode}:\n"
                                     + self.log_tail())
            try:
                http_get(self.base + "/metrics", timeout=2)
                return
            except OSError as e:
                last = e
            time.sleep(0.2)
        raise TimeoutError(f"exporter not serving /metrics within {timeout} s ({last}):\n"
                           + self.log_tail())

    def metrics(self):
        return parse_metrics(http_get(self.base + "/metrics"))

    def metrics_text(self) -> str:
        return http_get(self.base + "/metrics")

    def targets(self):
        return json.loads(http_get(self.base + "/api/v1/targets"))

    def vm(self, domain):
        for v in self.targets().get("vms", []):
            if v.get("domain") == domain:
                return v
        return None

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self.log.close()

    def __enter__(self):
        try:
            self.wait_up()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc):
        self.stop()


def wait_for(what: str, predicate, timeout: float, exporter: Exporter, interval: float = 1.0):
    """Polls predicate() (returning a truthy value or None) up to timeout s."""
    deadline = time.monotonic() + timeout
    last_exc = None
    while time.monotonic() < deadline:
        try:
            v = predicate()
            if v:
                return v
        except (OSError, ValueError, KeyError) as e:  # not serving yet, partial JSON
            last_exc = e
        if exporter.proc.poll() is not None:
            raise AssertionError(f"exporter exited while waiting for {what}:\n"
                                 + exporter.log_tail())
        time.sleep(interval)
    raise TimeoutError(f"{what}: not within {timeout} s (last error: {last_exc})\n"
                       f"targets: {json.dumps(exporter.targets(), indent=1)[:4000]}\n"
                       + exporter.log_tail())


# --- fixtures ----------------------------------------------------------------

GUESTS = {"gs-local10": "local10", "gs-unreach": "unreachable", "gs-nodaemon": "none"}


@pytest.fixture(scope="module")
def lab():
    specs = [vmlab.GuestSpec(n, chrony=c) for n, c in GUESTS.items()]
    with vmlab.Lab(guests=specs, boot_timeout=300) as lab:
        for name in GUESTS:
            # busybox syslogd: qemu-ga logs each guest-exec through syslog(3).
            code, _, err = lab.guest_exec(name, ["syslogd", "-O", GUEST_LOG], timeout=30)
            assert code == 0, f"{name}: syslogd failed to start: {err}"
        # The syslogd call itself was logged before syslogd existed (lost);
        # the `cat` reading the log logs itself first: wait for that.
        for name in GUESTS:
            deadline = time.monotonic() + 30
            while not any(a.startswith("cat ") for a in guest_execs(lab, name)):
                assert time.monotonic() < deadline, f"{name}: qemu-ga does not log to syslogd"
                time.sleep(0.5)
        yield lab


@pytest.fixture()
def workdir():
    with tempfile.TemporaryDirectory(prefix="gs-e2e-") as d:
        yield d


# --- tests -------------------------------------------------------------------

DISABLED_CONFIG = """\
collectors:
  guest_status:
    enabled: false
    interval: 2s
  libvirt:
    interval: 2s
  chrony:
    enabled: false
"""

ENABLED_CONFIG = """\
collectors:
  guest_status:
    enabled: true
    interval: 5s
    timeout: 60s
  libvirt:
    interval: 2s
  chrony:
    enabled: false
guest_status:
  exec_timeout: 15s
"""


# The default (no guest_status key at all) must be off too.
DEFAULT_CONFIG = """\
collectors:
  libvirt:
    interval: 2s
  chrony:
    enabled: false
"""


@pytest.mark.parametrize("config", [DISABLED_CONFIG, DEFAULT_CONFIG], ids=["explicit", "default"])
def test_disabled_makes_no_guest_exec(lab, workdir, config):
    before = {n: len(exporter_execs(lab, n)) for n in GUESTS}
    with Exporter(workdir, config, lab.uri) as exp:
        # The exporter does talk to every guest agent (clock samples)...
        def all_sampled():
            vms = {v["domain"]: v for v in exp.targets().get("vms", [])}
            return all(vms.get(n, {}).get("agent_up") for n in GUESTS) and vms
        wait_for("agent_up for every lab guest", all_sampled, 180, exp)
        # ...for several rounds of what would be guest_status's interval.
        time.sleep(8)
        for n in GUESTS:
            assert exp.vm(n)["guest"] is None, f"{n}: guest status present while disabled"
        text = exp.metrics_text()
        assert "vmtime_vm_guest_synchronised{" not in text
        assert "vmtime_vm_guest_status_source{" not in text
    after = {n: exporter_execs(lab, n) for n in GUESTS}
    for n in GUESTS:
        assert len(after[n]) == before[n], (
            f"{n}: guest-exec while guest_status is disabled: {after[n][before[n]:]}")


def test_enabled_reports_guest_daemons(lab, workdir):
    with Exporter(workdir, ENABLED_CONFIG, lab.uri) as exp:
        def all_have_guest_status():
            vms = {v["domain"]: v for v in exp.targets().get("vms", [])}
            if all(vms.get(n, {}).get("guest") for n in GUESTS):
                return vms
            return None
        vms = wait_for("guest status for every lab guest", all_have_guest_status, 240, exp)

        # Scores need a clock sample too; wait until reasons settle on them.
        def reasons_ready():
            v = {x["domain"]: x for x in exp.targets()["vms"]}
            ok = ("stratum_high" in v["gs-local10"]["reasons"]
                  and "unsynchronised" in v["gs-unreach"]["reasons"])
            return v if ok else None
        vms = wait_for("stratum_high / unsynchronised reasons", reasons_ready, 120, exp)
        metrics = exp.metrics()
        text = exp.metrics_text()

        local = vms["gs-local10"]
        assert local["guest"]["daemon"] == "chrony", local["guest"]
        assert local["guest"]["stratum"] == 10, local["guest"]
        assert local["guest"]["synchronised"] is True, local["guest"]
        assert local["guest"]["error"] == "", local["guest"]
        assert "stratum_high" in local["reasons"], local
        assert "unsynchronised" not in local["reasons"], local
        assert series(metrics, "vmtime_vm_guest_stratum", domain="gs-local10") == [10.0]
        assert series(metrics, "vmtime_vm_guest_synchronised", domain="gs-local10") == [1.0]
        assert series(metrics, "vmtime_vm_guest_status_source",
                      domain="gs-local10", daemon="chrony") == [1.0]

        unr = vms["gs-unreach"]
        assert unr["guest"]["daemon"] == "chrony", unr["guest"]
        assert unr["guest"]["synchronised"] is False, unr["guest"]
        assert unr["guest"]["leap_status"] == 3, unr["guest"]
        assert "unsynchronised" in unr["reasons"], unr
        assert series(metrics, "vmtime_vm_guest_synchronised", domain="gs-unreach") == [0.0]
        assert series(metrics, "vmtime_vm_guest_leap_status", domain="gs-unreach") == [3.0]

        none = vms["gs-nodaemon"]
        assert none["guest"]["daemon"] == "none", none["guest"]
        assert none["guest"]["synchronised"] is None, none["guest"]
        assert none["guest"]["stratum"] is None, none["guest"]
        assert none["guest"]["error"].startswith("no_daemon: "), none["guest"]
        assert "unsynchronised" not in none["reasons"], none
        assert "stratum_high" not in none["reasons"], none
        assert series(metrics, "vmtime_vm_guest_synchronised", domain="gs-nodaemon") == []
        assert series(metrics, "vmtime_vm_guest_status_source",
                      domain="gs-nodaemon", daemon="none") == [1.0]
        assert "# HELP vmtime_vm_guest_status_error" in text
        assert series(metrics, "vmtime_vm_guest_status_error",
                      domain="gs-nodaemon", error="no_daemon") == [1.0]
        assert series(metrics, "vmtime_vm_guest_status_error", domain="gs-local10") == []
        assert series(metrics, "vmtime_vm_guest_status_error", domain="gs-unreach") == []

    # The agents saw exactly the fixed commands, no shell.
    for n in GUESTS:
        execs = exporter_execs(lab, n)
        assert "chronyc -c tracking" in execs, (n, execs)
        allowed = {"chronyc -c tracking", "ntpq -c rv", "timedatectl show", "w32tm /query /status"}
        assert set(execs) <= allowed, (n, execs)
    # A guest without chronyd was also asked for ntpq and timedatectl (not installed).
    assert {"ntpq -c rv", "timedatectl show"} <= set(exporter_execs(lab, "gs-nodaemon"))


HUNG_CONFIG = """\
collectors:
  guest_status:
    enabled: true
    interval: 3s
    timeout: 30s
  libvirt:
    interval: 2s
  chrony:
    enabled: false
guest_status:
  exec_timeout: 4s
"""


def test_hung_agent_does_not_stall_other_guests(lab, workdir):
    """A guest whose agent is stopped (SIGSTOP) gets a timeout/exec_failed
    error while the other guests keep being probed every round."""
    hung = "gs-hung"
    lab.add_guest(vmlab.GuestSpec(hung, chrony="local10"), wait=True, timeout=300)
    try:
        with Exporter(workdir, HUNG_CONFIG, lab.uri) as exp:
            wait_for(f"guest status of {hung}",
                     lambda: (exp.vm(hung) or {}).get("guest", {}) and
                     exp.vm(hung)["guest"]["stratum"] == 10, 120, exp)
            lab.hang_agent(hung)
            before = len(exporter_execs(lab, "gs-unreach"))

            def hung_reported():
                g = (exp.vm(hung) or {}).get("guest") or {}
                err = g.get("error", "")
                return err.startswith(("timeout: ", "exec_failed: ")) and g
            g = wait_for(f"{hung} reported failing", hung_reported, 120, exp)
            assert g["synchronised"] is None, g  # unknown, not a verdict
            # Meanwhile the other guests were probed round after round.
            wait_for("gs-unreach probed again while the other agent hangs",
                     lambda: len(exporter_execs(lab, "gs-unreach")) >= before + 3, 60, exp)
            assert exp.vm("gs-unreach")["guest"]["synchronised"] is False
            metrics = exp.metrics()
            errs = [dict(ls)["error"] for (n, ls), v in metrics.items()
                    if n == "vmtime_vm_guest_status_error" and dict(ls).get("domain") == hung]
            assert errs and errs[0] in ("timeout", "exec_failed"), errs
    finally:
        lab.destroy(hung)
