#!/usr/bin/python3
"""Host ntpd (Debian's ntpsec) through the mode 6 collector, and
systemd-timesyncd through a private D-Bus service and its flag file.

ntpd: two network namespaces the test creates and deletes (also on failure),
joined by a veth pair: in the upstream one a chronyd (`-x`, `local stratum
8`) the test controls serves NTP; in the other ntpsec's ntpd (unpacked by
scripts/setup --test, never installed: it Conflicts with chrony) syncs to it
and answers mode 6 on its loopback, where the exporter reads it. ntpd runs
in the foreground (-n) with its own pid, drift, stats and log paths and
`disable ntp` / `disable kernel` and without CAP_SYS_TIME (setpriv; ntpsec
touches the kernel PLL at start-up even so): the clock is shared by every namespace,
and the test checks with adjtimex that the kernel's offset, frequency,
status and time constant are the same before and after.

The exporter's values are compared with an independent mode 6 query written
here; then the upstream stratum changes, a `restrict ... noquery` ntpd gives
a named "no answer", and a stopped ntpd a named "refused" with the host
reference falling back to the kernel.

timesyncd cannot run here (it Conflicts with chrony, and needs systemd as
PID 1). What can be tested is: a private dbus-daemon with a service the test
owns on org.freedesktop.timesync1 serving the documented properties, and the
flag file in a test directory.
"""
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile

import pytest

from e2e_util import kernel_discipline, wait_for
from exporter_proc import EXPORTER, metric_value

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root for ip netns")

NTPD = os.environ.get("VMTIME_NTPSEC_ROOT", "/usr/local/lib/vmtime-exporter/ntpsec") + \
    "/usr/sbin/ntpd"


def run(*argv, timeout=20, check=True):
    r = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    if check and r.returncode != 0:
        raise RuntimeError(f"{argv}: exit {r.returncode}: {r.stdout}{r.stderr}")
    return r


class Lab:
    def __init__(self):
        tag = os.getpid() % 100000
        self.ns = f"vmtime-ntpd-{tag}"
        self.up = f"vmtime-ntpu-{tag}"
        self.dir = tempfile.mkdtemp(prefix="vmtime-ntpd-")
        self.procs = {}
        run("ip", "netns", "add", self.ns)
        run("ip", "netns", "add", self.up)
        for ns in (self.ns, self.up):
            self.sh(ns, "ip", "link", "set", "lo", "up")
        a, b = f"vtn{tag}a", f"vtn{tag}b"
        run("ip", "link", "add", a, "netns", self.ns, "type", "veth", "peer", "name", b,
            "netns", self.up)
        self.sh(self.ns, "ip", "addr", "add", "10.231.0.1/30", "dev", a)
        self.sh(self.up, "ip", "addr", "add", "10.231.0.2/30", "dev", b)
        self.sh(self.ns, "ip", "link", "set", a, "up")
        self.sh(self.up, "ip", "link", "set", b, "up")

    def sh(self, ns, *argv, timeout=20, check=True):
        return run("ip", "netns", "exec", ns, *argv, timeout=timeout, check=check)

    def spawn(self, name, ns, *argv):
        log = open(os.path.join(self.dir, name + ".log"), "w")
        p = subprocess.Popen(["ip", "netns", "exec", ns, *argv], stdout=log,
                             stderr=subprocess.STDOUT, start_new_session=True)
        self.procs[name] = p
        return p

    def stop(self, name):
        p = self.procs.pop(name, None)
        if p and p.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(p.pid, signal.SIGTERM)
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait(timeout=5)

    def log(self, name):
        with open(os.path.join(self.dir, name + ".log"), errors="replace") as f:
            return f.read()

    def upstream(self, stratum):
        self.stop("chronyd")
        d = os.path.join(self.dir, "chronyd")
        os.makedirs(d, exist_ok=True)
        conf = os.path.join(d, "chrony.conf")
        with open(conf, "w") as f:
            f.write(f"port 123\nbindaddress 10.231.0.2\ncmdport 0\n"
                    f"bindcmdaddress {d}/cmd.sock\npidfile {d}/chronyd.pid\n"
                    f"allow 10.231.0.0/30\nlocal stratum {stratum}\n")
        self.spawn("chronyd", self.up, shutil.which("chronyd") or "/usr/sbin/chronyd", "-d",
                   "-x", "-u", "root", "-f", conf)

    def ntpd(self, extra=""):
        self.stop("ntpd")
        d = os.path.join(self.dir, "ntpd")
        os.makedirs(d, exist_ok=True)
        conf = os.path.join(d, "ntp.conf")
        with open(conf, "w") as f:
            # Never discipline the shared clock: `disable ntp` (no clock
            # updates) and `disable kernel` (no kernel PLL calls).
            f.write("disable ntp\ndisable kernel\ndisable stats\n"
                    f"driftfile {d}/drift\nstatsdir {d}/\n"
                    "restrict default\nrestrict 127.0.0.1\nrestrict ::1\n"
                    "server 10.231.0.2 iburst minpoll 0 maxpoll 1\n" + extra)
        # Without CAP_SYS_TIME: ntpsec 1.2.2 calls ntp_adjtime at start-up
        # (start_kern_loop: STA_PLL, time constant 4) even with `disable
        # kernel`, which changed the machine's discipline on a kernel still
        # in its boot state (STA_UNSYNC) and failed the check below; without
        # the capability the call fails (logged) and ntpd runs on.
        self.spawn("ntpd", self.ns, "setpriv", "--bounding-set=-sys_time",
                   "--inh-caps=-sys_time", NTPD, "-n", "-c", conf, "-p", f"{d}/ntpd.pid",
                   "-l", f"{d}/ntpd.log")

    def close(self):
        for name in list(self.procs):
            self.stop(name)
        for name in ("exporter", "ntpd", "chronyd"):  # shown by pytest on failure
            with contextlib.suppress(OSError):
                print(f"---- {name} log (tail) ----\n" + self.log(name)[-3000:])
        run("ip", "netns", "del", self.ns, check=False)
        run("ip", "netns", "del", self.up, check=False)
        shutil.rmtree(self.dir, ignore_errors=True)


