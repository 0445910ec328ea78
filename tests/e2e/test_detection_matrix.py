#!/usr/bin/python3
"""End to end: the detection matrix on real guests (issue 12, item 6).

One private lab (tests/lab/vmlab.py) with seven TCG guests, the real exporter
binary against the lab's libvirtd, and a private chronyd (`-x`, command
socket only, its one server 127.0.0.1:1 never answers) as the host's chronyd.
Every fault is made by the lab on a real guest, and every verdict is read
from the exporter's /metrics: `vmtime_vm_health_reason{reason}` (the exact
set) and `vmtime_vm_health_band` (0 good, 1 degraded, 2 bad).

Guests and what is done to them (tracks run concurrently, scenarios of one
track one after the other, each starting from the guest's clean state):

| guest | chronyd | scenarios |
|---|---|---|
| dm-clean | none | watched untouched for 5 minutes; then the host chronyd loses sync (`chronyc local off`) |
| dm-step | none | healthy; stepped back 8 min; stepped forward 2 min |
| dm-hold | none | held still; drifting |
| dm-life | none | paused 20 s and resumed; saved, 10 s later restored (made persistent first, then as the lab's transient domain) |
| dm-agent | none | agent hung (SIGSTOP 40 s); agent killed (restarted after 25 s) |
| dm-local10 | local stratum 10 | chronyd stopped before the exporter starts, started again: stratum 10 |
| dm-unreach | server 192.0.2.1 | same: chronyd that never synchronises |

A guest is reset between scenarios (`set_clock_to_host`, checked, retried;
`drift_clock(0)`; `release_clock`), and the next scenario waits (bounded)
until the guest's reason set is back to the clean baseline. The correction
of a stepped clock is itself a step, which stays in the detector window: the
test config keeps that window short (`scoring.drift_window_s`,
DRIFT_WINDOW_S) so a guest is clean again within about a minute. Offset
reasons are expected by the documented thresholds (set explicitly in the
config) applied to the offset the lab measured itself (steps, lag after a
pause) or, for a clock still moving away (held, drifting), to the offset the
same scrape exports.

Detection latency = time of the first /metrics scrape (midpoint of the HTTP
request) that shows the scenario's full expected reason set, minus the fault
time t0: when the lab call that makes the fault returned (step, drift,
chronyd start, `chronyc local off`), when `resume()` / `virDomainRestore`
returned (pause, save/restore: the lag exists from then on), the call's start
plus 0.5 s for hang/kill (the lab's guest script signals qemu-ga 0.5 s after
the call starts), the call's start for hold (the guest loop stops the clock
at once). /metrics is scraped every SCRAPE_PERIOD_S; the collectors run every
2 s (libvirt, chrony) and 6 s (guest_status), so latencies are a few
intervals by construction and scale with the configured intervals.

The measured table is written to $VMTIME_BINARY_DIR/detection_matrix.md (or
the system temp dir; next to it the exporter's log and every scrape's
offsets, reasons and bands as JSON) and printed with any failure; docs/scoring.md
("Scenarios on real guests") holds a copy.

What the exporter reported BEFORE the detection work of issue 12 (main at
7ffe3de; run of 2026-12-01, 2-core host under load; no band metric yet, so
the band is the contract's reading of the score: good >= 90, bad < 60):

| scenario | reasons seen (in order) | score | latency |
|---|---|---|---|
| healthy | {} | 92.5 | - |
| stepped back 8 min | {offset_critical, offset_high, step_backward} | 20 | 3.5-3.8 s |
| stepped forward 2 min | {offset_high, step_forward} | 69.5 (degraded) | 3.4-4.1 s |
| held still | {step_backward}, then clock_stopped on and off every other sample, offset_high after 30 s | 10 / 70-88 | never the exact set |
| paused 20 s | during the pause {agent_unreachable, stale} (50); after resume {clock_stopped} (10) for one interval, then {} at -20 s (80-82) | | no lag reason |
| saved and restored (5-7 s down) | {agent_unreachable, stale}; then {clock_stopped} or {step_backward}; then {} at -5..-7 s (87-90) | | no lag reason |
| drifting 1000 / 5000 ppm | {drift_high}, flickering at 1000 ppm | 91-92 (good) | 14 s / 5.5 s |
| agent hung | {stale}, then {agent_unreachable, stale}; once a {drift_high} flash from the last, slow sample | 50 | 1.5-9 s |
| agent killed | {agent_unreachable}, then {agent_unreachable, stale} | 50 | 3.7-5.5 s |
| guest chronyd local stratum 10 | {stratum_high} | 90 (good) | 5.5-14 s |
| guest chronyd unsynchronised | {unsynchronised} | 75 | 3.8-16 s |
| host chronyd unsynchronised | {host_unsynchronised}; no vmtime_host_synchronised | 87.5 | 1.9-2.2 s |
| clean guest, 5 min | {} but once {drift_high} in the first 34 s (few noisy samples: drift ratio up to 12,000 ppm in the first minute, 260 ppm later; offsets -50..+65 ms, uncertainty up to 80 ms on TCG) | 92.5 | |
| start-up | {no_data} then {} after 2.2 s; no agent_unreachable | | |

Innocent guests also flashed `stale` for about a second while another
guest's agent hung (libvirt interval 2 s, freshness 2 intervals).

Trials of the issue-12 branches before they were merged found three false
alarms, fixed in the scorer since: a held clock's first pair read as
step_backward for the whole window; one uncertain sample (+-23..30 ms, the
exporter's first or the first after an agent restart) among 4-6 gave
+-4,000 ppm and drift_high on clean guests; offset_elevated fired on a clean
guest reading +63 ms with 76 ms uncertainty. The measured table on main is
in docs/scoring.md. The matrix also found that a transient domain saved and
restored (libvirt forgets it while saved) lost its history and came back
without resumed_behind; the store keeps it since.

Env: VMTIME_EXPORTER (binary), VMTIME_SOURCE_DIR (repo). Needs root (the lab
runs libvirtd and QEMU/TCG); skipped otherwise.
"""

