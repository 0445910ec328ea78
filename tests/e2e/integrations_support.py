#!/usr/bin/python3
"""Shared helpers of the integration end-to-end tests (test_alerts.py,
test_grafana.py, test_zabbix.py): private instances of the exporter,
Prometheus, Alertmanager and chronyd on 127.0.0.1 with ports chosen free at
run time, files in a temp dir, every wait bounded, and teardown that kills
what was started even when the test fails.
"""

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

import yaml

SRC = os.environ.get("VMTIME_SOURCE_DIR") or os.path.abspath(
    os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
BIN = os.environ.get("VMTIME_BINARY_DIR", "")
PROMETHEUS = "/usr/bin/prometheus"
ALERTMANAGER = "/usr/bin/prometheus-alertmanager"


def exporter_binary():
    exe = os.environ.get("VMTIME_EXPORTER")
    if not exe and BIN:
        exe = os.path.join(BIN, "exporter", "vmtime_exporter")
    if not exe or not os.access(exe, os.X_OK):
        raise RuntimeError(f"exporter binary not found (VMTIME_EXPORTER={exe!r}); build vmtime_exporter")
    return exe


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def free_port_in(low, high, attempts=200):
    """A free TCP port on 127.0.0.1 within [low, high] (for daemons that
    refuse ephemeral-range ports, e.g. zabbix_agentd's 1024..32767)."""
    import random
    rng = random.Random()
    for _ in range(attempts):
        port = rng.randint(low, high)
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port in {low}..{high} after {attempts} tries")


def wait_until(fn, timeout, what, interval=0.25):
    """Calls fn() until it returns a truthy value or timeout seconds pass;
    returns that value or raises TimeoutError naming `what` and the last
    exception fn raised."""
    deadline = time.monotonic() + timeout
    last = None
    while True:
        try:
            v = fn()
            if v:
                return v
        except Exception as e:  # noqa: BLE001 - reported below
            last = e
        if time.monotonic() >= deadline:
            raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}"
                               + (f" (last error: {last!r})" if last else ""))
        time.sleep(interval)


def http_get(url, timeout=5.0):
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return r.status, r.read().decode("utf-8", "replace")


def http_json(url, timeout=5.0, data=None):
    req = urllib.request.Request(url, data=data)
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return json.loads(r.read().decode())


class Proc:
    """A child process with its output in a log file. stop() ends it (TERM,
    then KILL after a grace period); its process group is its own."""

    def __init__(self, name, argv, logdir, env=None):
        self.name = name
        self.argv = argv
        self.log_path = os.path.join(logdir, f"{name}.log")
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(argv, stdout=self._log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, env=env, start_new_session=True)

    def log(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def tail(self, n=30):
        return "\n".join(self.log().splitlines()[-n:])

    def alive(self):
        return self.proc.poll() is None

    def wait_log(self, pattern, timeout):
        rx = re.compile(pattern)

        def found():
            m = rx.search(self.log())
            if m:
                return m
            if not self.alive():
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode}:\n{self.tail()}")
            return None
        try:
            return wait_until(found, timeout, f"{self.name} to log /{pattern}/")
        except TimeoutError as e:
            raise TimeoutError(f"{e}\n--- {self.name} log tail ---\n{self.tail()}") from None

    def stop(self, grace=10.0):
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
        self._log.close()


@contextlib.contextmanager
def processes():
    """Yields a list to append Procs to; stops them all (reverse order) on exit."""
    procs = []
    try:
        yield procs
    finally:
        for p in reversed(procs):
            with contextlib.suppress(Exception):
                p.stop()


def write_yaml(path, doc):
    with open(path, "w") as f:
        yaml.safe_dump(doc, f, sort_keys=False)
    return path


def start_exporter(procs, workdir, name="exporter", libvirt_uri="test:///default",
                   chrony_address=None, interval="1s", extra_args=(), config_extra=None):
    """Starts the real exporter on 127.0.0.1:<port chosen by the kernel>,
    collectors every `interval`; chrony only when chrony_address is given,
    timex and ntp off unless extra_args turn them on. Returns (Proc, base URL)."""
    cfg = {
        "libvirt": {"uri": libvirt_uri},
        "collectors": {
            "libvirt": {"enabled": True, "interval": interval},
            "chrony": {"enabled": chrony_address is not None, "interval": interval},
            "timex": {"enabled": False},
            "ntp": {"enabled": False},
        },
    }
    if chrony_address:
        cfg["chrony"] = {"address": chrony_address}
    for k, v in (config_extra or {}).items():
        cfg.setdefault(k, {}).update(v)
    conf = write_yaml(os.path.join(workdir, f"{name}.yml"), cfg)
    argv = [exporter_binary(), f"--config.file={conf}", "--web.listen-address=127.0.0.1:0",
            "--log.level=debug", *extra_args]
    p = Proc(name, argv, workdir)
    procs.append(p)
    m = p.wait_log(r"listening on .*?port=(\d+)", 30)
    base = f"http://127.0.0.1:{m.group(1)}"
    wait_until(lambda: http_get(base + "/healthz")[0] == 200, 15, f"{name} /healthz")
    return p, base


