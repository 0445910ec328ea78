#!/usr/bin/python3
"""Generates dashboards/zabbix/template_vmtime_exporter.yaml, the Zabbix 6.0
template export for vmtime-exporter. Two templates share one definition of
the per-VM items and triggers and differ only in how values are collected:

  "vmtime exporter by HTTP"            Zabbix's HTTP agent fetches /metrics
                                       once; dependent items pick series with
                                       PROMETHEUS_PATTERN / PROMETHEUS_TO_JSON.
  "vmtime exporter by external check"  every item runs vmtime_zabbix_check
                                       (dashboards/zabbix/check/) from the
                                       server's or proxy's ExternalScripts dir.

Run it after changing the item list; commit both this script and the YAML.
Usage: dashboards/zabbix/make_template.py [output.yaml]
UUIDs are derived from names (stable across runs), in UUIDv4 form as
Zabbix's importer requires.
"""

import os
import sys
import uuid

import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "template_vmtime_exporter.yaml")
GROUP = "Templates/Virtualization"
T_HTTP = "vmtime exporter by HTTP"
T_EXT = "vmtime exporter by external check"
NS = uuid.UUID("7b7c1f52-61a8-4c6e-9a57-3d1b0e8c2f10")


def uid(*parts):
    return uuid.UUID(bytes=uuid.uuid5(NS, "/".join(parts)).bytes, version=4).hex


MACROS = [
    ("{$VMTIME.URL}", "http://localhost:9958",
     "Base URL of the exporter on the hypervisor (http://host:port; user:password@ for basic auth)."),
    ("{$VMTIME.INTERVAL}", "1m", "Update interval of the per-VM items."),
    ("{$VMTIME.OFFSET.WARN}", "30",
     "Warning when |guest clock offset| exceeds this many seconds for 5 minutes (exporter default 30 s)."),
    ("{$VMTIME.OFFSET.CRIT}", "300",
     "High when |guest clock offset| exceeds this many seconds for 2 minutes (exporter default 300 s)."),
    ("{$VMTIME.SCORE.WARN}", "80", "Warning when the health score stays below this for 15 minutes."),
    ("{$VMTIME.SCORE.CRIT}", "50", "High when the health score stays below this for 5 minutes."),
    ("{$VMTIME.DRIFT.WARN}", "0.0001",
     "Warning when |drift| (ratio, 0.0001 = 100 ppm = 8.6 s/day) stays above this for 30 minutes."),
    ("{$VMTIME.NODATA}", "5m", "The exporter is reported unreachable after this long without data."),
]

VALUEMAPS = {
    "vmtime agent state": [("0", "Down"), ("1", "Up")],
    "vmtime clock stopped": [("0", "Advancing"), ("1", "Stopped")],
    "vmtime leap status": [("0", "Normal"), ("1", "Insert second"), ("2", "Delete second"),
                           ("3", "Unsynchronised")],
    "vmtime sync status": [("0", "Unsynchronised"), ("1", "Synchronised")],
    "vmtime up": [("0", "Down"), ("1", "Up")],
}

# Per-VM items: id, name, value type, units, valuemap, how to get it by HTTP
# (PROMETHEUS_PATTERN metric, or a preprocessing list), check key, optional.
# Offsets are guest clock minus reference, seconds, positive = guest ahead.
EFFECTIVE_OFFSET_JS = """\
// Guest minus UTC when the exporter knows the host's offset, else guest
// minus host (seconds). Input: PROMETHEUS_TO_JSON of both offset series.
var rows = JSON.parse(value), utc = null, host = null;
for (var i = 0; i < rows.length; i++) {
  if (rows[i].name === 'vmtime_vm_clock_utc_offset_seconds') utc = rows[i].value;
  if (rows[i].name === 'vmtime_vm_clock_offset_seconds') host = rows[i].value;
}
if (utc !== null) return utc;
if (host !== null) return host;
throw 'no offset sample for this VM yet';"""

REASONS_JS = """\
// Active health reasons, comma-separated (empty when none).
var rows = JSON.parse(value), out = [];
for (var i = 0; i < rows.length; i++) {
  if (Number(rows[i].value) === 1) out.push(rows[i].labels.reason);
}
return out.sort().join(',');"""