import contextlib
import dataclasses
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import urllib.request
from typing import Callable, Dict, FrozenSet, List, Optional, Tuple

import pytest

SOURCE_DIR = os.environ.get(
    "VMTIME_SOURCE_DIR", os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..")))
sys.path.insert(0, os.path.join(SOURCE_DIR, "tests", "lab"))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import vmlab  # noqa: E402
from e2e_util import wait_for  # noqa: E402
from exporter_proc import Exporter  # noqa: E402

EXPORTER = os.environ.get("VMTIME_EXPORTER", "")

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="the lab needs root (libvirtd, QEMU)"),
    pytest.mark.skipif(not EXPORTER or not os.access(EXPORTER, os.X_OK),
                       reason="VMTIME_EXPORTER does not name the exporter binary"),
]

# --- the test configuration ---------------------------------------------------

SCRAPE_PERIOD_S = 0.3
LIBVIRT_INTERVAL_S = 2
GUEST_STATUS_INTERVAL_S = 6
DRIFT_WINDOW_S = 40
# The lab's hold resets the clock to its second every 0.2 s, so a held clock
# still moves by up to ~0.3 s (back and forth) between samples: 2 % of the
# default 15 s interval, but 15 % of this test's 2 s one, beyond the default
# stopped_ratio (0.1) for some pairs. The ratio scales with the interval.
STOPPED_RATIO = 0.25
# Score thresholds the expected sets are derived from (set explicitly, so the
# test does not depend on the defaults).
OFFSET_ELEVATED_S = 0.050
OFFSET_WARNING_S = 30.0
OFFSET_CRITICAL_S = 300.0
DRIFT_PPM = 5000.0
SAVED_S = 10.0  # time between virDomainSave and virDomainRestore
CLEAN_WATCH_S = 300.0
HOST_STRATUM = 2

# Bounds: a reset guest is clean again once the correction step has left the
# detector window; the tracks together must end in TRACKS_TIMEOUT_S.
CLEAR_TIMEOUT_S = DRIFT_WINDOW_S + 60
TRACKS_TIMEOUT_S = 480

CLEAN, STEP, HOLD, LIFE, AGENT, LOCAL10, UNREACH = (
    "dm-clean", "dm-step", "dm-hold", "dm-life", "dm-agent", "dm-local10", "dm-unreach")
GUESTS = {CLEAN: "none", STEP: "none", HOLD: "none", LIFE: "none", AGENT: "none",
          LOCAL10: "local10", UNREACH: "unreachable"}

# Reasons a clean lab guest without a time daemon carries: with guest_status
# enabled the exporter asks it for chronyd/ntpd/timesyncd, finds none, and
# names the points that unknown sync state costs (guest_sync_unknown). True
# of the lab guest, and no alarm (band good).
BASELINE: FrozenSet[str] = frozenset({"guest_sync_unknown"})

BAND_NAMES = {0: "good", 1: "degraded", 2: "bad"}


def exporter_config(uri: str, chrony_sock: str) -> str:
    return f"""\
libvirt:
  uri: "{uri}"
  agent_timeout: 2s
  call_deadline: 5s
  agent_retry_interval: 2s
chrony:
  address: "unix://{chrony_sock}"
guest_status:
  exec_timeout: 15s
collectors:
  libvirt: {{interval: {LIBVIRT_INTERVAL_S}s}}
  chrony: {{interval: 2s}}
  timex: {{interval: 2s}}
  ntp: {{enabled: false}}
  guest_status: {{enabled: true, interval: {GUEST_STATUS_INTERVAL_S}s, timeout: 60s}}
scoring:
  drift_window_s: {DRIFT_WINDOW_S}s
  stopped_ratio: {STOPPED_RATIO}
  offset_elevated_s: {int(OFFSET_ELEVATED_S * 1000)}ms
  offset_warning_s: {int(OFFSET_WARNING_S)}s
  offset_critical_s: {int(OFFSET_CRITICAL_S)}s
"""


def offset_reasons(offset_s: float) -> FrozenSet[str]:
    """The offset reasons the documented thresholds give for |offset_s|."""
    a = abs(offset_s)
    if a > OFFSET_CRITICAL_S:
        return frozenset({"offset_high", "offset_critical"})
    if a > OFFSET_WARNING_S:
        return frozenset({"offset_high"})
    if a > OFFSET_ELEVATED_S:
        return frozenset({"offset_elevated"})
    return frozenset()


# --- the host's chronyd --------------------------------------------------------

