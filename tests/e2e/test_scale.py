#!/usr/bin/python3
"""The real exporter against libvirt's test driver holding 10,000 running
domains (a node XML generated into a temp dir at test time), the scale the
README promises per hypervisor:

* start-up: every VM is exported with a clock sample within one configured
  libvirt poll interval of the libvirt connection, plus a documented slack,
  and no VM is ever exported as agent down on the way;
* every domain appears once in vmtime_vm_info with a vmtime_vm_health_score;
* /api/v1/targets lists all of them;
* `Accept-Encoding: gzip` gets a gzip body that decodes to the plain body;
* `promtool check metrics` accepts the whole exposition without a word.

Speed is measured by scripts/measure and bench/ (docs/performance.md,
docs/scaling.md); the only time bound here is the start-up property, which
is a property of the scheduler, not a benchmark. The libvirt collector's
first run lists every domain and queues each for a sample; the agent workers
sample them and every sample is published by a harvest within
the poller's harvest gap (250 ms, or 20 times the previous publish's cost, at
most 2 s) of its arrival, not at the next poll
(docs/libvirt.md, "Fresh data"). So every VM is exported with a sample one
sampling round after the first list, and the round must not wait for the
next poll. The test configures the libvirt interval to 60 s: long enough
that the sampling round (10,000 domains x 3 calls on 4 workers: 0.3 s on an
idle machine, about 25 s on the 2-core development machine at load average
18) fits in it on any machine the suite runs on, so what is checked is the
scheduler (a regression to "published at the next poll" shows up as 60 s
or more), not the machine's speed. The clock starts at the exporter's
"libvirt: connected" log line, not at the process start: libvirt's test
driver parses the whole 10,000-domain node document inside virConnectOpen
(6 s idle, 57 s at load average 18), which a real libvirtd, holding its
domains in memory, does not do. The slack (10 s) covers the observation:
each look is one /api/v1/targets render and parse of 10,000 VMs (0.3-5 s),
one look per second.
"""
import datetime
import gzip
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from exporter_proc import EXPORTER, Exporter  # noqa: E402

N = 10000
INTERVAL_S = 60  # the libvirt collector's interval here (default 15 s): see the docstring
SLACK_S = 10     # see the module docstring
CONFIG = f"""collectors:
  libvirt: {{interval: {INTERVAL_S}s}}
"""
INFO_RE = re.compile(r'^vmtime_vm_info\{([^}]*)\} 1$', re.M)
SCORE_RE = re.compile(r'^vmtime_vm_health_score\{([^}]*)\} (\S+)$', re.M)
LABEL_RE = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def domain_name(i):
    return f"scale-{i:05d}"


def domain_uuid(i):
    return f"{i:08x}-5ca1-4e00-8000-{i:012x}"


def write_node_xml(path, n):
    """A libvirt test-driver node document with `n` running domains
    (test driver domains start in the running state unless told otherwise)."""
    with open(path, "w") as f:
        f.write("<node>\n")
        for i in range(n):
            f.write(f"  <domain type='test'><name>{domain_name(i)}</name>"
                    f"<uuid>{domain_uuid(i)}</uuid><memory>65536</memory>"
                    "<os><type>hvm</type></os></domain>\n")
        f.write("</node>\n")


def optional_collector_flags():
    """--no-collector.chrony/--no-collector.ntp when this build knows them."""
    r = subprocess.run([EXPORTER, "--help"], capture_output=True, text=True, timeout=30)
    return [f for f in ("--no-collector.chrony", "--no-collector.ntp")
            if f in r.stdout + r.stderr]


def labels(text):
    return dict(LABEL_RE.findall(text))


class Started:
    """The running exporter, when it was started, and what start-up looked like."""

    def __init__(self, exporter, t_start):
        self.exporter = exporter
        self.t_start = t_start
        self.body = None            # /metrics, taken once every VM was sampled
        self.t_all_sampled = None   # start of the look that saw every VM sampled (s after connect)
        self.t_connected = None     # the "libvirt: connected" log line (s after the process start)
        self.agent_down_seen = []   # (s after start, domains) of every look with agent_up 0
        self.looks = 0


@pytest.fixture(scope="module")
def started():
    tmp = tempfile.TemporaryDirectory(prefix="vmtime-scale-")
    try:
        node = os.path.join(tmp.name, "node.xml")
        write_node_xml(node, N)
        flags = optional_collector_flags()
        t_start = time.monotonic()
        with Exporter("--libvirt.uri", "test://" + node, *flags, config_text=CONFIG,
                      start_timeout=60) as e:
            s = Started(e, t_start)
            watch_start_up(s)
            yield s
    finally:
        tmp.cleanup()


def log_time(line):
    """The realtime (Unix seconds) of an exporter logfmt line's ts=."""
    m = re.search(r"ts=(\S+)Z", line)
    return datetime.datetime.fromisoformat(m.group(1)).replace(
        tzinfo=datetime.timezone.utc).timestamp()