def pattern(metric, output="value", param=""):
    return [{"type": "PROMETHEUS_PATTERN",
             "parameters": ['%s{uuid="{#VM.UUID}"}' % metric, output, param]}]


VM_ITEMS = [
    dict(id="score", name="health score", vtype="FLOAT", units="",
         http=pattern("vmtime_vm_health_score"), check="score",
         desc="0..100 time health score (docs/scoring.md)."),
    dict(id="offset.effective", name="clock offset", vtype="FLOAT", units="s",
         http=[{"type": "PROMETHEUS_TO_JSON",
                "parameters": ['{__name__=~"vmtime_vm_clock_(utc_)?offset_seconds",uuid="{#VM.UUID}"}']},
               {"type": "JAVASCRIPT", "parameters": [EFFECTIVE_OFFSET_JS]}],
         check="effective_offset",
         desc="Guest clock minus UTC when known, else guest minus host CLOCK_REALTIME (s, positive = guest ahead). Triggers use this item."),
    dict(id="offset", name="clock offset vs host", vtype="FLOAT", units="s",
         http=pattern("vmtime_vm_clock_offset_seconds"), check="offset", optional=True,
         desc="Guest clock minus host CLOCK_REALTIME at the bracket midpoint (s)."),
    dict(id="offset.utc", name="clock offset vs UTC", vtype="FLOAT", units="s",
         http=pattern("vmtime_vm_clock_utc_offset_seconds"), check="utc_offset", optional=True,
         desc="Guest clock minus UTC (s); absent while the host's own offset is unknown."),
    dict(id="offset.uncertainty", name="clock offset uncertainty", vtype="FLOAT", units="s",
         http=pattern("vmtime_vm_clock_offset_uncertainty_seconds"), check="uncertainty", optional=True,
         desc="Half the measurement round trip: the true offset lies within +/- this."),
    dict(id="drift", name="clock drift", vtype="FLOAT", units="",
         http=pattern("vmtime_vm_clock_drift_ratio"), check="drift", optional=True,
         desc="Least-squares slope of the offset (ratio; 0.000001 = 1 ppm)."),
    dict(id="stopped", name="clock stopped", vtype="UNSIGNED", units="", valuemap="vmtime clock stopped",
         http=pattern("vmtime_vm_clock_stopped"), check="stopped",
         desc="1 when the guest clock advanced less than 10% of host time between the last two samples."),
    dict(id="agent_up", name="guest agent", vtype="UNSIGNED", units="", valuemap="vmtime agent state",
         http=pattern("vmtime_vm_agent_up"), check="agent_up",
         desc="1 when the last guest-get-time through the QEMU guest agent succeeded."),
    dict(id="agent_rtt", name="guest agent round trip", vtype="FLOAT", units="s",
         http=pattern("vmtime_vm_agent_rtt_seconds"), check="agent_rtt", optional=True,
         desc="Round trip of the kept virDomainGetTime call."),
    dict(id="state", name="state", vtype="CHAR", units="",
         http=pattern("vmtime_vm_info", "label", "state"), check="state",
         desc="libvirt domain state (running, paused, shutoff, ...)."),
    dict(id="reasons", name="health reasons", vtype="TEXT", units="",
         http=[{"type": "PROMETHEUS_TO_JSON",
                "parameters": ['vmtime_vm_health_reason{uuid="{#VM.UUID}"}']},
               {"type": "JAVASCRIPT", "parameters": [REASONS_JS]}],
         check="reasons",
         desc="Active health reasons, comma-separated (docs/metrics.md lists them)."),
    dict(id="steps.backward", name="backward clock steps", vtype="UNSIGNED", units="",
         http=[{"type": "PROMETHEUS_PATTERN",
                "parameters": ['vmtime_vm_clock_steps_total{uuid="{#VM.UUID}",direction="backward"}',
                               "value", ""]}],
         check="steps_backward",
         desc="Backward steps of the guest clock since the exporter started (counter)."),
]