class HostChrony:
    """A private chronyd -x (never touches the clock) with only a command
    socket; synchronised through `local stratum N` while local is on, and
    unsynchronised once `chronyc local off` leaves it with its one server,
    127.0.0.1:1, which never answers."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="vmtime-dm-chrony-")
        os.chmod(self.dir, 0o700)
        self.sock = os.path.join(self.dir, "cmd.sock")
        conf = os.path.join(self.dir, "chrony.conf")
        with open(conf, "w") as f:
            f.write(f"port 0\ncmdport 0\nbindcmdaddress {self.sock}\n"
                    f"pidfile {self.dir}/chronyd.pid\n"
                    f"server 127.0.0.1 port 1 iburst minpoll -2 maxpoll -2\n"
                    f"local stratum {HOST_STRATUM}\n")
        self.log = open(os.path.join(self.dir, "chronyd.log"), "w")
        self.proc = subprocess.Popen(
            [shutil.which("chronyd") or "/usr/sbin/chronyd", "-d", "-x", "-u", "root", "-f", conf],
            stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)
        wait_for(lambda: self.tracking()[13] == "Normal", 20,
                   "the private host chronyd to be synchronised (local stratum)")

    def chronyc(self, *args: str) -> str:
        r = subprocess.run(["chronyc", "-h", self.sock, *args], capture_output=True, text=True,
                           timeout=10)
        if r.returncode != 0:
            raise RuntimeError(f"chronyc {args}: exit {r.returncode}: {r.stdout}{r.stderr}")
        return r.stdout

    def tracking(self) -> List[str]:
        return self.chronyc("-c", "tracking").strip().split(",")

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)


# --- reading /metrics ----------------------------------------------------------

LINE_RE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)')
LABEL_RE = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


@dataclasses.dataclass(frozen=True)
class Obs:
    """One VM as one scrape showed it."""
    t: float                       # host monotonic, midpoint of the scrape
    reasons: FrozenSet[str]
    band: Optional[str]
    score: Optional[float]
    offset_s: Optional[float]
    drift: Optional[float]         # vmtime_vm_clock_drift_ratio
    uncertainty: Optional[float]   # vmtime_vm_clock_offset_uncertainty_seconds
    daemon: Optional[str]          # vmtime_vm_guest_status_source{daemon}
    host_sync: Tuple[Tuple[str, float], ...]   # vmtime_host_synchronised{source} of that scrape
    sample_ts: Optional[float] = None  # vmtime_vm_last_sample_timestamp_seconds


def parse_scrape(text: str, t: float) -> Dict[str, Obs]:
    vms: Dict[str, dict] = {}
    host = []
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = LINE_RE.match(line)
        if not m:
            continue
        name, labels, value = m.group(1), dict(LABEL_RE.findall(m.group(2) or "")), m.group(3)
        if name == "vmtime_host_synchronised":
            host.append((labels.get("source", ""), float(value)))
            continue
        dom = labels.get("domain")
        if dom is None or not name.startswith("vmtime_vm_"):
            continue
        vm = vms.setdefault(dom, {"reasons": set(), "band": None, "score": None,
                                  "offset": None, "drift": None, "unc": None,
                                  "daemon": None, "ts": None})
        if name == "vmtime_vm_health_reason" and float(value) == 1:
            vm["reasons"].add(labels.get("reason", "?"))
        elif name == "vmtime_vm_health_band":
            vm["band"] = BAND_NAMES.get(int(float(value)), value)
        elif name == "vmtime_vm_health_score":
            vm["score"] = float(value)
        elif name == "vmtime_vm_clock_offset_seconds":
            vm["offset"] = float(value)
        elif name == "vmtime_vm_clock_offset_uncertainty_seconds":
            vm["unc"] = float(value)
        elif name == "vmtime_vm_clock_drift_ratio":
            vm["drift"] = float(value)
        elif name == "vmtime_vm_guest_status_source" and float(value) == 1:
            vm["daemon"] = labels.get("daemon")
        elif name == "vmtime_vm_last_sample_timestamp_seconds":
            vm["ts"] = float(value)
    host_t = tuple(sorted(host))
    return {d: Obs(t, frozenset(v["reasons"]), v["band"], v["score"], v["offset"], v["drift"],
                   v["unc"], v["daemon"], host_t, v["ts"]) for d, v in vms.items()}


class Watcher:
    """Scrapes /metrics every SCRAPE_PERIOD_S in a thread and keeps every
    VM's observations; scenario threads wait on them (always bounded)."""

    def __init__(self, exporter: Exporter):
        self.exporter = exporter
        self.cond = threading.Condition()
        self.obs: Dict[str, List[Obs]] = {}
        self.scrapes = 0
        self.errors = 0
        self.last_error = ""
        self.start = time.monotonic()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="metrics-watcher", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            t0 = time.monotonic()
            try:
                with urllib.request.urlopen(self.exporter.base + "/metrics", timeout=10) as r:
                    text = r.read().decode("utf-8", "replace")
                t1 = time.monotonic()
                parsed = parse_scrape(text, (t0 + t1) / 2)
                with self.cond:
                    for d, o in parsed.items():
                        self.obs.setdefault(d, []).append(o)
                    self.scrapes += 1
                    self.cond.notify_all()
            except Exception as e:  # noqa: BLE001 - counted, reported on timeouts
                with self.cond:
                    self.errors += 1
                    self.last_error = repr(e)
            self._stop.wait(max(0.0, SCRAPE_PERIOD_S - (time.monotonic() - t0)))

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=15)

    def latest(self, dom: str) -> Optional[Obs]:
        with self.cond:
            lst = self.obs.get(dom)
            return lst[-1] if lst else None

    def between(self, dom: str, t_from: float, t_to: float = float("inf")) -> List[Obs]:
        with self.cond:
            return [o for o in self.obs.get(dom, []) if t_from <= o.t <= t_to]

    def wait(self, dom: str, pred: Callable[[Obs], bool], timeout: float, what: str,
             after: float = 0.0) -> Obs:
        """The first observation at or after `after` satisfying pred (it may
        already exist), waiting at most timeout s from now."""
        deadline = time.monotonic() + timeout
        idx = 0
        with self.cond:
            while True:
                lst = self.obs.get(dom, [])
                while idx < len(lst):
                    o = lst[idx]
                    idx += 1
                    if o.t >= after and pred(o):
                        return o
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                if self.exporter.proc.poll() is not None:
                    raise AssertionError(f"exporter exited ({self.exporter.proc.returncode}) "
                                         f"while waiting for {what}")
                self.cond.wait(min(remaining, 1.0))
        last = self.latest(dom)
        raise TimeoutError(
            f"{dom}: {what}: not within {timeout:.0f} s; last seen: "
            f"{fmt_obs(last) if last else 'nothing'} (scrape errors {self.errors}: "
            f"{self.last_error})\nhistory: {self.history(dom, max(after, self.start) - 5)}")

    def history(self, dom: str, t_from: float, t_to: float = float("inf")) -> str:
        """Distinct (reasons, band) states of a VM in [t_from, t_to], relative
        to t_from."""
        out, prev = [], None
        for o in self.between(dom, t_from, t_to):
            key = (o.reasons, o.band, None if o.score is None else round(o.score))
            if key != prev:
                out.append(f"+{o.t - t_from:.1f}s {fmt_set(o.reasons)} {o.band} ({key[2]})")
                prev = key
        return "; ".join(out) or "(none)"


