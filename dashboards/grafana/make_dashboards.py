#!/usr/bin/python3
"""Generates the Grafana dashboards for vmtime-exporter (schemaVersion 38,
Grafana 9.5 / 10.x): vmtime-fleet.json (fleet overview), vmtime-vm.json
(one VM in detail) and vmtime-fleet-federated.json (the fleet overview for a
global Prometheus that holds only the federated recording rules,
docs/scaling.md "Beyond one Prometheus"), next to this script. Edit here and re-run; commit both
the script and the JSON. Metric names: docs/metrics.md.

Every query is checked against a real Prometheus scraping the exporter by
tests/e2e/test_grafana.py; the federated variant's against a global
Prometheus federating a 20-exporter fleet's Prometheus by
tests/e2e/test_fleet.py.

Model (docs/alerts.md, docs/scoring.md): the band of a VM is the exporter's
own verdict (vmtime_vm_health_band: 0 good, 1 degraded, 2 bad; thresholds
configurable in the exporter), shown with BAND_MAPPINGS; host sync state is
one gauge, vmtime_host_synchronised{source}; reasons are listed generically
from vmtime_vm_health_reason's `reason` label, so new reasons show up
without a dashboard change.
"""

import json
import os

HERE = os.path.dirname(os.path.abspath(__file__))
DS = {"type": "prometheus", "uid": "${datasource}"}
SEL = 'job=~"$job",instance=~"$instance"'
VM = SEL + ',domain="$vm"'
# Guest minus UTC when known, else guest minus host (seconds).
OFFSET = "(vmtime_vm_clock_utc_offset_seconds{%s} or vmtime_vm_clock_offset_seconds{%s})"


class Layout:
    """Places panels left to right on Grafana's 24-column grid."""

    def __init__(self):
        self.x = 0
        self.y = 0
        self.row_h = 0
        self.next_id = 1

    def place(self, panel, w, h):
        if self.x + w > 24:
            self.x = 0
            self.y += self.row_h
            self.row_h = 0
        panel["gridPos"] = {"h": h, "w": w, "x": self.x, "y": self.y}
        panel["id"] = self.next_id
        self.next_id += 1
        self.x += w
        self.row_h = max(self.row_h, h)
        return panel

    def row(self, title):
        if self.x:
            self.x = 0
            self.y += self.row_h
            self.row_h = 0
        panel = {"type": "row", "title": title, "collapsed": False, "panels": [],
                 "gridPos": {"h": 1, "w": 24, "x": 0, "y": self.y}, "id": self.next_id}
        self.next_id += 1
        self.y += 1
        return panel


def target(expr, legend="", ref="A", instant=False, fmt="time_series"):
    t = {"datasource": DS, "expr": expr, "refId": ref, "legendFormat": legend or "__auto",
         "range": not instant, "instant": instant, "format": fmt}
    return t


def panel(ptype, title, targets, unit="", description="", thresholds=None, decimals=None,
          overrides=None, options=None, custom=None, mappings=None, links=None, transformations=None,
          minv=None, maxv=None, no_value=None):
    defaults = {"unit": unit or "none", "color": {"mode": "thresholds" if thresholds else "palette-classic"}}
    if thresholds:
        defaults["thresholds"] = {"mode": "absolute",
                                  "steps": [{"color": c, "value": v} for v, c in thresholds]}
    if decimals is not None:
        defaults["decimals"] = decimals
    if minv is not None:
        defaults["min"] = minv
    if maxv is not None:
        defaults["max"] = maxv
    if custom:
        defaults["custom"] = custom
    if mappings:
        defaults["mappings"] = mappings
    if links:
        defaults["links"] = links
    if no_value is not None:
        defaults["noValue"] = no_value
    p = {"type": ptype, "title": title, "description": description, "datasource": DS,
         "targets": [dict(t, refId=chr(ord("A") + i)) for i, t in enumerate(targets)],
         "fieldConfig": {"defaults": defaults, "overrides": overrides or []},
         "options": options or {}}
    if transformations:
        p["transformations"] = transformations
    return p


# Colours at the exporter's default band thresholds (scoring.band_good_min
# 90, band_degraded_min 60); the band panels show the exporter's own verdict.
SCORE_THRESHOLDS = [(None, "red"), (60, "orange"), (90, "green")]
BAND_COLORS = (("good", "green"), ("degraded", "orange"), ("bad", "red"))
BAND_THRESHOLDS = [(None, "green"), (1, "orange"), (2, "red")]
BAND_MAPPINGS = [{"type": "value", "options": {
    str(i): {"text": name, "color": color, "index": i} for i, (name, color) in enumerate(BAND_COLORS)}}]
SYNC_MAPPINGS = [{"type": "value", "options": {
    "0": {"text": "unsynchronised", "color": "red", "index": 0},
    "1": {"text": "synchronised", "color": "green", "index": 1}}}]
OFFSET_THRESHOLDS = [(None, "green"), (30, "orange"), (300, "red")]
STAT_OPTS = {"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
             "colorMode": "background", "graphMode": "area", "justifyMode": "auto",
             "orientation": "auto", "textMode": "auto"}
TS_CUSTOM = {"drawStyle": "line", "lineWidth": 1, "fillOpacity": 0, "showPoints": "never",
             "spanNulls": False}
TABLE_OPTS = {"showHeader": True, "cellHeight": "sm", "footer": {"show": False}}


def variables(with_vm):
    ds = {"type": "datasource", "name": "datasource", "label": "Data source", "query": "prometheus",
          "current": {}, "hide": 0, "refresh": 1, "regex": "", "options": []}

    def q(name, label, query, multi, include_all):
        v = {"type": "query", "name": name, "label": label, "datasource": DS,
             "definition": query,
             "query": {"query": query, "refId": "PrometheusVariableQueryEditor-VariableQuery"},
             "refresh": 2, "sort": 1, "multi": multi, "includeAll": include_all,
             "current": {}, "hide": 0, "options": [], "regex": ""}
        if include_all:
            v["allValue"] = ".+"
        return v

    out = [ds,
           q("job", "Job", "label_values(vmtime_exporter_build_info, job)", True, True),
           q("instance", "Hypervisor", 'label_values(vmtime_exporter_build_info{job=~"$job"}, instance)',
             True, True)]
    if with_vm:
        out.append(q("vm", "VM", 'label_values(vmtime_vm_info{job=~"$job",instance=~"$instance"}, domain)',
                     False, False))
    return {"list": out}