# Host-level items (HTTP template only): id, name, metric pattern, type, valuemap, error default.
HOST_ITEMS = [
    dict(id="exporter.build_info", name="exporter build", pattern="vmtime_exporter_build_info",
         output=("label", "version"), vtype="CHAR",
         desc="Version of the exporter; nodata on this item means the exporter is unreachable."),
    dict(id="libvirt.up", name="libvirt connection", pattern="vmtime_libvirt_up", vtype="UNSIGNED",
         valuemap="vmtime up", desc="1 while the exporter's libvirt connection is open."),
    dict(id="host.chrony.leap_status", name="hypervisor chronyd leap status",
         pattern="vmtime_host_chrony_tracking_leap_status", vtype="UNSIGNED",
         valuemap="vmtime leap status", optional=True,
         desc="3 = hypervisor chronyd unsynchronised. Unsupported when chronyd is not polled."),
    dict(id="host.timex.sync_status", name="hypervisor kernel clock sync", pattern="vmtime_host_timex_sync_status",
         vtype="UNSIGNED", valuemap="vmtime sync status", optional=True,
         desc="1 when the hypervisor kernel reports its clock synchronised (adjtimex)."),
    dict(id="ntp.usable_sources", name="usable upstream NTP sources", pattern="vmtime_ntp_usable_sources",
         vtype="UNSIGNED", optional=True, desc="Configured upstream servers that answer, synchronised, stratum 1..15."),
    dict(id="ntp.configured_sources", name="configured upstream NTP sources",
         pattern="vmtime_ntp_configured_sources", vtype="UNSIGNED", optional=True,
         desc="Upstream servers configured for SNTP probes."),
    dict(id="collectors.failing", name="failing collectors", pattern="vmtime_collector_success == 0",
         output=("function", "count"), vtype="UNSIGNED", default="0",
         desc="Collectors whose last run failed (the exporter log says why)."),
]


def k_http(item_id):
    return "vmtime.vm.%s[{#VM.UUID}]" % item_id


def k_ext(check_key):
    return 'vmtime_zabbix_check["{$VMTIME.URL}","{#VM.UUID}",%s]' % check_key


def vm_trigger_prototypes(tname, key_of):
    """Trigger prototypes over the per-VM items; key_of(item_id) -> item key."""
    T = "/%s/" % tname
    running = 'last(%s%s)="running"' % (T, key_of("state"))
    off = T + key_of("offset.effective")
    crit_off = {
        "name": "VM {#VM.NAME}: clock offset beyond {$VMTIME.OFFSET.CRIT}s",
        "expression": "(min(%s,2m)>{$VMTIME.OFFSET.CRIT} or max(%s,2m)<-{$VMTIME.OFFSET.CRIT}) and %s"
                      % (off, off, running),
        "priority": "HIGH",
        "description": "Guest clock more than {$VMTIME.OFFSET.CRIT} s from UTC (or from the hypervisor when UTC is unknown) for 2 minutes. Kerberos, TLS and TOTP fail. Runbook: docs/alerts.md#vmclockoffsetcritical",
    }
    score = T + key_of("score")
    crit_score = {
        "name": "VM {#VM.NAME}: time health score below {$VMTIME.SCORE.CRIT}",
        "expression": "max(%s,5m)<{$VMTIME.SCORE.CRIT} and %s" % (score, running),
        "priority": "HIGH",
        "description": "The clock of this VM cannot be trusted (stopped, beyond 5 minutes off, or no fresh sample). See the reasons item. Runbook: docs/alerts.md#vmhealthscorecritical",
    }
    drift = T + key_of("drift")
    back = T + key_of("steps.backward")
    return [
        {
            "name": "VM {#VM.NAME}: clock offset beyond {$VMTIME.OFFSET.WARN}s",
            "expression": "(min(%s,5m)>{$VMTIME.OFFSET.WARN} or max(%s,5m)<-{$VMTIME.OFFSET.WARN}) and %s"
                          % (off, off, running),
            "priority": "WARNING",
            "description": "Guest clock more than {$VMTIME.OFFSET.WARN} s from UTC (or from the hypervisor when UTC is unknown) for 5 minutes. Runbook: docs/alerts.md#vmclockoffsetwarning",
            "dependencies": [{"name": crit_off["name"], "expression": crit_off["expression"]}],
        },
        crit_off,
        {
            "name": "VM {#VM.NAME}: clock stopped",
            "expression": "min(%s%s,2m)=1 and %s" % (T, key_of("stopped"), running),
            "priority": "HIGH",
            "description": "The guest clock advances less than 10% of host time while the domain runs. Runbook: docs/alerts.md#vmclockstopped",
        },
        {
            "name": "VM {#VM.NAME}: clock stepped backwards",
            "expression": "last(%s)>min(%s,15m)" % (back, back),
            "priority": "WARNING",
            "description": "The guest clock jumped backwards in the last 15 minutes. Runbook: docs/alerts.md#vmclocksteppedbackward",
        },
        {
            "name": "VM {#VM.NAME}: clock drift beyond {$VMTIME.DRIFT.WARN}",
            "expression": "(min(%s,30m)>{$VMTIME.DRIFT.WARN} or max(%s,30m)<-{$VMTIME.DRIFT.WARN}) and %s"
                          % (drift, drift, running),
            "priority": "WARNING",
            "description": "The guest clock rate differs from the host by more than {$VMTIME.DRIFT.WARN} (ratio) for 30 minutes. Runbook: docs/alerts.md#vmclockdrifthigh",
        },
        {
            "name": "VM {#VM.NAME}: time health score below {$VMTIME.SCORE.WARN}",
            "expression": "max(%s,15m)<{$VMTIME.SCORE.WARN} and %s" % (score, running),
            "priority": "WARNING",
            "description": "See the reasons item for why. Runbook: docs/alerts.md#vmhealthscorelow",
            "dependencies": [{"name": crit_score["name"], "expression": crit_score["expression"]}],
        },
        crit_score,
        {
            "name": "VM {#VM.NAME}: guest agent does not answer",
            "expression": "max(%s%s,10m)=0 and %s" % (T, key_of("agent_up"), running),
            "priority": "WARNING",
            "description": "guest-get-time through the QEMU guest agent fails while the domain runs; its clock is not measured. Runbook: docs/alerts.md#vmguestagentdown",
        },
    ]