def fmt_set(s) -> str:
    return "{" + ", ".join(sorted(s)) + "}"


def fmt_obs(o: Obs) -> str:
    return (f"reasons {fmt_set(o.reasons)} band {o.band} score {o.score} offset {o.offset_s} "
            f"daemon {o.daemon} host_synchronised {dict(o.host_sync)}")


# --- scenarios -----------------------------------------------------------------

@dataclasses.dataclass
class Result:
    name: str
    guest: str
    expected: Optional[FrozenSet[str]] = None
    bands: Tuple[str, ...] = ()
    observed: Optional[FrozenSet[str]] = None
    band: Optional[str] = None
    score: Optional[float] = None
    latency_s: Optional[float] = None
    first_reason_s: Optional[float] = None   # first reason beyond the baseline
    cleared_s: Optional[float] = None        # reset -> clean baseline again
    note: str = ""
    failures: List[str] = dataclasses.field(default_factory=list)
    history: str = ""
    obs: Optional[Obs] = None                # the scrape that matched


class Rig:
    def __init__(self, lab: vmlab.Lab, exporter: Exporter, watcher: Watcher, host: HostChrony,
                 exporter_start: float):
        self.lab = lab
        self.exporter = exporter
        self.watcher = watcher
        self.host = host
        self.exporter_start = exporter_start
        self.results: Dict[str, Result] = {}
        self.events: List[Tuple[float, str, str]] = []
        self.lock = threading.Lock()

    def record(self, r: Result) -> None:
        with self.lock:
            self.results[r.name] = r

    def event(self, guest: str, what: str) -> None:
        with self.lock:
            self.events.append((time.monotonic(), guest, what))


def is_good(o: Obs) -> bool:
    """Band good; for an exporter without vmtime_vm_health_band (before
    issue 12) the score against the contract's band_good_min (90). Only the
    waits for a clean start use this; every assertion reads the band."""
    if o.band is not None:
        return o.band == "good"
    return o.score is not None and o.score >= 90


def wait_clean(rig: Rig, dom: str, timeout: float, after: float = 0.0,
               baseline: FrozenSet[str] = BASELINE) -> Obs:
    return rig.watcher.wait(
        dom, lambda o: o.reasons == baseline and is_good(o), timeout,
        f"clean state {fmt_set(baseline)} and band good", after=after)


def resync(rig: Rig, g: str, attempts: int = 5) -> None:
    """Sets the guest clock to the host's and checks it took: right after a
    resume the agent may still be working through calls queued during the
    pause, and a setTime that waits behind them lands late (seen: 5 s)."""
    off = unc = None
    for _ in range(attempts):
        rig.lab.set_clock_to_host(g)
        off, unc = rig.lab.guest_offset(g)
        if abs(off) <= 0.02 + unc:
            rig.event(g, f"resynchronised ({off * 1e3:+.1f} ms)")
            return
        time.sleep(1)
    raise vmlab.LabError(f"{g}: clock still {off:+.3f} s (+-{unc:.3f}) off after {attempts} "
                         f"set_clock_to_host")