def dashboard(uid, title, description, panels, with_vm, links):
    return {
        "uid": uid, "title": title, "description": description,
        "tags": ["vmtime", "time", "libvirt"], "timezone": "browser", "editable": True,
        "graphTooltip": 1, "schemaVersion": 38, "version": 1, "refresh": "30s",
        "time": {"from": "now-6h", "to": "now"}, "fiscalYearStartMonth": 0, "liveNow": False,
        "annotations": {"list": [{"builtIn": 1, "datasource": {"type": "grafana", "uid": "-- Grafana --"},
                                  "enable": True, "hide": True, "iconColor": "rgba(0, 211, 255, 1)",
                                  "name": "Annotations & Alerts", "type": "dashboard"}]},
        "links": links, "templating": variables(with_vm), "panels": panels,
    }


VM_LINK = [{"title": "VM detail", "url": "/d/vmtime-vm/vmtime-vm?var-datasource=${datasource}"
            "&var-job=${__data.fields.job}&var-instance=${__data.fields.instance}"
            "&var-vm=${__data.fields.domain}&${__url_time_range}"}]


def score_band_panels(L, P, bands, description):
    """The fleet dashboards' pair of band panels (a bar gauge now, a stacked
    time series), on `bands` (one target per band), placed by `L` into `P`."""
    band_colors = [{"matcher": {"id": "byName", "options": n},
                    "properties": [{"id": "color", "value": {"mode": "fixed", "fixedColor": c}}]}
                   for n, c in BAND_COLORS]
    P.append(L.place(panel("bargauge", "Score distribution", bands, overrides=band_colors,
                           options={"displayMode": "basic", "orientation": "horizontal",
                                    "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
                                    "showUnfilled": True, "valueMode": "color"},
                           description=description), 8, 8))
    P.append(L.place(panel("timeseries", "Score bands over time", bands, overrides=band_colors,
                           custom=dict(TS_CUSTOM, drawStyle="line", fillOpacity=30,
                                       stacking={"mode": "normal", "group": "A"}),
                           options={"legend": {"displayMode": "list", "placement": "bottom", "showLegend": True},
                                    "tooltip": {"mode": "multi", "sort": "none"}}), 16, 8))


