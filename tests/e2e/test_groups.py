#!/usr/bin/python3
"""Groups (issue 16), the source document's case end to end on the lab.

Three real QEMU guests (tests/lab, private libvirtd): g1 and g2 are a MySQL
primary and its replica (group `mysql`, set with `virsh metadata` before the
exporter starts: read at discovery), g3 is in another group. The replica is
stepped 45 s behind through its guest agent. The real exporter reads them
(with a private chronyd -x as host reference, so offsets against UTC
exist), a real Prometheus evaluates a copy of alerts/ whose `for:` and
evaluation intervals are shortened, a real Alertmanager runs
alerts/alertmanager.yml with its receivers pointed at this test's webhook:

  1. the exporter's own view: vmtime_vm_info carries group and labels,
     vmtime_group_offset_spread_seconds{group="mysql"} is about 45 s, g1 and
     g2 carry the reason group_skew, g3 does not; the status page filters by
     group and lists mysql first;
  2. the webhook receives VMGroupClockSkew for mysql and nothing for the
     other group;
  3. metadata changed on the running domain (`virsh metadata --live`) is
     picked up without restart or reload (the metadata-change event);
  4. bad metadata (an unknown element, an oversized value, an invalid label
     name, a second group) is ignored: the valid rest is kept, the exporter
     logs one line for that domain however many polls pass, and it keeps
     serving.
"""

import os
import re
import shutil
import subprocess
import tempfile
import time

import pytest
import yaml

import integrations_support as sup
from test_alerts import RECORDING, RULES, Webhook, am_config

NS = "urn:vmtime-exporter:metadata:1"
MYSQL = '<vmtime><group>mysql</group><label name="team">db</label></vmtime>'


