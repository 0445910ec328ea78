#!/usr/bin/python3
"""The project's Zabbix templates in a real Zabbix 6.0 server (issue 18).

A private stack (tests/e2e/zabbix_stack.py: PostgreSQL, zabbix_server, the
frontend's JSON-RPC API under `php -S`) and real exporters against the
libvirt test driver. Through the API:

  * configuration.import of dashboards/zabbix/template_vmtime_exporter.yaml
    succeeds with no PHP warning, notice or deprecation; both templates, their
    macros, value maps, graph prototypes and dashboard are in the server;
  * a host on "vmtime exporter by HTTP" for an exporter with two test-driver
    domains: low-level discovery creates each VM's items and triggers
    (bounded wait), the values equal the exporter's /api/v1/targets, and the
    test driver's guest clock (frozen in 1989, so decades behind and stopped)
    opens "clock offset vs host beyond {$VMTIME.OFFSET.CRIT}s" at severity
    High with the template's tags;
  * a host on "vmtime exporter by external check", the check program in the
    server's ExternalScripts directory: discovery and values the same;
  * a VM that disappears (the host's URL moved to an exporter that no longer
    lists it) is kept, marked "not discovered anymore" with a deletion time
    of the rule's lifetime (7d), as docs/integrations.md says;
  * the exporter stopped: "vmtime exporter unreachable" opens (nodata), every
    discovered per-VM trigger depends on it, and no per-VM problem opens
    while it is open; the exporter back: it resolves.

The guest stepped back 8 minutes and fixed again is the lab test
test_zabbix_server_lab.py (it boots a QEMU guest, under the lab lock).
Short host macros ({$VMTIME.INTERVAL} 2s, periods 10s, {$VMTIME.NODATA} 30s)
keep the waits short; the defaults are checked separately.
"""

import json
import os
import shutil
import tempfile
import time

import pytest

import integrations_support as sup
import zabbix_stack as zs

SRC = sup.SRC
ZDIR = os.path.join(SRC, "dashboards", "zabbix")
TEMPLATE = os.path.join(ZDIR, "template_vmtime_exporter.yaml")
T_HTTP = "vmtime exporter by HTTP"
T_EXT = "vmtime exporter by external check"
CHECK_NAME = "vmtime_zabbix_check"

pytestmark = pytest.mark.skipif(bool(zs.missing()), reason=zs.missing() or "ready")

KEEP = ("vm-keep", "0d6c2a9e-5b1f-4c7e-9a51-3f2b8e7d1c01")
GONE = ("vm-gone", "0d6c2a9e-5b1f-4c7e-9a51-3f2b8e7d1c02")

# Host macros of the test: fast polling and short trigger periods.
FAST = {"{$VMTIME.INTERVAL}": "2s", "{$VMTIME.NODATA}": "30s",
        "{$VMTIME.OFFSET.CRIT.PERIOD}": "10s", "{$VMTIME.OFFSET.WARN.PERIOD}": "10s",
        "{$VMTIME.STOPPED.PERIOD}": "10s", "{$VMTIME.BAND.BAD.PERIOD}": "10s"}
SEVERITY_HIGH = "4"


def check_binary():
    candidates = []
    if sup.BIN:
        candidates.append(os.path.join(sup.BIN, "dashboards", "zabbix", CHECK_NAME))
    exe = os.environ.get("VMTIME_EXPORTER")
    if exe:
        candidates.append(os.path.join(os.path.dirname(os.path.dirname(exe)), "dashboards", "zabbix",
                                       CHECK_NAME))
    for c in candidates:
        if os.access(c, os.X_OK):
            return c
    pytest.fail(f"{CHECK_NAME} not built (looked in {candidates})")


def node_xml(path, domains):
    """A libvirt test-driver node file with these (name, uuid) domains."""
    with open(path, "w") as f:
        f.write("<node>\n")
        for name, uuid in domains:
            f.write(f"  <domain type='test'><name>{name}</name><uuid>{uuid}</uuid>"
                    "<memory>65536</memory><vcpu>1</vcpu><os><type>hvm</type></os></domain>\n")
        f.write("</node>\n")
    return "test://" + path


@pytest.fixture(scope="module")
def workdir():
    d = tempfile.mkdtemp(prefix="vmtime-zbxsrv-")
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="module")
def stack(workdir):
    t0 = time.monotonic()
    with zs.ZabbixStack() as z:
        print(f"stack up in {time.monotonic() - t0:.1f} s: "
              + ", ".join(f"{k} {v:.1f} s" for k, v in z.timings.items()))
        shutil.copy(check_binary(), os.path.join(z.external_scripts, CHECK_NAME))
        yield z
        print("--- zabbix_server log tail ---\n" + z.server_log_tail(30))