def mode6_readvar(lab, association=0):
    """An independent READVAR: the system (or one peer's) variables as a dict."""
    code = (
        "import socket,struct,sys\n"
        "s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM);s.settimeout(1)\n"
        f"s.sendto(struct.pack('!BBHHHHH',0x16,2,77,0,{association},0,0),('127.0.0.1',123))\n"
        "parts={}\n"
        "while True:\n"
        "  d=s.recv(2048);off,cnt=struct.unpack('!HH',d[8:12]);parts[off]=d[12:12+cnt]\n"
        "  if not d[1]&0x20 and sum(map(len,parts.values()))==off+cnt: break\n"
        "sys.stdout.write(b''.join(parts[k] for k in sorted(parts)).decode(errors='replace'))\n")
    text = lab.sh(lab.ns, sys.executable, "-c", code).stdout
    out = {}
    for item in text.replace("\r\n", " ").split(","):
        if "=" in item:
            k, v = item.split("=", 1)
            out[k.strip()] = v.strip().strip('"')
    return out


@pytest.fixture(scope="module")
def lab():
    assert os.access(NTPD, os.X_OK), f"{NTPD} missing: run scripts/setup --test"
    before = kernel_discipline()
    lab = Lab()
    try:
        yield lab
    finally:
        lab.close()
    assert kernel_discipline() == before, "the kernel's clock discipline changed during the test"


def scrape(lab):
    return lab.sh(lab.ns, "curl", "-fsS", "http://127.0.0.1:19959/metrics").stdout


@pytest.fixture(scope="module")
def exporter(lab):
    lab.upstream(8)
    lab.ntpd()
    cfg = os.path.join(lab.dir, "exporter.yml")
    with open(cfg, "w") as f:
        f.write("collectors:\n  libvirt: {enabled: false}\n  chrony: {enabled: false}\n"
                "  ntp: {enabled: false}\n  timex: {interval: 1s}\n"
                "  ntpd: {enabled: true, interval: 1s, max_retries: 0}\n"
                "ntpd:\n  timeout: 300ms\n")
    lab.spawn("exporter", lab.ns, EXPORTER, "--config.file", cfg, "--web.listen-address",
              "127.0.0.1:19959", "--log.level", "debug")
    wait_for(lambda: metric_value(scrape(lab), "vmtime_host_ntpd_up") == 1, 30,
         "the exporter to read ntpd")
    return cfg