def watch_start_up(s, timeout=300):
    """Polls /api/v1/targets (a quarter of /metrics' bytes) once a second
    until every domain has a clock sample (bounded by `timeout` s); records
    when, relative to the libvirt connection, and every look that showed an
    agent down. Then keeps one /metrics body for the other tests."""
    deadline = s.t_start + timeout
    wall_start = time.time() - (time.monotonic() - s.t_start)
    sampled = 0
    while time.monotonic() < deadline:
        t_look = time.time()
        status, body, _ = s.exporter.get("/api/v1/targets", timeout=60)
        assert status == 200, body[:500]
        vms = json.loads(body)["vms"]
        s.looks += 1
        down = [vm["domain"] for vm in vms if vm["agent_up"] is False]
        if down:
            s.agent_down_seen.append((round(t_look - wall_start, 1), len(down), down[:5]))
        sampled = sum(vm["offset_seconds"] is not None for vm in vms)
        if sampled >= N:
            t_conn = log_time(s.exporter.wait_log(r"libvirt: connected", 1).string)
            s.t_connected = t_conn - wall_start
            s.t_all_sampled = t_look - t_conn
            print(f"FIGURE {N} domains: libvirt connected {s.t_connected:.1f} s after start "
                  f"(test-driver XML parse), every VM exported with a sample at most "
                  f"{s.t_all_sampled:.1f} s after that ({s.looks} looks)")
            status, s.body, _ = s.exporter.get("/metrics", timeout=120)
            assert status == 200, s.body[:500]
            return
        time.sleep(max(0.0, t_look + 1 - time.time()))
    raise TimeoutError(f"after {timeout}s: {sampled} of {N} VMs have a sample; "
                       f"log:\n{s.exporter.log()[-3000:]}")


def test_every_vm_has_a_sample_within_one_poll_interval_of_start(started):
    assert started.t_all_sampled <= INTERVAL_S + SLACK_S, (
        f"every VM had a sample only {started.t_all_sampled:.1f} s after the libvirt connection "
        f"(interval {INTERVAL_S} s + slack {SLACK_S} s)")
    # No false down: a VM whose agent was not tried yet is neither up nor
    # down (agent_up null in the API, vmtime_vm_agent_up absent), so no
    # look during start-up may show an agent down.
    assert started.agent_down_seen == []


def test_every_domain_is_exported_and_scored(started):
    body = started.body
    infos = [labels(m) for m in INFO_RE.findall(body)]
    assert len(infos) == N, f"{len(infos)} vmtime_vm_info series"
    want = {domain_name(i): domain_uuid(i) for i in range(N)}
    got = {i["domain"]: i["uuid"] for i in infos}
    assert got == want
    assert {i["state"] for i in infos} == {"running"}
    scores = {}
    for lab, value in SCORE_RE.findall(body):
        scores[labels(lab)["domain"]] = float(value)
    assert set(scores) == set(want), "domains without vmtime_vm_health_score: " + \
        ", ".join(sorted(set(want) - set(scores))[:10])
    assert all(0 <= v <= 100 for v in scores.values())
    # The test driver's guest clock is frozen at 627319920 s: every domain is
    # decades behind, so the offset gate must pull every score down.
    assert max(scores.values()) <= 20, sorted(scores.items(), key=lambda kv: -kv[1])[:5]


def test_targets_api_lists_every_vm(started):
    status, body, headers = started.exporter.get("/api/v1/targets", timeout=60)
    assert status == 200, body[:500]
    assert headers["Content-Type"] == "application/json"
    doc = json.loads(body)
    assert len(doc["vms"]) == N
    assert {vm["domain"] for vm in doc["vms"]} == {domain_name(i) for i in range(N)}
    assert all(vm["health_score"] is not None for vm in doc["vms"])
    assert all(vm["offset_seconds"] is not None for vm in doc["vms"])
    assert doc["libvirt"] == {"enabled": True, "connected": True}


def first_difference(a, b):
    for n, (x, y) in enumerate(zip(a.splitlines(), b.splitlines())):
        if x != y:
            return f"line {n + 1}: plain {x!r} vs gzip {y!r}"
    return f"lengths {len(a)} vs {len(b)}"


def test_gzip_body_decodes_to_the_plain_body(started):
    """A scraper sending `Accept-Encoding: gzip` (Prometheus does) gets
    `Content-Encoding: gzip`, and the body decodes to the plain body. The
    two requests may straddle a new snapshot (a poll every 15 s): a
    difference is retried a few times before it counts."""
    import urllib.request
    e = started.exporter
    diff = ""
    for _ in range(5):
        status, plain, _ = e.get("/metrics", timeout=60)
        assert status == 200
        req = urllib.request.Request(e.base + "/metrics", headers={"Accept-Encoding": "gzip"})
        with urllib.request.urlopen(req, timeout=60) as r:
            raw, encoding = r.read(), r.headers.get("Content-Encoding")
        assert encoding == "gzip", (
            f"/metrics answered Accept-Encoding: gzip with Content-Encoding {encoding!r} "
            f"({len(raw)} bytes uncompressed): the exporter does not gzip yet")
        decoded = gzip.decompress(raw).decode()
        print(f"FIGURE /metrics at {N} VMs: {len(plain.encode())} bytes plain, {len(raw)} gzip "
              f"(ratio {len(plain.encode()) / len(raw):.1f})")
        if decoded == plain:
            return
        diff = first_difference(plain, decoded)
        time.sleep(1)
    pytest.fail(f"the gzip body never decoded to the plain body in 5 tries; last: {diff}")


def test_full_exposition_passes_promtool(started):
    promtool = shutil.which("promtool")
    assert promtool, "promtool (Debian package prometheus) is required"
    r = subprocess.run([promtool, "check", "metrics"], input=started.body, capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0, (r.stdout + r.stderr)[:3000]
    assert r.stdout.strip() == "" and r.stderr.strip() == "", (r.stdout + r.stderr)[:3000]
