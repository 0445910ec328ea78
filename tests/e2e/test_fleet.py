#!/usr/bin/python3
"""The fleet: 20 real exporters, one real Prometheus, the project's rules.

Twenty vmtime_exporter processes, each reading its own libvirt test-driver
node document (100 to 119 domains, 2,190 VMs in all, by default), each scraped as a
distinct `instance` (hv-00 .. hv-19) by ONE private Prometheus
(/usr/bin/prometheus on a free 127.0.0.1 port, data in a temp dir) that
loads alerts/vmtime.recording.yml and alerts/vmtime.rules.yml. The fleet
dashboard's queries (extracted from dashboards/grafana/vmtime-fleet.json,
`$job` = vmtime, `$instance` = its All value) must return the fleet as it
was built: VM counts, bands, states, reasons, unsynchronised hypervisors
and, as worst offenders, exactly the VMs that were made the worst.

What the test driver gives, and how the hypervisors are made to differ:
libvirt's test driver answers virDomainGetTime with the same frozen guest
clock (627319920 s, 1989) for every running domain, so every running VM
is decades behind and, from its second sample on, a stopped clock: every
running VM looks the same. The differences are made with what an operator
controls, per exporter:
  * domain states (test driver `<test:runstate>`): hv-03 has 7 paused,
    hv-11 8 shut-off and hv-17 5 paused domains. They are never sampled
    (reason no_data) and score below 3 (0 on an unsynchronised host, 2.2 on
    a synchronised one: the host reference is all they have): the fleet's
    20 worst offenders;
  * the scorer's stopped-clock gate (`scoring.gate_clock_stopped_max`, the
    cap on a stopped clock's score): 3 + k mod 7 on hv-k, so running VMs
    score 3..9 and each hypervisor's lowest running score is known;
  * the band threshold `scoring.band_degraded_min` = 1 on hv-00, -04, -08,
    -12, -16: their running VMs are in the degraded band, all others bad;
  * the host reference: a private chronyd (-x, `local stratum 8`, command
    socket only) that is synchronised for most hypervisors, a second one
    with no sources (unsynchronised) for hv-02, -07, -12, -17, and a chrony
    socket that does not exist for hv-19 (its chrony collector fails and it
    falls back to no host reference: timex is off in this test).

Rules are the shipped files; only the recording group's `interval: 30s`
is shortened to 5 s (in a copy) so it evaluates within the test. Alerts
keep their `for:` durations: in a test this short they are pending, which
is what is checked (the expressions select the right VMs).

The path beyond one Prometheus (docs/scaling.md): a second, "global"
Prometheus federates only the `instance:` recording-rule series from the
fleet's Prometheus (/federate, honor_labels) and evaluates the shipped
`job:` rules itself; the federated fleet dashboard
(dashboards/grafana/vmtime-fleet-federated.json, which may query only
`instance:`/`job:` series) must return the same VM counts, bands, reasons
and worst hypervisors from it.

Figures (printed, see docs/scaling.md): Prometheus' own
prometheus_rule_group_last_duration_seconds per group, the samples each
group produced, samples scraped per scrape of the fleet and head series.
Nothing is asserted on time; every wait is bounded (300 s for the steady
state). Every process is stopped and the temp dir removed even when the
test fails. Wall time: 31 s with the default 2,190 VMs in a whole-suite
run (nice 5, beside the lab tests), 179-312 s with
VMTIME_FLEET_BASE_DOMAINS=200 (4,190 VMs) and 56-63 s with
VMTIME_FLEET_BASE_DOMAINS=50 (1,190 VMs), on the 2-core development
machine at load average 12-19 (seven other builds running). Most of it is
the first evaluation of the `vmtime.vm` alert group after the steady state:
every running VM is pending on 7 alerts here, about 29,000 alert instances
(docs/scaling.md).
"""

import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.parse

import pytest
import yaml

import integrations_support as sup