def fleet():
    L = Layout()
    P = []
    P.append(L.row("Fleet"))
    P.append(L.place(panel("stat", "VMs", [target("count(vmtime_vm_info{%s})" % SEL)],
                           description="Domains the exporters list (all states).",
                           options=dict(STAT_OPTS, colorMode="none")), 4, 4))
    P.append(L.place(panel("stat", "VMs in the bad band",
                           [target("count(vmtime_vm_health_band{%s} == 2) or vector(0)" % SEL)],
                           thresholds=[(None, "green"), (1, "red")], options=STAT_OPTS,
                           description="Clocks that cannot be trusted (the exporter's band: score below "
                                       "band_degraded_min, default 60; stopped, > 5 min off, no fresh sample)."), 4, 4))
    P.append(L.place(panel("stat", "Worst |offset|",
                           [target("max(abs%s)" % (OFFSET % (SEL, SEL)))], unit="s",
                           thresholds=OFFSET_THRESHOLDS, options=STAT_OPTS,
                           description="Largest absolute guest offset (vs UTC when known, else vs host)."), 4, 4))
    P.append(L.place(panel("stat", "Stopped clocks",
                           [target("count(vmtime_vm_clock_stopped{%s} == 1) or vector(0)" % SEL)],
                           thresholds=[(None, "green"), (1, "red")], options=STAT_OPTS), 4, 4))
    P.append(L.place(panel("stat", "Guest agents down",
                           [target('count((vmtime_vm_agent_up{%s} == 0) and on (job, instance, domain, uuid) '
                                   'vmtime_vm_info{%s,state="running"}) or vector(0)' % (SEL, SEL))],
                           thresholds=[(None, "green"), (1, "orange")], options=STAT_OPTS,
                           description="Running domains whose guest agent does not answer guest-get-time."), 4, 4))
    P.append(L.place(panel("stat", "Hypervisors unsynchronised",
                           [target("count(vmtime_host_synchronised{%s} == 0) or vector(0)" % SEL)],
                           thresholds=[(None, "green"), (1, "red")], options=STAT_OPTS,
                           description="The exporter's verdict (vmtime_host_synchronised): the first present "
                                       "source of host.reference_order (chrony, ntpd, timesyncd, ptp, kernel)."), 4, 4))

    bands = [target("count(vmtime_vm_health_band{%s} == %d) or vector(0)" % (SEL, i), name)
             for i, (name, _) in enumerate(BAND_COLORS)]
    score_band_panels(L, P, bands, "VMs per health band (the exporter's vmtime_vm_health_band), now.")

    P.append(L.row("Worst VMs"))
    lowest = "bottomk(20, vmtime_vm_health_score{%s})" % SEL
    P.append(L.place(panel("table", "Lowest scores",
                           [target(lowest, instant=True, fmt="table"),
                            target("vmtime_vm_health_band{%s} and on (job, instance, domain, uuid) %s" % (SEL, lowest),
                                   instant=True, fmt="table")],
                           thresholds=SCORE_THRESHOLDS, options=dict(TABLE_OPTS, sortBy=[{"displayName": "score", "desc": False}]),
                           custom={"align": "auto", "cellOptions": {"type": "color-background"}},
                           links=VM_LINK, decimals=1,
                           overrides=[{"matcher": {"id": "byName", "options": "band"},
                                       "properties": [{"id": "mappings", "value": BAND_MAPPINGS},
                                                      {"id": "thresholds", "value": {
                                                          "mode": "absolute",
                                                          "steps": [{"color": c, "value": v} for v, c in BAND_THRESHOLDS]}},
                                                      {"id": "decimals", "value": 0}]}],
                           transformations=[{"id": "merge", "options": {}},
                                            {"id": "organize", "options": {
                                                "excludeByName": {"Time": True, "__name__": True},
                                                "renameByName": {"Value #A": "score", "Value #B": "band",
                                                                 "instance": "hypervisor"}}}],
                           description="The 20 VMs with the lowest score and their band (the exporter's verdict); "
                                       "click for the VM detail."), 12, 10))
    P.append(L.place(panel("table", "Active reasons",
                           [target("count by (reason) (vmtime_vm_health_reason{%s} == 1)" % SEL,
                                   instant=True, fmt="table")],
                           options=dict(TABLE_OPTS, sortBy=[{"displayName": "VMs", "desc": True}]),
                           transformations=[{"id": "organize", "options": {
                               "excludeByName": {"Time": True}, "renameByName": {"Value": "VMs"}}}],
                           description="How many VMs each health reason is active for (docs/scoring.md: what "
                                       "raises and clears each reason)."), 6, 10))
    P.append(L.place(panel("table", "VMs by state",
                           [target("count by (state) (vmtime_vm_info{%s})" % SEL, instant=True, fmt="table")],
                           options=TABLE_OPTS,
                           transformations=[{"id": "organize", "options": {
                               "excludeByName": {"Time": True}, "renameByName": {"Value": "VMs"}}}]), 6, 10))
    P.append(L.place(panel("timeseries", "VMs per reason over time",
                           [target("count by (reason) (vmtime_vm_health_reason{%s} == 1)" % SEL, "{{reason}}")],
                           custom=dict(TS_CUSTOM, drawStyle="line", fillOpacity=10),
                           options={"legend": {"displayMode": "table", "placement": "right", "showLegend": True,
                                               "calcs": ["lastNotNull", "max"]},
                                    "tooltip": {"mode": "multi", "sort": "desc"}},
                           description="When each reason was active, and for how many VMs: a burst of "
                                       "resumed_behind after a maintenance, offset_elevated creeping up, ..."), 24, 8))

    P.append(L.row("Offsets"))
    P.append(L.place(panel("timeseries", "Largest guest offsets (top 10 by |offset|)",
                           [target("topk(10, abs%s)" % (OFFSET % (SEL, SEL)), "{{instance}} {{domain}}")],
                           unit="s", custom=TS_CUSTOM,
                           options={"legend": {"displayMode": "table", "placement": "right", "showLegend": True,
                                               "calcs": ["lastNotNull", "max"]},
                                    "tooltip": {"mode": "multi", "sort": "desc"}},
                           description="Absolute guest offset, vs UTC when known, else vs host."), 16, 9))
    P.append(L.place(panel("timeseries", "Worst |offset| per hypervisor",
                           [target("max by (instance) (abs%s)" % (OFFSET % (SEL, SEL)), "{{instance}}")],
                           unit="s", custom=TS_CUSTOM,
                           options={"legend": {"displayMode": "list", "placement": "bottom", "showLegend": True},
                                    "tooltip": {"mode": "multi", "sort": "desc"}}), 8, 9))

    # Groups (docs/libvirt.md "Groups and labels"): VMs that must agree on
    # the time. Across hypervisors only offsets against UTC compare; the
    # group comes from vmtime_vm_info (the same join as the vmtime.groups
    # recording rules, computed here so the dashboard works without them).
    P.append(L.row("Groups"))
    grouped = ("(vmtime_vm_clock_utc_offset_seconds{%s} * on (job, instance, domain, uuid) group_left (group) "
               'vmtime_vm_info{%s,group!="",state="running"})' % (SEL, SEL))
    P.append(L.place(panel("table", "Groups by clock spread (vs UTC, across hypervisors)",
                           [target("max by (group) %s - min by (group) %s" % (grouped, grouped),
                                   instant=True, fmt="table"),
                            target("count by (group) %s" % grouped, instant=True, fmt="table")],
                           unit="s", thresholds=[(None, "green"), (1, "red")],
                           options=dict(TABLE_OPTS, sortBy=[{"displayName": "spread", "desc": True}]),
                           custom={"align": "auto", "cellOptions": {"type": "color-text"}},
                           overrides=[{"matcher": {"id": "byName", "options": "members"},
                                       "properties": [{"id": "unit", "value": "none"},
                                                      {"id": "custom.cellOptions", "value": {"type": "auto"}}]}],
                           transformations=[{"id": "merge", "options": {}},
                                            {"id": "organize", "options": {
                                                "excludeByName": {"Time": True},
                                                "renameByName": {"Value #A": "spread", "Value #B": "members"}}}],
                           description="Per group: max minus min guest offset against UTC of its running members "
                                       "on every hypervisor, worst first (VMGroupClockSkew fires above "
                                       "vmtime:group_clock_skew_threshold_seconds, default 1 s, for 5 min)."), 12, 8))
    P.append(L.place(panel("table", "Group spread per hypervisor",
                           [target("vmtime_group_offset_spread_seconds{%s}" % SEL, instant=True, fmt="table"),
                            target("vmtime_group_measured_members{%s}" % SEL, instant=True, fmt="table")],
                           unit="s",
                           options=dict(TABLE_OPTS, sortBy=[{"displayName": "spread", "desc": True}]),
                           overrides=[{"matcher": {"id": "byName", "options": "measured members"},
                                       "properties": [{"id": "unit", "value": "none"}]}],
                           transformations=[{"id": "merge", "options": {}},
                                            {"id": "organize", "options": {
                                                "excludeByName": {"Time": True, "__name__": True, "job": True},
                                                "renameByName": {"Value #A": "spread", "Value #B": "measured members",
                                                                 "instance": "hypervisor"}}}],
                           description="The exporter's own per-host spread (guest vs host offsets, the host's "
                                       "offset cancels out); its members carry the reason group_skew above "
                                       "scoring.group_skew_s."), 12, 8))

    P.append(L.row("Hypervisors"))
    host_table = [
        target("vmtime_host_synchronised{%s}" % SEL, instant=True, fmt="table"),
        target("vmtime_host_chrony_tracking_stratum{%s}" % SEL, instant=True, fmt="table"),
        target("vmtime_host_chrony_tracking_system_time_seconds{%s}" % SEL, instant=True, fmt="table"),
        target("vmtime_host_timex_maxerror_seconds{%s}" % SEL, instant=True, fmt="table"),
        target("count by (job, instance) (vmtime_vm_info{%s})" % SEL, instant=True, fmt="table"),
    ]
    P.append(L.place(panel("table", "Hypervisor clocks", host_table, options=TABLE_OPTS,
                           overrides=[{"matcher": {"id": "byName", "options": "synchronised"},
                                       "properties": [{"id": "mappings", "value": SYNC_MAPPINGS},
                                                      {"id": "custom.cellOptions", "value": {"type": "color-text"}}]}],
                           transformations=[{"id": "merge", "options": {}},
                                            {"id": "organize", "options": {
                                                "excludeByName": {"Time": True, "__name__": True},
                                                "renameByName": {"instance": "hypervisor",
                                                                 "Value #A": "synchronised",
                                                                 "source": "decided by",
                                                                 "Value #B": "chrony stratum",
                                                                 "Value #C": "chrony offset (s)",
                                                                 "Value #D": "kernel maxerror (s)",
                                                                 "Value #E": "VMs"}}}],
                           description="Per hypervisor: synchronised as the exporter decides it "
                                       "(vmtime_host_synchronised; 'decided by' the first present source of "
                                       "host.reference_order: chrony, ntpd, timesyncd, ptp, or kernel: "
                                       "maxerror < 16 s), chronyd tracking and the kernel's maximum error "
                                       "(offset: host clock minus true time, positive = host fast)."), 12, 9))
    P.append(L.place(panel("timeseries", "Hypervisor synchronised",
                           [target("vmtime_host_synchronised{%s}" % SEL, "{{instance}} ({{source}})")],
                           minv=0, maxv=1, mappings=SYNC_MAPPINGS,
                           custom=dict(TS_CUSTOM, lineInterpolation="stepAfter"),
                           options={"legend": {"displayMode": "list", "placement": "bottom", "showLegend": True},
                                    "tooltip": {"mode": "multi", "sort": "none"}},
                           description="1 synchronised, 0 not, per hypervisor; the label says who decided "
                                       "(chrony, ntpd, timesyncd, ptp or kernel). The host alert uses this gauge only."), 6, 9))
    P.append(L.place(panel("timeseries", "Hypervisor offset (chronyd system time)",
                           [target("vmtime_host_chrony_tracking_system_time_seconds{%s}" % SEL, "{{instance}}")],
                           unit="s", custom=TS_CUSTOM,
                           options={"legend": {"displayMode": "list", "placement": "bottom", "showLegend": True},
                                    "tooltip": {"mode": "multi", "sort": "none"}},
                           description="Host clock minus chronyd's estimate of true time (positive = host fast)."), 6, 9))

    P.append(L.row("Upstream sources"))
    P.append(L.place(panel("stat", "Usable upstream NTP sources",
                           [target("vmtime_ntp_usable_sources{%s}" % SEL, "{{instance}}")],
                           thresholds=[(None, "red"), (1, "orange"), (2, "green")], options=STAT_OPTS,
                           description="Per hypervisor: configured servers that answer, synchronised, at stratum "
                                       "1..ntp.max_stratum (default 9), as the exporter decides."), 6, 8))
    P.append(L.place(panel("timeseries", "Upstream server offset (server minus host)",
                           [target("vmtime_ntp_server_offset_seconds{%s}" % SEL, "{{instance}} {{server}}")],
                           unit="s", custom=TS_CUSTOM,
                           options={"legend": {"displayMode": "list", "placement": "bottom", "showLegend": True},
                                    "tooltip": {"mode": "multi", "sort": "none"}}), 9, 8))
    P.append(L.place(panel("timeseries", "Upstream server round trip",
                           [target("vmtime_ntp_server_rtt_seconds{%s}" % SEL, "{{instance}} {{server}}")],
                           unit="s", custom=TS_CUSTOM,
                           options={"legend": {"displayMode": "list", "placement": "bottom", "showLegend": True},
                                    "tooltip": {"mode": "multi", "sort": "none"}}), 9, 8))
    P.append(L.place(panel("table", "Upstream NTP servers",
                           [target("vmtime_ntp_server_usable{%s}" % SEL, instant=True, fmt="table"),
                            target("vmtime_ntp_server_up{%s}" % SEL, instant=True, fmt="table"),
                            target("vmtime_ntp_server_stratum{%s}" % SEL, instant=True, fmt="table"),
                            target("vmtime_ntp_server_leap{%s}" % SEL, instant=True, fmt="table")],
                           options=TABLE_OPTS,
                           overrides=[{"matcher": {"id": "byName", "options": "usable"},
                                       "properties": [{"id": "mappings", "value": [{"type": "value", "options": {
                                           "0": {"text": "no", "color": "red", "index": 0},
                                           "1": {"text": "yes", "color": "green", "index": 1}}}]},
                                           {"id": "custom.cellOptions", "value": {"type": "color-text"}}]}],
                           transformations=[{"id": "merge", "options": {}},
                                            {"id": "organize", "options": {
                                                "excludeByName": {"Time": True, "__name__": True, "job": True},
                                                "renameByName": {"Value #A": "usable", "Value #B": "answers",
                                                                 "Value #C": "stratum", "Value #D": "leap",
                                                                 "instance": "hypervisor"}}}],
                           description="Each upstream server the exporter probes: usable when it answers, is "
                                       "synchronised (leap != 3) and its stratum is 1..ntp.max_stratum (default 9)."), 24, 7))
    P.append(L.place(panel("table", "chronyd sources",
                           [target("vmtime_host_chrony_sources_reachability_ratio{%s}" % SEL, instant=True, fmt="table"),
                            target("vmtime_host_chrony_sources_stratum{%s}" % SEL, instant=True, fmt="table"),
                            target("vmtime_host_chrony_sources_last_sample_offset_seconds{%s}" % SEL,
                                   instant=True, fmt="table")],
                           options=TABLE_OPTS,
                           transformations=[{"id": "merge", "options": {}},
                                            {"id": "organize", "options": {
                                                "excludeByName": {"Time": True, "__name__": True, "job": True},
                                                "renameByName": {"Value #A": "reach", "Value #B": "stratum",
                                                                 "Value #C": "last offset (s)",
                                                                 "instance": "hypervisor"}}}],
                           description="Each hypervisor chronyd's sources (reach = fraction of the last 8 polls answered)."), 24, 8))

    # Host ntpd and systemd-timesyncd (collectors ntpd, timesyncd; issue 17).
    P.append(L.place(panel("table", "ntpd peers",
                           [target("vmtime_host_ntpd_peer_condition_info{%s}" % SEL, instant=True, fmt="table"),
                            target("vmtime_host_ntpd_peer_reachability_ratio{%s}" % SEL, instant=True,
                                   fmt="table"),
                            target("vmtime_host_ntpd_peer_offset_seconds{%s}" % SEL, instant=True, fmt="table")],
                           options=TABLE_OPTS,
                           transformations=[{"id": "merge", "options": {}},
                                            {"id": "organize", "options": {
                                                "excludeByName": {"Time": True, "__name__": True, "job": True,
                                                                  "Value #A": True},
                                                "renameByName": {"Value #B": "reach", "Value #C": "offset (s)",
                                                                 "instance": "hypervisor"}}}],
                           description="Each hypervisor ntpd's associations (collector ntpd): selection state "
                                       "(sys.peer = the one it follows), reach = fraction of the last 8 polls "
                                       "answered, offset = server minus host."), 14, 8))
    P.append(L.place(panel("table", "systemd-timesyncd",
                           [target("vmtime_host_timesyncd_synchronised{%s}" % SEL, instant=True, fmt="table"),
                            target("vmtime_host_timesyncd_offset_seconds{%s}" % SEL, instant=True, fmt="table")],
                           options=TABLE_OPTS,
                           transformations=[{"id": "merge", "options": {}},
                                            {"id": "organize", "options": {
                                                "excludeByName": {"Time": True, "__name__": True, "job": True},
                                                "renameByName": {"Value #A": "synchronised",
                                                                 "Value #B": "last offset (s)",
                                                                 "instance": "hypervisor"}}}],
                           description="Each hypervisor's systemd-timesyncd (collector timesyncd): its flag file "
                                       "(1 = synchronised since boot) and the offset of its last NTP message "
                                       "(server minus host; D-Bus only)."), 10, 8))
    # PTP (linuxptp ptp4l, docs/ptp.md): empty where no exporter runs the ptp collector.
    P.append(L.row("PTP (linuxptp)"))
    P.append(L.place(panel("table", "PTP ports and grandmaster",
                           [target("vmtime_host_ptp_port_state{%s} == 1" % SEL, instant=True, fmt="table"),
                            target("vmtime_host_ptp_grandmaster_clock_class{%s}" % SEL, instant=True, fmt="table"),
                            target("vmtime_host_ptp_steps_removed{%s}" % SEL, instant=True, fmt="table")],
                           options=TABLE_OPTS,
                           transformations=[{"id": "merge", "options": {}},
                                            {"id": "organize", "options": {
                                                "excludeByName": {"Time": True, "__name__": True, "job": True,
                                                                  "Value #A": True},
                                                "renameByName": {"Value #B": "GM clock class",
                                                                 "Value #C": "steps removed",
                                                                 "instance": "hypervisor"}}}],
                           description="Each hypervisor's ptp4l ports and their state (SLAVE when following a "
                                       "master), the grandmaster's clock class (6 locked, 7 holdover, 248 "
                                       "free-running) and the steps removed from it."), 10, 8))
    P.append(L.place(panel("timeseries", "PTP offset from master",
                           [target("vmtime_host_ptp_offset_from_master_seconds{%s}" % SEL, "{{instance}}")],
                           unit="s", custom=TS_CUSTOM,
                           options={"legend": {"displayMode": "list", "placement": "bottom", "showLegend": True},
                                    "tooltip": {"mode": "multi", "sort": "none"}},
                           description="ptp4l's offsetFromMaster: local PTP clock minus master (positive = "
                                       "local ahead). HypervisorPtpOffsetHigh fires beyond 100 us."), 7, 8))
    P.append(L.place(panel("timeseries", "PTP mean path delay",
                           [target("vmtime_host_ptp_mean_path_delay_seconds{%s}" % SEL, "{{instance}}")],
                           unit="s", custom=TS_CUSTOM,
                           options={"legend": {"displayMode": "list", "placement": "bottom", "showLegend": True},
                                    "tooltip": {"mode": "multi", "sort": "none"}},
                           description="ptp4l's meanPathDelay to its master (one way)."), 7, 8))

    P.append(L.row("Exporters"))
    P.append(L.place(panel("table", "Failing collectors",
                           [target("vmtime_collector_success{%s} == 0" % SEL, instant=True, fmt="table")],
                           options=TABLE_OPTS,
                           transformations=[{"id": "organize", "options": {
                               "excludeByName": {"Time": True, "__name__": True, "Value": True}}}],
                           description="Collectors whose last run failed; the exporter log says why."), 8, 7))
    P.append(L.place(panel("timeseries", "Collector duration",
                           [target("vmtime_collector_duration_seconds{%s}" % SEL, "{{instance}} {{collector}}")],
                           unit="s", custom=TS_CUSTOM,
                           options={"legend": {"displayMode": "list", "placement": "bottom", "showLegend": True},
                                    "tooltip": {"mode": "multi", "sort": "desc"}}), 10, 7))
    P.append(L.place(panel("table", "Exporter versions",
                           [target("vmtime_exporter_build_info{%s}" % SEL, instant=True, fmt="table")],
                           options=TABLE_OPTS,
                           transformations=[{"id": "organize", "options": {
                               "excludeByName": {"Time": True, "__name__": True, "Value": True}}}]), 6, 7))
    return dashboard("vmtime-fleet", "vmtime: fleet overview",
                     "Guest clock health across all hypervisors (vmtime-exporter).", P, False,
                     [{"title": "VM detail", "type": "link", "url": "/d/vmtime-vm/vmtime-vm", "icon": "dashboard",
                       "keepTime": True, "includeVars": True}])


