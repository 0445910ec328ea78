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

The model follows the Prometheus rules (docs/alerts.md): offsets against the
host and against UTC are separate items and triggers, and only the UTC ones
depend on (are suppressed by) the hypervisor's unsynchronised trigger; host
sync state is the one gauge vmtime_host_synchronised with its source; bands
are the exporter's (vmtime_vm_health_band), not recomputed from the score.

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
    ("{$VMTIME.DRIFT.WARN}", "0.0001",
     "Warning when |drift| (ratio, 0.0001 = 100 ppm = 8.6 s/day) stays above this for 30 minutes."),
    ("{$VMTIME.NODATA}", "5m", "The exporter is reported unreachable after this long without data."),
    ("{$VMTIME.DISCOVERY.INTERVAL}", "5m", "Update interval of the external check's VM discovery."),
    # How long a condition must hold before its trigger fires (the `for:` of
    # the matching Prometheus rule in alerts/vmtime.rules.yml).
    ("{$VMTIME.OFFSET.WARN.PERIOD}", "5m", "How long the offset must stay beyond {$VMTIME.OFFSET.WARN}."),
    ("{$VMTIME.OFFSET.CRIT.PERIOD}", "2m", "How long the offset must stay beyond {$VMTIME.OFFSET.CRIT}."),
    ("{$VMTIME.DRIFT.PERIOD}", "30m", "How long the drift must stay beyond {$VMTIME.DRIFT.WARN}."),
    ("{$VMTIME.BAND.BAD.PERIOD}", "5m", "How long a VM must stay in the bad band (exporter verdict)."),
    ("{$VMTIME.BAND.DEGRADED.PERIOD}", "30m", "How long a VM must stay below the good band."),
    ("{$VMTIME.STOPPED.PERIOD}", "2m", "How long a running guest's clock must stay stopped."),
    ("{$VMTIME.RESUMED.PERIOD}", "5m", "How long a resumed guest may stay behind its host."),
    ("{$VMTIME.STEP.WINDOW}", "15m", "A backward step within this window raises the step trigger."),
    ("{$VMTIME.AGENT.PERIOD}", "10m", "How long the guest agent must fail while the domain runs."),
    ("{$VMTIME.GUEST.PERIOD}", "15m", "How long the guest's time daemon must be unsynchronised or untrusted."),
    ("{$VMTIME.STRATUM.UNTRUSTED}", "10",
     "A guest synchronised at this stratum or above follows a free-running clock (exporter default "
     "scoring.stratum_zero 10)."),
]

# The Zabbix versions the export is written for and checked against
# (tests/e2e/test_zabbix_server.py imports it into a Zabbix 6.0.14 server).
SUPPORTED = ("Supported: Zabbix 6.0 LTS (export format 6.0; imported and run on a Zabbix 6.0.14 "
             "server by the project's tests). Later versions convert it on import.")