SRC = sup.SRC
ALERTS = os.path.join(SRC, "alerts")
FLEET_DASHBOARD = os.path.join(SRC, "dashboards", "grafana", "vmtime-fleet.json")
FEDERATED_DASHBOARD = os.path.join(SRC, "dashboards", "grafana", "vmtime-fleet-federated.json")
N_HV = 20
# Domains on hv-00 (hv-k has BASE + k); the environment may change it for a measurement.
BASE = int(os.environ.get("VMTIME_FLEET_BASE_DOMAINS", "100"))
SCRAPE_S = 5
RUNSTATE = {"running": 1, "paused": 3, "shutoff": 5}
# Not-running domains per hypervisor (the worst offenders): index -> (state, count).
NOT_RUNNING = {3: ("paused", 7), 11: ("shutoff", 8), 17: ("paused", 5)}
UNSYNC_HV = {2, 7, 12, 17}
BROKEN_CHRONY_HV = {19}
DEGRADED_MIN_1_HV = {0, 4, 8, 12, 16}
# Grafana's built-in variables, as test_grafana.py substitutes them.
BUILTIN_VARS = {"__rate_interval": "1m", "__interval": "15s", "__range": "5m", "__range_s": "300",
                "__interval_ms": "15000", "job": "vmtime", "instance": ".+"}


def hv_name(k):
    return f"hv-{k:02d}"


def domains_of(k):
    return BASE + k


def gate_of(k):
    return 3 + k % 7


class Domain:
    def __init__(self, k, i, state):
        self.instance = hv_name(k)
        self.name = f"{hv_name(k)}-vm{i:04d}"
        self.uuid = f"{k:08x}-f1ee-4e00-8000-{i:012x}"
        self.state = state


def fleet():
    """Every domain of the fleet, per hypervisor index."""
    out = {}
    for k in range(N_HV):
        n = domains_of(k)
        state, bad = NOT_RUNNING.get(k, ("running", 0))
        out[k] = [Domain(k, i, state if i < bad else "running") for i in range(n)]
    return out


def write_node_xml(path, domains):
    with open(path, "w") as f:
        f.write("<node>\n")
        for d in domains:
            f.write("  <domain type='test' xmlns:test='http://libvirt.org/schemas/domain/test/1.0'>"
                    f"<name>{d.name}</name><uuid>{d.uuid}</uuid><memory>65536</memory>"
                    f"<os><type>hvm</type></os><test:runstate>{RUNSTATE[d.state]}</test:runstate>"
                    "</domain>\n")
        f.write("</node>\n")


def copy_rules(workdir):
    """The shipped rule files, the recording group's interval shortened."""
    out = []
    for name in ("vmtime.recording.yml", "vmtime.rules.yml"):
        doc = yaml.safe_load(open(os.path.join(ALERTS, name)))
        for g in doc["groups"]:
            if "interval" in g:
                g["interval"] = f"{SCRAPE_S}s"
        out.append(sup.write_yaml(os.path.join(workdir, name), doc))
    return out


def start_prometheus(procs, workdir, targets, rule_files):
    """One private Prometheus scraping every exporter as job vmtime with
    `instance` set to the hypervisor's name; rules every SCRAPE_S."""
    port = sup.free_port()
    cfg = {
        "global": {"scrape_interval": f"{SCRAPE_S}s", "evaluation_interval": f"{SCRAPE_S}s",
                   "scrape_timeout": f"{SCRAPE_S - 1}s"},
        "rule_files": list(rule_files),
        "scrape_configs": [{
            "job_name": "vmtime",
            "static_configs": [{"targets": [addr], "labels": {"instance": name}}
                               for name, addr in targets],
        }],
    }
    conf = sup.write_yaml(os.path.join(workdir, "prometheus.yml"), cfg)
    data = os.path.join(workdir, "prometheus-data")
    os.makedirs(data, exist_ok=True)
    p = sup.Proc("prometheus", [sup.PROMETHEUS, f"--config.file={conf}", f"--storage.tsdb.path={data}",
                                f"--web.listen-address=127.0.0.1:{port}"], workdir)
    procs.append(p)
    base = f"http://127.0.0.1:{port}"
    try:
        sup.wait_until(lambda: sup.http_get(base + "/-/ready")[0] == 200, 60, "prometheus /-/ready")
    except TimeoutError as e:
        raise TimeoutError(f"{e}\n{p.tail()}") from None
    return p, base


QUERY_TIMEOUT_S = 60  # a Prometheus evaluating thousands of alerts answers slowly