def start_prometheus(procs, workdir, scrape_targets, rule_files=(), alertmanager=None,
                     name="prometheus"):
    """Starts /usr/bin/prometheus scraping `scrape_targets` (host:port list)
    as job "vmtime" every second, evaluating `rule_files` every second.
    Returns (Proc, base URL) once /-/ready answers."""
    port = free_port()
    cfg = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s", "scrape_timeout": "1s"},
        "rule_files": list(rule_files),
        "scrape_configs": [{"job_name": "vmtime", "static_configs": [{"targets": list(scrape_targets)}]}],
    }
    if alertmanager:
        cfg["alerting"] = {"alertmanagers": [{"static_configs": [{"targets": [alertmanager]}]}]}
    conf = write_yaml(os.path.join(workdir, f"{name}.yml"), cfg)
    data = os.path.join(workdir, f"{name}-data")
    os.makedirs(data, exist_ok=True)
    p = Proc(name, [PROMETHEUS, f"--config.file={conf}", f"--storage.tsdb.path={data}",
                    f"--web.listen-address=127.0.0.1:{port}", "--web.enable-lifecycle",
                    "--rules.alert.resend-delay=1s"], workdir)
    procs.append(p)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: http_get(base + "/-/ready")[0] == 200, 60, "prometheus /-/ready")
    except TimeoutError as e:
        raise TimeoutError(f"{e}\n{p.tail()}") from None
    return p, base


def start_alertmanager(procs, workdir, config, name="alertmanager"):
    port = free_port()
    conf = write_yaml(os.path.join(workdir, f"{name}.yml"), config)
    data = os.path.join(workdir, f"{name}-data")
    os.makedirs(data, exist_ok=True)
    p = Proc(name, [ALERTMANAGER, f"--config.file={conf}", f"--storage.path={data}",
                    f"--web.listen-address=127.0.0.1:{port}", "--cluster.listen-address="], workdir)
    procs.append(p)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: http_get(base + "/-/ready")[0] == 200, 60, "alertmanager /-/ready")
    except TimeoutError as e:
        raise TimeoutError(f"{e}\n{p.tail()}") from None
    return p, base


def prom_query(base, expr, at=None):
    """Instant query; returns the result list or raises with Prometheus' error."""
    params = {"query": expr}
    if at is not None:
        params["time"] = str(at)
    url = base + "/api/v1/query?" + urllib.parse.urlencode(params)
    try:
        doc = http_json(url, timeout=10)
    except urllib.error.HTTPError as e:
        raise RuntimeError(f"query {expr!r}: HTTP {e.code}: {e.read().decode()[:500]}") from None
    if doc.get("status") != "success":
        raise RuntimeError(f"query {expr!r}: {doc}")
    return doc["data"]["result"]


def prom_query_range(base, expr, start, end, step):
    params = {"query": expr, "start": str(start), "end": str(end), "step": str(step)}
    url = base + "/api/v1/query_range?" + urllib.parse.urlencode(params)
    try:
        doc = http_json(url, timeout=10)
    except urllib.error.HTTPError as e:
        raise RuntimeError(f"range query {expr!r}: HTTP {e.code}: {e.read().decode()[:500]}") from None
    if doc.get("status") != "success":
        raise RuntimeError(f"range query {expr!r}: {doc}")
    return doc["data"]["result"]


def start_chronyd(procs, workdir, name="chronyd", extra_conf=""):
    """A private chronyd that never touches the host clock (-x): command
    socket in a 0700 dir under workdir, no NTP port, no sources unless
    extra_conf adds some (so it reports leap status 3, unsynchronised).
    Returns (Proc, "unix://<socket>")."""
    chronyd = shutil.which("chronyd") or "/usr/sbin/chronyd"
    d = os.path.join(workdir, name)
    os.makedirs(d, mode=0o700, exist_ok=True)
    os.chmod(d, 0o700)
    sock = os.path.join(d, "chronyd.sock")
    conf = os.path.join(d, "chrony.conf")
    with open(conf, "w") as f:
        f.write(f"port 0\ncmdport 0\nbindcmdaddress {sock}\npidfile {d}/chronyd.pid\n"
                f"driftfile {d}/drift\n{extra_conf}\n")
    p = Proc(name, [chronyd, "-d", "-x", "-u", "root", "-f", conf], workdir)
    procs.append(p)
    wait_until(lambda: os.path.exists(sock), 15, f"{name} command socket {sock}")
    return p, "unix://" + sock


def lab_module():
    """Imports tests/lab/vmlab.py (the private libvirt + QEMU lab)."""
    lab_dir = os.path.join(SRC, "tests", "lab")
    if lab_dir not in sys.path:
        sys.path.insert(0, lab_dir)
    import vmlab  # noqa: E402
    return vmlab