VALUEMAPS = {
    "vmtime agent state": [("0", "Down"), ("1", "Up")],
    "vmtime band": [("0", "Good"), ("1", "Degraded"), ("2", "Bad")],
    "vmtime clock stopped": [("0", "Advancing"), ("1", "Stopped")],
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
    dict(id="band", name="health band", vtype="UNSIGNED", units="", valuemap="vmtime band",
         http=pattern("vmtime_vm_health_band"), check="band",
         desc="The exporter's verdict: 0 good, 1 degraded, 2 bad (thresholds scoring.band_good_min / "
              "band_degraded_min, default 90 / 60). The band triggers use this item."),
    dict(id="offset.effective", name="clock offset", vtype="FLOAT", units="s",
         http=[{"type": "PROMETHEUS_TO_JSON",
                "parameters": ['{__name__=~"vmtime_vm_clock_(utc_)?offset_seconds",uuid="{#VM.UUID}"}']},
               {"type": "JAVASCRIPT", "parameters": [EFFECTIVE_OFFSET_JS]}],
         check="effective_offset",
         desc="Guest clock minus UTC when known, else guest minus host CLOCK_REALTIME (s, positive = guest ahead). For graphs; the triggers use the two offsets below separately."),
    dict(id="offset", name="clock offset vs host", vtype="FLOAT", units="s",
         http=pattern("vmtime_vm_clock_offset_seconds"), check="offset", optional=True,
         desc="Guest clock minus host CLOCK_REALTIME at the bracket midpoint (s). The offset triggers use it; they do not depend on the hypervisor's sync state."),
    dict(id="offset.utc", name="clock offset vs UTC", vtype="FLOAT", units="s",
         http=pattern("vmtime_vm_clock_utc_offset_seconds"), check="utc_offset", optional=True,
         desc="Guest clock minus UTC (s): the offset vs host plus the host's own offset from its chronyd; absent while that is unknown. The UTC offset triggers (HTTP template) use it and depend on the hypervisor being synchronised."),
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
         http=pattern("vmtime_vm_agent_up"), check="agent_up", optional=True,
         desc="1 when the last guest-get-time through the QEMU guest agent succeeded; no value until the exporter has tried the agent once (neither up nor down)."),
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
    dict(id="reason.resumed_behind", name="behind since a pause, restore or migration", vtype="UNSIGNED",
         units="", http=[{"type": "PROMETHEUS_PATTERN",
                          "parameters": ['vmtime_vm_health_reason{uuid="{#VM.UUID}",reason="resumed_behind"}',
                                         "value", ""]}],
         check="reason.resumed_behind", default="0",
         desc="1 while the reason resumed_behind is active: the domain was paused, restored or migrated and its clock is still behind its host."),
    dict(id="guest.synchronised", name="guest time daemon synchronised", vtype="UNSIGNED", units="",
         valuemap="vmtime sync status", http=pattern("vmtime_vm_guest_synchronised"), check="guest_synchronised",
         optional=True,
         desc="1 when the guest's time daemon reports itself synchronised, 0 when not; no value when unknown or not collected (opt-in guest_status collector)."),
    dict(id="guest.stratum", name="guest time daemon stratum", vtype="UNSIGNED", units="",
         http=pattern("vmtime_vm_guest_stratum"), check="guest_stratum", optional=True,
         desc="Stratum the guest's time daemon reports (10 and above: a free-running local clock)."),
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
    dict(id="host.synchronised", name="hypervisor clock synchronised", pattern="vmtime_host_synchronised",
         vtype="UNSIGNED", valuemap="vmtime sync status", optional=True,
         desc="The exporter's verdict on the hypervisor clock (vmtime_host_synchronised): chronyd when it answers, else the kernel (maxerror < 16 s). The only host sync input of the triggers."),
    dict(id="host.synchronised.source", name="hypervisor clock synchronised: decided by",
         pattern="vmtime_host_synchronised", output=("label", "source"), vtype="CHAR", optional=True,
         desc="Who decided the hypervisor's sync state: chrony or kernel."),
    dict(id="ntp.usable_sources", name="usable upstream NTP sources", pattern="vmtime_ntp_usable_sources",
         vtype="UNSIGNED", optional=True,
         desc="Configured upstream servers that answer, synchronised, at stratum 1..ntp.max_stratum (default 9)."),
    dict(id="ntp.configured_sources", name="configured upstream NTP sources",
         pattern="vmtime_ntp_configured_sources", vtype="UNSIGNED", optional=True,
         desc="Upstream servers configured for SNTP probes."),
    dict(id="collectors.failing", name="failing collectors", pattern="vmtime_collector_success == 0",
         output=("function", "count"), vtype="UNSIGNED", default="0",
         desc="Collectors whose last run failed (the exporter log says why)."),
]


# The external-check template's one host item: the number of VMs the
# exporter lists (the discovery output's length). Its key differs from the
# discovery rule's by the explicit --timeout (keys are unique per host).
EXT_VMS_KEY = 'vmtime_zabbix_check[--timeout,3,"{$VMTIME.URL}",discovery]'


def k_http(item_id):
    return "vmtime.vm.%s[{#VM.UUID}]" % item_id


def k_ext(check_key):
    return 'vmtime_zabbix_check["{$VMTIME.URL}","{#VM.UUID}",%s]' % check_key


def dep(trigger):
    return {"name": trigger["name"], "expression": trigger["expression"]}