def query(prom, expr):
    """Instant query with a generous timeout; the result list."""
    url = prom + "/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    doc = sup.http_json(url, timeout=QUERY_TIMEOUT_S)
    assert doc.get("status") == "success", f"query {expr!r}: {doc}"
    return doc["data"]["result"]


def api(prom, path):
    return sup.http_json(prom + path, timeout=QUERY_TIMEOUT_S)["data"]


def scalar(prom, expr):
    r = query(prom, expr)
    assert len(r) == 1, f"{expr}: {r}"
    return float(r[0]["value"][1])


def by_label(result, *labels):
    return {tuple(s["metric"].get(lab, "") for lab in labels) if len(labels) > 1
            else s["metric"].get(labels[0], ""): float(s["value"][1]) for s in result}


def prometheus_self_metrics(prom):
    """Prometheus' own /metrics as {(name, labels-frozenset): value}."""
    _, text = sup.http_get(prom + "/metrics", timeout=QUERY_TIMEOUT_S)
    out = {}
    for line in text.splitlines():
        m = re.match(r"^([a-zA-Z_:][\w:]*)(\{[^}]*\})?\s+(\S+)$", line)
        if m:
            labels = frozenset(re.findall(r'(\w+)="([^"]*)"', m.group(2) or ""))
            out[(m.group(1), labels)] = float(m.group(3))
    return out


def dashboard_targets(path=FLEET_DASHBOARD):
    d = json.load(open(path))
    out = []

    def walk(panels):
        for p in panels:
            walk(p.get("panels", []))
            for t in p.get("targets", []):
                out.append((p["title"], t["expr"]))
    walk(d["panels"])
    return out


def substitute(expr):
    for name, value in sorted(BUILTIN_VARS.items(), key=lambda kv: -len(kv[0])):
        expr = expr.replace("${%s}" % name, value).replace("$" + name, value)
    assert "$" not in expr, f"unsubstituted variable in {expr!r}"
    return expr


def stop_on_sigterm(signum, frame):
    # A SIGTERM (a timeout killing the run) unwinds like Ctrl-C, so the
    # fixture's finally blocks stop the 23 processes it started.
    raise KeyboardInterrupt(f"signal {signum}")


@pytest.fixture(scope="module")
def stack():
    t_start = time.monotonic()
    tmp = tempfile.mkdtemp(prefix="vmtime-fleet-")
    previous = signal.signal(signal.SIGTERM, stop_on_sigterm)
    try:
        with sup.processes() as procs:
            _, synced = sup.start_chronyd(procs, tmp, "chronyd-synced", extra_conf="local stratum 8")
            _, unsynced = sup.start_chronyd(procs, tmp, "chronyd-unsynced")
            domains = fleet()
            targets = []
            for k in range(N_HV):
                node = os.path.join(tmp, f"{hv_name(k)}.xml")
                write_node_xml(node, domains[k])
                chrony = (f"unix://{tmp}/no-such-chronyd.sock" if k in BROKEN_CHRONY_HV
                          else unsynced if k in UNSYNC_HV else synced)
                scoring = {"gate_clock_stopped_max": gate_of(k)}
                if k in DEGRADED_MIN_1_HV:
                    scoring["band_degraded_min"] = 1
                _, base = sup.start_exporter(procs, tmp, name=hv_name(k), libvirt_uri="test://" + node,
                                             chrony_address=chrony, interval="5s",
                                             config_extra={"scoring": scoring})
                targets.append((hv_name(k), base.removeprefix("http://")))
            _, prom = start_prometheus(procs, tmp, targets, copy_rules(tmp))
            yield {"prom": prom, "domains": domains, "t_start": t_start, "procs": procs}
            print(f"FIGURE fleet test wall time up to teardown: {time.monotonic() - t_start:.1f} s")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        signal.signal(signal.SIGTERM, previous)


def all_domains(stack):
    return [d for ds in stack["domains"].values() for d in ds]


NOT_RUNNING_SCORE_BELOW = 3  # every gate_of(k) is at least this


def expected_band(d):
    k = int(d.instance[3:])
    return 1 if d.state == "running" and k in DEGRADED_MIN_1_HV else 2