def vm_detail():
    L = Layout()
    P = []
    P.append(L.row("$vm"))
    P.append(L.place(panel("stat", "Health score", [target("vmtime_vm_health_score{%s}" % VM)],
                           thresholds=SCORE_THRESHOLDS, decimals=1, minv=0, maxv=100, options=STAT_OPTS,
                           description="0..100 (docs/scoring.md); colours at the default band thresholds."), 3, 5))
    P.append(L.place(panel("stat", "Band", [target("vmtime_vm_health_band{%s}" % VM)],
                           thresholds=BAND_THRESHOLDS, mappings=BAND_MAPPINGS, decimals=0,
                           options=dict(STAT_OPTS, graphMode="none"),
                           description="The exporter's verdict (vmtime_vm_health_band): good, degraded or bad, "
                                       "from the score and the configured band thresholds."), 3, 5))
    P.append(L.place(panel("stat", "Offset vs host", [target("vmtime_vm_clock_offset_seconds{%s}" % VM)], unit="s",
                           options=STAT_OPTS, decimals=3,
                           thresholds=[(None, "red"), (-300, "orange"), (-30, "green"), (30, "orange"), (300, "red")],
                           description="Guest clock minus its hypervisor's clock (positive = guest ahead): what "
                                       "VMClockOffsetWarning/Critical use. The offset vs UTC is in the graph below."), 4, 5))
    P.append(L.place(panel("stat", "State", [target("vmtime_vm_info{%s}" % VM, "{{state}}")],
                           options=dict(STAT_OPTS, textMode="name", colorMode="none", graphMode="none")), 3, 5))
    P.append(L.place(panel("stat", "Guest agent", [target("vmtime_vm_agent_up{%s}" % VM)],
                           thresholds=[(None, "red"), (1, "green")], options=dict(STAT_OPTS, graphMode="none"),
                           mappings=[{"type": "value", "options": {"0": {"text": "down"}, "1": {"text": "up"}}}],
                           no_value="not tried yet",
                           description="Whether the last guest-get-time succeeded; no value until the exporter "
                                       "has tried the agent once (neither up nor down)."), 3, 5))
    P.append(L.place(panel("stat", "Clock", [target("vmtime_vm_clock_stopped{%s}" % VM)],
                           thresholds=[(None, "green"), (1, "red")], options=dict(STAT_OPTS, graphMode="none"),
                           mappings=[{"type": "value", "options": {"0": {"text": "advancing"},
                                                                   "1": {"text": "STOPPED"}}}]), 4, 5))
    P.append(L.place(panel("stat", "Sample age", [target("time() - vmtime_vm_last_sample_timestamp_seconds{%s}" % VM)],
                           unit="s", thresholds=[(None, "green"), (60, "orange"), (300, "red")],
                           options=dict(STAT_OPTS, graphMode="none"),
                           description="Seconds since the last good clock sample (Prometheus time minus exporter time)."), 4, 5))

    band = [
        {"matcher": {"id": "byName", "options": "upper"},
         "properties": [{"id": "custom.fillBelowTo", "value": "lower"}, {"id": "custom.lineWidth", "value": 0},
                        {"id": "custom.fillOpacity", "value": 25},
                        {"id": "color", "value": {"mode": "fixed", "fixedColor": "blue"}}]},
        {"matcher": {"id": "byName", "options": "lower"},
         "properties": [{"id": "custom.lineWidth", "value": 0},
                        {"id": "color", "value": {"mode": "fixed", "fixedColor": "blue"}}]},
    ]
    P.append(L.place(panel("timeseries", "Offset vs host with uncertainty band", [
        target("vmtime_vm_clock_offset_seconds{%s}" % VM, "offset vs host"),
        target("vmtime_vm_clock_offset_seconds{%s} - vmtime_vm_clock_offset_uncertainty_seconds{%s}" % (VM, VM), "lower"),
        target("vmtime_vm_clock_offset_seconds{%s} + vmtime_vm_clock_offset_uncertainty_seconds{%s}" % (VM, VM), "upper"),
        target("vmtime_vm_clock_utc_offset_seconds{%s}" % VM, "offset vs UTC"),
    ], unit="s", overrides=band, custom=TS_CUSTOM,
        options={"legend": {"displayMode": "list", "placement": "bottom", "showLegend": True},
                 "tooltip": {"mode": "multi", "sort": "none"}},
        description="Guest clock minus host CLOCK_REALTIME (and minus UTC); the band is +/- half the measurement round trip."), 16, 9))
    P.append(L.place(panel("table", "Active reasons",
                           [target("vmtime_vm_health_reason{%s} == 1" % VM, instant=True, fmt="table")],
                           options=TABLE_OPTS,
                           transformations=[{"id": "organize", "options": {
                               "excludeByName": {"Time": True, "__name__": True, "Value": True, "job": True,
                                                 "instance": True, "uuid": True}}}],
                           description="Why the score is below 100 (docs/scoring.md: every reason, what raises "
                                       "and clears it, its band)."), 8, 9))

    P.append(L.place(panel("timeseries", "Health score", [target("vmtime_vm_health_score{%s}" % VM, "score")],
                           minv=0, maxv=100, custom=TS_CUSTOM, thresholds=SCORE_THRESHOLDS,
                           options={"legend": {"displayMode": "list", "placement": "bottom", "showLegend": False},
                                    "tooltip": {"mode": "single", "sort": "none"}}), 12, 8))
    P.append(L.place(panel("bargauge", "Score components",
                           [target("vmtime_vm_health_component_score{%s}" % VM, "{{component}}")],
                           minv=0, maxv=1, unit="percentunit",
                           thresholds=[(None, "red"), (0.5, "orange"), (0.99, "green")],
                           options={"displayMode": "gradient", "orientation": "horizontal",
                                    "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
                                    "showUnfilled": True, "valueMode": "color"},
                           description="Each component 0..1 (docs/scoring.md): weighted sum x 100, then gates."), 12, 8))

    P.append(L.place(panel("timeseries", "Reasons over time",
                           [target("vmtime_vm_health_reason{%s} == 1" % VM, "{{reason}}")],
                           minv=0, maxv=1, custom=dict(TS_CUSTOM, lineInterpolation="stepAfter", lineWidth=4),
                           options={"legend": {"displayMode": "list", "placement": "right", "showLegend": True},
                                    "tooltip": {"mode": "multi", "sort": "none"}},
                           description="When each reason was active (a line per reason): e.g. resumed_behind "
                                       "from a resume until the lag is gone."), 24, 6))
    P.append(L.place(panel("timeseries", "Clock steps and stops", [
        target("increase(vmtime_vm_clock_steps_total{%s}[$__rate_interval])" % VM, "steps {{direction}}"),
        target("vmtime_vm_clock_stopped{%s}" % VM, "stopped"),
    ], custom=dict(TS_CUSTOM, drawStyle="bars", fillOpacity=60),
        options={"legend": {"displayMode": "list", "placement": "bottom", "showLegend": True},
                 "tooltip": {"mode": "multi", "sort": "none"}},
        description="Steps beyond the step threshold not explained by drift, per interval; 1 while the clock is stopped."), 8, 8))
    P.append(L.place(panel("timeseries", "Drift", [target("vmtime_vm_clock_drift_ratio{%s} * 1e6" % VM, "drift (ppm)")],
                           custom=TS_CUSTOM,
                           options={"legend": {"displayMode": "list", "placement": "bottom", "showLegend": True},
                                    "tooltip": {"mode": "single", "sort": "none"}},
                           description="Slope of the offset over the drift window, in ppm (1 ppm = 86 ms/day; positive = guest runs fast)."), 8, 8))
    P.append(L.place(panel("timeseries", "Guest agent round trip", [
        target("vmtime_vm_agent_rtt_seconds{%s}" % VM, "rtt"),
        target("vmtime_vm_agent_up{%s}" % VM, "agent up"),
    ], unit="s", custom=TS_CUSTOM,
        overrides=[{"matcher": {"id": "byName", "options": "agent up"},
                    "properties": [{"id": "unit", "value": "none"}, {"id": "custom.axisPlacement", "value": "right"},
                                   {"id": "custom.drawStyle", "value": "line"}, {"id": "max", "value": 1},
                                   {"id": "min", "value": 0}]}],
        options={"legend": {"displayMode": "list", "placement": "bottom", "showLegend": True},
                 "tooltip": {"mode": "multi", "sort": "none"}},
        description="Round trip of the kept virDomainGetTime call (the offset's error bound is half of it)."), 8, 8))

    P.append(L.place(panel("timeseries", "Guest time daemon", [
        target("vmtime_vm_guest_synchronised{%s}" % VM, "synchronised"),
        target("vmtime_vm_guest_stratum{%s}" % VM, "stratum"),
        target("vmtime_vm_guest_leap_status{%s}" % VM, "leap status"),
        target("vmtime_vm_guest_status_error{%s} == 1" % VM, "error: {{error}}"),
    ], custom=TS_CUSTOM,
        options={"legend": {"displayMode": "list", "placement": "bottom", "showLegend": True},
                 "tooltip": {"mode": "multi", "sort": "none"}},
        description="What the guest's own time daemon reports (only with the guest_status collector enabled); "
                    "'error' while reading it fails (docs/guest-status.md)."), 12, 7))
    P.append(L.place(panel("timeseries", "Hypervisor reference", [
        target("vmtime_host_chrony_tracking_system_time_seconds{%s}" % SEL, "host chronyd offset"),
        target("vmtime_host_timex_maxerror_seconds{%s}" % SEL, "host kernel maxerror"),
        target("vmtime_host_synchronised{%s}" % SEL, "host synchronised ({{source}})"),
    ], unit="s", custom=TS_CUSTOM,
        overrides=[{"matcher": {"id": "byRegexp", "options": "host synchronised.*"},
                    "properties": [{"id": "unit", "value": "none"}, {"id": "custom.axisPlacement", "value": "right"},
                                   {"id": "custom.lineInterpolation", "value": "stepAfter"},
                                   {"id": "min", "value": 0}, {"id": "max", "value": 1}]}],
        options={"legend": {"displayMode": "list", "placement": "bottom", "showLegend": True},
                 "tooltip": {"mode": "multi", "sort": "none"}},
        description="The host clock the VM offset is measured against (positive chronyd offset = host fast), "
                    "and whether the exporter counts it synchronised (1/0, right axis; source chrony or kernel)."), 12, 7))
    return dashboard("vmtime-vm", "vmtime: VM detail",
                     "One VM's clock: offset with its error bound, score and components, reasons, steps, agent.",
                     P, True,
                     [{"title": "Fleet overview", "type": "link", "url": "/d/vmtime-fleet/vmtime-fleet",
                       "icon": "dashboard", "keepTime": True, "includeVars": False}])