def test_system_and_peer_variables_match_an_independent_query(lab, exporter):
    wait_for(lambda: metric_value(scrape(lab), "vmtime_host_ntpd_stratum") == 9, 60,
         "ntpd to select the stratum 8 upstream (stratum 9)")
    text = scrape(lab)
    rv = mode6_readvar(lab)
    assert int(rv["stratum"]) == metric_value(text, "vmtime_host_ntpd_stratum") == 9
    # With `disable ntp` ntpd never updates the clock, so it keeps its alarm
    # leap 3 although it selected a peer: the verdict follows what it says.
    assert int(rv["leap"]) == metric_value(text, "vmtime_host_ntpd_leap") == 3
    assert metric_value(text, "vmtime_host_ntpd_info",
                        {"refid": rv["refid"], "version": rv["version"]}) == 1
    assert rv["refid"] == "10.231.0.2"
    peer = {"peer": "10.231.0.2"}
    labels = dict(peer, association=metric_value_label(text, "vmtime_host_ntpd_peer_stratum",
                                                       "association"))
    assert metric_value(text, "vmtime_host_ntpd_peer_stratum", labels) == 8
    assert metric_value(text, "vmtime_host_ntpd_peer_condition_info",
                        dict(labels, condition="sys.peer")) == 1
    assert metric_value(text, "vmtime_host_ntpd_peer_reachability_ratio", labels) > 0
    assert metric_value(text, "vmtime_host_synchronised", {"source": "ntpd"}) == 0
    # Offsets within the same machine: well below a millisecond each way.
    assert abs(metric_value(text, "vmtime_host_ntpd_offset_seconds")) < 0.005
    assert abs(float(mode6_readvar(lab, int(labels["association"]))["offset"])) < 5


def metric_value_label(text, name, label):
    for line in text.splitlines():
        if line.startswith(name + "{"):
            for part in line[len(name) + 1:line.index("}")].split(","):
                k, v = part.split("=", 1)
                if k == label:
                    return v.strip('"')
    raise AssertionError(f"no {name} series with label {label}")


def test_upstream_stratum_change(lab, exporter):
    lab.upstream(5)
    wait_for(lambda: metric_value(scrape(lab), "vmtime_host_ntpd_stratum") == 6, 60,
         "ntpd to follow the upstream to stratum 5 (stratum 6)")


def test_noquery_is_no_answer_and_stop_is_refused(lab, exporter):
    lab.ntpd("restrict 127.0.0.1 noquery\n")
    wait_for(lambda: "no answer within" in lab.log("exporter"), 30,
         "a named 'no answer' for a noquery ntpd")
    assert metric_value(scrape(lab), "vmtime_host_ntpd_up") == 0
    assert metric_value(scrape(lab), "vmtime_host_synchronised", {"source": "kernel"}) is not None
    lab.stop("ntpd")
    wait_for(lambda: "refused (ICMP port unreachable)" in lab.log("exporter"), 30,
         "a named 'refused' once nothing listens")
    text = scrape(lab)
    assert metric_value(text, "vmtime_collector_success", {"collector": "ntpd"}) == 0
    assert metric_value(text, "vmtime_host_synchronised", {"source": "kernel"}) is not None
    lab.ntpd()
    wait_for(lambda: metric_value(scrape(lab), "vmtime_host_ntpd_up") == 1, 30,
         "the exporter to read ntpd again")


# ---- timesyncd: a private bus with a service the test owns, and the flag file ----

TIMESYNCD_SERVICE = r'''
import dbus, dbus.service, dbus.mainloop.glib, sys, time
from gi.repository import GLib
dbus.mainloop.glib.DBusGMainLoop(set_as_default=True)
bus = dbus.bus.BusConnection(sys.argv[1])
IFACE = "org.freedesktop.timesync1.Manager"
now = int(time.time() * 1e6)
class Manager(dbus.service.Object):
    @dbus.service.method("org.freedesktop.DBus.Properties", in_signature="s",
                         out_signature="a{sv}")
    def GetAll(self, iface):
        if iface != IFACE:
            return {}
        # T1..T4: the server is 2 ms ahead of the host, 1 ms each way.
        msg = dbus.Struct((dbus.UInt32(0), dbus.UInt32(4), dbus.UInt32(4), dbus.UInt32(2),
                           dbus.Int32(-20), dbus.UInt64(3000), dbus.UInt64(500),
                           dbus.Array([dbus.Byte(10), dbus.Byte(0), dbus.Byte(0), dbus.Byte(1)],
                                      signature="y"),
                           dbus.UInt64(now), dbus.UInt64(now + 3000), dbus.UInt64(now + 3100),
                           dbus.UInt64(now + 2100), dbus.Boolean(False), dbus.UInt64(7),
                           dbus.UInt64(250)), signature=None)
        addr = dbus.Struct((dbus.Int32(2), dbus.Array([dbus.Byte(b) for b in (192, 0, 2, 7)],
                                                      signature="y")), variant_level=1)
        return {"ServerName": dbus.String("ntp.example.test", variant_level=1),
                "ServerAddress": addr,
                "NTPMessage": dbus.Struct(msg, variant_level=1),
                "PollIntervalUSec": dbus.UInt64(32000000, variant_level=1)}
name = dbus.service.BusName("org.freedesktop.timesync1", bus)
Manager(bus, "/org/freedesktop/timesync1")
print("ready", flush=True)
GLib.MainLoop().run()
'''