def wait_converged(stack, timeout=300):
    """Until Prometheus holds, for every VM, the steady state (score and
    band as configured: every running VM stopped, i.e. its second sample
    scored) and the recording and alert groups have evaluated it."""
    if stack.get("not_converged"):  # one bounded wait per run, not one per test
        raise TimeoutError(stack["not_converged"])
    if stack.get("converged"):
        return
    prom = stack["prom"]
    doms = all_domains(stack)
    running = sum(d.state == "running" for d in doms)

    want = {
        'count(vmtime_vm_info{job="vmtime"})': len(doms),
        'count(vmtime_vm_clock_stopped{job="vmtime"} == 1)': running,
        "sum(job:vmtime_vms_by_score_band:count)": len(doms),
        'sum(min by (instance) (vmtime_vm_health_score and on (instance, uuid) '
        'vmtime_vm_info{state="running"}))': sum(gate_of(k) for k in range(N_HV)),
        f"count(instance:vmtime_vm_health_score:min < {NOT_RUNNING_SCORE_BELOW})": len(NOT_RUNNING),
        'count(ALERTS{alertname="VMClockStopped"})': running,
        # The last rule of its group that selects VMs here (the later ones select
        # none): the group has evaluated the steady state.
        'count(ALERTS{alertname="VMClockHealthBad"})':
            sum(d.state == "running" and expected_band(d) == 2 for d in doms),
    }
    got = {}

    def done():
        for expr in want:
            r = query(prom, expr)
            got[expr] = float(r[0]["value"][1]) if r else None
        return got == want
    try:
        sup.wait_until(done, timeout, "the fleet's steady state in Prometheus", interval=1)
        stack["converged"] = True
    except TimeoutError as e:
        stack["not_converged"] = str(e)
        raise TimeoutError(f"{e}; want {want}, got {got}; {diagnostics(prom)}") from None


def diagnostics(prom):
    """Per-instance minimum scores, rule group timings and target health,
    as far as a busy Prometheus answers."""
    out = []
    try:
        mins = query(prom, "min by (instance) (vmtime_vm_health_score)")
        out.append(f"min score per instance {by_label(mins, 'instance')}")
        groups = api(prom, "/api/v1/rules")["groups"]
        out.append("rule groups (name, seconds, last) "
                   f"{[(g['name'], g['evaluationTime'], g['lastEvaluation']) for g in groups]}")
        targets = api(prom, "/api/v1/targets")["activeTargets"]
        out.append("targets " + json.dumps([(t["labels"]["instance"], t["health"], t["lastError"])
                                            for t in targets]))
    except Exception as e:  # noqa: BLE001 - best effort, the timeout is the failure
        out.append(f"(diagnostics incomplete: {e!r})")
    return "; ".join(out)


def test_dashboard_queries_return_the_fleet(stack):
    wait_converged(stack)
    prom = stack["prom"]
    doms = all_domains(stack)
    running = [d for d in doms if d.state == "running"]
    q = {}
    for title, expr in dashboard_targets():
        # Every query of the fleet dashboard parses and runs against the fleet.
        q.setdefault(title, []).append(query(prom, substitute(expr)))

    def one(title, i=0):
        r = q[title][i]
        assert len(r) == 1, f"{title}: {r}"
        return float(r[0]["value"][1])

    assert one("VMs") == len(doms)
    bad = sum(expected_band(d) == 2 for d in doms)
    degraded = sum(expected_band(d) == 1 for d in doms)
    assert one("VMs in the bad band") == bad
    assert [one("Score distribution", i) for i in range(3)] == [0, degraded, bad]
    assert one("Stopped clocks") == len(running)
    assert one("Guest agents down") == 0
    assert one("Hypervisors unsynchronised") == len(UNSYNC_HV)
    # Worst offenders: the table's bottomk(20) are exactly the 20 VMs that
    # were not running (score 0), on the hypervisors they live on.
    worst = {(s["metric"]["instance"], s["metric"]["domain"]): float(s["value"][1])
             for s in q["Lowest scores"][0]}
    want_worst = {(d.instance, d.name) for d in doms if d.state != "running"}
    assert len(want_worst) == 20
    assert set(worst) == want_worst
    assert all(v < NOT_RUNNING_SCORE_BELOW for v in worst.values()), worst
    states = by_label(q["VMs by state"][0], "state")
    assert states == {"running": len(running), "paused": 12, "shutoff": 8}
    reasons = by_label(q["Active reasons"][0], "reason")
    unsync_vms = sum(len(stack["domains"][k]) for k in UNSYNC_HV)
    assert reasons.get("no_data") == 20
    assert reasons.get("clock_stopped") == len(running)
    assert reasons.get("offset_critical") == len(running)
    assert reasons.get("host_unsynchronised") == unsync_vms, reasons
    per_hv = by_label(q["Hypervisor clocks"][4], "instance")
    assert per_hv == {hv_name(k): domains_of(k) for k in range(N_HV)}
    synced = by_label(q["Hypervisor clocks"][0], "instance")
    assert {i for i, v in synced.items() if v == 0} == {hv_name(k) for k in UNSYNC_HV}
    assert {i for i, v in synced.items() if v == 1} == \
        {hv_name(k) for k in range(N_HV) if k not in UNSYNC_HV | BROKEN_CHRONY_HV}
    failing = {(s["metric"]["instance"], s["metric"]["collector"]) for s in q["Failing collectors"][0]}
    assert failing == {(hv_name(k), "chrony") for k in BROKEN_CHRONY_HV}
    # Largest offsets: ten VMs, each decades behind (the frozen test-driver clock).
    top = q["Largest guest offsets (top 10 by |offset|)"][0]
    assert len(top) == 10
    frozen_behind = time.time() - 627319920
    assert all(abs(float(s["value"][1]) - frozen_behind) < 3600 for s in top), top
    assert len(q["Worst |offset| per hypervisor"][0]) == N_HV