# --- federated fleet view (docs/scaling.md "Beyond one Prometheus") ---------
#
# A global Prometheus that federates only the `instance:` recording rules
# from each local (shard) Prometheus and evaluates the `job:` rules itself
# has no per-VM series: every query here reads `instance:vmtime_*` or
# `job:vmtime_*` series only (tests/e2e/test_fleet.py checks that and runs
# them against a federating Prometheus). VM-level detail stays on the shards'
# vmtime-fleet and vmtime-vm dashboards.
FED_SEL = 'job=~"$job",instance=~"$instance"'


def federated_variables():
    ds = {"type": "datasource", "name": "datasource", "label": "Data source (global Prometheus)",
          "query": "prometheus", "current": {}, "hide": 0, "refresh": 1, "regex": "", "options": []}

    def q(name, label, query):
        return {"type": "query", "name": name, "label": label, "datasource": DS, "definition": query,
                "query": {"query": query, "refId": "PrometheusVariableQueryEditor-VariableQuery"},
                "refresh": 2, "sort": 1, "multi": True, "includeAll": True, "allValue": ".+",
                "current": {}, "hide": 0, "options": [], "regex": ""}

    return {"list": [ds,
                     q("job", "Job", "label_values(instance:vmtime_vm_health_score:min, job)"),
                     q("instance", "Hypervisor",
                       'label_values(instance:vmtime_vm_health_score:min{job=~"$job"}, instance)')]}