def run_scenario(rig: Rig, name: str, guest: str, inject: Callable[[], Tuple[float, dict]],
                 expected: Callable[[dict, Obs], FrozenSet[str]], bands: Tuple[str, ...],
                 reset: Optional[Callable[[], None]], *, timeout: float = 20,
                 forbidden: FrozenSet[str] = frozenset(), transit_subset: bool = False,
                 persist: FrozenSet[str] = frozenset(), persist_s: float = 0.0,
                 settle_s: float = 0.0,
                 final_band: Optional[str] = None,
                 forbidden_once: Optional[Tuple[str, FrozenSet[str]]] = None,
                 clear_timeout: float = 0.0, baseline: FrozenSet[str] = BASELINE,
                 precondition: Optional[Callable[[], None]] = None) -> bool:
    """Runs one scenario on a clean guest: inject, wait for the exact expected
    set (bounded by timeout: a few collector intervals, well inside the
    detector window, so a wrong extra reason cannot pass by ageing out),
    check the band of that same scrape, keep the fault for persist_s while
    every scrape from settle_s after detection on must still show `persist`
    (and the band must reach final_band: evidence of drift grows with time),
    reset, wait until clean again. `forbidden` reasons may never show from the fault to the
    end of the reset; forbidden_once = (reason, set): the set may not show
    from the first scrape with that reason until the reset. expected(info, obs) is the full set for that scrape (info:
    what inject measured; obs: for reasons that follow the exported offset,
    which keeps moving while a clock drifts or is held). Returns whether the
    guest is clean again (False stops the track: a later scenario on it
    would not start clean)."""
    r = Result(name, guest)
    rig.record(r)
    w = rig.watcher
    clear_timeout = clear_timeout or CLEAR_TIMEOUT_S
    t_start = time.monotonic()
    t_reset_start = None
    clean = True
    try:
        if precondition:
            precondition()
        else:
            wait_clean(rig, guest, clear_timeout, baseline=baseline)
        t_start = time.monotonic()
        t0, info = inject()
        rig.event(guest, f"{name}: fault in place ({info.get('note', '')})")
        r.bands = bands
        r.note = info.get("note", "")
        last0 = w.latest(guest)
        r.expected = expected(info, last0) if last0 else None
        try:
            o = w.wait(guest, lambda o: o.reasons == expected(info, o), timeout,
                       f"{name}: the expected reasons", after=t0)
            r.expected = expected(info, o)
            r.observed, r.band, r.score, r.obs = o.reasons, o.band, o.score, o
            r.latency_s = o.t - t0
            if o.band not in bands:
                r.failures.append(f"band {o.band} (score {o.score}) with reasons "
                                  f"{fmt_set(o.reasons)}; expected band {' or '.join(bands)}")
            if persist_s:
                time.sleep(max(0.0, o.t + persist_s - time.monotonic()))
                during = w.between(guest, o.t, o.t + persist_s)
                for p in w.between(guest, o.t + settle_s, o.t + persist_s):
                    if not persist <= p.reasons:
                        r.failures.append(f"{fmt_set(persist)} did not stay while the fault "
                                          f"lasted: {fmt_set(p.reasons)} at +{p.t - t0:.1f}s")
                        break
                if final_band:
                    reached = [p for p in during if p.band == final_band]
                    if reached:
                        r.note += f"; band {final_band} after {reached[0].t - t0:.1f} s"
                    else:
                        r.failures.append(f"band never {final_band} in the {persist_s:.0f} s "
                                          f"after detection: {sorted({str(p.band) for p in during})}")
        except TimeoutError as e:
            last = w.latest(guest)
            if last:
                r.observed, r.band, r.score = last.reasons, last.band, last.score
                r.expected = expected(info, last)
            r.failures.append(f"expected reasons (last: {fmt_set(r.expected or ())}) not seen: {e}")
        new = [o for o in w.between(guest, t0) if o.reasons - baseline]
        if new:
            r.first_reason_s = new[0].t - t0
        if transit_subset:
            for o in w.between(guest, t0, t0 + (r.latency_s or timeout)):
                if r.expected is not None and not o.reasons <= r.expected:
                    r.failures.append(f"on the way to {fmt_set(r.expected)}: "
                                      f"{fmt_set(o.reasons)} at +{o.t - t0:.1f}s")
                    break
    except Exception as e:  # noqa: BLE001 - the scenario fails, the track goes on
        r.failures.append(f"{type(e).__name__}: {e}\n{traceback.format_exc(limit=3)}")
    finally:
        try:
            if reset is not None:
                t_reset_start = time.monotonic()
                reset()
                t_reset = time.monotonic()
                rig.event(guest, f"{name}: reset")
                o = wait_clean(rig, guest, clear_timeout, after=t_reset, baseline=baseline)
                r.cleared_s = o.t - t_reset
        except Exception as e:  # noqa: BLE001
            r.failures.append(f"did not return to the clean state after reset: {e}")
            clean = False
        seen = set().union(*[o.reasons for o in w.between(guest, t_start)] or [set()])
        bad = seen & forbidden
        if bad:
            r.failures.append(f"forbidden reasons seen during the scenario: {fmt_set(bad)}")
        if forbidden_once:
            trigger, banned = forbidden_once
            during = w.between(guest, t_start, t_reset_start or float("inf"))
            first = next((o.t for o in during if trigger in o.reasons), None)
            late = [o for o in during if first is not None and o.t >= first
                    and o.reasons & banned]
            if late:
                r.failures.append(f"{fmt_set(late[0].reasons & banned)} at +{late[0].t - t_start:.1f}s"
                                  f", after {trigger} showed at +{first - t_start:.1f}s")
        r.history = w.history(guest, t_start)
    return clean


def not_run(rig: Rig, names: List[str], guest: str, why: str) -> None:
    for n in names:
        rig.record(Result(n, guest, failures=[f"not run: {why}"]))


def track_step(rig: Rig) -> None:
    """healthy, then stepped back 8 minutes, then stepped forward 2 minutes."""
    lab, g = rig.lab, STEP
    r = Result("healthy", g, expected=BASELINE, bands=("good",))
    rig.record(r)
    try:
        o = wait_clean(rig, g, 120)
        r.observed, r.band, r.score = o.reasons, o.band, o.score
        if o.band != "good":
            r.failures.append(f"band {o.band} (score {o.score})")
        r.note = f"{o.t - rig.exporter_start:.1f} s after the exporter started"
    except Exception as e:  # noqa: BLE001
        r.failures.append(str(e))
        last = rig.watcher.latest(g)
        if last:
            r.observed, r.band, r.score = last.reasons, last.band, last.score
        r.history = rig.watcher.history(g, rig.exporter_start)
        return not_run(rig, ["step_back_8min", "step_forward_2min"], g, "the guest never was clean")
    r.history = rig.watcher.history(g, rig.exporter_start)

    def step(seconds):
        def inject():
            lab.step_clock(g, seconds)
            t0 = time.monotonic()
            off, _ = lab.guest_offset(g)
            return t0, {"offset": off, "note": f"offset after the step {off:+.1f} s"}
        return inject

    # The offset after a step is measured by the lab itself (guest-get-time
    # against the host clock), independently of the exporter.
    if not run_scenario(rig, "step_back_8min", g, step(-480),
                        lambda i, o: BASELINE | {"step_backward"} | offset_reasons(i["offset"]),
                        ("bad",), lambda: resync(rig, g)):
        return not_run(rig, ["step_forward_2min"], g, "guest not clean")
    run_scenario(rig, "step_forward_2min", g, step(120),
                 lambda i, o: BASELINE | {"step_forward"} | offset_reasons(i["offset"]),
                 ("bad",), lambda: resync(rig, g))


