#!/usr/bin/python3
"""Grafana dashboards (dashboards/grafana/). There is no Grafana package on
Debian, so instead of rendering them this test checks the JSON and runs
every query a dashboard would send against a real Prometheus scraping the
real exporter:

- static: regenerating with make_dashboards.py gives the committed JSON;
  schemaVersion 38, panel types timeseries/stat/table/bargauge (and rows),
  unique ids, grid positions inside 24 columns, every $variable defined;
  provisioning files point at the dashboards.
- live: the exporter against libvirt's test driver (test:///default, one
  running domain "test" with a frozen clock), or with VMTIME_E2E_LAB=1
  against a lab guest running chronyd with the guest_status collector on;
  the host kernel's timex (read-only), host references from two private
  chronyds on loopback (the host one
  synchronised to the other, which is also the exporter's SNTP upstream),
  Prometheus scraping every second. Every templating query
  (label_values(...), translated to /api/v1/series and /api/v1/label/<name>/values)
  must return values, which are then substituted into the panel queries
  ($__rate_interval etc. by fixed durations); every panel target must parse
  and return data, except the few listed in MAY_BE_EMPTY with the reason.
  Some values are checked for meaning: the band agrees with the score at
  the default thresholds, the host chronyd (synchronised to the upstream
  one) is shown synchronised with source "chrony", the upstream server at
  `local stratum 2` is usable.
- model (issue 12): host sync state only from vmtime_host_synchronised (no
  timex status bits, no leap status), bands from vmtime_vm_health_band.
"""

import json
import os
import re
import shutil
import subprocess
import tempfile
import time
import urllib.parse

import pytest
import yaml

import integrations_support as sup

SRC = sup.SRC
GDIR = os.path.join(SRC, "dashboards", "grafana")
DASHBOARDS = ["vmtime-fleet.json", "vmtime-vm.json"]
PANEL_TYPES = {"timeseries", "stat", "table", "bargauge", "row"}
BUILTIN_VARS = {"__rate_interval": "1m", "__interval": "15s", "__range": "5m", "__range_s": "300",
                "__interval_ms": "15000"}
LAB = os.environ.get("VMTIME_E2E_LAB") == "1"

# Queries that may legitimately return nothing in this test's set-up, and why.
MAY_BE_EMPTY = {
    "vmtime_collector_success{": "lists failing collectors only; none fail here",
    "vmtime_vm_guest_status_error{": "present only while reading the guest's time daemon fails",
    # The stack's hypervisor runs chronyd; test_ntpd.py checks these series
    # against a real ntpd and a private timesyncd D-Bus service.
    "vmtime_host_ntpd_": "the stack's host runs chronyd, not ntpd",
    "vmtime_host_timesyncd_": "the stack's host runs chronyd, not systemd-timesyncd",
    # The PTP row: only where the ptp collector reads a ptp4l (tests/e2e/test_ptp.py has one).
    "vmtime_host_ptp_": "present only where the ptp collector is enabled; this stack runs no ptp4l",
    "vmtime_group_offset_spread_seconds{": "needs two measured members of a group on one host; "
                                           "the test driver has one domain",
}
if not LAB:
    MAY_BE_EMPTY.update({
        "vmtime_vm_guest_": "guest daemon status needs the guest_status collector and a real guest (lab)",
        "vmtime_vm_clock_drift_ratio": "the test driver's guest clock is frozen: a stopped clock breaks "
                                       "every drift segment, so no drift is computed (scoring FitDrift)",
    })


def load(name):
    with open(os.path.join(GDIR, name)) as f:
        return json.load(f)


def panels(d):
    out = []
    for p in d["panels"]:
        out.append(p)
        out += p.get("panels", [])
    return out


def variables(d):
    return {v["name"]: v for v in d["templating"]["list"]}


def var_query(v):
    q = v.get("query")
    return q["query"] if isinstance(q, dict) else q


# --- static ---------------------------------------------------------------