@pytest.fixture
def private_bus():
    d = tempfile.mkdtemp(prefix="vmtime-dbus-")
    procs = []
    try:
        conf = os.path.join(d, "bus.conf")
        sock = os.path.join(d, "bus.sock")
        with open(conf, "w") as f:
            f.write(f"""<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig><type>custom</type><listen>unix:path={sock}</listen>
<auth>EXTERNAL</auth>
<policy context="default"><allow send_destination="*" eavesdrop="true"/>
<allow eavesdrop="true"/><allow own="*"/></policy></busconfig>
""")
        procs.append(subprocess.Popen(["dbus-daemon", "--nofork", "--config-file", conf],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                      start_new_session=True))
        wait_for(lambda: os.path.exists(sock), 10, "the private dbus-daemon socket")
        yield d, "unix:path=" + sock, procs
    finally:
        with contextlib.suppress(OSError), open(os.path.join(d, "exporter.log")) as f:
            print("---- exporter log (tail) ----\n" + f.read()[-3000:])
        for p in procs:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(p.pid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                p.wait(timeout=5)
        shutil.rmtree(d, ignore_errors=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_timesyncd_flag_file_then_dbus(private_bus):
    d, address, procs = private_bus
    flag_dir = os.path.join(d, "timesync")
    flag = os.path.join(flag_dir, "synchronized")
    port = free_port()
    cfg = os.path.join(d, "exporter.yml")
    with open(cfg, "w") as f:
        f.write("collectors:\n  libvirt: {enabled: false}\n  chrony: {enabled: false}\n"
                "  ntp: {enabled: false}\n  timex: {enabled: false}\n"
                "  timesyncd: {enabled: true, interval: 1s, max_retries: 0}\n"
                f"timesyncd:\n  bus_address: \"{address}\"\n  flag_file: {flag}\n"
                "  timeout: 500ms\n")
    log = open(os.path.join(d, "exporter.log"), "w")
    procs.append(subprocess.Popen([EXPORTER, "--config.file", cfg, "--web.listen-address",
                                   f"127.0.0.1:{port}"], stdout=log, stderr=subprocess.STDOUT,
                                  start_new_session=True))

    def metrics():
        return subprocess.run(["curl", "-fsS", f"http://127.0.0.1:{port}/metrics"],
                              capture_output=True, text=True, timeout=5, check=True).stdout

    # Neither the bus service nor the directory: not present, both reasons named.
    wait_for(lambda: metric_value(metrics(), "vmtime_host_timesyncd_up") == 0, 20, "timesyncd down")
    wait_for(lambda: "timesyncd: not present: D-Bus:" in open(log.name).read(), 10,
         "the named reason")
    assert "org.freedesktop.timesync1" in open(log.name).read()
    # The directory without the flag: present, unsynchronised (flag-file path).
    os.mkdir(flag_dir)
    wait_for(lambda: metric_value(metrics(), "vmtime_host_timesyncd_up") == 1, 20, "timesyncd up")
    text = metrics()
    assert metric_value(text, "vmtime_host_timesyncd_dbus_up") == 0
    assert metric_value(text, "vmtime_host_timesyncd_synchronised") == 0
    assert metric_value(text, "vmtime_host_synchronised", {"source": "timesyncd"}) == 0
    open(flag, "w").close()
    wait_for(lambda: metric_value(metrics(), "vmtime_host_synchronised",
                              {"source": "timesyncd"}) == 1, 20, "synchronised by the flag file")
    # The service on the private bus: the documented properties.
    svc = subprocess.Popen([sys.executable, "-c", TIMESYNCD_SERVICE, address],
                           stdout=subprocess.PIPE, text=True, start_new_session=True)
    procs.append(svc)
    assert svc.stdout.readline().strip() == "ready"
    wait_for(lambda: metric_value(metrics(), "vmtime_host_timesyncd_dbus_up") == 1, 20, "D-Bus read")
    text = metrics()
    assert metric_value(text, "vmtime_host_timesyncd_server_info",
                        {"server_name": "ntp.example.test", "server_address": "192.0.2.7"}) == 1
    assert metric_value(text, "vmtime_host_timesyncd_stratum") == 2
    assert metric_value(text, "vmtime_host_timesyncd_leap") == 0
    # ((T2-T1)+(T3-T4))/2 = (3000 + 1000)/2 us; delay (T4-T1)-(T3-T2) = 2000 us.
    assert metric_value(text, "vmtime_host_timesyncd_offset_seconds") == pytest.approx(0.002)
    assert metric_value(text, "vmtime_host_timesyncd_delay_seconds") == pytest.approx(0.002)
    assert metric_value(text, "vmtime_host_timesyncd_root_delay_seconds") == pytest.approx(0.003)
    assert metric_value(text, "vmtime_host_synchronised", {"source": "timesyncd"}) == 1