def track_hold(rig: Rig) -> None:
    """held still, then drifting."""
    lab, g = rig.lab, HOLD

    def hold():
        t0 = time.monotonic()
        lab.hold_clock(g, verify=False)
        return t0, {"note": "guest loop resets the clock to one second every 0.2 s"}

    def release():
        lab.release_clock(g)
        resync(rig, g)

    # A held clock falls behind by one second per second: the offset reason
    # is the one the exported offset of that scrape calls for. It never runs
    # backwards by more than the fraction of a second the hold truncates, so
    # it is stopped, not a series of backward steps (issue 12 item 3). The
    # pair in which the hold begins (the clock ran part of the interval, then
    # stood) cannot be told from a backward step until the next pair shows
    # the stop: step_backward may show until clock_stopped does, never after.
    if not run_scenario(rig, "held_still", g, hold,
                        lambda i, o: BASELINE | {"clock_stopped"} | offset_reasons(o.offset_s or 0),
                        ("bad",), release, persist=frozenset({"clock_stopped"}), persist_s=10,
                        forbidden_once=("clock_stopped", frozenset({"step_backward"}))):
        return not_run(rig, ["drifting"], g, "guest not clean")

    def drift():
        lab.drift_clock(g, DRIFT_PPM)
        return time.monotonic(), {"note": f"{DRIFT_PPM:.0f} ppm fast"}

    def undrift():
        lab.drift_clock(g, 0)
        resync(rig, g)

    # The offset grows by DRIFT_PPM * elapsed: same rule as held_still.
    # The drift component falls as the evidence grows: good or degraded when
    # drift_high first shows, degraded once the slope is known (5000 ppm is
    # ten times drift_zero_ratio). At first the fit is near its threshold
    # and the reason may flicker for a sample (seen once); from two samples
    # later it must stay.
    run_scenario(rig, "drifting", g, drift,
                 lambda i, o: BASELINE | {"drift_high"} | offset_reasons(o.offset_s or 0),
                 ("good", "degraded"), undrift, timeout=30, persist=frozenset({"drift_high"}),
                 persist_s=20, settle_s=2 * LIBVIRT_INTERVAL_S, final_band="degraded")


def lag_reasons(i: dict, o: Obs) -> FrozenSet[str]:
    """After a pause or save/restore: the lag the lab measured once the agent
    answered again, named resumed_behind, plus its offset reason."""
    return BASELINE | {"resumed_behind"} | offset_reasons(i["offset"])


def track_life(rig: Rig) -> None:
    """paused 20 s and resumed, then saved and restored."""
    lab, g = rig.lab, LIFE

    def pause():
        lab.pause(g)
        rig.event(g, "paused")
        try:
            time.sleep(20)
        finally:
            lab.resume(g)
        t0 = time.monotonic()
        lab.wait_agent(g, 60)
        off, _ = lab.guest_offset(g)
        return t0, {"offset": off, "note": f"lag after resume {off:+.1f} s"}

    if not run_scenario(rig, "paused_20s", g, pause, lag_reasons, ("degraded",),
                        lambda: resync(rig, g), forbidden=frozenset({"clock_stopped"})):
        return not_run(rig, ["saved_restored", "saved_restored_transient"], g, "guest not clean")

    def save_restore(persistent: bool):
        def inject():
            path = os.path.join(lab.workdir, "guests", g, "matrix-save.img")
            if persistent:
                # Most production domains are defined (persistent): a saved
                # one stays listed, shut off, until it is restored.
                lab.conn.defineXML(lab.domain(g).XMLDesc(0))
            ts = time.monotonic()
            try:
                lab.domain(g).save(path)
                rig.event(g, "saved")
                time.sleep(SAVED_S)
                lab.conn.restore(path)
            finally:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(path)
                if persistent:
                    with contextlib.suppress(Exception):
                        lab.domain(g).undefine()  # running: transient again
            t0 = time.monotonic()
            lab.wait_agent(g, 90)
            off, _ = lab.guest_offset(g)
            kind = "persistent" if persistent else "transient (gone from libvirt while saved)"
            return t0, {"offset": off, "note": f"{kind}; down {t0 - ts:.1f} s, lag {off:+.1f} s"}
        return inject

    if not run_scenario(rig, "saved_restored", g, save_restore(True), lag_reasons, ("degraded",),
                        lambda: resync(rig, g), forbidden=frozenset({"clock_stopped"})):
        return not_run(rig, ["saved_restored_transient"], g, "guest not clean")
    # The lab's domains are transient: saved, the domain is gone until the
    # restore brings it back (same UUID), as after a migration to this host.
    run_scenario(rig, "saved_restored_transient", g, save_restore(False), lag_reasons,
                 ("degraded",), lambda: resync(rig, g), forbidden=frozenset({"clock_stopped"}))


def track_agent(rig: Rig) -> None:
    """agent hung (SIGSTOP, healed by the guest after 40 s), then agent killed
    (restarted by the guest after 25 s)."""
    lab, g = rig.lab, AGENT

    def hang():
        t0 = time.monotonic() + 0.5
        lab.hang_agent_for(g, 40)
        return t0, {"note": "qemu-ga SIGSTOPped for 40 s"}

    expected = lambda i, o: BASELINE | {"agent_unreachable", "stale"}  # noqa: E731
    # The agent comes back by itself; the reset only waits for it.
    if not run_scenario(rig, "agent_hung", g, hang, expected, ("bad",),
                        lambda: lab.wait_agent(g, 90), transit_subset=True):
        return not_run(rig, ["agent_killed"], g, "guest not clean")

    def kill():
        t0 = time.monotonic() + 0.5
        lab.kill_agent(g, restart_after=25)
        return t0, {"note": "qemu-ga killed, restarted by the guest after 25 s"}

    run_scenario(rig, "agent_killed", g, kill, expected, ("bad",),
                 lambda: lab.wait_agent(g, 90), transit_subset=True)