def host_unsync_trigger(tname):
    """The hypervisor sync trigger (HTTP template): the one gauge, and its
    source item so the name can say who decided ({ITEM.LASTVALUE2})."""
    T = "/%s/" % tname
    return {
        "name": "Hypervisor clock unsynchronised (decided by {ITEM.LASTVALUE2})",
        "expression": "max(%svmtime.host.synchronised,10m)=0 and length(last(%svmtime.host.synchronised.source))>0"
                      % (T, T),
        "priority": "HIGH",
        "description": "The exporter has found the hypervisor clock unsynchronised for 10 minutes (vmtime_host_synchronised: chronyd when it answers, else the kernel, maxerror < 16 s; STA_UNSYNC alone does not count). Guests that follow their host drift with it; the VMs' offsets against UTC are unknown, so the UTC offset triggers depend on this one. Offsets of VMs against this host, stopped clocks, steps and resumed lags still trigger. Runbook: docs/alerts.md#hypervisorclockunsynchronised",
    }


def vm_trigger_prototypes(tname, key_of, http):
    """Trigger prototypes over the per-VM items; key_of(item_id) -> item key.
    The UTC offset triggers exist in the HTTP template only, where the
    hypervisor sync trigger they depend on exists."""
    T = "/%s/" % tname
    running = 'last(%s%s)="running"' % (T, key_of("state"))

    def beyond(item, macro, period, extra=""):
        k = T + key_of(item)
        return "(min(%s,%s)>%s or max(%s,%s)<-%s) and %s%s" % (k, period, macro, k, period, macro, running, extra)

    crit_off = {
        "name": "VM {#VM.NAME}: clock offset vs host beyond {$VMTIME.OFFSET.CRIT}s",
        "expression": beyond("offset", "{$VMTIME.OFFSET.CRIT}", "{$VMTIME.OFFSET.CRIT.PERIOD}"),
        "priority": "HIGH",
        "description": "Guest clock more than {$VMTIME.OFFSET.CRIT} s from its hypervisor's clock for {$VMTIME.OFFSET.CRIT.PERIOD} (default 2m). Kerberos, TLS and TOTP fail. Does not depend on the hypervisor's sync state. Runbook: docs/alerts.md#vmclockoffsetcritical",
    }
    warn_off = {
        "name": "VM {#VM.NAME}: clock offset vs host beyond {$VMTIME.OFFSET.WARN}s",
        "expression": beyond("offset", "{$VMTIME.OFFSET.WARN}", "{$VMTIME.OFFSET.WARN.PERIOD}"),
        "priority": "WARNING",
        "description": "Guest clock more than {$VMTIME.OFFSET.WARN} s from its hypervisor's clock for {$VMTIME.OFFSET.WARN.PERIOD} (default 5m). Does not depend on the hypervisor's sync state. Runbook: docs/alerts.md#vmclockoffsetwarning",
        "dependencies": [dep(crit_off)],
    }
    band = T + key_of("band")
    # The agent item has no value until the exporter first attempted the
    # agent: such a VM (no_data only) is neither up nor down, no trigger.
    attempted = "last(%s%s)>=0" % (T, key_of("agent_up"))
    bad = {
        "name": "VM {#VM.NAME}: clock health bad",
        "expression": "min(%s,{$VMTIME.BAND.BAD.PERIOD})=2 and %s and %s" % (band, attempted, running),
        "priority": "HIGH",
        "description": "The exporter has put this VM in the bad band for 5 minutes: its clock cannot be trusted. The health reasons item says why. Runbook: docs/alerts.md#vmclockhealthbad",
    }
    out = [warn_off, crit_off]
    if http:
        host = host_unsync_trigger(tname)
        crit_utc = {
            "name": "VM {#VM.NAME}: clock offset vs UTC beyond {$VMTIME.OFFSET.CRIT}s",
            "expression": beyond("offset.utc", "{$VMTIME.OFFSET.CRIT}", "{$VMTIME.OFFSET.CRIT.PERIOD}"),
            "priority": "HIGH",
            "description": "Guest clock more than {$VMTIME.OFFSET.CRIT} s from UTC (offset vs host plus the host's own offset) for {$VMTIME.OFFSET.CRIT.PERIOD} (default 2m). Suppressed while the hypervisor is unsynchronised or the offset vs host trigger fires. Runbook: docs/alerts.md#vmclockutcoffsetcritical",
            "dependencies": [dep(host), dep(crit_off)],
        }
        out += [{
            "name": "VM {#VM.NAME}: clock offset vs UTC beyond {$VMTIME.OFFSET.WARN}s",
            "expression": beyond("offset.utc", "{$VMTIME.OFFSET.WARN}", "{$VMTIME.OFFSET.WARN.PERIOD}"),
            "priority": "WARNING",
            "description": "Guest clock more than {$VMTIME.OFFSET.WARN} s from UTC for {$VMTIME.OFFSET.WARN.PERIOD} (default 5m). Suppressed while the hypervisor is unsynchronised or an offset vs host trigger fires. Runbook: docs/alerts.md#vmclockutcoffsetwarning",
            "dependencies": [dep(crit_utc), dep(host), dep(warn_off)],
        }, crit_utc]
    drift = T + key_of("drift")
    back = T + key_of("steps.backward")
    gsync = T + key_of("guest.synchronised")
    gstratum = T + key_of("guest.stratum")
    out += [
        {
            "name": "VM {#VM.NAME}: behind since a pause, restore or migration",
            "expression": "min(%s%s,{$VMTIME.RESUMED.PERIOD})=1 and %s" % (T, key_of("reason.resumed_behind"), running),
            "priority": "WARNING",
            "description": "The domain was paused, restored or migrated and its clock has been behind its host since, for 5 minutes (reason resumed_behind). Resync: virsh domtime <vm> --sync. Runbook: docs/alerts.md#vmclockresumedbehind",
        },
        {
            "name": "VM {#VM.NAME}: clock stopped",
            "expression": "min(%s%s,{$VMTIME.STOPPED.PERIOD})=1 and %s" % (T, key_of("stopped"), running),
            "priority": "HIGH",
            "description": "The guest clock moves (either way) by less than 10% of host time while the domain runs. Runbook: docs/alerts.md#vmclockstopped",
        },
        {
            "name": "VM {#VM.NAME}: clock stepped backwards",
            "expression": "last(%s)>min(%s,{$VMTIME.STEP.WINDOW})" % (back, back),
            "priority": "WARNING",
            "description": "The guest clock jumped backwards in the last 15 minutes. Runbook: docs/alerts.md#vmclocksteppedbackward",
        },
        {
            "name": "VM {#VM.NAME}: clock drift beyond {$VMTIME.DRIFT.WARN}",
            "expression": "(min(%s,{$VMTIME.DRIFT.PERIOD})>{$VMTIME.DRIFT.WARN} or max(%s,{$VMTIME.DRIFT.PERIOD})<-{$VMTIME.DRIFT.WARN}) and %s"
                          % (drift, drift, running),
            "priority": "WARNING",
            "description": "The guest clock rate differs from the host by more than {$VMTIME.DRIFT.WARN} (ratio) for 30 minutes. Runbook: docs/alerts.md#vmclockdrifthigh",
        },
        {
            "name": "VM {#VM.NAME}: clock health degraded",
            "expression": 'min(%s,{$VMTIME.BAND.DEGRADED.PERIOD})>=1 and %s and %s and last(%s%s)<>"host_unsynchronised"'
                          % (band, attempted, running, T, key_of("reasons")),
            "priority": "WARNING",
            "description": "The exporter has put this VM below the good band for 30 minutes; the health reasons item says why (a VM whose only reason is host_unsynchronised is left to the hypervisor trigger). Runbook: docs/alerts.md#vmclockhealthdegraded",
            "dependencies": [dep(bad)],
        },
        bad,
        {
            "name": "VM {#VM.NAME}: guest agent does not answer",
            "expression": "max(%s%s,{$VMTIME.AGENT.PERIOD})=0 and %s" % (T, key_of("agent_up"), running),
            "priority": "WARNING",
            "description": "guest-get-time through the QEMU guest agent fails while the domain runs; its clock is not measured. An agent not tried yet has no value and cannot trigger this. Runbook: docs/alerts.md#vmguestagentdown",
        },
        {
            "name": "VM {#VM.NAME}: guest time daemon unsynchronised",
            "expression": "max(%s,{$VMTIME.GUEST.PERIOD})=0 and %s" % (gsync, running),
            "priority": "WARNING",
            "description": "The guest's time daemon has reported itself unsynchronised for 15 minutes (opt-in guest_status collector). Runbook: docs/alerts.md#vmguesttimeunsynchronised",
        },
        {
            "name": "VM {#VM.NAME}: guest follows a stratum {ITEM.LASTVALUE1} source",
            "expression": "min(%s,{$VMTIME.GUEST.PERIOD})>={$VMTIME.STRATUM.UNTRUSTED} and max(%s,{$VMTIME.GUEST.PERIOD})<16 and last(%s)=1 and %s"
                          % (gstratum, gstratum, gsync, running),
            "priority": "WARNING",
            "description": "The guest's time daemon claims to be synchronised at stratum 10 or more for 15 minutes: a server serving its own free-running clock (local stratum 10). Runbook: docs/alerts.md#vmgueststratumuntrusted",
        },
    ]
    return out