def test_recording_rules_and_alerts_over_the_fleet(stack):
    wait_converged(stack)
    prom = stack["prom"]
    doms = all_domains(stack)
    running = [d for d in doms if d.state == "running"]
    bands = by_label(query(prom, "job:vmtime_vms_by_score_band:count"), "band")
    assert bands == {"degraded": sum(expected_band(d) == 1 for d in doms),
                     "bad": sum(expected_band(d) == 2 for d in doms)}
    mins = by_label(query(prom, "instance:vmtime_vm_health_score:min"), "instance")
    assert set(mins) == {hv_name(k) for k in range(N_HV)}
    for k in range(N_HV):
        if k in NOT_RUNNING:
            assert mins[hv_name(k)] < NOT_RUNNING_SCORE_BELOW, mins
        else:
            assert mins[hv_name(k)] == gate_of(k), mins
    # The three worst hypervisors by their lowest score: the ones with
    # VMs that are not running.
    worst_hv = query(prom, "bottomk(3, instance:vmtime_vm_health_score:min)")
    assert {s["metric"]["instance"] for s in worst_hv} == {hv_name(k) for k in NOT_RUNNING}
    # Alerts: the expressions select the right VMs (pending: `for:` is kept).
    alerts = by_label(query(prom, "count by (alertname) (ALERTS)"), "alertname")
    assert alerts.get("VMClockStopped") == len(running)
    assert alerts.get("VMClockOffsetCritical") == len(running)
    assert alerts.get("VMClockHealthBad") == sum(expected_band(d) == 2 for d in running)
    assert alerts.get("VMClockHealthDegraded") == len(running)
    assert alerts.get("HypervisorClockUnsynchronised") == len(UNSYNC_HV)
    assert alerts.get("VMTimeCollectorFailing") == len(BROKEN_CHRONY_HV)
    assert "VMGuestAgentDown" not in alerts and "VMTimeExporterDown" not in alerts
    # Every rule evaluated without error.
    groups = api(prom, "/api/v1/rules")["groups"]
    shipped = {g["name"] for name in ("vmtime.recording.yml", "vmtime.rules.yml")
               for g in yaml.safe_load(open(os.path.join(ALERTS, name)))["groups"]}
    assert {"vmtime.recording", "vmtime.vm", "vmtime.host", "vmtime.exporter"} <= shipped
    assert {g["name"] for g in groups} == shipped
    broken = [(g["name"], r["name"], r.get("lastError")) for g in groups for r in g["rules"]
              if r.get("health") != "ok"]
    assert broken == []