@pytest.fixture(scope="module")
def procs():
    with sup.processes() as p:
        yield p


@pytest.fixture(scope="module")
def exporter_two(workdir, procs):
    """Exporter A: test driver with vm-keep and vm-gone."""
    uri = node_xml(os.path.join(workdir, "two.xml"), [KEEP, GONE])
    p, base = sup.start_exporter(procs, workdir, name="exporter-two", libvirt_uri=uri)
    sup.wait_until(lambda: len(targets(base)["vms"]) == 2, 30, "exporter A to list two VMs")
    return p, base


def targets(base):
    return json.loads(sup.http_get(base + "/api/v1/targets")[1])


# --- API helpers -------------------------------------------------------------


def template_ids(stack):
    rows = stack.api("template.get", {"output": ["host"], "filter": {"host": [T_HTTP, T_EXT]}})
    return {r["host"]: r["templateid"] for r in rows}


def create_host(stack, name, template, url, macros=FAST, interface=False):
    gid = stack.api("hostgroup.get", {"output": ["groupid"], "filter": {"name": ["vmtime e2e"]}})
    gid = gid[0]["groupid"] if gid else stack.api("hostgroup.create", {"name": "vmtime e2e"})["groupids"][0]
    params = {"host": name, "groups": [{"groupid": gid}],
              "templates": [{"templateid": template_ids(stack)[template]}],
              "macros": [{"macro": "{$VMTIME.URL}", "value": url}]
              + [{"macro": k, "value": v} for k, v in macros.items()]}
    if interface:  # external checks need one (any type; nothing polls it here)
        params["interfaces"] = [{"type": 1, "main": 1, "useip": 1, "ip": "127.0.0.1", "dns": "",
                                 "port": "10050"}]
    hostid = stack.api("host.create", params)["hostids"][0]
    stack.reload_config_cache()
    return hostid


def set_host_macro(stack, hostid, macro, value):
    row = stack.api("usermacro.get", {"hostids": hostid, "filter": {"macro": macro}, "output": ["hostmacroid"]})
    stack.api("usermacro.update", {"hostmacroid": row[0]["hostmacroid"], "value": value})
    stack.reload_config_cache()


def discovered_items(stack, hostid, key_part):
    return stack.api("item.get", {"hostids": hostid, "output": ["key_", "name", "lastvalue", "lastclock",
                                                                "state", "error"],
                                  "search": {"key_": key_part}, "filter": {"flags": 4},
                                  "selectItemDiscovery": ["ts_delete", "lastcheck"]})


def wait_values(stack, hostid, key_part, uuids, timeout, what):
    """Waits until every VM uuid has a discovered item containing key_part
    with a value; returns {uuid: item}."""
    def ready():
        rows = discovered_items(stack, hostid, key_part)
        got = {u: r for r in rows for u in uuids if u in r["key_"] and r["lastclock"] != "0"}
        return got if len(got) == len(uuids) else None
    try:
        return sup.wait_until(ready, timeout, what, interval=1.0)
    except TimeoutError as e:
        rows = discovered_items(stack, hostid, "")
        raise TimeoutError(f"{e}\nitems: {[(r['key_'], r['state'], r['error']) for r in rows][:20]}\n"
                           f"{stack.server_log_tail(20)}") from None


def problems(stack, hostid):
    return stack.api("problem.get", {"hostids": hostid, "output": ["eventid", "objectid", "name", "severity",
                                                                   "r_eventid", "clock"],
                                     "selectTags": ["tag", "value"], "recent": False})


def wait_problem(stack, hostid, name, timeout):
    def found():
        return next((p for p in problems(stack, hostid) if p["name"] == name), None)
    try:
        return sup.wait_until(found, timeout, f"problem {name!r}", interval=1.0)
    except TimeoutError as e:
        names = sorted(p["name"] for p in problems(stack, hostid))
        raise TimeoutError(f"{e}\nopen problems: {names}\n{stack.server_log_tail(20)}") from None


# --- tests -------------------------------------------------------------------


def import_template(stack):
    """configuration.import of the committed template, as the frontend's
    Import dialog does with its default rules plus updates."""
    with open(TEMPLATE) as f:
        source = f.read()
    rules = {k: {"createMissing": True, "updateExisting": True}
             for k in ("templates", "items", "triggers", "discoveryRules", "graphs", "valueMaps",
                       "templateDashboards")}
    rules["groups"] = {"createMissing": True}
    rules["templateLinkage"] = {"createMissing": True}
    return stack.api("configuration.import", {"format": "yaml", "source": source, "rules": rules})