def unreachable_trigger(tname, http):
    """nodata on the item every other value comes with: the exporter (or
    the path to it) is down. Every other trigger of the template depends
    on it, so a down exporter is one problem, not one per VM."""
    T = "/%s/" % tname
    if http:
        return {
            "name": "vmtime exporter unreachable",
            "expression": "nodata(%svmtime.exporter.build_info,{$VMTIME.NODATA})=1" % T,
            "priority": "HIGH",
            "description": "No data from {$VMTIME.URL}/metrics for {$VMTIME.NODATA}. No guest clock on this hypervisor is watched; the per-VM triggers depend on this one. Runbook: docs/alerts.md#vmtimeexporterdown",
        }
    return {
        "name": "vmtime exporter unreachable",
        "expression": "nodata(%s%s,{$VMTIME.NODATA})=1" % (T, EXT_VMS_KEY),
        "priority": "HIGH",
        "description": "vmtime_zabbix_check has had no answer from {$VMTIME.URL}/api/v1/targets for {$VMTIME.NODATA}. No guest clock on this hypervisor is watched; the per-VM triggers depend on this one. Runbook: docs/alerts.md#vmtimeexporterdown",
    }


def host_triggers(tname):
    T = "/%s/" % tname
    return [
        unreachable_trigger(tname, True),
        {
            "name": "vmtime exporter: libvirt connection down",
            "expression": "max(%svmtime.libvirt.up,5m)=0" % T,
            "priority": "HIGH",
            "description": "The exporter cannot reach libvirtd; VM values are stale. Runbook: docs/alerts.md#vmtimecollectorfailing",
        },
        host_unsync_trigger(tname),
        {
            "name": "Only one usable upstream NTP source left",
            "expression": "max(%svmtime.ntp.usable_sources,10m)=1 and last(%svmtime.ntp.configured_sources)>1"
                          % (T, T),
            "priority": "WARNING",
            "description": "Usable: answering, synchronised, stratum 1..ntp.max_stratum (default 9). Runbook: docs/alerts.md#ntponeusablesourceleft",
        },
        {
            "name": "No usable upstream NTP source",
            "expression": "max(%svmtime.ntp.usable_sources,5m)=0 and last(%svmtime.ntp.configured_sources)>0"
                          % (T, T),
            "priority": "HIGH",
            "description": "Usable: answering, synchronised, stratum 1..ntp.max_stratum (default 9). Runbook: docs/alerts.md#ntpnousablesource",
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


def alert_names():
    """Prometheus alert names by their docs/alerts.md anchor (lower case)."""
    with open(os.path.join(HERE, "..", "..", "alerts", "vmtime.rules.yml")) as f:
        doc = yaml.safe_load(f)
    return {r["alert"].lower(): r["alert"] for g in doc["groups"] for r in g["rules"] if "alert" in r}


ALERTS = alert_names()


def finish_trigger(tname, t, http, vm):
    """Adds uuid, tags and the dependency on the exporter-unreachable
    trigger. Tags: scope (time or availability), component (vm or host),
    alert (the matching Prometheus alert, from the runbook anchor), and the
    VM name on per-VM triggers."""
    out = {"uuid": uid(tname, "trigger", t["name"]), "expression": t["expression"], "name": t["name"],
           "priority": t["priority"], "description": t["description"]}
    deps = list(t.get("dependencies", []))
    unreachable = unreachable_trigger(tname, http)
    if t["name"] != unreachable["name"]:
        deps.append(dep(unreachable))
    if deps:
        out["dependencies"] = deps
    anchor = t["description"].rsplit("docs/alerts.md#", 1)[-1]
    pairs = [("scope", "availability" if t["name"] == unreachable["name"] else "time"),
             ("component", "vm" if vm else "host"), ("alert", ALERTS[anchor])]
    if vm:
        pairs.append(("vm", "{#VM.NAME}"))
    out["tags"] = tags(*pairs)
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
        if "default" in it:
            # A series the exporter leaves out while false (an inactive
            # reason): store the default.
            steps[-1]["error_handler"] = "CUSTOM_VALUE"
            steps[-1]["error_handler_params"] = it["default"]
        item["preprocessing"] = steps
        item["master_item"] = {"key": "vmtime.metrics"}
    item["tags"] = tags(("component", "vm"), ("vm", "{#VM.NAME}"))
    return item


# Graph prototypes (one graph per VM): item id, name, colour.
GRAPHS = [("score", "health score", "1A7C11"), ("offset.effective", "clock offset", "F63100")]


def dashboard(tname):
    """The template dashboard: per-VM health score and offset graphs (graph
    prototype widgets, one graph per discovered VM, three columns)."""
    widgets = []
    for n, (_, gname, _) in enumerate(GRAPHS):
        widgets.append({
            "type": "GRAPH_PROTOTYPE", "name": gname, "x": "0", "y": str(5 * n), "width": "24",
            "height": "5",
            "fields": [{"type": "INTEGER", "name": "columns", "value": "3"},
                       {"type": "INTEGER", "name": "rows", "value": "1"},
                       {"type": "GRAPH_PROTOTYPE", "name": "graphid",
                        "value": {"host": tname, "name": "VM {#VM.NAME}: " + gname}}]})
    return {"uuid": uid(tname, "dashboard"), "name": "vmtime: VM clock health",
            "pages": [{"widgets": widgets}]}


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
    t["description"] += " " + SUPPORTED
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
    else:
        t["items"] = [{
            "uuid": uid(tname, "item", "vms"), "name": "vmtime: VMs listed", "type": "EXTERNAL",
            "key": EXT_VMS_KEY, "delay": "{$VMTIME.INTERVAL}", "value_type": "UNSIGNED",
            "description": "Number of libvirt domains the exporter lists (length of the discovery "
                           "output). No data: the exporter is unreachable (the check's message says why).",
            "preprocessing": [{"type": "JSONPATH", "parameters": ["$.length()"]}],
            "tags": tags(("component", "host"))}]
        nest_triggers(tname, [finish_trigger(tname, unreachable_trigger(tname, False), False, False)],
                      t["items"], "triggers")
    rule = {"uuid": uid(tname, "lld"), "name": "VM discovery"}
    if http:
        rule.update({"type": "DEPENDENT", "key": "vmtime.vm.discovery", "delay": "0"})
    else:
        rule.update({"type": "EXTERNAL", "key": 'vmtime_zabbix_check["{$VMTIME.URL}",discovery]',
                     "delay": "{$VMTIME.DISCOVERY.INTERVAL}"})
    rule["lifetime"] = "7d"
    rule["description"] = "One set of items per libvirt domain the exporter lists ({#VM.NAME}, {#VM.UUID}, {#VM.STATE})."
    key_of = (lambda i: k_http(i)) if http else (lambda i: k_ext(next(x["check"] for x in VM_ITEMS if x["id"] == i)))
    rule["item_prototypes"] = [vm_item(tname, it, http) for it in VM_ITEMS]
    # As Zabbix exports them: a trigger over one item sits under that item,
    # a trigger over several at the rule (prototypes) or top level.
    rule["trigger_prototypes"] = nest_triggers(
        tname, [finish_trigger(tname, tr, http, True) for tr in vm_trigger_prototypes(tname, key_of, http)],
        rule["item_prototypes"], "trigger_prototypes")
    rule["graph_prototypes"] = [
        {"uuid": uid(tname, "graph", gid), "name": "VM {#VM.NAME}: " + gname,
         "graph_items": [{"color": color, "item": {"host": tname, "key": key_of(gid)}}]}
        for gid, gname, color in GRAPHS]
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
    t["dashboards"] = [dashboard(tname)]
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
        "triggers": nest_triggers(T_HTTP, [finish_trigger(T_HTTP, tr, True, False) for tr in host_triggers(T_HTTP)],
                                  http["items"], "triggers"),
    }}
    header = ("# Zabbix 6.0 templates for vmtime-exporter. GENERATED by make_template.py in\n"
              "# this directory: edit that script and re-run it, do not edit this file.\n"
              "# Import: Configuration > Templates > Import (6.0). docs/integrations.md explains\n"
              "# both templates and the macros.\n")
    with open(out, "w") as f:
        f.write(header)
        yaml.safe_dump(doc, f, sort_keys=False, allow_unicode=True, width=100, default_flow_style=False)


if __name__ == "__main__":
    main()