def test_rule_evaluation_cost_and_samples_scraped(stack):
    """Figures for docs/scaling.md; asserts only that they exist."""
    wait_converged(stack)
    prom = stack["prom"]
    m = prometheus_self_metrics(prom)
    total = 0.0
    for (name, labels), value in sorted(m.items()):
        if name == "prometheus_rule_group_last_duration_seconds":
            group = dict(labels)["rule_group"].split(";")[-1]
            samples = m.get(("prometheus_rule_group_last_evaluation_samples", labels))
            print(f"FIGURE rule group {group}: last evaluation {value * 1e3:.1f} ms, "
                  f"{samples:.0f} samples")
            total += value
    assert total > 0, "no rule group evaluated"
    scraped = scalar(prom, 'sum(scrape_samples_scraped{job="vmtime"})')
    series = m[("prometheus_tsdb_head_series", frozenset())]
    vms = len(all_domains(stack))
    print(f"FIGURE all rule groups: {total * 1e3:.1f} ms per evaluation round for {vms} VMs "
          f"({total / vms * 1e6:.1f} us per VM)")
    rss = m[("process_resident_memory_bytes", frozenset())]
    scrape_s = scalar(prom, 'max(scrape_duration_seconds{job="vmtime"})')
    print(f"FIGURE samples scraped per fleet scrape: {scraped:.0f} ({scraped / vms:.1f} per VM), "
          f"{scraped / SCRAPE_S:.0f} samples/s at {SCRAPE_S} s; head series {series:.0f}; "
          f"Prometheus RSS {rss / 2**20:.0f} MiB ({rss / series:.0f} B per head series); "
          f"slowest scrape {scrape_s * 1e3:.0f} ms")
    assert scraped >= 10 * vms


# --- the federated fleet view (docs/scaling.md "Beyond one Prometheus") ------