def fleet_federated():
    L = Layout()
    P = []
    band_count = 'instance:vmtime_vms_by_score_band:count{%s%s}'
    reasons = 'instance:vmtime_vm_health_reason:count{%s%s}'
    P.append(L.row("Fleet (federated recording rules)"))
    P.append(L.place(panel("stat", "VMs", [target("sum(%s)" % (band_count % (FED_SEL, "")))],
                           description="VMs with a health band (every domain the exporters list), summed "
                                       "from instance:vmtime_vms_by_score_band:count.",
                           options=dict(STAT_OPTS, colorMode="none")), 4, 4))
    P.append(L.place(panel("stat", "VMs in the bad band",
                           [target("sum(%s) or vector(0)" % (band_count % (FED_SEL, ',band="bad"')))],
                           thresholds=[(None, "green"), (1, "red")], options=STAT_OPTS,
                           description="The exporters' band verdict, counted per hypervisor by the shards."),
                     4, 4))
    P.append(L.place(panel("stat", "Worst |offset|",
                           [target("max(instance:vmtime_vm_clock_offset_abs_seconds:max{%s})" % FED_SEL)],
                           unit="s", thresholds=OFFSET_THRESHOLDS, options=STAT_OPTS,
                           description="Largest absolute guest offset of any selected hypervisor."), 4, 4))
    P.append(L.place(panel("stat", "Stopped clocks",
                           [target("sum(%s) or vector(0)" % (reasons % (FED_SEL, ',reason="clock_stopped"')))],
                           thresholds=[(None, "green"), (1, "red")], options=STAT_OPTS,
                           description="VMs with the clock_stopped reason active."), 4, 4))
    P.append(L.place(panel("stat", "Hypervisors with bad VMs",
                           [target("count(%s > 0) or vector(0)" % (band_count % (FED_SEL, ',band="bad"')))],
                           thresholds=[(None, "green"), (1, "red")], options=STAT_OPTS), 4, 4))
    P.append(L.place(panel("stat", "Hypervisors unsynchronised",
                           [target("count(%s > 0) or vector(0)"
                                   % (reasons % (FED_SEL, ',reason="host_unsynchronised"')))],
                           thresholds=[(None, "green"), (1, "red")], options=STAT_OPTS,
                           description="Hypervisors whose VMs carry the host_unsynchronised reason (the "
                                       "host gauge itself is not federated)."), 4, 4))
    bands = [target("sum(%s) or vector(0)" % (band_count % (FED_SEL, ',band="%s"' % name)), name)
             for name, _ in BAND_COLORS]
    score_band_panels(L, P, bands, "VMs per health band, now.")

    P.append(L.row("Worst hypervisors"))
    lowest = "bottomk(20, instance:vmtime_vm_health_score:min{%s})" % FED_SEL
    P.append(L.place(panel("table", "Lowest score per hypervisor",
                           [target(lowest, instant=True, fmt="table"),
                            target("instance:vmtime_vm_clock_offset_abs_seconds:max{%s} and on (job, instance) %s"
                                   % (FED_SEL, lowest), instant=True, fmt="table"),
                            target("sum by (job, instance) (%s) and on (job, instance) %s"
                                   % (band_count % (FED_SEL, ',band="bad"'), lowest), instant=True, fmt="table")],
                           thresholds=SCORE_THRESHOLDS,
                           options=dict(TABLE_OPTS, sortBy=[{"displayName": "lowest score", "desc": False}]),
                           decimals=1,
                           transformations=[{"id": "merge", "options": {}},
                                            {"id": "organize", "options": {
                                                "excludeByName": {"Time": True, "__name__": True},
                                                "renameByName": {"Value #A": "lowest score",
                                                                 "Value #B": "worst |offset| (s)",
                                                                 "Value #C": "bad VMs",
                                                                 "instance": "hypervisor"}}}],
                           description="The 20 hypervisors with the lowest VM score; the VMs themselves are "
                                       "on that shard's fleet dashboard."), 12, 10))
    P.append(L.place(panel("table", "Active reasons",
                           [target("sum by (reason) (%s)" % (reasons % (FED_SEL, "")), instant=True, fmt="table")],
                           options=dict(TABLE_OPTS, sortBy=[{"displayName": "VMs", "desc": True}]),
                           transformations=[{"id": "organize", "options": {
                               "excludeByName": {"Time": True}, "renameByName": {"Value": "VMs"}}}],
                           description="VMs per active health reason, summed over the hypervisors."), 6, 10))
    P.append(L.place(panel("table", "VMs per hypervisor",
                           [target("sum by (instance) (%s)" % (band_count % (FED_SEL, "")), instant=True,
                                   fmt="table")],
                           options=dict(TABLE_OPTS, sortBy=[{"displayName": "VMs", "desc": True}]),
                           transformations=[{"id": "organize", "options": {
                               "excludeByName": {"Time": True},
                               "renameByName": {"Value": "VMs", "instance": "hypervisor"}}}]), 6, 10))
    P.append(L.place(panel("timeseries", "VMs per reason over time",
                           [target("sum by (reason) (%s)" % (reasons % (FED_SEL, "")), "{{reason}}")],
                           custom=dict(TS_CUSTOM, drawStyle="line", fillOpacity=10),
                           options={"legend": {"displayMode": "table", "placement": "right", "showLegend": True,
                                               "calcs": ["lastNotNull", "max"]},
                                    "tooltip": {"mode": "multi", "sort": "desc"}}), 12, 8))
    P.append(L.place(panel("timeseries", "Worst |offset| per hypervisor (top 10)",
                           [target("topk(10, instance:vmtime_vm_clock_offset_abs_seconds:max{%s})" % FED_SEL,
                                   "{{instance}}")],
                           unit="s", custom=TS_CUSTOM,
                           options={"legend": {"displayMode": "list", "placement": "bottom", "showLegend": True},
                                    "tooltip": {"mode": "multi", "sort": "desc"}}), 12, 8))
    P.append(L.place(panel("timeseries", "Fleet worst |offset| and bad VMs per job",
                           [target("job:vmtime_vm_clock_offset_abs_seconds:max{job=~\"$job\"}",
                                   "{{job}} worst |offset|"),
                            target('job:vmtime_vms_by_score_band:count{job=~"$job",band="bad"}', "{{job}} bad VMs")],
                           custom=TS_CUSTOM,
                           options={"legend": {"displayMode": "list", "placement": "bottom", "showLegend": True},
                                    "tooltip": {"mode": "multi", "sort": "none"}},
                           description="The job: rules, evaluated by the global Prometheus over every shard's "
                                       "instance: series."), 24, 7))
    d = dashboard("vmtime-fleet-federated", "vmtime: fleet overview (federated)",
                  "Guest clock health across all shards, from the federated instance:/job: recording rules "
                  "only (docs/scaling.md).", P, False,
                  [{"title": "Fleet overview (one shard)", "type": "link", "url": "/d/vmtime-fleet/vmtime-fleet",
                    "icon": "dashboard", "keepTime": True, "includeVars": False}])
    d["templating"] = federated_variables()
    return d


def main():
    for name, d in (("vmtime-fleet.json", fleet()), ("vmtime-vm.json", vm_detail()),
                    ("vmtime-fleet-federated.json", fleet_federated())):
        with open(os.path.join(HERE, name), "w") as f:
            json.dump(d, f, indent=2)
            f.write("\n")


if __name__ == "__main__":
    main()