def host_triggers(tname):
    T = "/%s/" % tname
    return [
        {
            "name": "vmtime exporter unreachable",
            "expression": "nodata(%svmtime.exporter.build_info,{$VMTIME.NODATA})=1" % T,
            "priority": "HIGH",
            "description": "No data from {$VMTIME.URL}/metrics. No guest clock on this hypervisor is watched. Runbook: docs/alerts.md#vmtimeexporterdown",
        },
        {
            "name": "vmtime exporter: libvirt connection down",
            "expression": "max(%svmtime.libvirt.up,5m)=0" % T,
            "priority": "HIGH",
            "description": "The exporter cannot reach libvirtd; VM values are stale. Runbook: docs/alerts.md#vmtimecollectorfailing",
        },
        {
            "name": "Hypervisor clock unsynchronised",
            "expression": "min(%svmtime.host.chrony.leap_status,10m)=3 or max(%svmtime.host.timex.sync_status,10m)=0"
                          % (T, T),
            "priority": "HIGH",
            "description": "chronyd leap status 3 or the kernel reports the clock unsynchronised: every guest drifts with it. Runbook: docs/alerts.md#hypervisorclockunsynchronised",
        },
        {
            "name": "Only one usable upstream NTP source left",
            "expression": "max(%svmtime.ntp.usable_sources,10m)=1 and last(%svmtime.ntp.configured_sources)>1"
                          % (T, T),
            "priority": "WARNING",
            "description": "Runbook: docs/alerts.md#ntponeusablesourceleft",
        },
        {
            "name": "No usable upstream NTP source",
            "expression": "max(%svmtime.ntp.usable_sources,5m)=0 and last(%svmtime.ntp.configured_sources)>0"
                          % (T, T),
            "priority": "HIGH",
            "description": "Runbook: docs/alerts.md#ntpnousablesource",
        },
        {
            "name": "vmtime exporter: collector failing",
            "expression": "min(%svmtime.collectors.failing,10m)>0" % T,
            "priority": "WARNING",
            "description": "At least one collector failed every run for 10 minutes. Runbook: docs/alerts.md#vmtimecollectorfailing",
        },
    ]