def test_dashboards_are_generated(tmp_path):
    gen = tmp_path / "gen"
    shutil.copytree(GDIR, gen, ignore=shutil.ignore_patterns("*.json", "provisioning"))
    r = subprocess.run(["/usr/bin/python3", str(gen / "make_dashboards.py")], capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    for name in DASHBOARDS:
        assert (gen / name).read_text() == open(os.path.join(GDIR, name)).read(), \
            f"{name} differs from make_dashboards.py output: re-run the script"


@pytest.mark.parametrize("name", DASHBOARDS)
def test_dashboard_json(name):
    d = load(name)
    assert d["schemaVersion"] == 38
    assert d["uid"] and d["title"]
    vs = variables(d)
    assert vs["datasource"]["type"] == "datasource" and vs["datasource"]["query"] == "prometheus"
    assert {"job", "instance"} <= set(vs)
    ids = set()
    for p in panels(d):
        assert p["type"] in PANEL_TYPES, f"{name}: panel type {p['type']}"
        assert p["id"] not in ids, f"{name}: duplicate panel id {p['id']}"
        ids.add(p["id"])
        g = p["gridPos"]
        assert 0 <= g["x"] and g["x"] + g["w"] <= 24 and g["h"] > 0, (p["title"], g)
        if p["type"] == "row":
            continue
        assert p["datasource"]["uid"] == "${datasource}", p["title"]
        assert p["targets"], f"{name}: panel {p['title']} has no query"
        refs = [t["refId"] for t in p["targets"]]
        assert len(refs) == len(set(refs)), p["title"]
        for t in p["targets"]:
            for var in re.findall(r"\$\{?(\w+)", t["expr"]):
                assert var in vs or var in BUILTIN_VARS, f"{name}: {p['title']}: ${var} undefined"
    for v in vs.values():
        if v["type"] == "query":
            for var in re.findall(r"\$\{?(\w+)", var_query(v)):
                assert var in vs and list(vs).index(var) < list(vs).index(v["name"]), \
                    f"{name}: variable {v['name']} uses ${var} defined after it"
    # Required panels (issue 8, issue 12).
    titles = " | ".join(p.get("title", "") for p in panels(d))
    if name == "vmtime-fleet.json":
        for t in ("Score distribution", "Lowest scores", "offset", "Hypervisor", "Upstream",
                  "Hypervisor synchronised", "reason over time", "bad band"):
            assert t in titles, t
        assert "vm" not in vs
    else:
        for t in ("uncertainty band", "Score components", "Active reasons", "steps", "round trip",
                  "Band", "Reasons over time", "Offset vs host"):
            assert t in titles, t
        assert "vm" in vs
        band = [p for p in panels(d) if "uncertainty band" in p.get("title", "")][0]
        fills = [o for o in band["fieldConfig"]["overrides"]
                 if any(pr["id"] == "custom.fillBelowTo" for pr in o["properties"])]
        assert fills, "uncertainty band has no fillBelowTo override"


def exprs(d):
    return [t["expr"] for p in panels(d) for t in p.get("targets", [])]


@pytest.mark.parametrize("name", DASHBOARDS)
def test_dashboards_follow_the_model(name):
    """Host sync only from the exporter's verdict, bands only from the
    exported band, the guest metric under its new name."""
    d = load(name)
    text = "\n".join(exprs(d))
    for banned in ("vmtime_host_timex_sync_status", "vmtime_host_timex_status",
                   "vmtime_host_chrony_tracking_leap_status", "vmtime_vm_guest_synchronized"):
        assert banned not in text, f"{name} queries {banned}"
    assert "vmtime_host_synchronised" in text, name
    assert "vmtime_vm_health_band" in text, name
    # No band recomputed from the score in a query.
    assert not re.search(r"vmtime_vm_health_score[^)]*[<>]=?\s*\d", text), name


def test_provisioning_points_at_dashboards():
    prov = os.path.join(GDIR, "provisioning")
    ds = yaml.safe_load(open(os.path.join(prov, "datasources", "vmtime.yml")))
    assert ds["datasources"][0]["type"] == "prometheus"
    dash = yaml.safe_load(open(os.path.join(prov, "dashboards", "vmtime.yml")))
    p = dash["providers"][0]
    assert p["type"] == "file" and p["options"]["path"]


# --- live -------------------------------------------------------------------


@pytest.fixture(scope="module")
def stack():
    workdir = tempfile.mkdtemp(prefix="vmtime-grafana-")
    try:
        with sup.processes() as procs:
            # Upstream: a chronyd serving NTP on loopback from its local clock.
            up_port = sup.free_port()
            sup.start_chronyd(procs, workdir, name="upstream",
                              extra_conf=f"local stratum 2\nallow 127.0.0.1\nport {up_port}\n"
                                         "bindaddress 127.0.0.1\n")
            # The "host" chronyd follows it (and is what the exporter reads).
            _, host_addr = sup.start_chronyd(
                procs, workdir, name="host",
                extra_conf=f"server 127.0.0.1 port {up_port} iburst minpoll -2 maxpoll 0\n")
            ntp = [f"--ntp.server=127.0.0.1:{up_port}"]
            cfg = {"collectors": {"ntp": {"enabled": True, "interval": "1s"},
                                  "timex": {"enabled": True, "interval": "1s"}},
                   # Every domain in one group, so the group panels have data.
                   "groups": {"rules": [{"match": "*", "group": "all"}]}}
            if LAB:
                vmlab = sup.lab_module()
                lab = vmlab.Lab(os.path.join(workdir, "lab"),
                                guests=[vmlab.GuestSpec("g1", chrony="local10")], boot_timeout=300)
                procs.append(_Closer(lab))
                uri, vm = lab.uri, "g1"
                cfg["collectors"]["guest_status"] = {"enabled": True, "interval": "2s"}
            else:
                uri, vm = "test:///default", "test"
            _, base = sup.start_exporter(procs, workdir, libvirt_uri=uri, chrony_address=host_addr,
                                         extra_args=ntp, config_extra=cfg)
            _, prom = sup.start_prometheus(procs, workdir, [base.split("//", 1)[1]],
                                           [os.path.join(SRC, "alerts", "vmtime.recording.yml")])

            wanted = ["vmtime_vm_health_score", "vmtime_vm_health_band", "vmtime_host_chrony_sources_stratum",
                      "vmtime_ntp_server_offset_seconds", "vmtime_vm_clock_utc_offset_seconds",
                      "vmtime_host_synchronised"]
            if LAB:
                wanted += ["vmtime_vm_guest_stratum", "vmtime_vm_clock_drift_ratio"]
            try:
                sup.wait_until(lambda: all(sup.prom_query(prom, n) for n in wanted), 120,
                               f"exporter series {wanted} in Prometheus")
            except TimeoutError as e:
                got = sorted({r["metric"]["__name__"] for r in sup.prom_query(prom, '{job="vmtime"}')})
                raise TimeoutError(f"{e}\nseries present: {got}") from None
            time.sleep(5)  # some history for range queries and increase()
            yield prom, vm
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


class _Closer:
    """Adapts a Lab to the processes() teardown list."""

    def __init__(self, lab):
        self.lab = lab

    def stop(self):
        self.lab.close()


def label_values(prom, query):
    """Grafana's label_values(...) for Prometheus, as the datasource runs it."""
    m = re.fullmatch(r"\s*label_values\((?:(.*),\s*)?(\w+)\)\s*", query)
    assert m, f"unsupported variable query {query!r}"
    selector, label = m.group(1), m.group(2)
    if selector:
        url = prom + "/api/v1/series?" + urllib.parse.urlencode({"match[]": selector})
        doc = sup.http_json(url)
        assert doc["status"] == "success", doc
        return sorted({s[label] for s in doc["data"] if label in s})
    doc = sup.http_json(prom + f"/api/v1/label/{label}/values")
    return sorted(doc["data"])


def substitute(expr, values):
    for name, value in sorted({**BUILTIN_VARS, **values}.items(), key=lambda kv: -len(kv[0])):
        expr = expr.replace("${%s}" % name, value).replace("$" + name, value)
    assert "$" not in expr, f"unsubstituted variable in {expr!r}"
    return expr


def resolve_variables(prom, d, vm_name):
    values = {}
    for v in d["templating"]["list"]:
        if v["type"] != "query":
            continue
        q = substitute(var_query(v), values)
        got = label_values(prom, q)
        assert got, f"variable {v['name']}: {q} returned no values"
        if v["name"] == "vm":
            assert vm_name in got, (vm_name, got)
            values["vm"] = vm_name
        elif v.get("includeAll"):
            # Grafana's "All" with allValue ".+" (or the one value).
            values[v["name"]] = v.get("allValue") or "|".join(re.escape(x) for x in got)
        else:
            values[v["name"]] = got[0]
    return values


@pytest.mark.parametrize("name", DASHBOARDS)
def test_every_query_parses_and_returns_data(stack, name):
    prom, vm = stack
    d = load(name)
    values = resolve_variables(prom, d, vm)
    now = time.time()
    empty, checked = [], 0
    for p in panels(d):
        for t in p.get("targets", []):
            expr = substitute(t["expr"], values)
            if t.get("instant"):
                result = sup.prom_query(prom, expr, at=now)
            else:
                result = sup.prom_query_range(prom, expr, now - 60, now, 1)
            checked += 1
            if not result:
                reason = next((r for k, r in MAY_BE_EMPTY.items() if k in expr), None)
                if reason is None:
                    empty.append(f"{p['title']}: {expr}")
    assert checked > 10
    assert not empty, "queries returned no data:\n" + "\n".join(empty)


def test_selected_values_are_plausible(stack):
    """A few panel queries checked for meaning, not just presence."""
    prom, vm = stack
    d = load("vmtime-vm.json")
    values = resolve_variables(prom, d, vm)
    by_title = {p["title"]: p for p in panels(d) if p["type"] != "row"}
    score = sup.prom_query(prom, substitute(by_title["Health score"]["targets"][0]["expr"], values))
    assert 0 <= float(score[0]["value"][1]) <= 100
    comps = sup.prom_query(prom, substitute(by_title["Score components"]["targets"][0]["expr"], values))
    # guest_status is off here: sync_state and stratum are not collected, so
    # the score leaves them out and no series is exported for them.
    assert {c["metric"]["component"] for c in comps} == {
        "offset", "drift", "stability", "freshness", "host_reference"}
    band = by_title["Offset vs host with uncertainty band"]["targets"]
    off, lower, upper = (float(sup.prom_query(prom, substitute(t["expr"], values))[0]["value"][1])
                         for t in band[:3])
    assert lower <= off <= upper
    # The band stat agrees with the score at the default thresholds (the
    # stack runs the exporter's defaults: good >= 90, degraded >= 60); both
    # read at one instant, so from the same scrape (one exporter snapshot).
    at = time.time()
    got_band = int(float(sup.prom_query(prom, substitute(by_title["Band"]["targets"][0]["expr"], values),
                                        at=at)[0]["value"][1]))
    s = float(sup.prom_query(prom, substitute(by_title["Health score"]["targets"][0]["expr"], values),
                             at=at)[0]["value"][1])
    assert got_band == (0 if s >= 90 else 1 if s >= 60 else 2), (got_band, s)
    mapped = by_title["Band"]["fieldConfig"]["defaults"]["mappings"][0]["options"]
    assert mapped[str(got_band)]["text"] in ("good", "degraded", "bad")


def test_host_synchronised_and_upstream_values(stack):
    """The fleet dashboard's host and upstream panels show the real state:
    the host chronyd follows the upstream chronyd, so the exporter (asking
    chronyd) says synchronised with source chrony; the upstream serves at
    stratum 2, within ntp.max_stratum, so it is usable."""
    prom, vm = stack
    d = load("vmtime-fleet.json")
    values = resolve_variables(prom, d, vm)
    by_title = {p["title"]: p for p in panels(d) if p["type"] != "row"}
    expr = substitute(by_title["Hypervisor synchronised"]["targets"][0]["expr"], values)

    def synced():
        r = sup.prom_query(prom, expr)
        return r if r and float(r[0]["value"][1]) == 1 else None
    r = sup.wait_until(synced, 90, "the host chronyd to synchronise to the upstream one "
                                   "(vmtime_host_synchronised 1)")
    assert [x["metric"]["source"] for x in r] == ["chrony"], r
    unsync = sup.prom_query(prom, substitute(by_title["Hypervisors unsynchronised"]["targets"][0]["expr"], values))
    assert float(unsync[0]["value"][1]) == 0, unsync
    usable = sup.prom_query(prom, substitute(by_title["Upstream NTP servers"]["targets"][0]["expr"], values))
    assert usable and float(usable[0]["value"][1]) == 1, usable
