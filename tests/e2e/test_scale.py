#!/usr/bin/python3
"""The real exporter against libvirt's test driver holding 2,000 running
domains (a node XML generated into a temp dir at test time): every domain
appears once in vmtime_vm_info with a vmtime_vm_health_score,
/api/v1/targets lists all of them, and `promtool check metrics` accepts the
whole exposition without a word. No timing is asserted: speed is measured by
scripts/measure and bench/ (docs/performance.md)."""
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

N = 2000
CONFIG = """collectors:
  libvirt: {interval: 2s}
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


@pytest.fixture(scope="module")
def exporter():
    tmp = tempfile.TemporaryDirectory(prefix="vmtime-scale-")
    try:
        node = os.path.join(tmp.name, "node.xml")
        write_node_xml(node, N)
        with Exporter("--libvirt.uri", "test://" + node, *optional_collector_flags(),
                      config_text=CONFIG) as e:
            yield e
    finally:
        tmp.cleanup()


def wait_all_domains(e, timeout=180):
    """Scrapes until every domain has its info and health score series;
    returns that exposition text. Bounded by `timeout` seconds."""
    deadline = time.monotonic() + timeout
    body, infos, scores = "", 0, 0
    while time.monotonic() < deadline:
        body = e.metrics()
        infos = len(INFO_RE.findall(body))
        scores = len(SCORE_RE.findall(body))
        if infos >= N and scores >= N:
            return body
        time.sleep(0.5)
    raise TimeoutError(f"after {timeout}s: {infos} vmtime_vm_info and {scores} "
                       f"vmtime_vm_health_score series of {N}; log:\n{e.log()[-3000:]}")


def test_every_domain_is_exported_and_scored(exporter):
    body = wait_all_domains(exporter)
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


def test_targets_api_lists_every_vm(exporter):
    wait_all_domains(exporter)
    status, body, headers = exporter.get("/api/v1/targets")
    assert status == 200, body[:500]
    assert headers["Content-Type"] == "application/json"
    doc = json.loads(body)
    assert len(doc["vms"]) == N
    assert {vm["domain"] for vm in doc["vms"]} == {domain_name(i) for i in range(N)}
    assert all(vm["health_score"] is not None for vm in doc["vms"])
    assert doc["libvirt"] == {"enabled": True, "connected": True}


def test_full_exposition_passes_promtool(exporter):
    body = wait_all_domains(exporter)
    promtool = shutil.which("promtool")
    assert promtool, "promtool (Debian package prometheus) is required"
    r = subprocess.run([promtool, "check", "metrics"], input=body, capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0, (r.stdout + r.stderr)[:3000]
    assert r.stdout.strip() == "" and r.stderr.strip() == "", (r.stdout + r.stderr)[:3000]