def test_template_imports_cleanly(stack):
    assert import_template(stack) is True
    php_log = open(os.path.join(stack.dir, "php.log"), errors="replace").read()
    noise = [ln for ln in php_log.splitlines()
             if any(w in ln for w in ("Warning", "Notice", "Deprecated", "Fatal", "error"))]
    assert not noise, "PHP reported while importing:\n" + "\n".join(noise[:20])
    rows = stack.api("template.get", {"output": ["host", "description"], "filter": {"host": [T_HTTP, T_EXT]},
                                      "selectMacros": ["macro", "value"], "selectValueMaps": ["name"],
                                      "selectDashboards": ["name"], "selectDiscoveries": ["key_"],
                                      "selectTags": ["tag", "value"]})
    assert {r["host"] for r in rows} == {T_HTTP, T_EXT}
    for r in rows:
        macros = {m["macro"]: m["value"] for m in r["macros"]}
        # Threshold defaults equal the exporter's (scoring/params.h).
        assert macros["{$VMTIME.OFFSET.WARN}"] == "30" and macros["{$VMTIME.OFFSET.CRIT}"] == "300"
        assert macros["{$VMTIME.STRATUM.UNTRUSTED}"] == "10"
        assert {v["name"] for v in r["valuemaps"]} >= {"vmtime band", "vmtime agent state"}
        assert [d["name"] for d in r["dashboards"]] == ["vmtime: VM clock health"]
        assert "Zabbix 6.0" in r["description"]
        protos = stack.api("graphprototype.get", {"templateids": r["templateid"], "output": ["name"]})
        assert {g["name"] for g in protos} == {"VM {#VM.NAME}: health score", "VM {#VM.NAME}: clock offset"}


def test_http_template_discovers_vms_and_opens_problems(stack, exporter_two):
    _, base = exporter_two
    hostid = create_host(stack, "hv-http", T_HTTP, base)
    uuids = [KEEP[1], GONE[1]]
    t0 = time.monotonic()
    scores = wait_values(stack, hostid, "vmtime.vm.score[", uuids, 90, "LLD items with values (HTTP)")
    print(f"HTTP: discovery + first values in {time.monotonic() - t0:.1f} s")
    doc = targets(base)
    by_uuid = {v["uuid"]: v for v in doc["vms"]}
    for u, item in scores.items():
        assert float(item["lastvalue"]) == pytest.approx(by_uuid[u]["health_score"], abs=0.01), item
    for key_part, field, conv in (("vmtime.vm.offset[", "offset_seconds", float),
                                  ("vmtime.vm.state[", "state", str), ("vmtime.vm.stopped[", "clock_stopped", int)):
        items = wait_values(stack, hostid, key_part, uuids, 30, key_part)
        for u, item in items.items():
            want = by_uuid[u][field]
            got = conv(item["lastvalue"])
            if field == "offset_seconds":  # the frozen clock falls behind by 1 s per second
                assert abs(got - want) < 30, (u, got, want)
            else:
                assert got == (int(want) if conv is int else want), (u, got, want)
    # The discovered triggers exist per VM, with the template's dependencies.
    trigs = stack.api("trigger.get", {"hostids": hostid, "output": ["description", "priority"],
                                      "filter": {"flags": 4}, "selectDependencies": ["description"]})
    for name, _ in (KEEP, GONE):
        mine = [t for t in trigs if f"VM {name}:" in t["description"]]
        assert len(mine) >= 10, (name, [t["description"] for t in mine])
        for t in mine:
            assert "vmtime exporter unreachable" in {d["description"] for d in t["dependencies"]}, t
    # The frozen test-driver clock: offset vs host far beyond 300 s.
    p = wait_problem(stack, hostid, f"VM {KEEP[0]}: clock offset vs host beyond 300s", 60)
    assert p["severity"] == SEVERITY_HIGH, p
    tags = {(t["tag"], t["value"]) for t in p["tags"]}
    assert {("scope", "time"), ("component", "vm"), ("alert", "VMClockOffsetCritical"),
            ("vm", KEEP[0]), ("target", "vmtime")} <= tags, tags
    # The warning-level offset trigger depends on the critical one: not open.
    assert not [q for q in problems(stack, hostid) if q["name"] == f"VM {KEEP[0]}: clock offset vs host beyond 30s"]
    stack.hostids = getattr(stack, "hostids", {})
    stack.hostids["hv-http"] = hostid