def test_federated_dashboard_is_generated_and_reads_only_recording_rules(tmp_path):
    gen = tmp_path / "gen"
    shutil.copytree(os.path.dirname(FEDERATED_DASHBOARD), gen,
                    ignore=shutil.ignore_patterns("*.json", "provisioning"))
    r = subprocess.run(["/usr/bin/python3", str(gen / "make_dashboards.py")], capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert (gen / "vmtime-fleet-federated.json").read_text() == open(FEDERATED_DASHBOARD).read(), \
        "vmtime-fleet-federated.json differs from make_dashboards.py output: re-run the script"
    d = json.load(open(FEDERATED_DASHBOARD))
    exprs = [e for _, e in dashboard_targets(FEDERATED_DASHBOARD)]
    exprs += [v["query"]["query"] for v in d["templating"]["list"] if v["type"] == "query"]
    assert len(exprs) > 10
    for expr in exprs:
        names = set(re.findall(r"[A-Za-z_:][A-Za-z0-9_:]*vmtime_[A-Za-z0-9_:]*", expr))
        assert names, f"no vmtime series in {expr!r}"
        raw = {n for n in names if not n.startswith(("instance:vmtime_", "job:vmtime_"))}
        assert not raw, f"{expr!r} reads series a federating Prometheus does not have: {raw}"


def global_rules(workdir):
    """The shipped `job:` rules, for the global Prometheus (docs/scaling.md)."""
    doc = yaml.safe_load(open(os.path.join(ALERTS, "vmtime.recording.yml")))
    rules = [r for g in doc["groups"] for r in g["rules"] if r.get("record", "").startswith("job:")]
    assert len(rules) >= 2
    return sup.write_yaml(os.path.join(workdir, "global.yml"), {
        "groups": [{"name": "vmtime.global", "interval": f"{SCRAPE_S}s", "rules": rules}]})


def start_global_prometheus(stack):
    """A Prometheus federating the fleet Prometheus' `instance:` series."""
    workdir = tempfile.mkdtemp(prefix="vmtime-fleet-global-")
    stack["global_dir"] = workdir
    port = sup.free_port()
    cfg = {
        "global": {"scrape_interval": f"{SCRAPE_S}s", "evaluation_interval": f"{SCRAPE_S}s",
                   "scrape_timeout": f"{SCRAPE_S - 1}s"},
        "rule_files": [global_rules(workdir)],
        "scrape_configs": [{
            "job_name": "federate",
            "honor_labels": True,
            "metrics_path": "/federate",
            "params": {"match[]": ['{__name__=~"instance:vmtime_.*"}']},
            "static_configs": [{"targets": [stack["prom"].removeprefix("http://")]}],
        }],
    }
    conf = sup.write_yaml(os.path.join(workdir, "prometheus.yml"), cfg)
    data = os.path.join(workdir, "data")
    os.makedirs(data)
    p = sup.Proc("prometheus-global", [sup.PROMETHEUS, f"--config.file={conf}",
                                       f"--storage.tsdb.path={data}",
                                       f"--web.listen-address=127.0.0.1:{port}"], workdir)
    stack["procs"].append(p)
    stack["global_proc"] = p
    base = f"http://127.0.0.1:{port}"
    sup.wait_until(lambda: sup.http_get(base + "/-/ready")[0] == 200, 60, "global prometheus /-/ready")
    return base


def test_federated_dashboard_over_a_global_prometheus(stack):
    wait_converged(stack)
    t0 = time.monotonic()
    doms = all_domains(stack)
    running = [d for d in doms if d.state == "running"]
    try:
        glob = start_global_prometheus(stack)
        # Federation and the job: rules each take an interval: wait for both.
        want = {"count(instance:vmtime_vm_health_score:min)": N_HV,
                "sum(job:vmtime_vms_by_score_band:count)": len(doms)}
        got = {}

        def federated():
            for expr in want:
                r = query(glob, expr)
                got[expr] = float(r[0]["value"][1]) if r else None
            return got == want
        try:
            sup.wait_until(federated, 120, "the federated series in the global Prometheus", interval=1)
        except TimeoutError as e:
            raise TimeoutError(f"{e}; want {want}, got {got}") from None
        # Only what federation ships: no per-VM series in the global Prometheus.
        assert query(glob, "count({__name__=~\"vmtime_.*\"})") == []
        q = {}
        for title, expr in dashboard_targets(FEDERATED_DASHBOARD):
            q.setdefault(title, []).append(query(glob, substitute(expr)))

        def one(title, i=0):
            r = q[title][i]
            assert len(r) == 1, f"{title}: {r}"
            return float(r[0]["value"][1])

        bad = sum(expected_band(d) == 2 for d in doms)
        degraded = sum(expected_band(d) == 1 for d in doms)
        assert one("VMs") == len(doms)
        assert one("VMs in the bad band") == bad
        assert [one("Score distribution", i) for i in range(3)] == [0, degraded, bad]
        assert one("Stopped clocks") == len(running)
        assert one("Hypervisors unsynchronised") == len(UNSYNC_HV)
        assert one("Hypervisors with bad VMs") == N_HV - len(DEGRADED_MIN_1_HV - set(NOT_RUNNING))
        frozen_behind = time.time() - 627319920
        assert abs(one("Worst |offset|") - frozen_behind) < 3600
        per_hv = by_label(q["VMs per hypervisor"][0], "instance")
        assert per_hv == {hv_name(k): domains_of(k) for k in range(N_HV)}
        reasons = by_label(q["Active reasons"][0], "reason")
        assert reasons.get("no_data") == 20
        assert reasons.get("clock_stopped") == len(running)
        assert reasons.get("host_unsynchronised") == sum(len(stack["domains"][k]) for k in UNSYNC_HV)
        # Worst hypervisors: the lowest score of each, as the fleet's own
        # Prometheus computes it; the three lowest are those with VMs not running.
        lowest = by_label(q["Lowest score per hypervisor"][0], "instance")
        assert lowest == by_label(query(stack["prom"], "instance:vmtime_vm_health_score:min"), "instance")
        assert set(sorted(lowest, key=lowest.get)[:3]) == {hv_name(k) for k in NOT_RUNNING}
        bad_vms = by_label(q["Lowest score per hypervisor"][2], "instance")
        assert sum(bad_vms.values()) == bad
        assert len(q["Worst |offset| per hypervisor (top 10)"][0]) == 10
        jobs = q["Fleet worst |offset| and bad VMs per job"]
        assert [len(jobs[0]), len(jobs[1])] == [1, 1]
        assert float(jobs[1][0]["value"][1]) == bad
    finally:
        if stack.get("global_proc"):
            stack.pop("global_proc").stop()
        if stack.get("global_dir"):
            shutil.rmtree(stack.pop("global_dir"), ignore_errors=True)
    print(f"FIGURE federated dashboard check: {time.monotonic() - t0:.1f} s")