def trigger_keys(tname, expression):
    """Item keys a trigger expression references (/<template>/<key>)."""
    prefix = "/%s/" % tname
    keys, i = [], expression.find(prefix)
    while i >= 0:
        j, depth, quoted = i + len(prefix), 0, False
        start = j
        while j < len(expression):
            c = expression[j]
            if quoted:
                if c == "\\":
                    j += 1
                elif c == '"':
                    quoted = False
            elif c == '"':
                quoted = True
            elif c == "[":
                depth += 1
            elif c == "]":
                depth -= 1
            elif depth == 0 and c in ",)":
                break
            j += 1
        keys.append(expression[start:j])
        i = expression.find(prefix, j)
    return keys


def nest_triggers(tname, triggers, items, field):
    """Moves each trigger over a single item into that item's `field`;
    returns the remaining (multi-item) triggers."""
    by_key = {i["key"]: i for i in items}
    rest = []
    for t in triggers:
        keys = set(trigger_keys(tname, t["expression"]))
        if len(keys) == 1 and next(iter(keys)) in by_key:
            by_key[next(iter(keys))].setdefault(field, []).append(t)
        else:
            rest.append(t)
    return rest


def tags(*pairs):
    return [{"tag": k, "value": v} for k, v in pairs]


def finish_trigger(tname, t):
    out = {"uuid": uid(tname, "trigger", t["name"]), "expression": t["expression"], "name": t["name"],
           "priority": t["priority"], "description": t["description"]}
    if "dependencies" in t:
        out["dependencies"] = t["dependencies"]
    out["tags"] = tags(("scope", "availability" if "unreachable" in t["name"] else "time"))
    return out


def vm_item(tname, it, http):
    item = {"uuid": uid(tname, "vm-item", it["id"]),
            "name": "VM {#VM.NAME}: " + it["name"]}
    if http:
        item.update({"type": "DEPENDENT", "key": k_http(it["id"]), "delay": "0"})
    else:
        item.update({"type": "EXTERNAL", "key": k_ext(it["check"]), "delay": "{$VMTIME.INTERVAL}"})
    if it["vtype"] in ("CHAR", "TEXT"):
        item["trends"] = "0"
    item["value_type"] = it["vtype"]
    if it["units"]:
        item["units"] = it["units"]
    item["description"] = it["desc"]
    if it.get("valuemap"):
        item["valuemap"] = {"name": it["valuemap"]}
    if http:
        steps = [dict(s) for s in it["http"]]
        if it.get("optional"):
            # A series the exporter leaves out while unknown: keep the item
            # supported and simply store nothing.
            steps[-1]["error_handler"] = "DISCARD_VALUE"
        item["preprocessing"] = steps
        item["master_item"] = {"key": "vmtime.metrics"}
    item["tags"] = tags(("component", "vm"), ("vm", "{#VM.NAME}"))
    return item