def test_external_check_template(stack, exporter_two):
    _, base = exporter_two
    # One process per item and interval: a slower interval than the HTTP host.
    hostid = create_host(stack, "hv-ext", T_EXT, base,
                         dict(FAST, **{"{$VMTIME.INTERVAL}": "5s", "{$VMTIME.DISCOVERY.INTERVAL}": "5s"}),
                         interface=True)
    uuids = [KEEP[1], GONE[1]]
    t0 = time.monotonic()
    scores = wait_values(stack, hostid, ",score]", uuids, 90, "LLD items with values (external check)")
    print(f"external check: discovery + first values in {time.monotonic() - t0:.1f} s")
    by_uuid = {v["uuid"]: v for v in targets(base)["vms"]}
    for u, item in scores.items():
        assert float(item["lastvalue"]) == pytest.approx(by_uuid[u]["health_score"], abs=0.01), item
    states = wait_values(stack, hostid, ",state]", uuids, 30, "state items (external check)")
    assert {u: i["lastvalue"] for u, i in states.items()} == {u: by_uuid[u]["state"] for u in uuids}
    sup.wait_until(lambda: stack.api("item.get", {"hostids": hostid, "output": ["lastvalue", "lastclock"],
                                                  "search": {"key_": "--timeout"}})[0]["lastclock"] != "0",
                   30, "the VMs listed item")
    vms = stack.api("item.get", {"hostids": hostid, "output": ["lastvalue"], "search": {"key_": "--timeout"}})
    assert vms[0]["lastvalue"] == "2", vms
    p = wait_problem(stack, hostid, f"VM {GONE[0]}: clock offset vs host beyond 300s", 60)
    assert p["severity"] == SEVERITY_HIGH


def test_vm_that_disappears_follows_the_lost_resources_policy(stack, workdir, procs, exporter_two):
    hostid = stack.hostids["hv-http"]
    uri = node_xml(os.path.join(workdir, "one.xml"), [KEEP])
    _, base_one = sup.start_exporter(procs, workdir, name="exporter-one", libvirt_uri=uri)
    set_host_macro(stack, hostid, "{$VMTIME.URL}", base_one)

    def lost():
        rows = discovered_items(stack, hostid, "vmtime.vm.score[")
        gone = [r for r in rows if GONE[1] in r["key_"]]
        kept = [r for r in rows if KEEP[1] in r["key_"]]
        if gone and kept and gone[0]["itemDiscovery"]["ts_delete"] != "0":
            return gone[0], kept[0]
        return None
    gone, kept = sup.wait_until(lost, 60, f"{GONE[0]}'s items to be marked lost", interval=1.0)
    # Kept, to be deleted after the rule's lifetime (7d), while the VM that
    # is still listed is not marked.
    lifetime = int(gone["itemDiscovery"]["ts_delete"]) - int(gone["itemDiscovery"]["lastcheck"])
    assert 7 * 86400 - 120 <= lifetime <= 7 * 86400 + 120, gone
    assert kept["itemDiscovery"]["ts_delete"] == "0", kept


def test_exporter_down_raises_nodata_and_suppresses_vm_problems(stack, workdir, procs):
    hostid = stack.hostids["hv-http"]
    uri = node_xml(os.path.join(workdir, "down.xml"), [KEEP])
    p, base = sup.start_exporter(procs, workdir, name="exporter-down", libvirt_uri=uri)
    set_host_macro(stack, hostid, "{$VMTIME.URL}", base)
    # Fresh values from this exporter first.
    since = int(time.time())
    sup.wait_until(lambda: int(discovered_items(stack, hostid, f"vmtime.vm.score[{KEEP[1]}")[0]["lastclock"]) > since,
                   30, "values from the new exporter", interval=1.0)
    before = {q["eventid"] for q in problems(stack, hostid)}
    p.stop()
    t0 = time.monotonic()
    prob = wait_problem(stack, hostid, "vmtime exporter unreachable", 150)
    print(f"exporter unreachable opened {time.monotonic() - t0:.1f} s after the exporter stopped "
          f"({{$VMTIME.NODATA}} 30s)")
    assert prob["severity"] == SEVERITY_HIGH
    assert ("scope", "availability") in {(t["tag"], t["value"]) for t in prob["tags"]}
    new_vm = [q for q in problems(stack, hostid) if q["eventid"] not in before and q["name"].startswith("VM ")]
    assert not new_vm, f"per-VM problems opened while the exporter was down: {new_vm}"
    # Back: the unreachable problem resolves.
    _, base2 = sup.start_exporter(procs, workdir, name="exporter-back", libvirt_uri=uri)
    set_host_macro(stack, hostid, "{$VMTIME.URL}", base2)
    sup.wait_until(lambda: not [q for q in problems(stack, hostid) if q["eventid"] == prob["eventid"]],
                   120, "the unreachable problem to resolve", interval=1.0)