def chronyd_scenario(rig: Rig, name: str, g: str, reason: str, ready: Callable[[List[str]], bool]
                     ) -> None:
    lab = rig.lab

    def precondition():
        # chronyd was stopped before the exporter started: the exporter must
        # report that no daemon answers before the fault is made.
        rig.watcher.wait(g, lambda o: o.daemon == "none" and o.reasons == BASELINE
                         and is_good(o), 120,
                         "guest status daemon none (chronyd stopped) and a clean state")

    def start_chronyd():
        code, _, err = lab.guest_exec(g, ["chronyd", "-u", "root", "-f", "/etc/chrony/chrony.conf"])
        if code != 0:
            raise vmlab.LabError(f"{g}: chronyd failed to start: {err}")
        t0 = time.monotonic()
        # How long chronyd itself takes to report the state (chronyc in the
        # guest), to tell the daemon's delay from the exporter's.
        t_ready = None
        deadline = t0 + 60
        while time.monotonic() < deadline:
            code, out, _ = lab.guest_exec(g, ["chronyc", "-c", "tracking"])
            if code == 0 and ready(out.strip().split(",")):
                t_ready = time.monotonic() - t0
                break
            time.sleep(0.5)
        ready_txt = "never" if t_ready is None else f"after {t_ready:.1f} s"
        return t0, {"note": f"chronyd started with the lab's config; chronyc showed it {ready_txt}"}

    # The daemon's status replaces guest_sync_unknown. No reset: the guest
    # keeps its chronyd until the lab goes.
    run_scenario(rig, name, g, start_chronyd, lambda i, o: frozenset({reason}), ("degraded",),
                 None, precondition=precondition, timeout=30)


def track_chrony(rig: Rig) -> None:
    # chronyc -c tracking: field 2 stratum, field 13 leap status.
    threads = [threading.Thread(target=chronyd_scenario, args=a, daemon=True) for a in
               [(rig, "guest_stratum_10", LOCAL10, "stratum_high",
                 lambda f: len(f) > 13 and f[2] == "10" and f[13] == "Normal"),
                (rig, "guest_unsynchronised", UNREACH, "unsynchronised",
                 lambda f: len(f) > 13 and f[13] == "Not synchronised")]]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=400)


def watch_clean(rig: Rig) -> None:
    """dm-clean from the exporter's first complete view of it (a clock
    sample, no no_data, and a guest status) for CLEAN_WATCH_S: every scrape
    must show exactly the baseline and band good."""
    r = Result("clean_watch_5min", CLEAN, expected=BASELINE, bands=("good",))
    rig.record(r)
    w = rig.watcher
    try:
        o = w.wait(CLEAN, lambda o: "no_data" not in o.reasons and o.daemon is not None, 120,
                   "a first clock sample and guest status")
        t_from = o.t
        time.sleep(max(0.0, t_from + CLEAN_WATCH_S - time.monotonic()))
        obs = w.between(CLEAN, t_from)
        span = obs[-1].t - obs[0].t
        if span < CLEAN_WATCH_S - 1:
            r.failures.append(f"watched only {span:.0f} s")
        seen = frozenset().union(*[o.reasons for o in obs])
        bands = sorted({o.band for o in obs}, key=str)
        r.observed, r.band = seen, "/".join(str(b) for b in bands)
        offs = [o.offset_s for o in obs if o.offset_s is not None]
        scores = [o.score for o in obs if o.score is not None]
        drifts = [abs(o.drift) * 1e6 for o in obs if o.drift is not None]
        uncs = [o.uncertainty for o in obs if o.uncertainty is not None]
        late = [abs(o.drift) * 1e6 for o in obs if o.drift is not None and o.t > t_from + 60]
        # How far apart the samples were, to tell a late sample from a late
        # publish should `stale` ever show.
        stamps = sorted({o.sample_ts for o in obs if o.sample_ts is not None})
        gaps = [b - a for a, b in zip(stamps, stamps[1:])]
        r.note = (f"{len(obs)} scrapes over {span:.0f} s from the first sample; offset "
                  f"{min(offs):+.4f}..{max(offs):+.4f} s (uncertainty up to {max(uncs, default=0):.4f} s); "
                  f"score {min(scores):.1f}..{max(scores):.1f}; "
                  f"drift ratio up to {max(drifts, default=0):.0f} ppm, "
                  f"{max(late, default=0):.0f} ppm after the first minute; "
                  f"{len(stamps)} samples, up to {max(gaps, default=0):.1f} s apart")
        if seen != BASELINE:
            r.failures.append(f"reasons seen on a clean guest: {fmt_set(seen - BASELINE)}")
        if bands != ["good"]:
            r.failures.append(f"bands seen: {bands}")
        r.history = w.history(CLEAN, t_from)
    except Exception as e:  # noqa: BLE001
        r.failures.append(f"{type(e).__name__}: {e}")


def host_scenario(rig: Rig) -> None:
    def inject():
        rig.host.chronyc("local", "off")
        t0 = time.monotonic()
        return t0, {"note": "private host chronyd: `chronyc local off` (its server never answers)"}

    def restore():
        rig.host.chronyc("local", "stratum", str(HOST_STRATUM))

    run_scenario(rig, "host_unsynchronised", CLEAN, inject,
                 lambda i, o: BASELINE | {"host_unsynchronised"}, ("degraded",), restore,
                 timeout=15, clear_timeout=30)
    r = rig.results["host_unsynchronised"]
    # The same scrape must say where the host truth came from.
    if r.obs is not None:
        hs = dict(r.obs.host_sync)
        if hs.get("chrony") != 0.0:
            r.failures.append(f"vmtime_host_synchronised{{source=\"chrony\"}} is "
                              f"{hs.get('chrony')} (all: {hs}) while host_unsynchronised; want 0")
    last = rig.watcher.latest(CLEAN)
    if r.cleared_s is not None and last and dict(last.host_sync).get("chrony") != 1.0:
        r.failures.append(f"after `chronyc local stratum {HOST_STRATUM}`: "
                          f"vmtime_host_synchronised {dict(last.host_sync)}; want chrony 1")