def template(tname, http):
    t = {"uuid": uid(tname), "template": tname, "name": tname}
    if http:
        t["description"] = (
            "vmtime-exporter (guest clock health per VM on a libvirt hypervisor), collected with "
            "Zabbix's HTTP agent: one request to {$VMTIME.URL}/metrics per interval, dependent items "
            "with Prometheus preprocessing. Scales to thousands of VMs per hypervisor. "
            "docs/integrations.md describes the set-up.")
    else:
        t["description"] = (
            "vmtime-exporter (guest clock health per VM on a libvirt hypervisor), collected by the "
            "external check vmtime_zabbix_check (installed in the Zabbix server's or proxy's "
            "ExternalScripts directory), which reads {$VMTIME.URL}/api/v1/targets. One process per "
            "item and interval: meant for small hypervisors; prefer the HTTP template for large "
            "ones. docs/integrations.md describes the set-up.")
    t["groups"] = [{"name": GROUP}]
    items = []
    if http:
        items.append({
            "uuid": uid(tname, "item", "metrics"), "name": "vmtime: get metrics", "type": "HTTP_AGENT",
            "key": "vmtime.metrics", "delay": "{$VMTIME.INTERVAL}", "history": "0", "trends": "0",
            "value_type": "TEXT", "description": "Raw /metrics of the exporter; every other item depends on it.",
            "url": "{$VMTIME.URL}/metrics", "tags": tags(("component", "raw"))})
        for h in HOST_ITEMS:
            output = h.get("output", ("value", ""))
            step = {"type": "PROMETHEUS_PATTERN", "parameters": [h["pattern"], output[0], output[1]]}
            if h.get("optional"):
                step["error_handler"] = "DISCARD_VALUE"
            if "default" in h:
                step["error_handler"] = "CUSTOM_VALUE"
                step["error_handler_params"] = h["default"]
            item = {"uuid": uid(tname, "item", h["id"]), "name": "vmtime: " + h["name"], "type": "DEPENDENT",
                    "key": "vmtime." + h["id"], "delay": "0"}
            if h["vtype"] in ("CHAR", "TEXT"):
                item["trends"] = "0"
            item["value_type"] = h["vtype"]
            item["description"] = h["desc"]
            if h.get("valuemap"):
                item["valuemap"] = {"name": h["valuemap"]}
            item["preprocessing"] = [step]
            item["master_item"] = {"key": "vmtime.metrics"}
            item["tags"] = tags(("component", "host"))
            items.append(item)
        t["items"] = items
    rule = {"uuid": uid(tname, "lld"), "name": "VM discovery"}
    if http:
        rule.update({"type": "DEPENDENT", "key": "vmtime.vm.discovery", "delay": "0"})
    else:
        rule.update({"type": "EXTERNAL", "key": 'vmtime_zabbix_check["{$VMTIME.URL}",discovery]',
                     "delay": "5m"})
    rule["lifetime"] = "7d"
    rule["description"] = "One set of items per libvirt domain the exporter lists ({#VM.NAME}, {#VM.UUID}, {#VM.STATE})."
    key_of = (lambda i: k_http(i)) if http else (lambda i: k_ext(next(x["check"] for x in VM_ITEMS if x["id"] == i)))
    rule["item_prototypes"] = [vm_item(tname, it, http) for it in VM_ITEMS]
    # As Zabbix exports them: a trigger over one item sits under that item,
    # a trigger over several at the rule (prototypes) or top level.
    rule["trigger_prototypes"] = nest_triggers(
        tname, [finish_trigger(tname, tr) for tr in vm_trigger_prototypes(tname, key_of)],
        rule["item_prototypes"], "trigger_prototypes")
    if http:
        rule["master_item"] = {"key": "vmtime.metrics"}
        rule["lld_macro_paths"] = [
            {"lld_macro": "{#VM.NAME}", "path": "$.labels.domain"},
            {"lld_macro": "{#VM.STATE}", "path": "$.labels.state"},
            {"lld_macro": "{#VM.UUID}", "path": "$.labels.uuid"},
        ]
        rule["preprocessing"] = [
            {"type": "PROMETHEUS_TO_JSON", "parameters": ["vmtime_vm_info"]},
            {"type": "DISCARD_UNCHANGED_HEARTBEAT", "parameters": ["15m"]},
        ]
    t["discovery_rules"] = [rule]
    t["tags"] = tags(("class", "software"), ("target", "vmtime"))
    t["macros"] = [{"macro": m, "value": v, "description": d} for m, v, d in MACROS]
    t["valuemaps"] = [{"uuid": uid(tname, "valuemap", n), "name": n,
                       "mappings": [{"value": v, "newvalue": nv} for v, nv in maps]}
                      for n, maps in VALUEMAPS.items()]
    return t


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else OUT
    http = template(T_HTTP, True)
    doc = {"zabbix_export": {
        "version": "6.0",
        "date": "2026-11-25T00:00:00Z",
        "groups": [{"uuid": uid("group", GROUP), "name": GROUP}],
        "templates": [http, template(T_EXT, False)],
        "triggers": nest_triggers(T_HTTP, [finish_trigger(T_HTTP, tr) for tr in host_triggers(T_HTTP)],
                                  http["items"], "triggers"),
    }}
    header = ("# Zabbix 6.0 templates for vmtime-exporter. GENERATED by make_template.py in\n"
              "# this directory: edit that script and re-run it, do not edit this file.\n"
              "# Import: Data collection > Templates > Import. docs/integrations.md explains\n"
              "# both templates and the macros.\n")
    with open(out, "w") as f:
        f.write(header)
        yaml.safe_dump(doc, f, sort_keys=False, allow_unicode=True, width=100, default_flow_style=False)


if __name__ == "__main__":
    main()