def virsh_metadata(lab, domain, xml):
    """`virsh metadata --live --set` on a lab domain (transient: live only)."""
    r = subprocess.run(["virsh", "-c", lab.uri, "metadata", domain, "--uri", NS, "--key", "vmtime",
                        "--live", "--set", xml], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stdout + r.stderr


def short_copy(path, workdir, name, for_=None):
    """A copy of a rules file evaluated every second, `for:` shortened."""
    doc = yaml.safe_load(open(path))
    for g in doc["groups"]:
        g["interval"] = "1s"
        for r in g["rules"]:
            if "alert" in r and "for" in r and for_:
                r["for"] = for_
    return sup.write_yaml(os.path.join(workdir, name), doc)


def metrics(base):
    return sup.http_get(base + "/metrics")[1]


def sample(text, name, **labels):
    """The value of the first series `name` whose labels include `labels`."""
    for line in text.splitlines():
        if not line.startswith(name + "{"):
            continue
        got = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', line[len(name):line.rindex("}") + 1]))
        if all(got.get(k) == v for k, v in labels.items()):
            return got, float(line.rsplit(" ", 1)[1])
    return None


@pytest.fixture(scope="module")
def lab():
    vmlab = sup.lab_module()
    workdir = tempfile.mkdtemp(prefix="vmtime-groups-lab-")
    os.rmdir(workdir)  # Lab creates (and then removes) it
    t0 = time.monotonic()
    with vmlab.Lab(workdir, guests=3, boot_timeout=300) as lab:
        print(f"lab: 3 guests up in {time.monotonic() - t0:.1f} s")
        virsh_metadata(lab, "g1", MYSQL)
        virsh_metadata(lab, "g2", MYSQL.replace("</vmtime>", '<label name="role">replica</label></vmtime>'))
        yield lab


@pytest.fixture
def workdir():
    d = tempfile.mkdtemp(prefix="vmtime-groups-")
    yield d
    shutil.rmtree(d, ignore_errors=True)


def test_groups_end_to_end(lab, workdir):
    t_start = time.monotonic()
    webhook = Webhook()
    try:
        with sup.processes() as procs:
            _, chrony_addr = sup.start_chronyd(procs, workdir)
            exporter, base = sup.start_exporter(procs, workdir, libvirt_uri=lab.uri,
                                                chrony_address=chrony_addr)
            am, am_base = sup.start_alertmanager(procs, workdir, am_config(webhook))
            rules = short_copy(RULES, workdir, "rules.yml", for_="2s")
            recording = short_copy(RECORDING, workdir, "recording.yml")
            prom, prom_base = sup.start_prometheus(
                procs, workdir, [base.split("//", 1)[1]], [rules, recording],
                alertmanager=am_base.split("//", 1)[1])

            # Read at discovery: g1 and g2 in mysql, with their labels.
            def info(domain):
                got = sample(metrics(base), "vmtime_vm_info", domain=domain)
                return got and got[0]
            g2 = sup.wait_until(lambda: (info("g2") or {}).get("group") and info("g2"), 60,
                                "g2's group on vmtime_vm_info")
            assert g2["group"] == "mysql" and g2["label_team"] == "db" and g2["label_role"] == "replica", g2
            assert "group" not in sample(metrics(base), "vmtime_vm_health_score", domain="g2")[0], \
                "per-VM series keep their label set"

            # Live change on a running domain: bad metadata first. The valid
            # group is kept, the rest left out, one log line.
            bad = ('<vmtime><group>web</group><group>other</group><colour>red</colour>'
                   '<label name="9lives">x</label><label name="owner">' + "x" * 300 + '</label>'
                   '<label name="tier">front</label></vmtime>')
            virsh_metadata(lab, "g3", bad)
            g3 = sup.wait_until(lambda: (info("g3") or {}).get("group") == "web" and info("g3"), 30,
                                "g3's metadata picked up without restart")
            assert g3.get("label_tier") == "front", g3
            assert not [k for k in g3 if k.startswith("label_") and k != "label_tier"], g3

            # The replica 45 s behind its primary.
            lab.step_clock("g2", -45)

            def spread():
                got = sample(metrics(base), "vmtime_group_offset_spread_seconds", group="mysql")
                return got and got[1] > 40 and got[1]
            value = sup.wait_until(spread, 60, "the mysql spread on /metrics")
            assert 43 < value < 47, value
            text = metrics(base)
            for vm in ("g1", "g2"):
                assert sample(text, "vmtime_vm_health_reason", domain=vm, reason="group_skew"), vm
            assert not sample(text, "vmtime_vm_health_reason", domain="g3", reason="group_skew")
            assert sample(text, "vmtime_group_members", group="web")[1] == 1
            assert not sample(text, "vmtime_group_offset_spread_seconds", group="web"), \
                "no spread with one member"

            page = sup.http_get(base + "/?group=mysql")[1]
            assert "<h2>Groups</h2>" in page
            assert page.index('?group=mysql">mysql</a></td>') < page.index('?group=web">web</a></td>')
            assert ">g1<small>" in page and ">g2<small>" in page and ">g3<small>" not in page

            # Through Prometheus and Alertmanager: mysql only.
            def group_alerts():
                return [a for _, a in webhook.alerts() if a["labels"].get("alertname") == "VMGroupClockSkew"]
            try:
                got = sup.wait_until(group_alerts, 120, "VMGroupClockSkew at the webhook")
            except TimeoutError as e:
                raise TimeoutError(f"{e}\nwebhook got: {webhook.received}\n"
                                   f"prometheus alerts: {sup.prom_query(prom_base, 'ALERTS')}\n"
                                   f"exporter log:\n{exporter.tail()}") from None
            assert {a["labels"]["group"] for a in got} == {"mysql"}, got
            assert "docs/alerts.md#vmgroupclockskew" in got[0]["annotations"]["runbook_url"]
            spread_utc = sup.prom_query(prom_base, "group:vmtime_vm_clock_utc_offset_seconds:spread")
            by_group = {r["metric"]["group"]: float(r["value"][1]) for r in spread_utc}
            assert 43 < by_group["mysql"] < 47 and by_group["web"] == 0, by_group
            firing = [r["metric"] for r in sup.prom_query(prom_base, 'ALERTS{alertname="VMGroupClockSkew"}')]
            assert {m["group"] for m in firing} == {"mysql"}, firing

            # One log line for g3's bad metadata, however many polls later.
            lines = [ln for ln in exporter.log().splitlines() if "metadata partly ignored" in ln]
            assert len(lines) == 1 and "'g3'" in lines[0], lines
            for what in ("second <group>", "unknown element <colour>", "'9lives'", "longer than 128"):
                assert what in lines[0], (what, lines[0])
            assert exporter.alive()
            print(f"test body: {time.monotonic() - t_start:.1f} s")
    finally:
        webhook.close()