def check_startup(rig: Rig) -> Result:
    """Every agent answered before the exporter started, so until each VM's
    first clock sample and two libvirt intervals after it (before any fault)
    no VM may be reported agent_unreachable (issue 12 item 4: no false
    "down" after a start)."""
    r = Result("startup_no_false_down", "all", expected=frozenset({"no_data"}))
    w = rig.watcher
    firsts = {}
    for n in GUESTS:
        try:
            o = w.wait(n, lambda o: "no_data" not in o.reasons, 90, "a first clock sample")
            firsts[n] = o.t - rig.exporter_start
        except TimeoutError as e:
            r.failures.append(str(e))
    time.sleep(2 * LIBVIRT_INTERVAL_S)
    end = time.monotonic()
    seen = set()
    for n in GUESTS:
        obs = w.between(n, 0, end)
        seen |= set().union(*[o.reasons for o in obs] or [set()])
        if any("agent_unreachable" in o.reasons for o in obs):
            r.failures.append(f"{n}: agent_unreachable at start-up: "
                              f"{w.history(n, rig.exporter_start, end)}")
    r.observed = frozenset(seen)
    r.note = (f"first sample {min(firsts.values(), default=0):.1f}.."
              f"{max(firsts.values(), default=0):.1f} s after the exporter started; "
              f"reasons before the first fault: {fmt_set(seen)}")
    return r


# --- the run -------------------------------------------------------------------

SCENARIOS = ["healthy", "step_back_8min", "step_forward_2min", "held_still", "paused_20s",
             "saved_restored", "saved_restored_transient", "drifting", "agent_hung", "agent_killed", "guest_stratum_10",
             "guest_unsynchronised", "host_unsynchronised", "clean_watch_5min",
             "startup_no_false_down"]


def table(rig: Rig) -> str:
    def num(v):
        return "—" if v is None else f"{v:.1f}"
    rows = ["| scenario | guest | expected reasons | expected band | observed reasons | band "
            "(score) | latency s | first reason s | cleared s | result | note |",
            "|---|---|---|---|---|---|---|---|---|---|---|"]
    for n in SCENARIOS:
        r = rig.results.get(n)
        if r is None:
            rows.append(f"| {n} | | | | | | | | | not run | |")
            continue
        exp = fmt_set(r.expected) if r.expected is not None else "?"
        obs = fmt_set(r.observed) if r.observed is not None else "?"
        sc = f" ({r.score:.1f})" if r.score is not None else ""
        res = "pass" if not r.failures else "FAIL"
        rows.append(f"| {n} | {r.guest} | {exp} | {'/'.join(r.bands)} | {obs} | {r.band}{sc} | "
                    f"{num(r.latency_s)} | {num(r.first_reason_s)} | {num(r.cleared_s)} | {res} | "
                    f"{r.note} |")
    return "\n".join(rows)


def details(rig: Rig) -> str:
    out = []
    for n, r in rig.results.items():
        out.append(f"{n} ({r.guest}): {r.history}")
        out += [f"   ! {f}" for f in r.failures]
    out.append("events (s after the exporter started):")
    out += [f"  +{t - rig.exporter_start:6.1f} {g}: {what}" for t, g, what in rig.events]
    return "\n".join(out)


def dump_series(rig: Rig, path: str) -> None:
    """Every VM's scrapes (s after the exporter started, offset, uncertainty,
    drift ratio, reasons, band, score) for offline analysis."""
    data = {n: [[round(o.t - rig.exporter_start, 3), o.offset_s, o.uncertainty, o.drift,
                 sorted(o.reasons), o.band, o.score]
                for o in rig.watcher.between(n, 0)] for n in GUESTS}
    data["_events"] = [[round(t - rig.exporter_start, 3), g, w] for t, g, w in rig.events]
    with open(path, "w") as f:
        json.dump(data, f)


@pytest.fixture(scope="module")
def matrix():
    out_dir = os.environ.get("VMTIME_BINARY_DIR") or tempfile.gettempdir()
    with contextlib.ExitStack() as stack:
        host = HostChrony()
        stack.callback(host.close)
        specs = [vmlab.GuestSpec(n, chrony=c) for n, c in GUESTS.items()]
        lab = stack.enter_context(vmlab.Lab(guests=specs, boot_timeout=240))
        for n in GUESTS:
            if GUESTS[n] != "none":
                code, _, err = lab.guest_exec(n, ["sh", "-c", "kill $(pidof chronyd)"])
                assert code == 0, f"{n}: stopping chronyd: {err}"
            lab.set_clock_to_host(n)
        exporter_start = time.monotonic()
        exp = Exporter(config_text=exporter_config(lab.uri, host.sock), start_timeout=60)
        stack.callback(exp.stop)
        watcher = Watcher(exp)
        stack.callback(watcher.stop)
        rig = Rig(lab, exp, watcher, host, exporter_start)
        startup = check_startup(rig)
        rig.record(startup)
        tracks = [threading.Thread(target=f, args=(rig,), name=f.__name__, daemon=True)
                  for f in (watch_clean, track_step, track_hold, track_life, track_agent,
                            track_chrony)]
        for t in tracks:
            t.start()
        deadline = time.monotonic() + TRACKS_TIMEOUT_S
        for t in tracks:
            t.join(timeout=max(1.0, deadline - time.monotonic()))
        stuck = [t.name for t in tracks if t.is_alive()]
        if not stuck:
            host_scenario(rig)
        text = table(rig) + "\n\n" + details(rig)
        if stuck:
            text += f"\n\ntracks still running after {TRACKS_TIMEOUT_S} s: {stuck}"
        with open(os.path.join(out_dir, "detection_matrix.md"), "w") as f:
            f.write(text + "\n")
        dump_series(rig, os.path.join(out_dir, "detection_matrix_series.json"))
        with open(os.path.join(out_dir, "detection_matrix_exporter.log"), "w") as f:
            f.write(exp.log() + "\n")
        print("\n" + text, file=sys.stderr)
        rig.report = text
        rig.stuck = stuck
        yield rig


@pytest.mark.parametrize("name", SCENARIOS)
def test_scenario(matrix, name):
    assert not matrix.stuck, f"tracks did not finish in time: {matrix.stuck}\n{matrix.report}"
    r = matrix.results.get(name)
    assert r is not None, f"{name} did not run\n{matrix.report}"
    assert not r.failures, (f"{name} on {r.guest}: " + "\n".join(r.failures)
                            + f"\nobserved: {r.history}\n\n{matrix.report}")
